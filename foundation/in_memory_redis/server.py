"""``InMemoryRedis``: the server object, its lock and its dispatch, and its redis-py entry points.

One lock serialises every command, as Redis's single thread does: ``execute_command`` runs one
command under it, ``_execute_pipeline`` a pipeline's (a transaction whole). Under the lock a
command is first checked as Redis checks it before running it (``_refusal``: an unknown name,
the wrong number of arguments, used memory over maxmemory), then dispatched to its handler,
``_<name>``, which the mixins (keyspace.py, scan.py, strings.py, lists.py, keys.py,
transactions.py) provide. A handler's error is returned as a value, Redis's error reply, and
raised on the client side (client.py's methods, pipeline.py).
"""

from __future__ import annotations

import threading
import time
from typing import Any, Callable, Iterator

from . import protocol
from .client import Commands
from .command_table import ARITY, DENYOOM, NO_PATTERN, NOT_QUEUED
from .errors import (OUT_OF_MEMORY, WRONG_ARITY, ExecAbortError, OutOfMemoryError, ResponseError,
                     _shown)
from .keys import KeyCommands
from .keyspace import Keyspace
from .lists import ListCommands
from .pipeline import Pipeline
from .protocol import _PLAIN_REPLIES, EMPTY_RESPONSE, _client_reply, _pack, _Status, _word
from .quicklist import QuickList
from .scan import ScanCommands, _compile_patterns
from .strings import StringCommands
from .transactions import Transactions, _Watch


