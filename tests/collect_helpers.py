"""Running ``fabric collect`` as a subprocess on an ephemeral loopback port, and talking to it."""

from __future__ import annotations

import gzip
import http.client
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import duckdb
from google.protobuf import json_format
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

_LISTENING = re.compile(r"listening on (http://127\.0\.0\.1:(\d+))/v1/traces")
START_TIMEOUT = 60.0
STOP_TIMEOUT = 120.0


class CollectProcess:
    """``python -m fabric_trace collect --listen 127.0.0.1:0 ...`` with its stderr collected."""

    def __init__(self, db: Path, *args: str, env: dict[str, str] | None = None) -> None:
        cmd = [sys.executable, "-m", "fabric_trace", "collect", "--listen", "127.0.0.1:0", "--db", str(db),
               "--progress-interval", "0.5", "--json", *args]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     env={**os.environ, **(env or {})})
        self.lines: list[str] = []
        self._ready = threading.Event()
        self.url = ""
        self.port = 0
        self._reader = threading.Thread(target=self._read_stderr, daemon=True)
        self._reader.start()
        if not self._ready.wait(START_TIMEOUT) or not self.url:
            self.proc.kill()
            self.proc.wait(10)
            raise AssertionError("fabric collect did not start:\n" + self.stderr)

    def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        for raw in self.proc.stderr:
            line = raw.decode("utf-8", "replace")
            self.lines.append(line)
            m = _LISTENING.search(line)
            if m and not self.url:
                self.url, self.port = m.group(1), int(m.group(2))
                self._ready.set()
        self._ready.set()

    @property
    def stderr(self) -> str:
        return "".join(self.lines)

    @property
    def traces_url(self) -> str:
        return self.url + "/v1/traces"

    def stop(self, sig: int = signal.SIGTERM) -> tuple[int, str]:
        """Signal the collector; returns (exit code, stdout)."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        out, _ = self.proc.communicate(timeout=STOP_TIMEOUT)
        self._reader.join(10)
        return self.proc.returncode, out.decode()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(STOP_TIMEOUT)
        self._reader.join(10)


def post(port: int, body: bytes, content_type: str = "application/x-protobuf", *, gzipped: bool = False,
         path: str = "/v1/traces", headers: dict[str, str] | None = None,
         timeout: float = 60.0) -> tuple[int, dict[str, str], bytes]:
    """One POST on a fresh connection; returns (status, headers, body)."""
    hdrs = {"Content-Type": content_type, **(headers or {})}
    if gzipped:
        body = gzip.compress(body)
        hdrs["Content-Encoding"] = "gzip"
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("POST", path, body=body, headers=hdrs)
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def otlp_json(request: ExportTraceServiceRequest) -> bytes:
    """OTLP/JSON of a request: proto3 JSON with hex ids and integer enums (the OTLP spec's rules)."""
    doc = json_format.MessageToDict(request, use_integers_for_enums=True)

    def fix_ids(node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key in ("traceId", "spanId", "parentSpanId") and isinstance(value, str):
                    import base64

                    node[key] = base64.b64decode(value).hex()
                else:
                    fix_ids(value)
        elif isinstance(node, list):
            for item in node:
                fix_ids(item)

    fix_ids(doc)
    import json

    return json.dumps(doc).encode()


def stored(db: Path, sql: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
    """Rows of ``sql`` on the database (opened read-only, after the collector exited)."""
    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute(sql, params or []).fetchall()
    finally:
        con.close()


def wait_for(predicate: Any, timeout: float = 30.0, step: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return predicate()


SIGTERM = signal.SIGTERM
