"""Byte streams for :mod:`container`: a peekable reader and capped gzip/zstd layers.

Nothing here seeks, so a pipe or stdin works. Decompression is streaming with a
cap on the total output: past ``max_decompressed_bytes`` an ``InputError`` is
raised and the caller refuses the whole file. A truncated or corrupt compressed
stream ends the data early and is recorded with ``sink.reject`` (the complete
records before it are kept).
"""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Callable
from typing import Any

import zstandard
from google.protobuf.message import DecodeError as ProtobufDecodeError

from fabric_trace.errors import InputError, InputNotFound

GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
CHUNK = 1 << 20  # bytes read from the source at a time
ZSTD_FEED = 1024  # compressed bytes fed to zstd per call: bounds one call's output (~32 MiB worst case)


#: Exception types that bad input can provoke inside decoding code. They are turned into
#: quarantine records / ``InputError``; anything else (a database error raised by the sink
#: while it flushes, Ctrl-C) propagates unchanged.
DECODING_ERRORS: tuple[type[BaseException], ...] = (
    ValueError,
    TypeError,
    LookupError,
    AttributeError,
    ArithmeticError,
    EOFError,
    RecursionError,
    struct.error,
    zlib.error,
    zstandard.ZstdError,
    ProtobufDecodeError,
)


class Stream(io.RawIOBase):
    """A read-only, non-seekable byte stream over ``read_fn(n) -> bytes`` with :meth:`peek`."""

    def __init__(self, read_fn: Callable[[int], bytes]) -> None:
        super().__init__()
        self._read_fn = read_fn
        self._buf = b""
        self._off = 0
        self._eof = False

    def readable(self) -> bool:
        return True

    def _more(self, n: int) -> bool:
        """Append at least one chunk from the source to the buffer; False at end of stream."""
        if self._eof:
            return False
        data = self._read_fn(max(n, CHUNK))
        if not data:
            self._eof = True
            return False
        self._buf = self._buf[self._off :] + data if self._off < len(self._buf) else data
        self._off = 0
        return True

    def peek(self, n: int = CHUNK) -> bytes:  # type: ignore[override]
        """Return (without consuming) the next ``n`` bytes; fewer only at end of stream."""
        while len(self._buf) - self._off < n and self._more(n - (len(self._buf) - self._off)):
            pass
        return self._buf[self._off : self._off + n]

    def readinto(self, b: Any) -> int:
        if self._off >= len(self._buf) and not self._more(len(b)):
            return 0
        n = min(len(b), len(self._buf) - self._off)
        b[:n] = memoryview(self._buf)[self._off : self._off + n]
        self._off += n
        return n

    def read_upto(self, n: int) -> bytes:
        """Read up to ``n`` bytes (fewer only at end of stream); memory grows only as data arrives."""
        parts = []
        while n > 0:
            if self._off >= len(self._buf) and not self._more(min(n, CHUNK)):
                break
            take = min(n, len(self._buf) - self._off)
            parts.append(self._buf[self._off : self._off + take])
            self._off += take
            n -= take
        return b"".join(parts)


def source_reader(stream: Any, name: str) -> Callable[[int], bytes]:
    """Wrap ``stream.read`` so I/O errors become ``InputNotFound`` and text streams are refused."""

    def read(n: int) -> bytes:
        try:
            data = stream.read(n)
        except OSError as exc:
            raise InputNotFound(f"cannot read {name}: {exc}") from exc
        if data is None:
            return b""
        if not isinstance(data, (bytes, bytearray)):
            raise InputError("the input stream is not a binary stream")
        return bytes(data)

    return read


def _too_big(name: str, cap: int) -> InputError:
    return InputError(
        f"decompressed size exceeds {cap} bytes",
        hint="the file is refused as a possible decompression bomb; raise the limit (--max-decompressed) if it is genuine",
    )


