"""``fabric collect``: an OTLP/HTTP endpoint that writes straight into a fabric database.

:class:`Collector` ties the pieces together: :mod:`.server` (HTTP), :mod:`.protocol`
(OTLP bodies and answers) and :mod:`.committer` (the one database writer). The
library never prints, never exits and installs no signal handler: the CLI calls
:meth:`Collector.start`, polls :meth:`Collector.progress`, and calls
:meth:`Collector.stop` on SIGINT/SIGTERM. Documented in docs/collect.md.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from fabric_trace.collect.committer import Committer, Totals
from fabric_trace.collect.server import CollectorHTTPServer
from fabric_trace.errors import FabricError, ListenError, UsageError
from fabric_trace.ingest.limits import MIB, Limits
from fabric_trace.store.db import snapshot_path_for as default_snapshot_path

DEFAULT_LISTEN = "127.0.0.1:4318"
#: Seconds the RPCs in flight get to finish when the collector stops (they wait for their commit).
_GRPC_GRACE = 120.0


@dataclass
class CollectOptions:
    """Knobs of ``fabric collect`` (defaults as documented in docs/collect.md)."""

    listen: str = DEFAULT_LISTEN
    allow_remote: bool = False
    token: str | None = None
    max_body_bytes: int = 20 * MIB
    queue_spans: int = 200_000
    batch_spans: int = 50_000
    batch_wait: float = 0.0
    snapshot_path: str | None = None
    snapshot_interval: float = 5.0
    analyze: bool = True
    #: ``HOST:PORT`` for OTLP/gRPC as well (needs grpcio), or None.
    grpc_listen: str | None = None


@dataclass
class CollectSummary:
    """Totals of one collect session (the ``--json`` summary, docs/collect.md)."""

    db: str
    endpoint: str
    totals: Totals
    traces: int = 0
    seconds: float = 0.0
    analyzed: bool = False
    error: str | None = None
    refused: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        t = self.totals
        return {
            "db": self.db,
            "endpoint": self.endpoint,
            "requests": t.requests,
            "requests_refused": {str(k): v for k, v in sorted(t.refused.items())},
            "transactions": t.transactions,
            "spans_received": t.spans_received,
            "spans_ingested": t.spans_ingested,
            "spans_duplicate": t.spans_duplicate,
            "spans_rejected": t.spans_rejected,
            "records_rejected": t.records_rejected,
            "repairs": t.repairs,
            "traces": self.traces,
            "snapshots": t.snapshots,
            "seconds": round(self.seconds, 3),
            "spans_per_second": round(t.spans_received / self.seconds, 1) if self.seconds > 0 else 0.0,
            "analyzed": self.analyzed,
            "error": self.error,
        }


def parse_listen(value: str) -> tuple[str, int]:
    """``HOST:PORT`` / ``[V6]:PORT`` / ``:PORT`` (all interfaces) -> (host, port)."""
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535:
        raise UsageError(f"bad --listen {value!r}", hint="use HOST:PORT, e.g. 127.0.0.1:4318 or [::1]:4318")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    return host, int(port)


def resolve(host: str, port: int, allow_remote: bool) -> tuple[int, tuple[Any, ...]]:
    """The socket family and address to bind; refuses a non-loopback one without ``allow_remote``."""
    try:
        infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise UsageError(f"cannot resolve --listen host {host!r}: {exc.strerror}") from None
    family, _, _, _, addr = infos[0]
    loopback = all(ipaddress.ip_address(i[4][0].split("%")[0]).is_loopback for i in infos)
    if not loopback and not allow_remote:
        raise UsageError(
            f"--listen {host or '*'}:{port} is not a loopback address",
            hint="fabric collect listens on loopback by default; pass --allow-remote (and set --token) "
                 "to receive from other machines",
        )
    return family, addr


def check_snapshot_path(snapshot: str, db_path: str) -> None:
    """Refuse a snapshot path that is the database itself or an existing file that is not a DuckDB one."""
    if db_path != ":memory:" and os.path.realpath(snapshot) == os.path.realpath(db_path):
        raise UsageError(f"--snapshot {snapshot} is the database itself", hint="choose another file name")
    if os.path.exists(snapshot):
        from fabric_trace.store.db import is_duckdb_file

        if not is_duckdb_file(snapshot):
            raise UsageError(f"--snapshot {snapshot} exists and is not a DuckDB file; refusing to overwrite it",
                             hint="choose another file name, or remove the file")


class Collector:
    """A running OTLP/HTTP receiver writing into one open fabric store."""

    def __init__(self, con: Any, db_path: str, projection: Any, options: CollectOptions) -> None:
        host, port = parse_listen(options.listen)
        if options.snapshot_path:
            if db_path == ":memory:":
                options.snapshot_path = None  # nothing on disk to copy
            else:
                check_snapshot_path(options.snapshot_path, db_path)
        family, addr = resolve(host, port, options.allow_remote)
        self.options = options
        self.db_path = db_path
        self.con = con
        # The committer needs the endpoint URL for the manifest before the port is known
        # (port 0 = any free port): it is set right after binding.
        self.committer = Committer(
            con, projection, "", queue_spans=options.queue_spans, batch_spans=options.batch_spans,
            batch_wait=options.batch_wait, db_path=db_path, snapshot_path=options.snapshot_path,
            snapshot_interval=options.snapshot_interval,
        )
        try:
            self.server = CollectorHTTPServer(addr[:2] if family == socket.AF_INET else addr, family,
                                              self.committer, token=options.token,
                                              max_body=options.max_body_bytes, limits=Limits())
        except OSError as exc:
            raise ListenError(f"cannot listen on {options.listen}: {exc.strerror or exc}",
                              hint="is another collector (or an OpenTelemetry Collector) on that port? "
                                   "choose another with --listen HOST:PORT") from None
        bound = self.server.server_address
        shown = f"[{bound[0]}]" if family == socket.AF_INET6 else bound[0]
        self.url = f"http://{shown}:{bound[1]}"
        self.committer.endpoint = self.url + "/v1/traces"
        self.grpc: Any = None
        self.grpc_address: str | None = None
        if options.grpc_listen:
            from fabric_trace.collect.grpc_server import bind_grpc

            g_host, g_port = parse_listen(options.grpc_listen)
            g_family, g_addr = resolve(g_host, g_port, options.allow_remote)
            g_shown = f"[{g_addr[0]}]" if g_family == socket.AF_INET6 else g_addr[0]
            try:
                self.grpc, port = bind_grpc(f"{g_shown}:{g_addr[1]}", self.committer, self.server,
                                            token=options.token, max_body=options.max_body_bytes)
            except BaseException:
                self.server.server_close()
                raise
            self.grpc_address = f"{g_shown}:{port}"
        self._thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.2},
                                        name="fabric-collect-http", daemon=True)
        self._t0 = time.perf_counter()
        self._stopped = False

    def start(self) -> None:
        self.committer.start()
        self._thread.start()
        if self.grpc is not None:
            self.grpc.start()

    @property
    def failed(self) -> str | None:
        """Why the collector can no longer store anything (it should be stopped), or None."""
        return self.committer.fatal

    def progress(self) -> tuple[Totals, float, list[str]]:
        """(running totals, seconds since start, notices since the last call)."""
        notices = self.server.take_notices() + self.committer.take_notices()
        return self.committer.snapshot_totals(), time.perf_counter() - self._t0, notices

    def stop(self, refresh: Any = None) -> CollectSummary:
        """Stop accepting, answer what is in flight, commit everything, refresh, close.

        ``refresh(con)`` recomputes the derived tables (skipped when ``analyze`` is off,
        nothing was stored, or the committer failed).
        """
        if self._stopped:
            raise FabricError("collector stopped twice")  # pragma: no cover
        self._stopped = True
        self.server.shutdown()  # the accept loop ends
        grpc_done = self.grpc.stop(_GRPC_GRACE) if self.grpc is not None else None  # new RPCs refused
        self.server.close_idle()  # idle keep-alive connections are closed
        self.server.server_close()  # waits for the requests being handled (their commits)
        if grpc_done is not None:
            grpc_done.wait(_GRPC_GRACE)
        self.committer.stop()
        seconds = time.perf_counter() - self._t0
        totals = self.committer.snapshot_totals()
        summary = CollectSummary(db=self.db_path, endpoint=self.committer.endpoint, totals=totals,
                                 seconds=seconds, error=self.committer.fatal)
        ids = self.committer.file_ids
        if ids:
            summary.traces = int(self.con.execute(
                "SELECT count(DISTINCT trace_id) FROM span_store WHERE file_id IN (SELECT unnest(?))",
                [ids]).fetchone()[0])
        if refresh is not None and self.options.analyze and totals.spans_ingested and not summary.error:
            refresh(self.con)
            summary.analyzed = True
        if self.options.snapshot_path:
            try:
                os.unlink(self.options.snapshot_path)  # the database itself is readable again
            except OSError:
                pass
        return summary
