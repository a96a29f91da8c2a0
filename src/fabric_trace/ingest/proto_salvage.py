"""The slow path of :mod:`otlp_proto`: salvage what can be decoded from a refused message.

upb refuses a whole message for one bad piece (bad UTF-8 in a name, a malformed
length...). Here the message is split with the wire walker into its ResourceSpans,
then ScopeSpans, then Span byte ranges; each piece is parsed on its own and only the
pieces that still fail are quarantined, with the reason and the byte offset (relative
to the message; ``ctx.base`` is the offset of ``data`` in it when a big message is
decoded in pieces) and, for a span, its ids and raw bytes as hex.
"""

from __future__ import annotations

from typing import Any

from fabric_trace.ingest.proto_rows import (
    Ctx,
    flush_notes,
    hex_excerpt,
    resource_id,
    resource_spans,
    scope_id,
    spans,
)
from fabric_trace.ingest.proto_schema import ResourceMsg, ResourceSpansMsg, ScopeMsg, ScopeSpansMsg, SpanMsg
from fabric_trace.ingest.proto_wire import (
    SCOPE_STRINGS,
    SPAN_STRINGS,
    WireError,
    diagnose,
    iter_fields,
    repair_strings,
    repaired_text,
    span_ids,
)


def _parse(cls: Any, data: bytes, p: int, q: int) -> Any:
    try:
        return cls.FromString(data[p:q])
    except Exception:  # upb DecodeError
        return None


def _parse_repaired(cls: Any, data: bytes, p: int, q: int, strings: dict[int, Any], base: int) -> tuple[Any, list[str]]:
    """Parse a message upb refused after replacing invalid UTF-8 in its string fields with U+FFFD.

    Returns (message, repair notes), or (None, []) if it still does not parse."""
    try:
        fixed, notes = repair_strings(data, p, q, strings, base)
    except WireError:
        return None, []
    if not notes:
        return None, []
    msg = _parse(cls, fixed, 0, len(fixed))
    return (msg, notes) if msg is not None else (None, [])


def _schema_url(data: bytes, p: int, q: int, where: str, ctx: Ctx) -> str:
    text = repaired_text(data, p, q, "schemaUrl", ctx.vd.notes)
    if ctx.vd.notes:
        flush_notes(ctx, where)
    return text


def salvage_request(data: bytes, ctx: Ctx) -> None:
    """Decode what can be decoded of a request upb refused; quarantine the rest."""
    count = ctx.index0
    try:
        for field, wire, _n, p, q in iter_fields(data, 0, len(data)):
            if field == 1 and wire == 2:
                _resource_spans(data, p, q, ctx, f"{ctx.prefix}resourceSpans[{count}]")
                count += 1
    except WireError as exc:
        _malformed(ctx, ctx.prefix + f"byte {exc.offset + ctx.base}", exc, data, len(data), "the message")


def _malformed(ctx: Ctx, where: str, exc: WireError, data: bytes, end: int, what: str) -> None:
    ctx.sink.reject(
        where,
        f"malformed protobuf: {exc.at(ctx.base)} (rest of {what} skipped)",
        raw=hex_excerpt(data, exc.offset, end),
        counts_as_span=False,  # type: ignore[call-arg]
    )


def _resource_spans(data: bytes, p: int, q: int, ctx: Ctx, where: str) -> None:
    rs = _parse(ResourceSpansMsg, data, p, q)
    if rs is not None:
        resource_spans(rs, ctx, where)
        return
    resource = None
    schema_url = ""
    groups: list[tuple[str, int, int]] = []
    error: WireError | None = None
    try:
        for field, wire, _n, fp, fq in iter_fields(data, p, q):
            if wire != 2:
                continue
            if field == 1:
                resource = (fp, fq)
            elif field == 3:
                schema_url = _schema_url(data, fp, fq, where, ctx)
            elif field in (2, 1000):
                groups.append(("scopeSpans" if field == 2 else "instrumentationLibrarySpans", fp, fq))
    except WireError as exc:
        error = exc
    named: list[tuple[str, int, int]] = []
    counters = {"scopeSpans": 0, "instrumentationLibrarySpans": 0}
    for label, gp, gq in groups:
        named.append((f"{where}.{label}[{counters[label]}]", gp, gq))
        counters[label] += 1

    def reject_all(reason: str) -> None:
        found = False
        for w, gp, gq in named:
            found = _reject_ranges(ctx, data, _span_ranges(data, gp, gq), w, reason) or found
        if not found:
            ctx.sink.reject(f"{where} (message byte {p + ctx.base})", reason, raw=hex_excerpt(data, p, q), counts_as_span=False)  # type: ignore[call-arg]

    rmsg = ResourceMsg() if resource is None else _parse(ResourceMsg, data, *resource)
    if rmsg is None:
        assert resource is not None
        reject_all(f"resource: {diagnose(data, resource[0], resource[1], {}, ctx.base)}")
        return
    rid = resource_id(rmsg, schema_url, ctx, where, reject_all)
    if rid is None:
        return
    for w, gp, gq in named:
        _scope_spans(data, gp, gq, ctx, rid, w)
    if error is not None:
        _malformed(ctx, f"{where} (message byte {error.offset + ctx.base})", error, data, q, "this resourceSpans")


