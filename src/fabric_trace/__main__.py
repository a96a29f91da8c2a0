"""``python -m fabric_trace`` runs the ``fabric`` command."""

from fabric_trace.cli.entry import main

main()
