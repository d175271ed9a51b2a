"""Batched ingest (write coalescing): POSTs buffered in the process, written in one MULTI/EXEC.

Large live-reaction systems do not write each tap on its own (Hotstar's ingest flushes every
500 ms or every 20,000 messages, whichever comes first). With ``INGEST_BATCH_EVENTS`` > 1,
POSTMethod hands its validated event to the process's IngestBuffer, which writes the buffer in
one MULTI/EXEC (RedisAdapter.record_batch: an INCRBY per counter touched, one RPUSH per match)
when it holds INGEST_BATCH_EVENTS events or its oldest event is INGEST_FLUSH_SECONDS old, and
when it is closed (shutdown flushes before the final backup).

The trade-off: GET lags by at most one flush interval, and a crash of the process loses at most
its unflushed buffer, though those POSTs were acknowledged (the default per-POST mode loses
none). A flush Redis refuses or whose reply is lost keeps its events "in doubt" and is retried
with record_batch_once, which tells from the flush's marker whether the EXEC happened: a retry
never counts an event twice. While a flush is in doubt and still fails, new POSTs are refused
(they raise the Redis error), so at most one buffer is held.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from typing import Any, Callable, Protocol

from foundation.errors import WrongTypeError
from foundation.log_gate import Spell

__all__ = ["IngestBuffer", "BatchWriter"]

logger = logging.getLogger(__name__)

STATE_LOG_SECONDS = 1.0  # "failed" / "works again" pairs: at most one a second


class BatchWriter(Protocol):
    """What the buffer writes through: a RedisAdapter (redis_adapter.py), which raises
    WrongTypeError for a key another application holds."""

    layout: Any  # its KeyLayout: ingest_marker_key(token) names the buffer's marker
    redis: Any  # its client: close() deletes the marker with it

    def record_batch(self, events: list[dict[str, Any]], marker: str, flush: int) -> Any: ...

    def record_batch_once(self, events: list[dict[str, Any]], marker: str, flush: int) -> Any: ...


class IngestBuffer:
    """Buffers event records and writes them to Redis ``max_events`` at a time, or after
    ``flush_seconds`` (seconds) at the latest. Safe to call from any thread.

    ``clock`` (monotonic seconds) can be injected for tests; ``start()`` runs the thread that
    flushes on age. Its marker key (``{prefix}ingest_{id}``) holds the number of its last
    applied flush; close() deletes it when nothing is in doubt.
    """

    def __init__(self, adapter: BatchWriter, max_events: int, flush_seconds: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.adapter, self.max_events, self.flush_seconds = adapter, max_events, flush_seconds
        self.marker = adapter.layout.ingest_marker_key(uuid.uuid4().hex)
        self._clock = clock
        self._events: list[dict[str, Any]] = []
        self._first_at = 0.0  # clock() when the oldest buffered event (or a failed flush) came
        self._in_doubt: list[dict[str, Any]] | None = None  # the flush whose EXEC is unknown
        self._flushes = 0  # number of the last flush attempted
        self._flush_at = max_events  # 1 once closed: every later add flushes at once
        self.dropped = 0  # acknowledged events lost to another application's keys (WrongTypeError)
        self._bad_keys: set[str] = set()  # those keys, each logged once
        # A small maxmemory can make flushes fail and succeed in turn every few ms: the pair of
        # lines is logged at most once per STATE_LOG_SECONDS (log_gate.py).
        self.failures = Spell(STATE_LOG_SECONDS)
        self._closed = False
        self._lock = threading.Lock()  # one flush at a time; adds wait for it
        self._closing = threading.Condition(self._lock)
        self._thread: threading.Thread | None = None

    @property
    def held(self) -> int:
        """Events acknowledged but not known to be in Redis (buffered or in doubt)."""
        with self._lock:
            return len(self._events) + len(self._in_doubt or ())

    def start(self) -> "IngestBuffer":
        """Start the thread that flushes a buffer once its oldest event is flush_seconds old."""
        self._thread = threading.Thread(target=self._flush_on_age, name="ingest-flush",
                                        daemon=True)
        self._thread.start()
        return self

    def add(self, event: dict[str, Any]) -> None:
        """Take one validated event record; flush if the buffer is full (or closed).

        Raises the Redis error, taking nothing, when an earlier flush is still in doubt and
        Redis still fails: the POST is refused. A failing flush of a buffer this event filled
        does not raise: the event is kept and the flush retried.
        """
        with self._lock:
            if self._in_doubt is not None:
                self._retry_in_doubt()
            if not self._events:  # the age thread looks at it when it next wakes up
                self._first_at = self._clock()
            self._events.append(event)
            if len(self._events) >= self._flush_at:
                self._flush_quietly()

    def flush(self) -> int:
        """Write what is buffered now, in doubt first; the events written. Raises Redis errors
        (the events stay held and are retried)."""
        with self._lock:
            return self._flush()

    def close(self) -> None:
        """Stop the age thread and flush (raising if Redis fails); later adds flush at once."""
        with self._lock:
            self._closed, self._flush_at = True, 1
            self._closing.notify()
        if self._thread is not None:
            self._thread.join()
        self.flush()
        self.adapter.redis.delete(self.marker)  # nothing is in doubt: no retry will look

    def _flush(self) -> int:
        written = self._retry_in_doubt()
        if self._events:
            batch, self._events = self._events, []
            self._flushes += 1
            self._in_doubt = batch  # until Redis answers the EXEC
            written += self._applied(self.adapter.record_batch, batch)
        self._note_state(failing=False)
        return written

    def _retry_in_doubt(self) -> int:
        """Settle the flush in doubt: re-apply it unless its marker shows it happened."""
        if self._in_doubt is None:
            return 0
        batch = self._in_doubt
        return self._applied(self.adapter.record_batch_once, batch)

    def _applied(self, write: Callable[..., Any], batch: list[dict[str, Any]]) -> int:
        """Run ``write`` (record_batch or record_batch_once) on the batch in doubt; the events
        it wrote now. A WrongTypeError means the flush happened without the events of another
        application's keys: they are lost, counted in ``dropped`` and logged (once per key)."""
        try:
            applied_now = write(batch, self.marker, self._flushes)
        except WrongTypeError as error:
            self._in_doubt = None
            self.dropped += error.dropped
            if not set(error.keys) <= self._bad_keys:
                self._bad_keys.update(error.keys)
                logger.error("ingest flush: %s (%d dropped so far)", error, self.dropped)
            return len(batch) - error.dropped
        self._in_doubt = None
        return len(batch) if applied_now is not False else 0

    def _flush_quietly(self) -> None:
        try:
            self._flush()
        except Exception as error:  # kept in doubt; retried at the next add or age tick
            self._first_at = self._clock()
            self._note_state(failing=True, error=error)

    def _note_state(self, failing: bool, error: Exception | None = None) -> None:
        """Log a change of state, not each failed flush; at most one failed / works-again pair
        per STATE_LOG_SECONDS."""
        if failing and self.failures.failed():
            logger.warning("ingest flush failed (%s); %d events held, retried every %gs, new "
                           "POSTs refused meanwhile", error, len(self._in_doubt or ()),
                           self.flush_seconds)
        elif not failing and self.failures.ended():
            logger.warning("ingest flush works again; held events written")

    def _flush_on_age(self) -> None:
        # Not woken by add(): waking this thread at each new buffer would cost the poster a GIL
        # hand-over per flush. An event added while it waits a full flush_seconds is flushed at
        # its own deadline all the same, since the next wait is only what remains of it.
        with self._lock:
            while not self._closed:
                if not self._events and self._in_doubt is None:
                    self._closing.wait(self.flush_seconds)
                    continue
                wait = self._first_at + self.flush_seconds - self._clock()
                if wait > 0:
                    self._closing.wait(wait)
                else:
                    self._flush_quietly()
