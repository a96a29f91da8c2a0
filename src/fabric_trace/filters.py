"""Report filters: ``--where`` expressions, ``--workflow`` and time windows.

``--where`` is parsed by a small grammar over an allow-list of normalized
columns and compiled to SQL with bound parameters; user text is never pasted
into SQL. Grammar::

    expr    := term (("and" | "or") term)*
    term    := "not" term | "(" expr ")" | column op value | column "in" "(" value ("," value)* ")"
               | column "is" ["not"] "null"
    op      := "=" | "!=" | "<" | "<=" | ">" | ">=" | "~"      (~ is a case-insensitive glob)
    value   := 'single-quoted' | "double-quoted" | number | bare-word

Example: ``role = llm and (provider = openai or model ~ 'gpt-4*') and duration_ns > 1e9``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from fabric_trace.errors import UsageError
from fabric_trace.model import SqlFilter

__all__ = ["WHERE_COLUMNS", "parse_time", "parse_where"]

#: Columns of the ``spans`` view that ``--where`` may use, with their type.
WHERE_COLUMNS: dict[str, str] = {
    "name": "text", "kind": "text", "status_code": "text", "service_name": "text",
    "service_namespace": "text", "region": "text", "zone": "text", "host": "text", "role": "text",
    "operation": "text", "model": "text", "provider": "text", "peer": "text", "url_scheme": "text",
    "user_id": "text", "session_id": "text", "tool_name": "text", "agent_name": "text",
    "workflow_name": "text", "db_system": "text", "trace_id": "text", "span_id": "text",
    "input_tokens": "num", "output_tokens": "num", "cached_input_tokens": "num",
    "start_ns": "num", "end_ns": "num", "duration_ns": "num",
}

_TOKEN = re.compile(
    r"""\s*(?:(?P<op><=|>=|!=|=|<|>|~|\(|\)|,)|'(?P<sq>(?:[^']|'')*)'|"(?P<dq>(?:[^"]|"")*)"|(?P<word>[^\s()=!<>~,'"]+))"""
)


@dataclass
class _Tok:
    kind: str  # op | str | word
    text: str
    pos: int


def _tokenize(expr: str) -> list[_Tok]:
    toks: list[_Tok] = []
    pos = 0
    while pos < len(expr):
        if expr[pos:].strip() == "":
            break
        m = _TOKEN.match(expr, pos)
        if not m or m.end() == pos:
            raise _err(expr, pos, "unexpected character")
        start = m.start() + (len(m.group(0)) - len(m.group(0).lstrip()))
        if m.group("op"):
            toks.append(_Tok("op", m.group("op"), start))
        elif m.group("sq") is not None:
            toks.append(_Tok("str", m.group("sq").replace("''", "'"), start))
        elif m.group("dq") is not None:
            toks.append(_Tok("str", m.group("dq").replace('""', '"'), start))
        else:
            toks.append(_Tok("word", m.group("word"), start))
        pos = m.end()
    return toks


def _err(expr: str, pos: int, msg: str) -> UsageError:
    caret = " " * pos + "^"
    return UsageError(f"bad --where filter: {msg} at position {pos}\n  {expr}\n  {caret}",
                      hint="columns: " + ", ".join(sorted(WHERE_COLUMNS)))


