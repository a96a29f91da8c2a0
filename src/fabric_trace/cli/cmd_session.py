"""``fabric session ls`` and ``fabric session show``."""

from __future__ import annotations

from typing import Optional

import typer

from fabric_trace.analyzers.llm.browse import list_sessions, show_session
from fabric_trace.cli.reporting import emit_report
from fabric_trace.cli.options import (
    ConfigOption, DbOption, FormatOption, LakeOption, LockTimeoutOption, SinceOption, UntilOption,
)
from fabric_trace.render.formats import OutputFormat


def ls_command(
    db: Optional[str] = DbOption,
    lake: Optional[str] = LakeOption,
    fmt: OutputFormat = FormatOption,
    limit: int = typer.Option(20, "--limit", "-n", min=1, help="How many sessions."),
    user: Optional[str] = typer.Option(None, "--user", metavar="USER_ID", help="Only this user's sessions."),
    since: Optional[str] = SinceOption,
    until: Optional[str] = UntilOption,
    config: Optional[str] = ConfigOption,
    lock_timeout: float = LockTimeoutOption,
) -> None:
    """List recent sessions (conversations): user, turns, duration, LLM calls, tokens, cost, errors, findings."""
    emit_report(lambda con, flt: list_sessions(con, limit, user, flt.since_ns, flt.until_ns), fmt,
                db=db, lake=lake, config=config, lock_timeout=lock_timeout, since=since, until=until)


def show_command(
    session_id: str = typer.Argument(..., metavar="SESSION_ID", help="Session id (or a unique prefix)."),
    db: Optional[str] = DbOption,
    lake: Optional[str] = LakeOption,
    fmt: OutputFormat = FormatOption,
    config: Optional[str] = ConfigOption,
    lock_timeout: float = LockTimeoutOption,
) -> None:
    """Show one session: its turns as a timeline, its LLM calls and cost, and its critical path across turns."""
    emit_report(lambda con, _flt: show_session(con, session_id), fmt, db=db, lake=lake, config=config,
                lock_timeout=lock_timeout)
