"""Expanding ingest arguments (files, directories, globs, ``-``) into input sources."""

from __future__ import annotations

import glob
import hashlib
import io
import os
import queue
import sys
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, BinaryIO

from fabric_trace.errors import InputNotFound
from fabric_trace.ingest.container_io import source_reader


@dataclass(frozen=True)
class Source:
    """One input: a file path, or standard input (``path == "-"``)."""

    path: str
    size: int | None

    @property
    def is_stdin(self) -> bool:
        return self.path == "-"

    def open(self) -> BinaryIO:
        """Open the input for binary reading."""
        if self.is_stdin:
            return sys.stdin.buffer
        try:
            return open(self.path, "rb")  # noqa: SIM115 - the caller closes it
        except OSError as exc:
            raise InputNotFound(f"cannot read {self.path}: {exc.strerror}") from None


_SKIP_SUFFIXES = (".duckdb", ".duckdb.wal", ".wal", ".md", ".txt", ".py", ".toml", ".sha256")
_SKIP_NAMES = ("SHA256SUMS", "README", "LICENSE")


def _is_candidate(path: Path) -> bool:
    name = path.name
    if name.startswith("."):
        return False
    if name.upper().startswith(_SKIP_NAMES):
        return False
    return not name.endswith(_SKIP_SUFFIXES)


def expand(args: list[str]) -> list[Source]:
    """Expand PATH arguments into sources, in a stable order, without duplicates.

    Directories are walked recursively (hidden entries, databases and docs are
    skipped); globs are expanded; ``-`` is standard input. An argument naming an
    existing file or directory is always taken literally, even when it holds glob
    characters (``a[1].jsonl``); only an argument that exists under no name is
    expanded as a glob. A path that does not exist (or a glob that matches
    nothing) raises :class:`InputNotFound`.
    """
    out: list[Source] = []
    seen: set[str] = set()

    def add(p: Path) -> None:
        key = str(p.resolve())
        if key in seen:
            return
        seen.add(key)
        try:
            size = p.stat().st_size
        except OSError as exc:
            raise InputNotFound(f"cannot read {p}: {exc.strerror}") from None
        out.append(Source(str(p), size))

    for arg in args:
        if arg == "-":
            if "-" not in seen:
                seen.add("-")
                out.append(Source("-", None))
            continue
        literal = os.path.lexists(arg)
        matches = sorted(glob.glob(arg, recursive=True)) if glob.has_magic(arg) and not literal else [arg]
        if not matches:
            raise InputNotFound(f"no file matches {arg!r}")
        for m in matches:
            p = Path(m)
            if p.is_dir():
                for root, dirs, files in os.walk(p):
                    dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                    for f in sorted(files):
                        fp = Path(root) / f
                        if _is_candidate(fp) and fp.is_file():
                            add(fp)
            elif p.exists():
                if not p.is_file():
                    raise InputNotFound(f"{p} is not a regular file")
                add(p)
            else:
                raise InputNotFound(f"{m} does not exist")
    return out


