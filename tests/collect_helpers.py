"""Running ``fabric collect`` as a subprocess on an ephemeral loopback port, and talking to it."""

from __future__ import annotations

import gzip
import http.client
import os
import re
import signal
import subprocess
import sys
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
        # stderr goes to a file: one reader only (communicate() would compete with a pipe reader)
        self._err_path = Path(db).with_name(Path(db).name + ".stderr")
        self._err = open(self._err_path, "wb")
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=self._err,
                                     env={**os.environ, **(env or {})})
        self.url = ""
        self.port = 0
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline and self.proc.poll() is None:
            m = _LISTENING.search(self.stderr)
            if m:
                self.url, self.port = m.group(1), int(m.group(2))
                return
            time.sleep(0.05)
        self.kill()
        raise AssertionError("fabric collect did not start:\n" + self.stderr)

    @property
    def stderr(self) -> str:
        return self._err_path.read_text(encoding="utf-8", errors="replace")

    @property
    def traces_url(self) -> str:
        return self.url + "/v1/traces"

    def stop(self, sig: int = signal.SIGTERM) -> tuple[int, str]:
        """Signal the collector; returns (exit code, stdout)."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        out, _ = self.proc.communicate(timeout=STOP_TIMEOUT)
        self._err.close()
        return self.proc.returncode, out.decode()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(STOP_TIMEOUT)
        self._err.close()


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
