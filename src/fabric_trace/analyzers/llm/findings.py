"""Finding kinds of the llm analyzer: none yet.

The analyzer reports usage and cost; it does not judge them. Unpriced calls are not findings
but a ``cost_note`` on the call (docs/llm.md) and a note of ``fabric report llm``. Budgets on
cost and tokens are the gate's (its metrics are in the registry entry, docs/ci.md).
"""

from __future__ import annotations

from fabric_trace.model import Severity

#: Finding kind -> severity (the analyzer has none).
SEVERITIES: dict[str, Severity] = {}
