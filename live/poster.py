"""The posting thread of a live run: random reactions through POSTMethod at a steady pace.

It is the simulated crowd of viewers. A POST that Redis refuses (over its maxmemory) or cannot
take (a real Redis gone) is counted as refused and dropped; one that fails for another reason is
counted as failed; either way the thread pauses (doubling while it goes on) and resumes on a
schedule restarted from there, so a stall is not followed by a burst. The refusals are logged
when they start and when they stop, never once per post (docs/failures.md).
"""

from __future__ import annotations

import logging
import math
import random
import threading
import time

import config
from api_layer import InvalidReactionError, POSTMethod, ReactionRefusedError
from foundation.log_gate import Every, Spell
from redis_adapter import WrongTypeError, error_text

__all__ = ["Poster", "BACKOFF_SECONDS"]

logger = logging.getLogger(__name__)

BACKOFF_SECONDS = (0.05, 2.0)  # the first and longest pause after a refused or failed POST
FAILURE_LOG_SECONDS = 10.0  # a failed POST is logged at most this often (with the count)
STATE_LOG_SECONDS = 1.0
"""A spell of refusals ends only after this many seconds without one (then "accepted again"),
and a new spell's warning waits as long after the last: a Redis refusing now and then (a full
Redis freed list by list, one key of another application) is one spell, not a warning pair per
post."""


class Poster(threading.Thread):
    """The posting thread: random reactions through POSTMethod at ``rate`` events/s (0 = flat out).

    The pace follows a fixed schedule from the start, so a slow moment is caught up. ``posted``
    counts the POSTs that succeeded, ``refused`` those Redis refused or could not take
    (ReactionRefusedError), ``failed`` those that failed otherwise; refused and failed ones are
    dropped, not retried, and the thread pauses (BACKOFF_SECONDS: 0.05 s, doubling up to 2 s),
    except after a WrongTypeError: one key of another application, not a failing server;
    ``skipped`` counts the posts the schedule asked for during those pauses.
    Only this thread writes the counts. ``error`` is what killed the thread, if anything did
    (its own bad reaction: InvalidReactionError, a bug). ``seconds`` is how long it has been
    posting (monotonic clock), up to its stop.
    """

    BATCH = 500  # posts between two looks at the clock and the stop flag

    def __init__(self, rate: float, rng: random.Random) -> None:
        super().__init__(name="poster", daemon=True)
        self.rate = rate
        self.rng = rng
        self.posted = 0
        self.refused = 0
        self.failed = 0
        self.error: BaseException | None = None
        self._skipped = 0  # posts the schedule asked for during stalls, never attempted
        self._backoff = 0.0
        self._last_refused = -math.inf  # clock() of the latest refusal
        self.clock = time.monotonic  # seconds; tests put a fake clock here
        # A backup frees a full Redis list by list, so at --rate 0 refused/accepted may flip at
        # every DEL: the pair is logged at most once per STATE_LOG_SECONDS.
        self.refusals = Spell(STATE_LOG_SECONDS)
        self._failure_log = Every(FAILURE_LOG_SECONDS)
        self._began: float | None = None
        self._ended: float | None = None
        self._stopping = threading.Event()

    @property
    def skipped(self) -> int:
        """Posts the schedule (``rate`` events/s) asked for during back-off pauses and never
        attempted: the demand a full or failing Redis turned away unseen (0 at rate 0)."""
        return self._skipped

    @property
    def seconds(self) -> float:
        if self._began is None:
            return 0.0
        return (self._ended or time.monotonic()) - self._began

    @property
    def rate_posted(self) -> float:
        """Events/s posted so far: ``posted`` over ``seconds`` (0.0 before the thread starts)."""
        return self.posted / self.seconds if self.seconds else 0.0

    def stop(self) -> None:
        """Ask the thread to stop after its current batch; join() to wait for it."""
        self._stopping.set()

    def run(self) -> None:
        self._began = time.monotonic()
        try:
            while not self._stopping.is_set():
                due = self.BATCH if self.rate == 0 else self._due()
                if due == 0:
                    self._stopping.wait(min(0.01, 1 / self.rate))
                    continue
                for _ in range(due):
                    if not self._post_or_back_off():
                        break
        except BaseException as error:  # the run must not end OK without its poster
            self.error = error
            logger.error("posting thread died: %s; no more posts this run", error_text(error),
                         exc_info=not isinstance(error, InvalidReactionError))
        finally:
            self._ended = time.monotonic()

    def _due(self) -> int:
        """Posts the schedule asks for now, at most one batch."""
        return max(0, min(self._unattempted() - self._skipped, self.BATCH))

    def _unattempted(self) -> int:
        """Posts the schedule (``rate`` events/s since the start) asked for and this thread has
        not attempted: neither posted, refused nor failed."""
        return int(self.seconds * self.rate) - self.posted - self.refused - self.failed

    def _post_or_back_off(self) -> bool:
        """POST one; on a refusal or a failure count it, pause, and return False."""
        try:
            self.post_one()
        except ReactionRefusedError as error:
            self.refused += 1
            self._last_refused = self.clock()
            if self.refusals.failed():
                logger.warning("POST refused (%s); refused posts are counted and dropped, "
                               "backing off until Redis takes them again", error)
            self._back_off()
            return False
        except InvalidReactionError:
            raise  # the poster's own reaction is bad: a bug, not a passing fault
        except Exception as error:
            self.failed += 1
            if self._failure_log.ready():
                logger.warning("POST failed (%s so far), posting goes on: %s",
                               f"{self.failed:,}", error_text(error))
            if isinstance(error, WrongTypeError):
                return True  # one key of another application: the other cells post at pace
            self._back_off()
            return False
        self._backoff = 0.0
        if (self.refusals.told and self.clock() - self._last_refused >= STATE_LOG_SECONDS
                and self.refusals.ended()):
            logger.warning("POSTs accepted again after %s refused in all", f"{self.refused:,}")
        return True

    def _back_off(self) -> None:
        """Pause (doubling while POSTs keep failing), then restart the schedule from now."""
        self._backoff = min(max(self._backoff * 2, BACKOFF_SECONDS[0]), BACKOFF_SECONDS[1])
        self._stopping.wait(self._backoff)
        if self.rate:
            self._skipped = self._unattempted()

    def post_one(self) -> None:
        """POST one random reaction."""
        rng = self.rng
        POSTMethod(rng.randint(1, config.MAX_USERS), rng.randint(1, config.MAX_MATCHES),
                   rng.choice(config.EMOTICON_TYPES))
        self.posted += 1
