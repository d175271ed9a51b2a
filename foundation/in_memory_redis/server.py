"""An in-memory Redis server with redis-py's API: ``InMemoryRedis``.

``InMemoryRedis`` stands in for ``redis.Redis(decode_responses=True)``: every method is one Redis
command with redis-py's name, argument order, return values and errors, so a real client could
replace it and the reactions' code (redis_adapter.py) cannot tell them apart. Values are stored
the way Redis stores them (strings and lists of strings; bytes that are not UTF-8 stay bytes); one
lock serialises every command, as Redis's single thread does, and ``pipeline(transaction=True)``
runs its queued commands under that lock, as MULTI/EXEC does.

Design, in three parts (docs/in-memory-redis.md has the whole story):

- Replies. A command handler answers what Redis puts on the wire (an int, a bulk string, an
  array, a status such as OK, or an error reply as a ResponseError value); the client side then
  decodes it and applies redis-py's response callback, as redis-py does after reading a reply.
- SCAN pages through *stable slots*: every key holds one slot in an array (``_slots``) from its
  creation to its deletion, a new key takes the lowest free slot, and the cursor is a slot index.
  A call visits at most COUNT keys and 10 * COUNT slots (Redis's own bound), so its lock hold
  does not grow with the keyspace, and Redis's guarantees follow: a key present for the whole
  iteration keeps its slot and is reached once; a deleted key's slot is empty or reused.
- Glob patterns compile to one regular expression that cannot backtrack exponentially (see
  ``_glob``), over the bytes of the key, with Redis's signed-char ranges.
"""

from __future__ import annotations

import threading
import time
import weakref
from typing import Any, Callable, Iterator

from . import protocol
from .command_table import ARITY, DENYOOM, NO_PATTERN, NOT_QUEUED
from .errors import (OUT_OF_MEMORY, WRONG_ARITY, DataError, ExecAbortError, OutOfMemoryError,
                     RedisError, ResponseError, WatchError, _annotate, _shown)
from .keys import KeyCommands
from .keyspace import Keyspace
from .lists import ListCommands
from .protocol import _PLAIN_REPLIES, EMPTY_RESPONSE, _client_reply, _pack, _Status, _word
from .scan import ScanCommands, _compile_patterns
from .strings import StringCommands
from .transactions import Transactions, _Watch


def _list_or_args(keys: Any, args: tuple) -> list:
    """redis-py's list_or_args: mget(["a", "b"]) and mget("a", "b") mean the same."""
    if isinstance(keys, (str, bytes, bytearray, memoryview)):
        keys = [keys]
    else:
        try:
            keys = list(keys)
        except TypeError:  # mget(5): one non-iterable key
            keys = [keys]
    return keys + list(args)