class InMemoryRedis(Commands, Keyspace, ScanCommands, StringCommands, ListCommands, KeyCommands,
                    Transactions):
    """A thread-safe in-memory Redis server, used like ``redis.Redis(decode_responses=True)``.

    Offered commands: see ``Commands``, plus ``scan_iter`` and ``pipeline`` (with WATCH). Errors
    are raised as ResponseError with Redis's own text; arguments redis-py could not send raise
    DataError. ``clock`` gives the time in Unix seconds (float), for expiry; injectable so tests
    control time.

    ``maxmemory`` is Redis's setting of that name, in bytes (0 = no limit, Redis's default), with
    the ``noeviction`` policy: once the estimated used memory (``used_memory``) is over it, every
    command that can add data (SET, INCRBY, RPUSH; inside MULTI/EXEC, any command) is refused with
    OutOfMemoryError and changes nothing, until DEL or FLUSHDB brings it back under.
    """

    def __init__(self, maxmemory: int = 0, clock: Callable[[], float] = time.time) -> None:
        if type(maxmemory) is not int or maxmemory < 0:
            raise ValueError(f"maxmemory must be an int of bytes, 0 or more, got {maxmemory!r}")
        self.maxmemory = maxmemory
        self._clock = clock
        self._lock = threading.Lock()
        self._handlers = {name: getattr(self, "_" + name.lower()) for name in ARITY}
        # Watch records of pipelines dropped while watching, appended by their finalizer
        # (which must not take the lock: the collector may run it while the lock is held) and
        # unwatched by the server at its next WATCH or watched-key change.
        self._abandoned: list[_Watch] = []
        # The glob matchers compiled for the command about to run (see _compile_patterns).
        self._matchers: dict[str | bytes, Callable] = {}
        self._watches: dict[str | bytes, set[_Watch]] = {}  # key -> the clients WATCHing it
        # Lists UNLINK took out of the keyspace, freed once the lock is released (_free_unlinked).
        self._unlinked: list[QuickList] = []
        self._reset_keyspace()

    @property
    def used_memory(self) -> int:
        """Estimated bytes held by keys and values (Redis's INFO used_memory, less its baseline)."""
        return self._used_memory

    # -- client side -------------------------------------------------------------------------

    def execute_command(self, *args: Any, **options: Any) -> Any:
        """Run one command atomically and return its reply as redis-py does; raise its error.

        ``options`` are redis-py's client-side ones: NEVER_DECODE (answer bytes), ``keys``
        (for its cache; ignored), and those its response callbacks read (``get`` for SET).
        """
        command = _pack(args)
        plain = command[0] in _PLAIN_REPLIES
        if plain:  # the GET path: no glob pattern to compile first
            with self._lock:
                reply = self._run(command)
            if self._unlinked:
                self._free_unlinked()
        else:
            reply = self._run_locked(command)
        if isinstance(reply, ResponseError):
            if EMPTY_RESPONSE in options:
                return options[EMPTY_RESPONSE]
            raise reply
        if plain and not options and not protocol._bytes_sent:
            return reply  # the GET path
        return _client_reply(args[0], reply, options)

    def pipeline(self, transaction: bool = True, shard_hint: Any = None) -> Pipeline:
        """A Pipeline queuing commands; with ``transaction`` its execute() is one atomic step.

        ``shard_hint`` is accepted as redis-py accepts it, and unused (as redis-py's Redis).
        """
        return Pipeline(self, transaction)

    def scan_iter(self, match: str | None = None, count: int | None = None,
                  _type: str | None = None) -> Iterator[str]:
        """Iterate over the keys matching ``match`` with SCAN, one page per call.

        Each page takes the lock once, briefly. A key may come more than once if keys are
        created and deleted meanwhile (Redis's guarantee); callers dedupe where it matters.
        """
        cursor = None
        while cursor != 0:
            cursor, keys = self.scan(cursor or 0, match=match, count=count, _type=_type)
            yield from keys

    def close(self) -> None:
        """Nothing to release (redis-py's close() returns its connections to the pool)."""

    def __enter__(self) -> InMemoryRedis:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def __getitem__(self, name: str) -> Any:
        """r[name]: GET, raising KeyError if missing (redis-py's __getitem__)."""
        value = self.get(name)
        if value is None:
            raise KeyError(name)
        return value

    def __setitem__(self, name: str, value: Any) -> None:
        self.set(name, value)

    def __delitem__(self, name: str) -> None:
        self.delete(name)

    def __contains__(self, name: str) -> bool:
        return bool(self.exists(name))

    def _execute_pipeline(self, commands: list[list], transaction: bool,
                          watch: _Watch | None = None, plain: bool = False) -> list[Any] | None:
        """Run queued commands; replies in order, an error reply as a ResponseError instance.

        In a transaction, None if a key in ``watch`` changed (EXEC's nil reply: nothing ran).
        ``plain``: every command is in _PLAIN_REPLIES, so none carries a glob pattern.
        """
        if not transaction:
            return [self._run_locked(command) for command in commands]
        matchers = None if plain else _compile_patterns(commands)
        with self._lock:
            self._in_exec = True
            try:
                replies = self._run_transaction(commands, matchers, watch)
            finally:
                self._in_exec = False
                self._exec_ms = None
        if self._unlinked:
            self._free_unlinked()
        return replies

    def _run_locked(self, command: list, watch: _Watch | None = None) -> Any:
        matchers = None if command[0] in NO_PATTERN else _compile_patterns([command])
        with self._lock:
            if matchers:
                self._matchers = matchers
            if watch is not None and _word(command[0]) in ("WATCH", "UNWATCH"):
                return self._run_watch(command, watch)
            reply = self._run(command)
        if self._unlinked:
            self._free_unlinked()
        return reply

    def _free_unlinked(self) -> None:
        """Free the lists UNLINK took out of the keyspace, with the lock released, one node
        (1,000 items) at a time: freeing a list of 100,000 events at once is one C call of
        several ms that no thread switch interrupts, and under the lock every other client
        would wait for it too. Redis's UNLINK likewise leaves the freeing to a background
        thread; here the thread of the client that sent it does it, after its command."""
        unlinked = self._unlinked
        while unlinked:
            try:
                nodes = unlinked.pop().nodes
            except IndexError:  # another client's thread took the last one
                return
            while nodes:
                nodes.pop()

    # -- server side: the methods below are only called with the lock held -------------------

    def _refusal(self, command: list, in_transaction: bool = False) -> ResponseError | None:
        """The error Redis answers before running ``command``, or None if it would run it."""
        name = command[0]
        arity = ARITY.get(name)
        if arity is None:
            name = _word(name)
            arity = ARITY.get(name)
        if arity is None:
            args = "".join(f"'{_shown(arg)}' " for arg in command[1:])
            return ResponseError(f"unknown command '{_shown(command[0])}', "
                                 f"with args beginning with: {args}")
        if len(command) != arity if arity > 0 else len(command) < -arity:
            if name == "EXEC":  # Redis aborts a transaction whose EXEC is malformed
                return ExecAbortError("Transaction discarded because of: "
                                      + WRONG_ARITY.format("exec"))
            return ResponseError(WRONG_ARITY.format(name.lower()))
        if in_transaction and name in NOT_QUEUED:
            return ResponseError(f"{name} inside MULTI is not allowed")
        if (self.maxmemory and self._used_memory > self.maxmemory
                and (in_transaction or name in DENYOOM) and self._still_over()):
            return OutOfMemoryError(OUT_OF_MEMORY)
        return None

    def _still_over(self) -> bool:
        """Over maxmemory once the keys past their expiry are removed? (Called when over.)

        Redis's active expiry (serverCron, 10 times a second) frees expired keys whether or not
        commands come, so a write refused for memory is accepted once their time is past. Here
        expiry runs within commands, so before refusing one, every key already due is removed
        (until used memory is under the limit): each key is removed once, so the cost is paid
        once per expired key, not per refusal.
        """
        now = self._now_ms()
        while self._used_memory > self.maxmemory and self._remove_one_due(now):
            pass
        return self._used_memory > self.maxmemory

    def _run(self, command: list) -> Any:
        arity = ARITY.get(command[0], 0)  # _refusal asked only if this quick look fails
        if (not (len(command) == arity if arity > 0 else arity and len(command) >= -arity)
                or self.maxmemory and self._used_memory > self.maxmemory):
            refusal = self._refusal(command)
            if refusal is not None:
                return refusal
        if self._deadlines:
            self._expire_some()
        return self._dispatch(command)

    def _dispatch(self, command: list) -> Any:
        """The reply of a command whose arity is known to be right; an error reply as a value.

        Callers first reclaim expired keys (_expire_some), once per command or per EXEC: Redis's
        active expiry is a background cycle, and a key past its expiry reads as missing anyway
        (_lookup).
        """
        handler = self._handlers.get(command[0]) or self._handlers[_word(command[0])]
        try:
            return handler(*command[1:])
        except ResponseError as error:
            return error

    # -- the one command of no data type (the others are in the mixins) --

    def _ping(self, *message: str | bytes) -> Any:
        if len(message) > 1:
            raise ResponseError(WRONG_ARITY.format("ping"))
        return message[0] if message else _Status("PONG")
