"""A gate for repeated log lines, so that a fault that comes and goes never floods the console.

The rule (one place for it): a warning that repeats -- refused posts, failed backups, failed
ingest flushes -- is logged when its state changes, and at most once per window while it flips
or persists (docs/failures.md).
"""

from __future__ import annotations

import math
import time

__all__ = ["Every"]


class Every:
    """A gate for repeated log lines: ready() is True at most once per ``seconds`` (monotonic)."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._next = -math.inf

    def ready(self) -> bool:
        now = time.monotonic()
        if now < self._next:
            return False
        self._next = now + self.seconds
        return True