def _span_ranges(data: bytes, p: int, q: int) -> list[tuple[int, int]]:
    out = []
    try:
        for field, wire, _n, fp, fq in iter_fields(data, p, q):
            if field == 2 and wire == 2:
                out.append((fp, fq))
    except WireError:
        pass
    return out


def _reject_ranges(ctx: Ctx, data: bytes, ranges: list[tuple[int, int]], where: str, reason: str) -> bool:
    for k, (sp, sq) in enumerate(ranges):
        tid, sid = span_ids(data, sp, sq)
        ctx.sink.reject(f"{where}.spans[{k}] (message byte {sp + ctx.base})", reason, trace_id=tid, span_id=sid)
    return bool(ranges)


def _scope_spans(data: bytes, p: int, q: int, ctx: Ctx, rid: str, where: str) -> None:
    ss = _parse(ScopeSpansMsg, data, p, q)
    sink = ctx.sink
    if ss is not None:

        def reject_group(reason: str) -> None:
            if not _reject_ranges(ctx, data, _span_ranges(data, p, q), where, reason):
                sink.reject(where, reason, counts_as_span=False)  # type: ignore[call-arg]

        sid = scope_id(ss.scope, ss.schema_url, ctx, where, reject_group)
        if sid is not None:
            spans(ss.spans, 0, ctx, rid, sid, f"{where}.spans[")
        return
    scope = None
    schema_url = ""
    ranges: list[tuple[int, int]] = []
    error: WireError | None = None
    try:
        for field, wire, _n, fp, fq in iter_fields(data, p, q):
            if wire != 2:
                continue
            if field == 1:
                scope = (fp, fq)
            elif field == 2:
                ranges.append((fp, fq))
            elif field == 3:
                schema_url = _schema_url(data, fp, fq, where, ctx)
    except WireError as exc:
        error = exc

    def reject_here(reason: str) -> None:
        if not _reject_ranges(ctx, data, ranges, where, reason):
            sink.reject(f"{where} (message byte {p + ctx.base})", reason, raw=hex_excerpt(data, p, q), counts_as_span=False)  # type: ignore[call-arg]

    smsg = ScopeMsg() if scope is None else _parse(ScopeMsg, data, *scope)
    if smsg is None:
        assert scope is not None
        smsg, notes = _parse_repaired(ScopeMsg, data, *scope, SCOPE_STRINGS, ctx.base)
        for note in notes:
            sink.repair(f"{where}.scope", note)
    if smsg is None:
        assert scope is not None
        reject_here(diagnose(data, scope[0], scope[1], SCOPE_STRINGS, ctx.base))
        return
    sid = scope_id(smsg, schema_url, ctx, where, reject_here)
    if sid is None:
        return
    for k, (sp, sq) in enumerate(ranges):
        span = _parse(SpanMsg, data, sp, sq)
        if span is None:
            span, notes = _parse_repaired(SpanMsg, data, sp, sq, SPAN_STRINGS, ctx.base)
            if span is not None:
                tid, spid = span_ids(data, sp, sq)
                for note in notes:
                    sink.repair(f"{where}.spans[{k}]", note, trace_id=tid, span_id=spid)
        if span is not None:
            spans((span,), k, ctx, rid, sid, f"{where}.spans[")
            continue
        tid, spid = span_ids(data, sp, sq)
        sink.reject(
            f"{where}.spans[{k}] (message byte {sp + ctx.base})",
            diagnose(data, sp, sq, SPAN_STRINGS, ctx.base),
            raw=hex_excerpt(data, sp, sq),
            trace_id=tid,
            span_id=spid,
        )
    if error is not None:
        _malformed(ctx, f"{where} (message byte {error.offset + ctx.base})", error, data, q, "this scopeSpans")