@dataclass
class _Parser:
    expr: str
    toks: list[_Tok]
    i: int = 0
    params: list[Any] = field(default_factory=list)
    prefix: str = ""

    def peek(self) -> _Tok | None:
        return self.toks[self.i] if self.i < len(self.toks) else None

    def take(self) -> _Tok:
        tok = self.peek()
        if tok is None:
            raise _err(self.expr, len(self.expr), "unexpected end of filter")
        self.i += 1
        return tok

    def parse(self) -> str:
        sql = self.parse_expr()
        if self.peek() is not None:
            tok = self.peek()
            assert tok is not None
            raise _err(self.expr, tok.pos, f"unexpected {tok.text!r}")
        return sql

    def parse_expr(self) -> str:
        parts = [self.parse_term()]
        while (tok := self.peek()) is not None and tok.kind == "word" and tok.text.lower() in ("and", "or"):
            self.take()
            parts.append(tok.text.upper())
            parts.append(self.parse_term())
        return "(" + " ".join(parts) + ")"

    def parse_term(self) -> str:
        tok = self.take()
        if tok.kind == "word" and tok.text.lower() == "not":
            return "(NOT " + self.parse_term() + ")"
        if tok.kind == "op" and tok.text == "(":
            inner = self.parse_expr()
            close = self.take()
            if close.text != ")":
                raise _err(self.expr, close.pos, "expected ')'")
            return inner
        if tok.kind != "word" or tok.text.lower() not in WHERE_COLUMNS:
            raise _err(self.expr, tok.pos, f"unknown column {tok.text!r}")
        col = tok.text.lower()
        ctype = WHERE_COLUMNS[col]
        ref = f"{self.prefix}{col}"
        op = self.take()
        if op.kind == "word" and op.text.lower() == "is":
            nxt = self.take()
            negate = nxt.kind == "word" and nxt.text.lower() == "not"
            if negate:
                nxt = self.take()
            if nxt.kind != "word" or nxt.text.lower() != "null":
                raise _err(self.expr, nxt.pos, "expected NULL")
            return f"({ref} IS {'NOT ' if negate else ''}NULL)"
        if op.kind == "word" and op.text.lower() == "in":
            if self.take().text != "(":
                raise _err(self.expr, op.pos, "expected '(' after IN")
            values = [self.value(ctype)]
            while (t := self.take()).text == ",":
                values.append(self.value(ctype))
            if t.text != ")":
                raise _err(self.expr, t.pos, "expected ')'")
            self.params.extend(values)
            return f"({ref} IN ({', '.join('?' for _ in values)}))"
        if op.kind != "op" or op.text not in ("=", "!=", "<", "<=", ">", ">=", "~"):
            raise _err(self.expr, op.pos, f"expected an operator after {col}")
        value = self.value(ctype if op.text != "~" else "text")
        self.params.append(value)
        if op.text == "~":
            return f"(lower(CAST({ref} AS VARCHAR)) GLOB lower(?))"
        sql_op = "<>" if op.text == "!=" else op.text
        return f"({ref} {sql_op} ?)"

    def value(self, ctype: str) -> Any:
        tok = self.take()
        if tok.kind == "op":
            raise _err(self.expr, tok.pos, "expected a value")
        if ctype == "num":
            try:
                number = float(tok.text)
            except ValueError:
                raise _err(self.expr, tok.pos, f"{tok.text!r} is not a number") from None
            return int(number) if number.is_integer() else number
        return tok.text


def parse_where(expr: str | None, *, prefix: str = "") -> SqlFilter:
    """Compile a ``--where`` expression over ``spans`` columns (``prefix`` e.g. ``"s."``)."""
    if expr is None or not expr.strip():
        return SqlFilter()
    parser = _Parser(expr, _tokenize(expr), prefix=prefix)
    sql = parser.parse()
    return SqlFilter(sql, tuple(parser.params))


_REL = re.compile(r"^(?P<n>\d+(?:\.\d+)?)(?P<u>s|m|h|d|w)$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_time(value: str | None, *, now: datetime | None = None) -> int | None:
    """Parse ``--since``/``--until``: ISO 8601 (``2026-11-28T10:00:00Z``), a relative age
    (``30m``, ``2h``, ``7d``: before ``now``) or integer epoch nanoseconds. Returns ns."""
    if value is None or value == "":
        return None
    v = value.strip()
    if v.isdigit():
        return int(v)
    m = _REL.match(v)
    if m:
        now = now or datetime.now(timezone.utc)
        delta = timedelta(seconds=float(m.group("n")) * _UNITS[m.group("u")])
        return _to_ns(now - delta)
    try:
        dt = datetime.fromisoformat(v.replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(f"bad time {value!r}", hint="use ISO 8601 (2026-11-28T10:00:00Z), 30m/2h/7d, or epoch ns") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return _to_ns(dt)


def _to_ns(dt: datetime) -> int:
    epoch = datetime(1970, 1, 1, tzinfo=timezone.utc)
    delta = dt - epoch
    return (delta.days * 86400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1000
