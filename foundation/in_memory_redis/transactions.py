"""MULTI/EXEC and WATCH: a pipeline's transaction run whole, and optimistic locking.

A transaction runs under the server lock from its first command to its last, as Redis runs
EXEC; MULTI's refusals (a command of wrong arity, any command while over maxmemory) abort it
before anything runs, and a DISCARD queued in it (redis-py's Pipeline.discard() queues one)
ends it, as on a real connection. Each watching client (a Pipeline) has a ``_Watch``; every change to a key
marks the watches on it dirty (``_touch``, Redis's signalModifiedKey), and EXEC of a dirty watch
runs nothing.
"""

from __future__ import annotations

from typing import Any, NoReturn

from .command_table import MULTI_ARITY
from .errors import DISCARD_WITHOUT_MULTI, EXEC_WITHOUT_MULTI, ResponseError, _annotate
from .protocol import OK, _Status, _word


class _Watch:
    """One client's WATCHed keys; ``dirty`` once any of them changed (Redis's CLIENT_DIRTY_CAS)."""

    def __init__(self) -> None:
        self.keys: set = set()
        self.dirty = False
        # Keys already past their expiry when WATCHed (Redis's watchedKey.expired): their
        # removal is no change, and their expiry does not fail EXEC.
        self.expired: set = set()


class Transactions:
    """EXEC's transaction, WATCH and UNWATCH.

    Mixed into InMemoryRedis; its methods are only called with the server lock held.
    """

    def _run_transaction(self, commands: list[list], matchers: dict | None,
                         watch: _Watch | None) -> list[Any] | None:
        """_execute_pipeline's transaction, with the lock held."""
        if matchers:
            self._matchers = matchers
        # MULTI refuses to queue a command of wrong arity, or any command at all while used
        # memory is over maxmemory; EXEC is then aborted, nothing runs, and redis-py raises
        # the first refusal. A queued DISCARD fails this quick look too (see NOT_QUEUED).
        arity = MULTI_ARITY
        over = self.maxmemory and self._used_memory > self.maxmemory and self._still_over()
        for command in commands:
            expected = arity.get(command[0], 0)  # the usual case checked inline: it is quick
            if over or not (len(command) == expected if expected > 0
                            else expected and len(command) >= -expected):
                self._refuse_transaction(commands, watch)
                break
        if watch is not None:
            dirty = watch.dirty or self._watched_key_expired(watch)
            self._unwatch(watch)
            if dirty:
                return None
        if self._deadlines:
            self._expire_some()
        replies = []
        for command in commands:  # a loop: calls from it are cheaper than map's (CPython 3.11)
            replies.append(self._dispatch(command))
        return replies

    def _refuse_transaction(self, commands: list[list], watch: _Watch | None) -> None:
        """Raise what EXEC answers instead of running ``commands``, if anything: after a queued
        DISCARD, "EXEC without MULTI" (see _discard_queued); else the first command MULTI
        refused, annotated with its place."""
        discard = _discard_index(commands)
        if discard is not None:
            self._discard_queued(commands[discard + 1:], watch)
        for number, command in enumerate(commands, 1):
            refusal = self._refusal(command, in_transaction=True)
            if refusal is not None:
                raise _annotate(refusal, number, command)

    def _discard_queued(self, after: list[list], watch: _Watch | None) -> NoReturn:
        """A DISCARD queued in a transaction, as a connection runs MULTI ... DISCARD ... EXEC.

        DISCARD drops the commands queued before it, MULTI's refusals of them included, and
        unwatches the client's keys (Redis's discardTransaction); the commands ``after`` it run
        one by one, outside any transaction, each answered or refused alone; the EXEC that
        ends the pipeline then finds no MULTI: its ResponseError is raised, as redis-py raises
        it, whatever those commands answered.
        """
        if watch is not None:
            self._unwatch(watch)
        self._in_exec, self._exec_ms = False, None  # no EXEC's time: each reads the clock
        for command in after:
            self._run(command)
        raise ResponseError(EXEC_WITHOUT_MULTI)

    def _touch(self, key: str | bytes) -> None:
        """Mark the clients WATCHing ``key`` dirty: their EXEC will not run (signalModifiedKey)."""
        if self._watches:
            if self._abandoned:
                self._drop_abandoned()
            for watch in self._watches.get(key, ()):
                if watch.expired and key in watch.expired and key not in self._data:
                    watch.expired.discard(key)  # touchWatchedKey: the expired key's removal
                    continue
                watch.dirty = True

    def _watched_key_expired(self, watch: _Watch) -> bool:
        """Whether a watched key has expired since WATCH (Redis 6.0.9+ aborts EXEC then)."""
        now = self._now_ms()
        return any(self._expires.get(key, now + 1) <= now for key in watch.keys
                   if key not in watch.expired)

    def _exec(self) -> Any:
        raise ResponseError(EXEC_WITHOUT_MULTI)

    def _discard(self) -> Any:
        raise ResponseError(DISCARD_WITHOUT_MULTI)

    # WATCH and UNWATCH belong to one client (a Pipeline), so they reach the server through
    # _run_watch with that client's _Watch; sent without one they change nothing.

    def _watch(self, *keys: str | bytes) -> _Status:
        return OK

    def _unwatch(self, watch: _Watch | None = None) -> _Status:
        if watch is not None:
            for key in watch.keys:
                watchers = self._watches.get(key)
                if watchers is not None:
                    watchers.discard(watch)
                    if not watchers:
                        del self._watches[key]
            watch.keys.clear()
            watch.expired.clear()
            watch.dirty = False
        return OK

    def _drop_abandoned(self) -> None:
        """Unwatch the keys of pipelines dropped while watching (redis-py's __del__ resets)."""
        while self._abandoned:
            self._unwatch(self._abandoned.pop())

    def _run_watch(self, command: list, watch: _Watch) -> Any:
        self._drop_abandoned()
        refusal = self._refusal(command)
        if refusal is not None:
            return refusal
        if _word(command[0]) == "UNWATCH":
            return self._unwatch(watch)
        now = self._now_ms() if self._expires else None
        for key in command[1:]:
            if key in watch.keys:  # Redis keeps the first WATCH's record of a key
                continue
            watch.keys.add(key)
            self._watches.setdefault(key, set()).add(watch)
            if now is not None and self._expires.get(key, now + 1) <= now:
                watch.expired.add(key)  # past its expiry, not yet removed (watchForKey)
        return OK


def _discard_index(commands: list[list]) -> int | None:
    """The index of the DISCARD that ends a transaction of ``commands``, or None if none does.

    The first well-formed DISCARD (one with arguments is only refused, as Redis refuses it),
    unless a raw EXEC comes first: that is not offered inside a pipeline, and refuses the whole
    transaction.
    """
    for index, command in enumerate(commands):
        name = _word(command[0])
        if len(command) == 1 and name in ("EXEC", "DISCARD"):
            return index if name == "DISCARD" else None
    return None
