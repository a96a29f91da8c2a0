"""Run the real ``fabric`` command in a pseudo-terminal of a given width (for width and colour tests)."""

from __future__ import annotations

import errno
import fcntl
import os
import pty
import re
import struct
import subprocess
import sys
import termios
from pathlib import Path

from rich.cells import cell_len

#: CSI / OSC escape sequences (colours, styles, hyperlinks).
ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)")


def run_in_terminal(args: list[str], columns: int, *, cwd: str | Path | None = None,
                    env: dict[str, str] | None = None, timeout: float = 300) -> tuple[int, str]:
    """Run ``python -m fabric_trace ARGS`` with stdin/stdout/stderr on a ``columns``-wide pty.

    ``$COLUMNS`` is removed from the environment so the width comes from the
    terminal itself. Returns the exit code and everything written (CRLF -> LF).
    """
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, columns, 0, 0))
    full_env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES", "NO_COLOR", "FORCE_COLOR")}
    full_env.update({"TERM": "xterm-256color"}, **(env or {}))
    proc = subprocess.Popen([sys.executable, "-m", "fabric_trace", *args], stdin=slave, stdout=slave,
                            stderr=slave, cwd=cwd, env=full_env, close_fds=True)
    os.close(slave)
    chunks: list[bytes] = []
    try:
        while True:
            try:
                data = os.read(master, 65536)
            except OSError as exc:  # EIO: the child closed the terminal
                if exc.errno == errno.EIO:
                    break
                raise
            if not data:
                break
            chunks.append(data)
    finally:
        os.close(master)
    code = proc.wait(timeout=timeout)
    return code, b"".join(chunks).decode("utf-8", "replace").replace("\r\n", "\n")


def visible_widths(text: str) -> list[int]:
    """The display width of every line once escape sequences are removed."""
    return [cell_len(ANSI.sub("", line)) for line in text.split("\n")]
