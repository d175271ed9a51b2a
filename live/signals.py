"""Stop signals of a live run: Ctrl-C (SIGINT), SIGTERM and SIGHUP stop it the orderly way.

SIGHUP comes when the terminal or SSH session closes. Its default (exit at once) would lose
every pending event of the in-memory Redis, so it stops the run like Ctrl-C. A second stop
signal exits at once (``exit_now``), saying what it abandons.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from typing import Callable

__all__ = ["StopSignals", "STOP_SIGNALS"]

logger = logging.getLogger(__name__)

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class StopSignals:
    """Handlers of STOP_SIGNALS on the running event loop: the first calls ``stop()``, a
    second ``exit_now(signum)`` (which does not return)."""

    def __init__(self, stop: Callable[[], None], exit_now: Callable[[int], None]) -> None:
        self._stop, self._exit_now = stop, exit_now
        self.received = 0

    def install(self) -> None:
        """Install the handlers on the running event loop."""
        loop = asyncio.get_running_loop()
        for signum in STOP_SIGNALS:
            loop.add_signal_handler(signum, self._on_signal, signum)

    def _on_signal(self, signum: int) -> None:
        self.received += 1
        if self.received > 1:
            self._exit_now(signum)
        logger.info("%s: stopping (again to quit at once)", signal.Signals(signum).name)
        self._stop()
