"""One colour per AI role, the same in every picture of the report (and in its legend)."""

from __future__ import annotations

#: Role -> fill colour. Unknown roles get a grey.
ROLE_COLORS: dict[str, str] = {
    "llm": "#7c4dff",
    "embedding": "#b39ddb",
    "retrieval": "#00897b",
    "rerank": "#4db6ac",
    "vector_store": "#26a69a",
    "tool": "#f4511e",
    "agent": "#3949ab",
    "workflow": "#5c6bc0",
    "memory": "#8d6e63",
    "cache": "#fbc02d",
    "database": "#6d4c41",
    "policy": "#d81b60",
    "evaluator": "#ad1457",
    "http": "#1e88e5",
    "rpc": "#039be5",
    "messaging": "#43a047",
    "internal": "#90a4ae",
}
OTHER = "#b0bec5"
ERROR = "#d50000"
CRITICAL = "#111111"


def role_color(role: str | None) -> str:
    """The colour of ``role``."""
    return ROLE_COLORS.get(role or "", OTHER)