class Commands:
    """The Redis commands offered, in redis-py's names and argument order.

    Each method only builds the command; ``execute_command`` runs it (InMemoryRedis) or queues it
    (Pipeline), the split redis-py itself uses.
    """

    def execute_command(self, *args: Any, **options: Any) -> Any:
        raise NotImplementedError

    def ping(self) -> Any:
        """PING: True."""
        return self.execute_command("PING")

    def get(self, name: str) -> Any:
        """GET: the string at ``name``, or None if missing. WRONGTYPE on a list."""
        return self.execute_command("GET", name)

    def set(self, name: str, value: Any, ex: int | None = None, px: int | None = None,
            nx: bool = False, xx: bool = False, keepttl: bool = False, get: bool = False,
            exat: int | None = None, pxat: int | None = None) -> Any:
        """SET: store the string ``value`` at ``name`` (any old value or type is replaced).

        ``ex``/``px`` expire it after that many seconds/milliseconds, ``exat``/``pxat`` at that
        Unix time in seconds/milliseconds, ``keepttl`` keeps its current expiry (otherwise SET
        removes it); ``nx`` sets only if missing, ``xx`` only if present. Returns True, or None
        when nx/xx prevented it; with ``get``, the old string (None if missing) instead.
        Raises DataError for conflicting options (as redis-py), ResponseError "invalid expire
        time in 'set' command" for a time <= 0, WRONGTYPE with ``get`` on a list.
        """
        if sum((ex is not None, px is not None, exat is not None, pxat is not None,
                bool(keepttl))) > 1:
            raise DataError("``ex``, ``px``, ``exat``, ``pxat``, "
                            "and ``keepttl`` are mutually exclusive.")
        if nx and xx:
            raise DataError("``nx``, ``xx``, ``ifeq``, ``ifne``, ``ifdeq``, ``ifdne`` "
                            "are mutually exclusive.")
        pieces: list[Any] = [name, value]
        pieces += ["NX"] if nx else ["XX"] if xx else []
        pieces += ["GET"] if get else []
        for option, amount in (("EX", ex), ("PX", px), ("EXAT", exat), ("PXAT", pxat)):
            if amount is not None:
                pieces += [option, _expiry_amount(option, amount)]
        pieces += ["KEEPTTL"] if keepttl else []
        return self.execute_command("SET", *pieces, **({"get": True} if get else {}))

    def mget(self, keys: Any, *args: Any) -> Any:
        """MGET: a list with the string of each key, None where missing or not a string.

        No keys at all gives [] (redis-py's EMPTY_RESPONSE: Redis's arity error is not raised).
        """
        if type(keys) is not list or args:  # a list alone (the GET path) needs no copy
            keys = _list_or_args(keys, args)
        if keys:
            return self.execute_command("MGET", *keys)
        return self.execute_command("MGET", **{EMPTY_RESPONSE: []})

    def incrby(self, name: str, amount: int = 1) -> Any:
        """INCRBY: add ``amount`` to the integer at ``name`` (missing = 0); the new value (int).

        Raises ResponseError: WRONGTYPE on a list, "value is not an integer or out of range" on a
        string that is not a 64-bit integer, "increment or decrement would overflow".
        """
        return self.execute_command("INCRBY", name, amount)

    incr = incrby  # redis-py's incr(name, amount=1) is INCRBY too

    def decrby(self, name: str, amount: int = 1) -> Any:
        """DECRBY: subtract ``amount`` from the integer at ``name``; the new value (int).

        Errors as incrby, and "decrement would overflow" for an amount of -2**63.
        """
        return self.execute_command("DECRBY", name, amount)

    decr = decrby  # redis-py's decr(name, amount=1) is DECRBY too

    def rpush(self, name: str, *values: Any) -> Any:
        """RPUSH: append ``values`` to the list at ``name`` (created if missing); its new length."""
        return self.execute_command("RPUSH", name, *values)

    def lrange(self, name: str, start: int, end: int) -> Any:
        """LRANGE: the items ``start``..``end`` inclusive, negative counting from the end."""
        return self.execute_command("LRANGE", name, start, end)

    def lrem(self, name: str, count: int, value: Any) -> Any:
        """LREM: remove up to ``count`` items equal to ``value`` from the head (count > 0), from
        the tail (count < 0), or all of them (0); how many went. An emptied list is deleted."""
        return self.execute_command("LREM", name, count, value)

    def llen(self, name: str) -> Any:
        """LLEN: the length of the list at ``name`` (0 if missing). WRONGTYPE on a string."""
        return self.execute_command("LLEN", name)

    def delete(self, *names: str) -> Any:
        """DEL: remove the keys; how many existed."""
        return self.execute_command("DEL", *names)

    def exists(self, *names: str) -> Any:
        """EXISTS: how many of ``names`` exist (a name given twice counts twice)."""
        return self.execute_command("EXISTS", *names)

    def expire(self, name: str, time: int, nx: bool = False, xx: bool = False,
               gt: bool = False, lt: bool = False) -> Any:
        """EXPIRE: expire ``name`` in ``time`` seconds (<= 0: delete it now); True if set.

        Redis 7's flags: ``nx`` only if it has no expiry, ``xx`` only if it has one, ``gt``/``lt``
        only if the new expiry is later/earlier (no expiry counts as infinite). False if the key
        is missing or a flag prevented it. ``time`` may be a datetime.timedelta.
        """
        if hasattr(time, "total_seconds"):
            time = int(time.total_seconds())
        flags = [flag for flag, on in (("NX", nx), ("XX", xx), ("GT", gt), ("LT", lt)) if on]
        return self.execute_command("EXPIRE", name, time, *flags)

    def persist(self, name: str) -> Any:
        """PERSIST: remove the expiry of ``name``; True if it had one."""
        return self.execute_command("PERSIST", name)

    def ttl(self, name: str) -> Any:
        """TTL: seconds until ``name`` expires (rounded); -1 if it never does, -2 if missing."""
        return self.execute_command("TTL", name)

    def pttl(self, name: str) -> Any:
        """PTTL: milliseconds until ``name`` expires; -1 if it never does, -2 if missing."""
        return self.execute_command("PTTL", name)

    def rename(self, src: str, dst: str) -> Any:
        """RENAME: move ``src`` (with its expiry) to ``dst``, replacing it; True.

        ResponseError "no such key" if ``src`` is missing.
        """
        return self.execute_command("RENAME", src, dst)

    def renamenx(self, src: str, dst: str) -> Any:
        """RENAMENX: RENAME only if ``dst`` does not exist; True if moved, False if not."""
        return self.execute_command("RENAMENX", src, dst)

    def type(self, name: str) -> Any:
        """TYPE: "string", "list" or "none"."""
        return self.execute_command("TYPE", name)

    def keys(self, pattern: str = "*") -> Any:
        """KEYS: every key matching the glob ``pattern``. Blocks the server; prefer scan_iter."""
        return self.execute_command("KEYS", pattern)

    def scan(self, cursor: int = 0, match: str | None = None, count: int | None = None,
             _type: str | None = None) -> Any:
        """SCAN: (next cursor, keys); cursor 0 starts an iteration and ends it.

        Each call looks at about ``count`` keys (default 10; Redis's COUNT is a hint) and keeps
        those matching ``match`` and of type ``_type``, so a call may answer none. Redis's
        guarantees: a key present for the whole iteration is returned at least once, a key
        deleted before it was reached is not returned; a key may come more than once.
        """
        args: list[Any] = [cursor]
        if match is not None:
            args += ["MATCH", match]
        if count is not None:
            args += ["COUNT", count]
        if _type is not None:
            args += ["TYPE", _type]
        return self.execute_command("SCAN", *args)

    def dbsize(self) -> Any:
        """DBSIZE: the number of keys."""
        return self.execute_command("DBSIZE")

    def flushdb(self, asynchronous: bool = False) -> Any:
        """FLUSHDB: delete every key; True. ``asynchronous`` sends ASYNC (same effect here)."""
        return self.execute_command("FLUSHDB", *(["ASYNC"] if asynchronous else []))


