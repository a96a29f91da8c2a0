"""``python -m fabric_trace`` runs the ``fabric`` command."""

from fabric_trace.cli.app import main

main()
