"""Per-trace span builder: ids, durations, service hops, errors, clock skew.

Random-stream discipline (what makes scenarios *paired*): each step of a
workflow draws from its own ``random.Random`` seeded by one draw of its
parent's stream (:func:`sub`), and every knob decision draws its number
whether or not the knob fires. Changing a knob therefore changes only what
that knob touches: the same seed with ``latency_factor={"retrieval": 1.5}``
yields the same traces, ids and structure, with slower retrievals.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from typing import Any

from .model import (
    CLIENT,
    FLAGS_REMOTE_PARENT,
    SERVER,
    STATUS_ERROR,
    GenEvent,
    GenSpan,
)
from .scenario import Scenario
from .topology import SCOPE_INDEX, SCOPES, Instance, build_instances
from .truth import ErrorInfo, RemoteCall, TraceTruth

MS = 1_000_000


def sub(r: random.Random) -> random.Random:
    """A child random stream seeded by exactly one draw of ``r``."""
    return random.Random(r.getrandbits(64))


class Streams:
    """``n`` child streams of ``r``: their seeds are drawn now (one draw each, whatever
    happens later), each ``random.Random`` is only built on first use (seeding costs ~5 us)."""

    __slots__ = ("_seeds", "_made")

    def __init__(self, r: random.Random, n: int) -> None:
        self._seeds = [r.getrandbits(64) for _ in range(n)]
        self._made: dict[int, random.Random] = {}

    def __getitem__(self, i: int) -> random.Random:
        rr = self._made.get(i)
        if rr is None:
            rr = self._made[i] = random.Random(self._seeds[i])
        return rr


def span_id(r: random.Random) -> str:
    """A random non-zero 64-bit span id as 16 lowercase hex chars."""
    return "%016x" % (r.getrandbits(64) or 1)


def trace_id(r: random.Random) -> str:
    """A random non-zero 128-bit trace id as 32 lowercase hex chars."""
    return "%032x" % (r.getrandbits(128) or 1)


class Topology:
    """Resource and scope tables of a scenario, with lookups by service key."""

    def __init__(self, scenario: Scenario) -> None:
        self.scenario = scenario
        self.instances: list[Instance] = build_instances(scenario)
        self.index: dict[str, int] = {inst.key: i for i, inst in enumerate(self.instances)}
        self.scopes: list[tuple[str, str]] = list(SCOPES.values())
        self.skewed = {i for i, inst in enumerate(self.instances) if inst.service_name == scenario.clock_skew_service}
        if scenario.clock_skew_ns and not self.skewed:
            names = sorted({inst.service_name for inst in self.instances})
            raise ValueError(f"clock_skew_service {scenario.clock_skew_service!r} is not one of {', '.join(names)}")

    def pick(self, r: random.Random, key: str) -> int:
        """Instance index for a call to ``key``: state services may land on their remote replica."""
        remote = r.random() < self.scenario.remote_state_fraction
        if remote and f"{key}@remote" in self.index:
            return self.index[f"{key}@remote"]
        return self.index[key]


class TraceBuilder:
    """Collects the spans and the ground truth of one trace."""

    def __init__(self, topo: Topology, truth: TraceTruth) -> None:
        self.topo = topo
        self.scenario = topo.scenario
        self.truth = truth
        self.trace_id = truth.trace_id
        self.spans: list[GenSpan] = []
        self.anonymous = truth.anonymous
        self._factor = dict(self.scenario.latency_factor)

    # -- primitives ---------------------------------------------------------------------------
    def dur(self, r: random.Random, role: str, median_ms: float, sigma: float = 0.5) -> int:
        """A lognormal duration (ns) for ``role``, clamped to [median/5, median*8], times its factor."""
        x = math.exp(sigma * r.gauss(0.0, 1.0))
        x = 0.2 if x < 0.2 else 8.0 if x > 8.0 else x
        return max(1000, int(median_ms * x * self._factor.get(role, 1.0) * MS))

    def span(
        self,
        r: random.Random,
        parent: GenSpan | None,
        name: str,
        kind: int,
        start: int,
        inst: int,
        scope: str,
        role: str,
        attrs: dict[str, Any],
    ) -> GenSpan:
        """Create a span starting at ``start`` (its end is set by the caller) and record its role."""
        s = GenSpan(
            self.trace_id,
            span_id(r),
            parent.span_id if parent is not None else None,
            name,
            kind,
            start,
            start,
            inst,
            SCOPE_INDEX[scope],
            attrs,
            role,
        )
        if parent is not None and parent.resource != inst:
            s.flags = FLAGS_REMOTE_PARENT
        self.spans.append(s)
        self.truth.span_roles[s.span_id] = role
        return s

    def leaf(
        self,
        r: random.Random,
        parent: GenSpan,
        name: str,
        kind: int,
        start: int,
        scope: str,
        role: str,
        attrs: dict[str, Any],
        median_ms: float,
        sigma: float = 0.5,
    ) -> GenSpan:
        """A childless span in the parent's service, with a drawn duration."""
        s = self.span(r, parent, name, kind, start, parent.resource, scope, role, attrs)
        s.end_ns = start + self.dur(r, role, median_ms, sigma)
        return s

    def network(self, r: random.Random, a: int, b: int) -> int:
        """One-way transit time (ns) between two instances; cross-zone and cross-region cost more."""
        pa, pb = self.topo.instances[a].placement, self.topo.instances[b].placement
        base = 0.35
        if pa.region != pb.region:
            base = 36.0
        elif pa.zone != pb.zone:
            base = 1.2
        return self.dur(r, "network", base, 0.25)

    def fail(self, s: GenSpan, role: str, error_type: str, message: str, *, exc: str | None = None) -> None:
        """Mark ``s`` (already ended) as failed: status ERROR, ``error.type``, and an
        ``exception`` event when ``exc`` (the exception type) is given."""
        s.status_code = STATUS_ERROR
        s.status_message = message
        s.attributes["error.type"] = error_type
        if exc is not None:
            s.events.append(
                GenEvent(
                    s.end_ns - 1000,
                    "exception",
                    {"exception.type": exc, "exception.message": message, "exception.escaped": False},
                )
            )
        self.truth.errors.append(ErrorInfo(s.span_id, role, error_type))

    # -- a CLIENT -> SERVER hop ---------------------------------------------------------------------
    def hop(
        self,
        r: random.Random,
        parent: GenSpan,
        start: int,
        callee: int,
        method: str,
        route: str,
        path: str,
        role: str,
        body: Callable[[GenSpan, int, random.Random], int],
        *,
        port: int = 8080,
        server_role: str | None = None,
    ) -> GenSpan:
        """An HTTP call from ``parent``'s service to instance ``callee``.

        The CLIENT span lives in the caller, its child SERVER span in the callee;
        ``body(server_span, t, rng)`` builds the server's children from ``t`` and
        returns when they end, drawing only from the stream it is given. If the
        body sets the server span's status to ERROR, both spans fail with HTTP
        500. Records a :class:`RemoteCall`.
        """
        caller = parent.resource
        ci = self.topo.instances[callee]
        host = f"{ci.service_name}.{ci.namespace}.svc.cluster.local"
        client = self.span(
            r,
            parent,
            method,
            CLIENT,
            start,
            caller,
            "httpx",
            role,
            {
                "http.request.method": method,
                "url.full": f"http://{host}:{port}{path}",
                "server.address": host,
                "server.port": port,
                "network.protocol.version": "1.1",
            },
        )
        t_in = start + self.network(r, caller, callee)
        server = self.span(
            r,
            client,
            f"{method} {route}",
            SERVER,
            t_in,
            callee,
            "fastapi",
            server_role or role,
            {
                "http.request.method": method,
                "http.route": route,
                "url.path": path,
                "url.scheme": "http",
                "server.address": host,
                "server.port": port,
                "network.protocol.version": "1.1",
            },
        )
        back = self.network(r, callee, caller)
        head, tail = self.dur(r, role, 0.4, 0.3), self.dur(r, role, 0.3, 0.3)
        t = body(server, t_in + head, sub(r))
        server.end_ns = t + tail
        client.end_ns = server.end_ns + back
        failed = server.status_code == STATUS_ERROR
        server.attributes["http.response.status_code"] = 500 if failed else 200
        client.attributes["http.response.status_code"] = 500 if failed else 200
        if failed:
            server.status_code = 0  # re-marked below, with error.type and truth
            self.fail(server, server_role or role, "500", "Internal Server Error")
            self.fail(client, role, "500", "Internal Server Error")
        pa, pb = self.topo.instances[caller].placement, ci.placement
        locality = "cross_region" if pa.region != pb.region else "cross_zone" if pa.zone != pb.zone else "same_zone"
        self.truth.remote_calls.append(
            RemoteCall(
                client.span_id,
                server.span_id,
                self.topo.instances[caller].service_name,
                ci.service_name,
                pa.zone,
                pb.zone,
                pa.region,
                pb.region,
                locality,
            )
        )
        return client

    # -- finishing ---------------------------------------------------------------------------------
    def finish(self) -> list[GenSpan]:
        """Apply clock skew, compute out-of-parent spans, return spans in export (end-time) order."""
        skew = self.scenario.clock_skew_ns
        if skew:
            for s in self.spans:
                if s.resource in self.topo.skewed:
                    s.start_ns += skew
                    s.end_ns += skew
                    for e in s.events:
                        e.time_ns += skew
                    self.truth.skewed_spans.append(s.span_id)
        by_id = {s.span_id: s for s in self.spans}
        for s in self.spans:
            p = by_id.get(s.parent_span_id) if s.parent_span_id else None
            if p is not None and (s.start_ns < p.start_ns or s.end_ns > p.end_ns):
                self.truth.out_of_parent.append(s.span_id)
        root = self.spans[0]
        self.truth.root_span_id = root.span_id
        self.truth.start_ns = root.start_ns
        self.truth.end_ns = root.end_ns
        self.truth.last_end_ns = max(s.end_ns for s in self.spans)
        return sorted(self.spans, key=lambda s: (s.end_ns, s.span_id))
