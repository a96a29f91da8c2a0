"""The OTLP/HTTP endpoint: the standard library's threading HTTP server.

HTTP parsing is ``http.server``'s; this module only routes and answers:

* ``POST /v1/traces`` -- the one endpoint that takes data (see :meth:`_Handler.do_POST`);
* ``GET /healthz`` -- ``200 {"status": "ok"}`` (readiness probe; no data);
* any other path 404, any other method 405.

No part of a request (path, query, header, body) is ever used as a file name:
the only files the collector touches are the database and the snapshot named on
its command line.
"""

from __future__ import annotations

import hmac
import socket
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from fabric_trace.collect.committer import Committer, Pending
from fabric_trace.collect.protocol import (
    CONTENT_ENCODINGS,
    CONTENT_TYPES,
    JSON,
    PROTOBUF,
    RPC_INVALID_ARGUMENT,
    RPC_NOT_FOUND,
    RPC_RESOURCE_EXHAUSTED,
    RPC_UNAUTHENTICATED,
    RPC_UNAVAILABLE,
    RPC_UNIMPLEMENTED,
    BadRequest,
    TooLarge,
    decode_request,
    decompress,
    status_body,
    success_body,
)
from fabric_trace.ingest.limits import Limits

TRACES_PATH = "/v1/traces"
#: Seconds a client is told to wait when the queue is full (``Retry-After``).
RETRY_AFTER = 1
#: Seconds a connection may sit idle, or take to send its body, before it is closed.
SOCKET_TIMEOUT = 30.0
#: Largest refused (413) body still read and dropped before answering; beyond it the connection is closed.
DISCARD_MAX = 256 << 20


def rejected_message(item: Pending) -> str:
    """The ``partial_success.error_message`` of a stored request ("" when nothing was rejected)."""
    if not item.rejected:
        return ""
    return (f"{item.rejected} span(s) rejected as invalid; see fabric's quarantine table "
            f"(location 'request {item.number} ...')")


