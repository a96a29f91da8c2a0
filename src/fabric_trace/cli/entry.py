"""The ``fabric`` console script: Ctrl-C is handled from the first instruction.

Importing the CLI (typer, rich, DuckDB) takes a while; a Ctrl-C during it, or
anywhere later, ends the command with one line on stderr and exit 130, never a
traceback (see :mod:`fabric_trace.interrupts`).
"""

from __future__ import annotations

import sys

from fabric_trace import interrupts

#: The one line printed when Ctrl-C ended the command (cli/errors.py prints it too).
INTERRUPTED_LINE = "interrupted: stopped by Ctrl-C; the database is consistent (an unfinished write was rolled back)"


def main() -> None:
    """Console-script entry point."""
    interrupts.install()
    code: object = 0
    try:
        interrupts.pause_point("startup")
        from fabric_trace.cli.app import app

        app()
    except SystemExit as exc:
        code = exc.code
    except KeyboardInterrupt:
        code = 130
    if interrupts.interrupted() or code == 130:
        if not interrupts.reported():
            sys.stderr.write(INTERRUPTED_LINE + "\n")
        code = 130
    interrupts.ignore()  # a Ctrl-C while the interpreter shuts down must not change the exit code
    sys.exit(code)
