"""The one place where errors become messages on stderr and exit codes."""

from __future__ import annotations

import os
import sys
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

import duckdb
import typer
from rich.console import Console
from rich.text import Text

from fabric_trace.cli.color import console_options
from fabric_trace.errors import ExitCode, FabricError

T = TypeVar("T")

#: Exit code for a bug in fabric itself (EX_SOFTWARE).
INTERNAL_ERROR = 70


def stderr_console() -> Console:
    """The console for progress, warnings and summaries (never stdout)."""
    return Console(stderr=True, highlight=False, soft_wrap=True, **console_options(sys.stderr))


def _hint(exc: FabricError) -> str | None:
    """The hint of ``exc``, ending with its fabric command made paste-able (``--db`` carried)."""
    if exc.command is None:
        return exc.hint
    from fabric_trace.cli.options import fabric_command

    return f"{exc.hint} {fabric_command(*exc.command)}" if exc.hint else fabric_command(*exc.command)


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
    except typer.Exit:
        raise
    except FabricError as exc:
        _emit(console, "error", exc.message, _hint(exc))
        raise typer.Exit(int(exc.exit_code)) from None
    except KeyboardInterrupt:
        _emit(console, "interrupted", "stopped by Ctrl-C", "run the command again to complete it")
        raise typer.Exit(int(ExitCode.INTERRUPTED)) from None
    except duckdb.Error as exc:
        _emit(console, "error", f"database error: {exc}", None)
        raise typer.Exit(int(ExitCode.DB_ERROR)) from None
    except BrokenPipeError:
        raise typer.Exit(0) from None
    except Exception as exc:  # noqa: BLE001 - the last line of defence
        _emit(console, "internal error", f"{type(exc).__name__}: {exc}",
              "this is a bug in fabric; rerun with FABRIC_DEBUG=1 for a traceback and report it")
        if os.environ.get("FABRIC_DEBUG") == "1":
            console.print(Text(traceback.format_exc()))
        raise typer.Exit(INTERNAL_ERROR) from None


def call(fn: Callable[[], T], console: Console | None = None) -> T:
    """Call ``fn`` under :func:`guarded`."""
    with guarded(console):
        return fn()
    raise AssertionError("unreachable")  # pragma: no cover
