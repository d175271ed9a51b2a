"""The periodic tasks of a live run (GET, backup, status) on a fixed schedule.

``every()`` runs a tick on a schedule anchored to the start (monotonic clock), so it does not
drift by the time a tick takes; ticks missed while one ran long are skipped, not bunched, and
``SkippedTicks`` says so in one line at most every SKIPPED_TICKS_NOTICE_SECONDS.
"""

from __future__ import annotations

import asyncio
import logging
import math
from typing import Awaitable, Callable

from foundation.log_gate import Every
from redis_adapter import is_connection_error

__all__ = ["every", "SkippedTicks", "SKIPPED_TICKS_NOTICE_SECONDS"]

logger = logging.getLogger(__name__)

SKIPPED_TICKS_NOTICE_SECONDS = 30.0  # "GET: skipped N ticks" at most this often per task


async def every(interval: float, tick: Callable[[], Awaitable[None]], what: str) -> None:
    """Await ``tick()`` every ``interval`` seconds on a fixed schedule, forever.

    A tick that raises is logged and the schedule goes on; while it keeps failing (Redis gone),
    once, not every tick; "``what`` works again" when it recovers.
    """
    loop = asyncio.get_running_loop()
    next_at = loop.time() + interval
    failing = False
    skipped = SkippedTicks(what, interval)
    while True:
        await asyncio.sleep(max(0.0, next_at - loop.time()))
        started = loop.time()
        try:
            await tick()
        except Exception as error:
            if not failing:  # a connection error needs no traceback; anything else does
                logger.warning("%s failed (%s); trying again every tick", what, error,
                               exc_info=not is_connection_error(error))
            failing = True
        else:
            if failing:
                logger.warning("%s works again", what)
            failing = False
        ended = loop.time()
        missed = max(0, math.floor((ended - next_at) / interval))
        if missed:
            skipped.note(missed, started - next_at, ended - started)
        next_at += (missed + 1) * interval


class SkippedTicks:
    """The line saying that ticks of ``what`` were skipped, and why: the tick before them
    started late (the event loop was busy) and/or took longer than ``interval`` seconds. At
    most one line per SKIPPED_TICKS_NOTICE_SECONDS; a line counts the skips it did not tell."""

    def __init__(self, what: str, interval: float) -> None:
        self.what, self.interval = what, interval
        self.untold = 0  # ticks skipped since the last line
        self._gate = Every(SKIPPED_TICKS_NOTICE_SECONDS)

    def note(self, missed: int, late: float, took: float) -> None:
        """``missed`` ticks were skipped after a tick that started ``late`` seconds after its
        time and ran ``took`` seconds."""
        self.untold += missed
        if not self._gate.ready():
            return
        count = f"{self.untold:,} tick{'s' if self.untold > 1 else ''}"
        since = " since the last such line" if self.untold > missed else ""
        start = f"started {late:.1f}s late and " if late >= 0.05 else ""
        logger.info("%s: skipped %s%s, as the previous %s %stook %.1fs, past the %gs "
                    "interval (this line at most every %gs)", self.what, count, since,
                    self.what, start, took, self.interval, SKIPPED_TICKS_NOTICE_SECONDS)
        self.untold = 0
