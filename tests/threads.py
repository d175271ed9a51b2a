"""Threads a test starts, joined with a deadline: a deadlock fails the test instead of hanging it.

The tests' threads are daemon threads, so that one stuck for good cannot hold the interpreter
open after the suite either (Python joins every other thread at exit, with no time limit).
"""

from __future__ import annotations

import threading
import time
from typing import Iterable

__all__ = ["JOIN_TIMEOUT_SECONDS", "join_all"]

JOIN_TIMEOUT_SECONDS = 120  # a safety net against a deadlock, not a performance bound


def join_all(threads: Iterable[threading.Thread], timeout: float = JOIN_TIMEOUT_SECONDS) -> None:
    """Join every thread, ``timeout`` seconds at most in all; raise AssertionError naming the
    threads still running then."""
    threads = list(threads)
    deadline = time.monotonic() + timeout
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    alive = [thread.name for thread in threads if thread.is_alive()]
    assert not alive, (f"{len(alive)} threads still running after {timeout}s (a deadlock? the "
                       f"limit is a safety net, not a time limit): {', '.join(alive)}")
