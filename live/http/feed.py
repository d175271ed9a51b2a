"""The viewers' push: each GET tick and each backup, read once, fanned out to every viewer.

The GET tick reads Redis once (live/run.py) and publishes what it read here: the busiest
matches with the status figures, and the counts of every match a viewer follows. The feed
encodes each event once as a Server-Sent Event (the HTML standard's ``text/event-stream``:
``id:``, ``event:``, ``data:`` lines and a blank line) and hands the same bytes to every
subscriber of that stream, however many. Each subscriber holds at most VIEWER_QUEUE_EVENTS
events: one that falls behind (its connection does not drain) is dropped, so memory never grows
with a slow or stalled client.
"""

from __future__ import annotations

import asyncio
import collections
import json
import time
from typing import Any

__all__ = ["Feed", "Subscription", "VIEWER_QUEUE_EVENTS", "sse_event"]

VIEWER_QUEUE_EVENTS = 16
"""Events a viewer may have waiting; one more and it is dropped (a tick is ~1 KB of JSON)."""


def sse_event(kind: str, event_id: int, data: Any) -> bytes:
    """One Server-Sent Event: ``id: N``, ``event: kind``, ``data: <JSON on one line>``."""
    text = json.dumps(data, separators=(",", ":"))
    return f"id: {event_id}\nevent: {kind}\ndata: {text}\n\n".encode()


class Subscription:
    """One viewer's stream: ``await next()`` gives the next event's bytes, None once it ends
    (the feed closed, or the viewer was dropped for falling behind: ``dropped``)."""

    def __init__(self, match_id: int | None) -> None:
        self.match_id = match_id
        self.dropped = False
        self._events: collections.deque[bytes] = collections.deque()
        self._waiter: asyncio.Future | None = None  # next()'s, while it waits
        self._ended = False
        self._last_event = time.monotonic()  # when next() last returned (or the start)
        self._idle_timer: asyncio.TimerHandle | None = None

    def push(self, data: bytes) -> bool:
        """Queue ``data``; False (and the subscription ended) if the viewer is too far behind."""
        if self._ended:
            return False
        if len(self._events) >= VIEWER_QUEUE_EVENTS:
            self.dropped = True
            self.end()
            return False
        self._events.append(data)
        self._wake()
        return True

    def end(self) -> None:
        """End the stream: next() returns what is queued, then None."""
        self._ended = True
        self._wake()
        if self._idle_timer is not None:
            self._idle_timer.cancel()
            self._idle_timer = None

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def next(self, timeout: float | None = None) -> bytes | None:
        """The next event's bytes; b"" once ``timeout`` seconds have passed since the last
        return with none (time for a keep-alive comment); None once the stream has ended.

        Every viewer calls this once per tick, so it waits on a bare future, not
        ``asyncio.wait_for`` (a task per call), and the idle time is checked by one timer per
        subscription that re-arms itself, not a timer made and cancelled per call
        (docs/performance.md, item 9)."""
        if not self._events and not self._ended:
            loop = asyncio.get_running_loop()
            if timeout is not None and self._idle_timer is None:
                self._idle_timer = loop.call_at(self._last_event + timeout, self._idle_check,
                                                loop, timeout)
            self._waiter = loop.create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        self._last_event = time.monotonic()
        if self._events and not self.dropped:
            return self._events.popleft()
        return None if self._ended else b""

    def _idle_check(self, loop: asyncio.AbstractEventLoop, timeout: float) -> None:
        """The idle timer: wake next() with nothing if it has waited ``timeout`` seconds since
        its last return, then re-arm for ``timeout`` after that return."""
        due = self._last_event + timeout
        if due <= loop.time():
            self._wake()  # next() returns b"" and moves _last_event on
            due = loop.time() + timeout
        self._idle_timer = loop.call_at(due, self._idle_check, loop, timeout)


class Feed:
    """Publishes GET ticks and backups to the subscribers of ``/stream`` (every viewer of the
    whole match list) and ``/matches/{id}/stream`` (the viewers of one match). Used from the
    event loop's thread only; ``latest`` is the last tick's snapshot, for a new viewer and for
    ``GET /matches``."""

    def __init__(self) -> None:
        self._all: set[Subscription] = set()
        self._by_match: dict[int, set[Subscription]] = {}
        self._event_id = 0
        self._last_overview: bytes | None = None
        self._last_match: dict[int, bytes] = {}
        self.latest: dict[str, Any] | None = None
        self.dropped = 0  # viewers dropped for falling behind
        self.closed = False

    @property
    def open_streams(self) -> int:
        return len(self._all) + sum(len(subs) for subs in self._by_match.values())

    def wanted_matches(self) -> set[int]:
        """The matches some viewer follows: the GET tick reads their counts too."""
        return set(self._by_match)

    def subscribe(self, match_id: int | None = None) -> Subscription:
        """A new viewer of every match (None) or of ``match_id``, primed with the latest event
        so that it shows something at once. Ended at once if the feed is closed."""
        subscription = Subscription(match_id)
        if self.closed:
            subscription.end()
            return subscription
        if match_id is None:
            self._all.add(subscription)
            latest = self._last_overview
        else:
            self._by_match.setdefault(match_id, set()).add(subscription)
            latest = self._last_match.get(match_id)
        if latest is not None:
            subscription.push(latest)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        subscription.end()
        if subscription.match_id is None:
            self._all.discard(subscription)
            return
        viewers = self._by_match.get(subscription.match_id)
        if viewers is not None:
            viewers.discard(subscription)
            if not viewers:
                del self._by_match[subscription.match_id]
                self._last_match.pop(subscription.match_id, None)

    def publish_tick(self, overview: dict[str, Any], matches: dict[int, dict[str, Any]]) -> None:
        """One GET tick: ``overview`` (the busiest matches and the status) to every viewer of
        /stream, and each of ``matches`` (``{match_id: that match's counts and means}``) to
        its own viewers."""
        self.latest = overview
        self._event_id += 1
        self._last_overview = sse_event("tick", self._event_id, overview)
        self._fan_out(self._all, self._last_overview)
        for match_id, viewers in list(self._by_match.items()):
            if match_id in matches:
                data = sse_event("tick", self._event_id, matches[match_id])
                self._last_match[match_id] = data
                self._fan_out(viewers, data)

    def publish_backup(self, backup: dict[str, Any]) -> None:
        """One backup's result (events moved, rows in the table) to every viewer."""
        self._event_id += 1
        data = sse_event("backup", self._event_id, backup)
        self._fan_out(self._all, data)
        for viewers in list(self._by_match.values()):
            self._fan_out(viewers, data)

    def _fan_out(self, viewers: set[Subscription], data: bytes) -> None:
        for subscription in list(viewers):
            if not subscription.push(data):
                self.dropped += subscription.dropped
                self.unsubscribe(subscription)

    def close(self) -> None:
        """End every stream (shutdown): each viewer gets what is queued, then the end."""
        self.closed = True
        for subscription in list(self._all):
            self.unsubscribe(subscription)
        for viewers in list(self._by_match.values()):
            for subscription in list(viewers):
                self.unsubscribe(subscription)

