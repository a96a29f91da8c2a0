"""Reading the column tables of docs/*.md and a view's columns, for the tests that pin the
documented views (tests/store/test_schema_contract.py, tests/analyzers/llm/test_llm_docs.py)."""

from __future__ import annotations

import re

import duckdb


def doc_columns(doc: str, heading: str) -> list[str]:
    """Column names of the ``| column | type | meaning |`` table under ``heading``, in order
    (a cell may name several: ``a, b``); [] when the section has no such table."""
    part = doc.split(heading, 1)[1].split("\n## ", 1)[0].split("\n### ", 1)[0]
    names: list[str] = []
    for line in part.splitlines():
        m = re.match(r"\| ([a-z_0-9, ]+) \|", line)
        if m and m.group(1) != "column":
            names += [n.strip() for n in m.group(1).split(",")]
    return names


def describe(db: str, view: str) -> list[tuple[str, str]]:
    """``(column, type)`` of ``view`` in the database file ``db``, opened read-only."""
    con = duckdb.connect(db, read_only=True)
    try:
        return [(r[0], r[1]) for r in con.execute(f"DESCRIBE {view}").fetchall()]
    finally:
        con.close()