def _expiry_amount(option: str, amount: Any) -> Any:
    """An expiry argument of SET as redis-py sends it (timedelta, datetime or int)."""
    if hasattr(amount, "total_seconds"):  # datetime.timedelta
        seconds = amount.total_seconds()
        return int(seconds * 1000) if option == "PX" else int(seconds)
    if hasattr(amount, "timestamp"):  # datetime.datetime
        seconds = amount.timestamp()
        return int(seconds * 1000) if option == "PXAT" else int(seconds)
    if option == "EX" and isinstance(amount, str) and amount.isdigit():
        return int(amount)
    if option in ("EX", "PX") and not isinstance(amount, int):
        raise DataError(f"{option.lower()} must be datetime.timedelta or int")
    return amount



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
                return self._run_transaction(commands, matchers, watch)
            finally:
                self._in_exec = False
                self._exec_ms = None

    def _run_locked(self, command: list, watch: _Watch | None = None) -> Any:
        matchers = None if command[0] in NO_PATTERN else _compile_patterns([command])
        with self._lock:
            if matchers:
                self._matchers = matchers
            if watch is not None and _word(command[0]) in ("WATCH", "UNWATCH"):
                return self._run_watch(command, watch)
            return self._run(command)

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


class Pipeline(Commands):
    """Commands queued on the client and sent together by ``execute()`` (redis-py's Pipeline).

    Each command method returns the pipeline, so calls chain. With ``transaction=True`` (the
    default) execute() is MULTI/EXEC: no other client's command runs between the queued ones.
    As in Redis, a command failing at run time (e.g. WRONGTYPE) does not undo the others.

    Optimistic locking, as redis-py: ``watch(*keys)`` WATCHes them and switches the pipeline to
    immediate mode (each command runs and answers at once, to read the current values);
    ``multi()`` starts queuing again; ``execute()`` then raises WatchError, running nothing, if a
    watched key changed since WATCH. ``reset()`` (also on leaving ``with``) unwatches.
    """

    # Defaults as class attributes: a pipeline is made for every POST, so __init__ stays short.
    watching = False
    explicit_transaction = False
    _watch: _Watch | None = None  # made by the first WATCH
    _plain = True  # every queued reply is returned as read (see _PLAIN_REPLIES)

    def __init__(self, server: InMemoryRedis, transaction: bool = True) -> None:
        self._server = server
        self.transaction = transaction
        self.command_stack: list[tuple[tuple, dict]] = []

    def __enter__(self) -> Pipeline:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.reset()

    def __len__(self) -> int:
        return len(self.command_stack)

    def __bool__(self) -> bool:
        return True  # as redis-py: an empty pipeline is still a pipeline, not a falsy length

    def execute_command(self, *args: Any, **options: Any) -> Any:
        if (self.watching or args[0] == "WATCH") and not self.explicit_transaction:
            return self._immediate(args, options)
        self.command_stack.append((args, options))  # encoded by execute(), as redis-py does
        if options or args[0] not in _PLAIN_REPLIES:
            self._plain = False
        return self

    def _immediate(self, args: tuple, options: dict) -> Any:
        """Run one command now, with this pipeline's WATCH state (redis-py's immediate mode)."""
        command = _pack(args)
        if self._watch is None:
            self._watch = _Watch()
            # redis-py's Pipeline.__del__ resets, so a pipeline dropped while watching leaves
            # no watch behind; a finalizer made only here costs the POST path nothing.
            weakref.finalize(self, self._server._abandoned.append, self._watch).atexit = False
        reply = self._server._run_locked(command, self._watch)
        name = _word(command[0])
        if name == "UNWATCH" and not isinstance(reply, ResponseError):
            self.watching = False
        elif name == "WATCH" and not isinstance(reply, ResponseError):
            self.watching = True
        if isinstance(reply, ResponseError):
            if EMPTY_RESPONSE in options:
                return options[EMPTY_RESPONSE]
            raise reply
        return _client_reply(args[0], reply, options)

    def watch(self, *names: Any) -> Any:
        """WATCH ``names`` for this pipeline's next transaction; True. RedisError after multi()."""
        if self.explicit_transaction:
            raise RedisError("Cannot issue a WATCH after a MULTI")
        return self.execute_command("WATCH", *names)

    def unwatch(self) -> bool:
        """Forget the watched keys; True."""
        return self.watching and self.execute_command("UNWATCH") or True

    def multi(self) -> None:
        """Start queuing the transaction after watch() (redis-py's explicit MULTI)."""
        if self.explicit_transaction:
            raise RedisError("Cannot issue nested calls to MULTI")
        if self.command_stack:
            raise RedisError("Commands without an initial WATCH have already been issued")
        self.explicit_transaction = True

    def discard(self) -> None:
        """Drop the queued commands and the MULTI, keeping the pipeline usable (Redis's DISCARD)."""
        self.command_stack = []
        self.explicit_transaction = False

    def reset(self) -> None:
        """Forget the queued commands, leave MULTI and unwatch every key."""
        self.command_stack = []
        self._plain = True
        if self.watching:
            self._server._run_locked(["UNWATCH"], self._watch)
        self.watching = False
        self.explicit_transaction = False

    def execute(self, raise_on_error: bool = True) -> list[Any]:
        """Send the queued commands; a list with each one's reply, in order.

        With ``raise_on_error`` the first error reply is raised (as ResponseError naming the
        command's place) after every command has run; otherwise it stands in the list.
        Raises WatchError, having run nothing, if a watched key changed since watch().
        """
        stack = self.command_stack
        if self.watching or self.explicit_transaction:
            try:
                return self._execute(stack, raise_on_error)
            finally:
                self.reset()
        if not stack:
            return []
        self.command_stack = []  # the usual case, with nothing else to reset
        return self._execute(stack, raise_on_error)

    def _execute(self, stack: list[tuple[tuple, dict]], raise_on_error: bool) -> list[Any]:
        commands = []
        for args, _ in stack:  # a loop, as in _pack; DataError here: nothing is sent
            commands.append(_pack(args))
        transaction = self.transaction or self.explicit_transaction
        sent = commands
        if not self._plain:  # redis-py does not send a command with an EMPTY_RESPONSE
            sent = [command for command, (_, options) in zip(commands, stack)
                    if EMPTY_RESPONSE not in options]
        if self.watching:
            replies = self._server._execute_pipeline(sent, transaction, self._watch)
            self.watching = not transaction  # EXEC unwatches
        else:
            replies = self._server._execute_pipeline(sent, transaction, None, self._plain)
        if replies is None:
            raise WatchError("Watched variable changed.")
        if sent is not commands and len(sent) < len(commands):
            answered = iter(replies)
            replies = [options[EMPTY_RESPONSE] if EMPTY_RESPONSE in options else next(answered)
                       for _, options in stack]
        plain, self._plain = self._plain and not protocol._bytes_sent, True
        if plain:  # the POST path: only error replies to look for
            if raise_on_error:
                for number, (reply, command) in enumerate(zip(replies, commands), 1):
                    if isinstance(reply, ResponseError):
                        raise _annotate(reply, number, command)
            return replies
        results = []
        for number, (reply, command, (args, options)) in enumerate(
                zip(replies, commands, stack), 1):
            if isinstance(reply, ResponseError):
                if raise_on_error:
                    raise _annotate(reply, number, command)
                results.append(reply)
            else:
                results.append(_client_reply(args[0], reply, options, transaction))
        return results
