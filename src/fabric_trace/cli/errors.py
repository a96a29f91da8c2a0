"""The one place where errors become messages on stderr and exit codes."""

from __future__ import annotations

import os
import sys
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import NoReturn, TypeVar

import duckdb
import typer
from rich.console import Console
from rich.text import Text

from fabric_trace import interrupts
from fabric_trace.cli.color import console_options
from fabric_trace.errors import ExitCode, FabricError, InternalError, Interrupted

T = TypeVar("T")

#: Exit code for a bug in fabric itself (EX_SOFTWARE).
INTERNAL_ERROR = int(ExitCode.INTERNAL)


def stderr_console() -> Console:
    """The console for progress, warnings and summaries (never stdout)."""
    return Console(stderr=True, highlight=False, soft_wrap=True, **console_options(sys.stderr))


def _hint(exc: FabricError) -> str | None:
    """The hint of ``exc``, ending with its fabric command made paste-able (``--db`` carried)."""
    if exc.command is None:
        return exc.hint
    from fabric_trace.cli.options import fabric_command

    return f"{exc.hint} {fabric_command(*exc.command)}" if exc.hint else fabric_command(*exc.command)


def notifier(console: Console) -> Callable[[str], None]:
    """A callback that prints a library notice (e.g. stale derived tables) as a note on ``console``."""

    def notify(message: str) -> None:
        line = Text("note: ", style="yellow")
        line.append(message)  # plain text, never parsed as markup
        console.print(line)

    return notify


def _emit(console: Console, label: str, message: str, hint: str | None) -> None:
    line = Text(f"{label}: ", style="bold red")
    line.append(message)  # plain text, never parsed as markup
    console.print(line)
    if hint:
        tip = Text("hint: ", style="yellow")
        tip.append(hint)
        console.print(tip)


@contextmanager
def guarded(console: Console | None = None) -> Iterator[None]:
    """Run a command body; turn fabric errors into a message and an exit code.

    No traceback reaches the user: an unexpected exception is reported as an
    internal error (exit 70), with the traceback only when ``FABRIC_DEBUG=1``.
    """
    console = console or stderr_console()
    try:
        yield
    except typer.Exit as exc:
        if interrupts.interrupted() and exc.exit_code != ExitCode.INTERRUPTED:
            _interrupted(console, None)
        raise
    except BaseException as exc:  # noqa: BLE001 - the last line of defence
        if isinstance(exc, (KeyboardInterrupt, Interrupted)) or interrupts.interrupted():
            # whatever is unwinding after Ctrl-C ("Query interrupted", an aborted transaction) is the interrupt
            _interrupted(console, exc.message if isinstance(exc, Interrupted) else None)
        if isinstance(exc, FabricError):
            internal = isinstance(exc, InternalError)
            _emit(console, "internal error" if internal else "error", exc.message, _hint(exc))
            if internal and os.environ.get("FABRIC_DEBUG") == "1":
                console.print(Text("".join(traceback.format_exception(exc.__cause__ or exc))))
            raise typer.Exit(int(exc.exit_code)) from None
        if isinstance(exc, duckdb.Error):
            _emit(console, "error", f"database error: {exc}", None)
            raise typer.Exit(int(ExitCode.DB_ERROR)) from None
        if isinstance(exc, BrokenPipeError):
            raise typer.Exit(0) from None
        if not isinstance(exc, Exception):
            raise
        _emit(console, "internal error", f"{type(exc).__name__}: {exc}",
              "this is a bug in fabric; rerun with FABRIC_DEBUG=1 for a traceback and report it")
        if os.environ.get("FABRIC_DEBUG") == "1":
            console.print(Text(traceback.format_exc()))
        raise typer.Exit(INTERNAL_ERROR) from None


def _interrupted(console: Console, detail: str | None) -> NoReturn:
    """One line on stderr, exit 130 (later Ctrl-Cs are ignored meanwhile: see fabric_trace.interrupts)."""
    if not interrupts.reported():
        line = Text("interrupted: ", style="bold red")
        line.append(f"stopped by Ctrl-C; {detail}" if detail else
                    "stopped by Ctrl-C; the database is consistent (an unfinished write was rolled back)")
        console.print(line)
        interrupts.mark_reported()
    raise typer.Exit(int(ExitCode.INTERRUPTED)) from None


def call(fn: Callable[[], T], console: Console | None = None) -> T:
    """Call ``fn`` under :func:`guarded`."""
    with guarded(console):
        return fn()
    raise AssertionError("unreachable")  # pragma: no cover
