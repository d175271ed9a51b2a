"""Gates for repeated log lines, so that a fault that comes and goes never floods the console.

The rule (one place for it): a warning that repeats -- refused posts, failed backups, failed
ingest flushes -- is logged when its state changes, and at most once per window while it flips
or persists (docs/failures.md). ``Every`` is the window; ``Spell`` is the state: a run of
failures told once (or once per window), and its end told only if its start was.
"""

from __future__ import annotations

import math
import time

__all__ = ["Every", "Spell"]


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


class Spell:
    """A spell of failures, told in few lines.

    ``failed()`` counts a failure and says whether to tell it: the spell's first failure that
    the gate (``Every(seconds)``) lets through, and with ``repeat`` one more at most every
    ``seconds`` while the spell lasts. ``ended()`` closes the spell at a success and says
    whether to tell its end ("works again"): only if some failure of it was told, so a spell
    the gate kept quiet ends quietly too. ``failures`` counts the failures of the spell.
    """

    def __init__(self, seconds: float, repeat: bool = False) -> None:
        self.gate = Every(seconds)  # tests may put a gate of their own here
        self.failures = 0
        self.told = False
        self._repeat = repeat

    def failed(self) -> bool:
        """Count one failure; True if it is to be logged now."""
        self.failures += 1
        if (self.told and not self._repeat) or not self.gate.ready():
            return False
        self.told = True
        return True

    def ended(self) -> bool:
        """A success: the spell, if any, is over. True if it had been told."""
        told = self.told
        self.failures, self.told = 0, False
        return told