def sha256_file(path: str) -> str:
    """SHA-256 of a file's bytes, streamed."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


class _BackgroundSha256:
    """SHA-256 computed on a helper thread: ``update`` queues the bytes and returns.

    ``hashlib`` releases the GIL while it hashes a large buffer, so the file's hash
    costs the decoding thread nothing but the queueing. At most ``depth`` chunks wait.
    """

    def __init__(self, depth: int = 8) -> None:
        self._sha = hashlib.sha256()
        self._queue: queue.Queue[bytes | None] = queue.Queue(maxsize=depth)
        self._thread = threading.Thread(target=self._run, name="fabric-sha256", daemon=True)
        self._thread.start()
        self._digest: str | None = None

    def _run(self) -> None:
        while True:
            data = self._queue.get()
            if data is None:
                return
            self._sha.update(data)

    def update(self, data: bytes) -> None:
        if data:
            self._queue.put(data)

    def hexdigest(self) -> str:
        if self._digest is None:
            self._queue.put(None)
            self._thread.join()
            self._digest = self._sha.hexdigest()
        return self._digest

    def close(self) -> None:
        """Stop the helper thread (the digest is then final)."""
        self.hexdigest()


class HashingReader:
    """Wrap a binary stream and hash (and count) what is read through it.

    The SHA-256 runs on a helper thread (:class:`_BackgroundSha256`); ``sha.hexdigest()``
    waits for it. Call :meth:`close` (or read ``sha.hexdigest()``) to stop the thread.
    """

    def __init__(self, raw: BinaryIO) -> None:
        self._raw = raw
        self.sha = _BackgroundSha256()
        self.size = 0

    @property
    def unhashed(self) -> BinaryIO:
        """The wrapped stream, to read past the hash before reading through this reader
        (:func:`~fabric_trace.ingest.container.check_decompressed_size` measures and rewinds it)."""
        return self._raw

    def read(self, n: int = -1) -> bytes:
        data = self._raw.read(n)
        self.sha.update(data)
        self.size += len(data)
        return data

    def read1(self, n: int = -1) -> bytes:
        reader = getattr(self._raw, "read1", self._raw.read)
        data = reader(n)
        self.sha.update(data)
        self.size += len(data)
        return data

    def readinto(self, b: bytearray | memoryview) -> int:
        data = self.read(len(b))
        b[: len(data)] = data
        return len(data)

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def close(self) -> None:
        self.sha.close()
        self._raw.close()

    @property
    def closed(self) -> bool:
        return bool(getattr(self._raw, "closed", False))


@dataclass(frozen=True)
class SpooledStdin(Source):
    """Standard input after it was copied to a :class:`StdinSpool` (``path`` stays ``"-"``)."""

    spool: StdinSpool | None = None

    def open(self) -> BinaryIO:
        assert self.spool is not None
        return self.spool.open()


#: Standard input is spooled in memory up to this size, then to a temporary file.
SPOOL_MEMORY_BYTES = 64 << 20
_SPOOL_CHUNK = 1 << 20


class StdinSpool:
    """Standard input copied (and hashed) into a temporary file, so it can be read twice.

    A file is ingested first with plain INSERTs and, when one of its spans exists
    already, read again with the classifying INSERT; a pipe cannot be read twice. The
    copy stays in memory up to :data:`SPOOL_MEMORY_BYTES` and then goes to a file in
    ``$TMPDIR`` (deleted when closed). If that file cannot be written (disk full), the
    input is still read once, whole: :attr:`complete` is then ``False`` and
    :meth:`open` returns the copied part followed by the rest of the stream.
    """

    def __init__(self, stream: BinaryIO, check: Callable[[], None] = lambda: None) -> None:
        self._file: IO[bytes] = tempfile.SpooledTemporaryFile(max_size=SPOOL_MEMORY_BYTES, prefix="fabric-stdin-")
        self._stream = stream
        self._pending = b""
        self.complete = True
        self.error: str | None = None
        read = source_reader(stream, "standard input")  # I/O errors -> InputNotFound, text refused
        sha = hashlib.sha256()
        size = 0
        while True:
            check()
            chunk = read(_SPOOL_CHUNK)
            if not chunk:
                break
            try:
                self._file.write(chunk)
            except OSError as exc:
                self.complete = False
                self.error = f"cannot copy standard input to a temporary file ({exc.strerror or exc})"
                self._pending = chunk
                break
            sha.update(chunk)
            size += len(chunk)
        self.sha256 = sha.hexdigest() if self.complete else ""
        self.size = size

    def open(self) -> BinaryIO:
        """The input from its start (a complete spool can be opened again and again)."""
        self._file.seek(0)
        if self.complete:
            return _Unclosed(self._file)  # type: ignore[return-value]
        return _Chain([self._file, io.BytesIO(self._pending), self._stream])  # type: ignore[return-value]

    def close(self) -> None:
        self._file.close()


class _Reader(io.RawIOBase):
    """A readable raw stream defined by its ``read``."""

    def readable(self) -> bool:
        return True

    def readinto(self, b: bytearray | memoryview) -> int:  # type: ignore[override]
        data = self.read(len(b))
        b[: len(data)] = data
        return len(data)


class _Unclosed(_Reader):
    """A reader of the spool that leaves it open when closed (the spool owns the file)."""

    def __init__(self, f: IO[bytes]) -> None:
        self._f = f

    def read(self, n: int = -1) -> bytes:
        return self._f.read(n)

    def seekable(self) -> bool:  # the spool is a file: a compressed input can be measured first
        return True

    def tell(self) -> int:
        return self._f.tell()

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._f.seek(offset, whence)


class _Chain(_Reader):
    """Several binary streams read one after the other."""

    def __init__(self, parts: list[IO[bytes]]) -> None:
        self._parts = parts

    def read(self, n: int = -1) -> bytes:
        while self._parts:
            data = self._parts[0].read(n)
            if data:
                return data
            self._parts.pop(0)
        return b""
