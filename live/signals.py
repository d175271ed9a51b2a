"""Stop signals of a live run: Ctrl-C (SIGINT), SIGTERM and SIGHUP stop it the orderly way.

SIGHUP comes when the terminal or SSH session closes. Its default (exit at once) would lose
every pending event of the in-memory Redis, so it stops the run like Ctrl-C. The rules:

- The first stop signal stops the run: posting stops, the final backup runs, the summary.
- Only a deliberate Ctrl-C (SIGINT) after that exits at once (``exit_now``), saying what it
  abandons. A repeated SIGTERM or SIGHUP changes nothing: a shell sends SIGHUP again when the
  terminal closes, and a service manager repeats SIGTERM; neither asks to abandon events. A
  SIGINT within REPEAT_WINDOW_SECONDS of the SIGINT that started the stop is the same one
  delivered twice (``timeout -s INT`` signals the process and then its group), not a second
  press.
- A signal the process inherited as ignored stays ignored: ``nohup python3 main.py &`` must
  outlive the terminal, and a background job of a script ignores Ctrl-C by design.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from typing import Callable

__all__ = ["StopSignals", "STOP_SIGNALS", "inherited_as_ignored"]

logger = logging.getLogger(__name__)

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
REPEAT_WINDOW_SECONDS = 1.0
"""A SIGINT this soon after the one that started the stop is its duplicate, not a new press."""


def inherited_as_ignored(signum: int) -> bool:
    """True if ``signum`` is ignored (SIG_IGN), as nohup or a shell's background job sets it."""
    return signal.getsignal(signum) is signal.SIG_IGN


class StopSignals:
    """Handlers of STOP_SIGNALS on the running event loop: the first stop signal calls
    ``stop()``, a SIGINT after it ``exit_now(signum)`` (which does not return); ``ignored``
    lists the signals left ignored as inherited."""

    def __init__(self, stop: Callable[[], None], exit_now: Callable[[int], None],
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._stop, self._exit_now, self._clock = stop, exit_now, clock
        self.first: int | None = None  # the signal that started the stop
        self._first_at = 0.0  # clock() when it came
        self.ignored: list[int] = []
        self._repeats_told: set[int] = set()

    def install(self) -> None:
        """Install the handlers on the running event loop, but for inherited ignores."""
        loop = asyncio.get_running_loop()
        for signum in STOP_SIGNALS:
            if inherited_as_ignored(signum):
                self.ignored.append(signum)
                continue
            loop.add_signal_handler(signum, self._on_signal, signum)
        if self.ignored:
            logger.info("%s ignored, as this process inherited %s (nohup, a background job)",
                        "/".join(signal.Signals(s).name for s in self.ignored),
                        "them" if len(self.ignored) > 1 else "it")

    def _on_signal(self, signum: int) -> None:
        name = signal.Signals(signum).name
        if self.first is None:
            self.first, self._first_at = signum, self._clock()
            self._stop()  # first: the line after it may go to a terminal that has closed
            hint = "" if signal.SIGINT in self.ignored else " (Ctrl-C again to quit at once)"
            logger.info("%s: stopping%s", name, hint)
        elif signum == signal.SIGINT and not self._duplicate(signum):
            self._exit_now(signum)
        elif signum not in self._repeats_told:  # once: a flood of them must not flood the log
            self._repeats_told.add(signum)
            logger.info("%s again: already stopping; the final backup goes on (Ctrl-C to quit "
                        "at once)", name)

    def _duplicate(self, signum: int) -> bool:
        """True if ``signum`` repeats the first signal within REPEAT_WINDOW_SECONDS."""
        return signum == self.first and self._clock() - self._first_at < REPEAT_WINDOW_SECONDS
