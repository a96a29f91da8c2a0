"""OTLP/gRPC (``TraceService/Export``) with the behaviour of the HTTP endpoint.

Needs ``grpcio`` (the ``grpc`` extra: ``pip install "fabric-trace[grpc]"``). The
method takes the raw request bytes, so the body goes through the same
:func:`~fabric_trace.collect.protocol.decode_request` and committer as an HTTP
request. Status codes follow the OTLP/gRPC specification:

* ``OK`` with an ``ExportTraceServiceResponse`` once the spans are durable,
  ``partial_success`` when some were quarantined;
* ``INVALID_ARGUMENT`` for an unreadable message (not retried);
* ``UNAVAILABLE`` when the queue is full, the collector is stopping or the
  database failed (retried by exporters);
* ``UNAUTHENTICATED`` without the bearer token (``authorization`` metadata);
* ``RESOURCE_EXHAUSTED`` from gRPC itself for a message above the size limit.

gRPC handles ``grpc-encoding: gzip`` itself.
"""

from __future__ import annotations

import hmac
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from fabric_trace.collect.committer import Committer, Pending
from fabric_trace.collect.protocol import PROTOBUF, BadRequest, decode_request, success_body
from fabric_trace.collect.server import CollectorHTTPServer, rejected_message
from fabric_trace.errors import ListenError, UsageError

SERVICE = "opentelemetry.proto.collector.trace.v1.TraceService"
#: Concurrent RPCs handled at once (each waits for its commit).
WORKERS = 16


def available() -> bool:
    try:
        import grpc  # noqa: F401
    except ImportError:
        return False
    return True


def bind_grpc(address: str, committer: Committer, http: CollectorHTTPServer, *, token: str | None,
              max_body: int) -> tuple[Any, int]:
    """A gRPC server bound to ``address`` (``host:port``), not started yet; returns (server, bound port).

    ``http`` provides the request numbering and notices shared with the HTTP endpoint.
    """
    try:
        import grpc
    except ImportError:
        raise UsageError("--grpc needs the grpcio package",
                         hint='pip install "fabric-trace[grpc]" (or grpcio)') from None

    def export(body: bytes, context: Any) -> bytes:
        if token is not None:
            got = dict(context.invocation_metadata()).get("authorization", "")
            scheme, _, value = got.partition(" ")
            if scheme.lower() != "bearer" or not hmac.compare_digest(value.strip().encode(), token.encode()):
                committer.count_refused(401)
                context.abort(grpc.StatusCode.UNAUTHENTICATED, "missing or wrong bearer token")
        if http.stopping or committer.full():
            committer.count_refused(503)
            context.abort(grpc.StatusCode.UNAVAILABLE, "fabric collect is busy (queue full) or stopping")
        number = http.next_number()
        try:
            decoded = decode_request(body, PROTOBUF, f"request {number}", http.limits)
        except BadRequest as exc:
            committer.refuse(number, str(exc), body)
            http.notice(f"request {number} (gRPC) refused: {exc}")
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        item = Pending(number, decoded.batch, body, "proto")
        stored = committer.store(item)
        if not stored:
            committer.count_refused(503)
            reason = "fabric collect is busy (queue full) or stopping" if stored is None else \
                f"the spans could not be stored: {item.error}"
            context.abort(grpc.StatusCode.UNAVAILABLE, reason)
        return success_body(PROTOBUF, item.rejected, rejected_message(item))

    server = grpc.server(
        ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="fabric-collect-grpc"),
        options=[("grpc.max_receive_message_length", max_body), ("grpc.so_reuseport", 0)],
    )
    handler = grpc.unary_unary_rpc_method_handler(export)  # raw bytes in and out
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, {"Export": handler}),))
    try:
        port = server.add_insecure_port(address)
    except RuntimeError as exc:
        raise ListenError(f"cannot listen (gRPC) on {address}: {exc}") from None
    if not port:
        raise ListenError(f"cannot listen (gRPC) on {address}",
                          hint="is another collector on that port? choose another with --grpc HOST:PORT")
    return server, port