class GzipReader:
    """``read(n)`` over the decompressed content of a (multi-member) gzip stream, capped."""

    def __init__(self, src: Stream, name: str, sink: Any, cap: int) -> None:
        self._src = src
        self._name = name
        self._sink = sink
        self._cap = cap
        self._d = zlib.decompressobj(31)
        self._input = b""  # compressed bytes not consumed yet
        self._pos = 0  # offset of self._input in the compressed file
        self._started = False
        self._out = 0
        self._done = False
        self.problem: str | None = None  # why the stream ended early, if it did

    def read(self, n: int) -> bytes:
        while not self._done:
            if not self._input:
                self._input = self._src.read_upto(CHUNK)
                if not self._input:
                    if self._started:
                        self._stop(f"truncated gzip stream (ended after {self._out} decompressed bytes)")
                    self._done = True
                    break
            data = self._input
            self._started = True
            try:
                out = self._d.decompress(data, n)
            except zlib.error as exc:
                self._stop(f"corrupt gzip stream ({exc}) after {self._out} decompressed bytes")
                self._done = True
                break
            rest = self._d.unused_data if self._d.eof else self._d.unconsumed_tail
            self._pos += len(data) - len(rest)
            self._input = rest
            if self._d.eof:
                self._next_member()
            if out:
                self._out += len(out)
                if self._out > self._cap:
                    raise _too_big(self._name, self._cap)
                return out
        return b""

    def _next_member(self) -> None:
        while True:  # skip zero padding after a member
            if not self._input:
                self._input = self._src.read_upto(CHUNK)
                if not self._input:
                    self._done = True
                    return
            stripped = self._input.lstrip(b"\x00")
            self._pos += len(self._input) - len(stripped)
            self._input = stripped
            if stripped:
                break
        if len(self._input) < 2:
            self._input += self._src.read_upto(CHUNK)
        if not self._input.startswith(GZIP_MAGIC):
            self._stop(f"trailing bytes after the gzip stream ignored (first bytes {self._input[:8].hex(' ')})")
            self._done = True
            return
        self._d = zlib.decompressobj(31)
        self._started = False

    def _stop(self, reason: str) -> None:
        self.problem = reason
        self._sink.reject(f"byte {self._pos}", reason, counts_as_span=False)


class ZstdReader:
    """``read(n)`` over the decompressed content of a (multi-frame) zstd stream, capped."""

    def __init__(self, src: Stream, name: str, sink: Any, cap: int) -> None:
        self._src = src
        self._name = name
        self._sink = sink
        self._cap = cap
        self._dctx = zstandard.ZstdDecompressor()
        self._d = self._dctx.decompressobj()
        self._input = b""  # compressed bytes read from the source ...
        self._off = 0  # ... of which self._input[self._off:] are not consumed yet
        self._pos = 0  # offset of self._input[self._off] in the compressed file
        self._started = False
        self._out = 0
        self._done = False
        self.problem: str | None = None  # why the stream ended early, if it did

    def read(self, n: int) -> bytes:
        while not self._done:
            if self._off >= len(self._input):
                self._input = self._src.read_upto(CHUNK)
                self._off = 0
                if not self._input:
                    if self._started:
                        self._stop(f"truncated zstd stream (ended after {self._out} decompressed bytes)")
                    self._done = True
                    break
            piece = self._input[self._off : self._off + ZSTD_FEED]
            self._started = True
            try:
                out = self._d.decompress(piece)
            except zstandard.ZstdError as exc:
                self._stop(f"corrupt zstd stream ({exc}) after {self._out} decompressed bytes")
                self._done = True
                break
            used = len(piece)
            if self._d.eof:
                used -= len(self._d.unused_data)
                self._d = self._dctx.decompressobj()
                self._started = False
            self._off += used
            self._pos += used
            if out:
                self._out += len(out)
                if self._out > self._cap:
                    raise _too_big(self._name, self._cap)
                return out
        return b""

    def _stop(self, reason: str) -> None:
        self.problem = reason
        self._sink.reject(f"byte {self._pos}", reason, counts_as_span=False)


class FrameTooBig(Exception):
    """A zstd payload decompresses to more than its cap."""


def zstd_decompress(payload: bytes, cap: int) -> bytes:
    """Decompress a whole zstd payload (one or more frames) with an output cap.

    Raises :class:`FrameTooBig` past ``cap`` and ``ValueError`` for corrupt or truncated data.
    """
    dctx = zstandard.ZstdDecompressor()
    parts: list[bytes] = []
    total = 0
    pos = 0
    while pos < len(payload):
        d = dctx.decompressobj()
        while not d.eof:
            if pos >= len(payload):
                raise ValueError(f"truncated zstd data (after {total} decompressed bytes)")
            piece = payload[pos : pos + ZSTD_FEED]
            try:
                out = d.decompress(piece)
            except zstandard.ZstdError as exc:
                raise ValueError(f"corrupt zstd data ({exc})") from None
            pos += len(piece)
            total += len(out)
            if total > cap:
                raise FrameTooBig(f"decompresses to more than {cap} bytes")
            parts.append(out)
        pos -= len(d.unused_data)
    return b"".join(parts)
