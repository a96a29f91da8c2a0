"""Ctrl-C, handled the same way at any moment (docs/exit-codes.md: exit 130).

The ``fabric`` entry point installs :func:`handler` before it imports anything
else. Then:

* the **first** Ctrl-C raises ``KeyboardInterrupt`` where the program is (inside
  a DuckDB statement it surfaces as ``RuntimeError: Query interrupted``);
* inside a :func:`deferred` block (an ingest), the first Ctrl-C only records
  the request, and the code stops at its next safe point (:func:`check`, at
  every batch boundary), so the file being written is rolled back cleanly; a
  second Ctrl-C there raises at once;
* **every later** Ctrl-C is ignored, so the clean-up (ROLLBACK of the open
  transaction, closing the database) always completes.

:func:`interrupted` tells the one place that maps errors to exit codes
(``cli/errors.py``) that whatever exception is unwinding is the consequence of
an interrupt (exit 130), whatever its type.

:func:`pause_point` is a test hook: with ``FABRIC_TEST_PAUSE=NAME`` in the
environment, the point ``NAME`` prints ``fabric-test-pause NAME`` on stderr and
waits (up to 60 s) for a signal, so tests can interrupt at a known moment
instead of racing a sleep.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

_presses = 0
_raised = False
_deferring = 0
_reported = False


def handler(signum: int, frame: Any) -> None:
    """The SIGINT handler (see the module docstring)."""
    global _presses, _raised
    _presses += 1
    if _raised or (_deferring and _presses == 1):
        return
    _raised = True
    raise KeyboardInterrupt


def install() -> None:
    """Make :func:`handler` the SIGINT handler and forget earlier presses (main thread only)."""
    global _presses, _raised, _reported
    _presses, _raised, _reported = 0, False, False
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, handler)


def ignore() -> None:
    """Ignore Ctrl-C from now on (the process is about to exit with its code decided)."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.SIG_IGN)


def interrupted() -> bool:
    """Whether Ctrl-C was pressed since :func:`install`."""
    return _presses > 0


def mark_reported() -> None:
    """Record that the interruption was reported to the user (printed once)."""
    global _reported
    _reported = True


def reported() -> bool:
    """Whether :func:`mark_reported` was called since :func:`install`."""
    return _reported


def check() -> None:
    """A safe point: raise ``KeyboardInterrupt`` if Ctrl-C was pressed."""
    global _raised
    if _presses:
        _raised = True
        raise KeyboardInterrupt


@contextmanager
def deferred() -> Iterator[None]:
    """Within the block, the first Ctrl-C waits for the next :func:`check`.

    Installs :func:`handler` for the block if another handler is active (a
    library caller), and restores it afterwards.
    """
    global _deferring
    main = threading.current_thread() is threading.main_thread()
    previous = signal.getsignal(signal.SIGINT) if main else None
    if main and previous is not handler:
        signal.signal(signal.SIGINT, handler)
    _deferring += 1
    try:
        yield
    finally:
        _deferring -= 1
        if main and previous is not handler:
            signal.signal(signal.SIGINT, previous)


def pause_point(name: str) -> None:
    """Test hook: wait here for a signal when ``FABRIC_TEST_PAUSE`` names this point."""
    if os.environ.get("FABRIC_TEST_PAUSE") != name:
        return
    sys.stderr.write(f"fabric-test-pause {name}\n")
    sys.stderr.flush()
    deadline = time.monotonic() + 60
    while not _presses and time.monotonic() < deadline:
        time.sleep(0.01)