class CollectorHTTPServer(ThreadingHTTPServer):
    """A threading HTTP server that knows its committer and open connections."""

    daemon_threads = False
    block_on_close = True  # server_close() waits for every request being handled
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], family: int, committer: Committer, *,
                 token: str | None, max_body: int, limits: Limits) -> None:
        self.address_family = family
        self.committer = committer
        self.token = token
        self.max_body = max_body
        self.limits = limits
        self.stopping = False
        self._conns: dict[Any, bool] = {}  # handler -> busy with a request
        self._lock = threading.Lock()
        self._numbers = 0
        #: Problems worth a line on stderr (refused requests); drained by the caller.
        self.notices: list[str] = []
        super().__init__(address, _Handler)

    def next_number(self) -> int:
        with self._lock:
            self._numbers += 1
            return self._numbers

    def notice(self, text: str) -> None:
        with self._lock:
            if len(self.notices) < 1000:
                self.notices.append(text)

    def take_notices(self) -> list[str]:
        with self._lock:
            out, self.notices = self.notices, []
            return out

    def track(self, handler: Any, busy: bool | None) -> None:
        with self._lock:
            if busy is None:
                self._conns.pop(handler, None)
            else:
                self._conns[handler] = busy

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A request handler raised (e.g. the client went away mid-answer): a notice, never a traceback."""
        import sys

        exc = sys.exc_info()[1]
        self.notice(f"{client_address[0]}: request aborted ({type(exc).__name__}: {exc})")

    def close_idle(self) -> None:
        """Stop accepting: close the keep-alive connections that wait for a next request."""
        self.stopping = True
        with self._lock:
            idle = [h for h, busy in self._conns.items() if not busy]
        for handler in idle:
            try:
                handler.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class _Handler(BaseHTTPRequestHandler):
    server: CollectorHTTPServer
    protocol_version = "HTTP/1.1"  # keep-alive: exporters reuse their connection
    timeout = SOCKET_TIMEOUT
    server_version = "fabric-collect"
    sys_version = ""

    def setup(self) -> None:
        super().setup()
        self.server.track(self, False)

    def finish(self) -> None:
        self.server.track(self, None)
        super().finish()

    def parse_request(self) -> bool:
        self.server.track(self, True)
        return super().parse_request()

    def handle_one_request(self) -> None:
        try:
            super().handle_one_request()
        finally:
            if self.server.stopping:
                self.close_connection = True
            self.server.track(self, False)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base signature
        """No access log (the progress line counts requests)."""

    def log_error(self, format: str, *args: Any) -> None:  # noqa: A002
        self.server.notice(f"{self.client_address[0]}: " + (format % args))

    # ------------------------------------------------------------------ routes

    def do_GET(self) -> None:
        if urlsplit(self.path).path == "/healthz":
            self._send(HTTPStatus.OK, JSON, b'{"status":"ok"}')
        elif urlsplit(self.path).path == TRACES_PATH:
            self._refuse(HTTPStatus.METHOD_NOT_ALLOWED, RPC_UNIMPLEMENTED, "use POST", PROTOBUF,
                         extra={"Allow": "POST"})
        else:
            self._not_found(PROTOBUF)

    def do_HEAD(self) -> None:
        self._refuse(HTTPStatus.METHOD_NOT_ALLOWED, RPC_UNIMPLEMENTED, "use POST", PROTOBUF,
                     extra={"Allow": "POST"})

    do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_HEAD

    def do_POST(self) -> None:
        srv = self.server
        committer = srv.committer
        ctype = self.headers.get_content_type()  # lowercased, parameters dropped
        answer = JSON if ctype == JSON else PROTOBUF
        if urlsplit(self.path).path != TRACES_PATH:
            self._not_found(answer)
            return
        if srv.token is not None and not self._authorized(srv.token):
            self._refuse(HTTPStatus.UNAUTHORIZED, RPC_UNAUTHENTICATED, "missing or wrong bearer token", answer,
                         extra={"WWW-Authenticate": 'Bearer realm="fabric collect"'})
            return
        if ctype not in CONTENT_TYPES:
            self._refuse(HTTPStatus.UNSUPPORTED_MEDIA_TYPE, RPC_INVALID_ARGUMENT,
                         f"Content-Type {ctype} is not supported; use {PROTOBUF} or {JSON}", answer)
            return
        encoding = (self.headers.get("Content-Encoding") or "identity").strip().lower()
        if encoding not in CONTENT_ENCODINGS:
            self._refuse(HTTPStatus.UNSUPPORTED_MEDIA_TYPE, RPC_INVALID_ARGUMENT,
                         f"Content-Encoding {encoding} is not supported; use gzip, deflate or identity", answer)
            return
        length = self._content_length(answer)
        if length is None:
            return
        if length > srv.max_body:
            self._discard(length)
            self._refuse(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, RPC_RESOURCE_EXHAUSTED,
                         f"body of {length} bytes exceeds the limit of {srv.max_body} bytes", answer)
            return
        body = self.rfile.read(length)
        if len(body) < length:
            self.close_connection = True
            return  # the client went away mid-body: nothing to answer
        if srv.stopping or committer.full():
            self._busy(answer)
            return
        number = srv.next_number()
        where = f"request {number}"
        try:
            data = decompress(body, encoding, srv.max_body)
            decoded = decode_request(data, ctype, where, srv.limits)
        except TooLarge as exc:
            self._refuse(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, RPC_RESOURCE_EXHAUSTED, str(exc), answer)
            return
        except BadRequest as exc:
            self._bad(number, str(exc), body, answer)
            return
        item = Pending(number, decoded.batch, data, "json" if ctype == JSON else "proto")
        stored = committer.store(item)
        if stored is None:
            self._busy(answer)
            return
        if not stored:
            self._refuse(HTTPStatus.SERVICE_UNAVAILABLE, RPC_UNAVAILABLE,
                         f"the spans could not be stored: {item.error}", answer,
                         extra={"Retry-After": str(RETRY_AFTER)}, count=True)
            return
        self._send(HTTPStatus.OK, answer, success_body(answer, item.rejected, rejected_message(item)))

    # ------------------------------------------------------------------ helpers

    def _authorized(self, token: str) -> bool:
        got = self.headers.get("Authorization") or ""
        scheme, _, value = got.partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(value.strip().encode(), token.encode())

    def _content_length(self, answer: str) -> int | None:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            self._refuse(HTTPStatus.LENGTH_REQUIRED, RPC_INVALID_ARGUMENT,
                         "chunked request bodies are not supported; send Content-Length", answer)
            return None
        raw = self.headers.get("Content-Length")
        try:
            length = int(raw) if raw is not None else -1
        except ValueError:
            length = -1
        if length < 0:
            self._refuse(HTTPStatus.LENGTH_REQUIRED, RPC_INVALID_ARGUMENT, "a valid Content-Length is required",
                         answer)
            return None
        return length

    def _discard(self, length: int) -> None:
        """Read and drop a refused body (so that the client reads the answer instead of a reset)."""
        if length > DISCARD_MAX:
            return  # not worth reading: the connection is closed after the answer
        while length > 0:
            chunk = self.rfile.read(min(length, 1 << 20))
            if not chunk:
                return
            length -= len(chunk)

    def _bad(self, number: int, reason: str, body: bytes, answer: str) -> None:
        """400 for an unreadable body; the refusal is also kept in the quarantine table."""
        self.server.committer.refuse(number, reason, body)
        self.server.notice(f"request {number} from {self.client_address[0]} refused (400): {reason}")
        self._refuse(HTTPStatus.BAD_REQUEST, RPC_INVALID_ARGUMENT, reason, answer, count=False)

    def _busy(self, answer: str) -> None:
        self._refuse(HTTPStatus.SERVICE_UNAVAILABLE, RPC_UNAVAILABLE,
                     "fabric collect is busy (queue full) or stopping; retry later", answer,
                     extra={"Retry-After": str(RETRY_AFTER)})

    def _not_found(self, answer: str) -> None:
        self._refuse(HTTPStatus.NOT_FOUND, RPC_NOT_FOUND,
                     f"fabric collect receives traces only: POST {TRACES_PATH}", answer)

    def _refuse(self, status: HTTPStatus, rpc_code: int, message: str, answer: str, *,
                extra: dict[str, str] | None = None, count: bool = True) -> None:
        if count:
            self.server.committer.count_refused(int(status))
        # The body of a refused request may not have been read: never reuse the connection
        # then (what follows on it would be read as the next request).
        if status not in (HTTPStatus.BAD_REQUEST, HTTPStatus.SERVICE_UNAVAILABLE):
            self.close_connection = True
        self._send(status, answer, status_body(answer, rpc_code, message), extra)

    def _send(self, status: HTTPStatus, ctype: str, body: bytes, extra: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        if self.close_connection or self.server.stopping:
            self.close_connection = True
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
