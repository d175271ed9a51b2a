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

import heapq
import itertools
import re
import threading
import time
import weakref
from typing import Any, Callable, Iterator

from . import protocol
from .command_table import ARITY, DENYOOM, MULTI_ARITY, NO_PATTERN, NOT_QUEUED
from .errors import (INVALID_EXPIRE, NO_SUCH_KEY, OUT_OF_MEMORY, OVERFLOW, SYNTAX_ERROR,
                     WRONG_ARITY, WRONGTYPE, DataError, ExecAbortError, OutOfMemoryError,
                     RedisError, ResponseError, WatchError, _annotate, _shown)
from .memory import (ITEM_OVERHEAD_BYTES, KEY_OVERHEAD_BYTES, _items_size, _key_size, _nbytes,
                     _value_size)
from .patterns import glob_matcher
from .protocol import (_INT64_MAX, _INT64_MIN, _PLAIN_REPLIES, EMPTY_RESPONSE, OK, _client_reply,
                       _pack, _parse_int, _Status, _word)

_CURSOR = re.compile(r"[+-]?[0-9]+|")  # compiled here, not on a first SCAN under the lock
SCAN_DEFAULT_COUNT = 10  # Redis's default COUNT
SCAN_EMPTY_SLOTS_PER_KEY = 10  # Redis visits at most 10 * COUNT buckets per SCAN call
SLOTS_SHRUNK_PER_DELETE = 64  # empty slots dropped off SCAN's array by one deletion at most
# SCAN counts the keys in each block of 2**8 slots and of 2**16 slots, and steps over an empty
# block as over one empty slot: a keyspace emptied by mass deletion keeps its slots (no key can
# move to a lower slot without a SCAN under way missing it), but is scanned in a few calls.
SMALL_BLOCK_BITS, LARGE_BLOCK_BITS = 8, 16
ACTIVE_EXPIRE_KEYS = 20  # expired keys reclaimed per command at most (Redis: 20 per sample)


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


def _compile_patterns(commands: list[list]) -> dict[str | bytes, Callable] | None:
    """The matchers of the glob patterns in ``commands`` (KEYS, SCAN ... MATCH), or None.

    Called before the server lock is taken, so compiling a long pattern delays no other client.
    """
    matchers = None
    for command in commands:
        if command[0] in NO_PATTERN:
            continue
        name = _word(command[0])
        if name == "KEYS":
            patterns = command[1:2]
        elif name == "SCAN":
            patterns = [value for option, value in zip(command[2::2], command[3::2])
                        if _word(option) == "MATCH"]
        else:
            continue
        for pattern in patterns:
            if matchers is None:
                matchers = {}
            matchers[pattern] = glob_matcher(pattern)
    return matchers


def _int_encoded(value: str | bytes) -> str | bytes | int:
    """A string value as Redis stores it: an int when it is a canonical 64-bit integer of at
    most 20 characters (Redis's OBJ_ENCODING_INT, via string2l), else the string itself."""
    if type(value) is str and len(value) <= 20 and value.isascii() and value.lstrip("-").isdigit():
        try:
            return _parse_int(value)
        except ResponseError:
            return value
    return value


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


class _Watch:
    """One client's WATCHed keys; ``dirty`` once any of them changed (Redis's CLIENT_DIRTY_CAS)."""

    def __init__(self) -> None:
        self.keys: set = set()
        self.dirty = False
        # Keys already past their expiry when WATCHed (Redis's watchedKey.expired): their
        # removal is no change, and their expiry does not fail EXEC.
        self.expired: set = set()


class InMemoryRedis(Commands):
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

    # Within EXEC the time is read once, at its first reading, and kept (Redis 7.0's call()
    # caches it for nested calls: fixed_time_expire), so no key expires in the middle of it.
    _in_exec = False
    _exec_ms: int | None = None

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
        self._reset_keyspace()

    def _reset_keyspace(self) -> None:
        self._used_memory = 0
        # A string value that INCR has made a number is kept as an int, as Redis keeps it
        # int-encoded; it still reads back as a string. Lists are Python lists of strings.
        self._data: dict[str | bytes, str | bytes | int | list] = {}
        self._expires: dict[str | bytes, int] = {}  # key -> Unix time in ms
        self._deadlines: list[tuple[int, int, str | bytes]] = []  # heap: (ms, tiebreak, key)
        self._tiebreak = itertools.count()
        # SCAN's stable slots (see the module docstring): key at each slot, None where free.
        self._slots: list[str | bytes | None] = []
        self._slot_of: dict[str | bytes, int] = {}
        self._free_slots: list[int] = []  # heap of freed slot numbers (some may be stale)
        self._small_block_keys: list[int] = []  # keys in slots [i << 8, (i + 1) << 8)
        self._large_block_keys: list[int] = []  # keys in slots [i << 16, (i + 1) << 16)
        self._watches: dict[str | bytes, set[_Watch]] = {}

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

    def _run_transaction(self, commands: list[list], matchers: dict | None,
                         watch: _Watch | None) -> list[Any] | None:
        """_execute_pipeline's transaction, with the lock held."""
        if matchers:
            self._matchers = matchers
        # MULTI refuses to queue a command of wrong arity, or any command at all while used
        # memory is over maxmemory; EXEC is then aborted, nothing runs, and redis-py raises
        # the first refusal.
        arity = MULTI_ARITY
        over = self.maxmemory and self._used_memory > self.maxmemory and self._still_over()
        for command in commands:
            expected = arity.get(command[0], 0)  # the usual case checked inline: it is quick
            if over or not (len(command) == expected if expected > 0
                            else expected and len(command) >= -expected):
                self._refuse_transaction(commands)
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

    def _refuse_transaction(self, commands: list[list]) -> None:
        """Raise the first command's refusal, annotated with its place, if any is refused."""
        for number, command in enumerate(commands, 1):
            refusal = self._refusal(command, in_transaction=True)
            if refusal is not None:
                raise _annotate(refusal, number, command)

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

    def _matcher(self, pattern: str | bytes) -> Callable[[str | bytes], bool]:
        """The matcher of ``pattern``, compiled before the lock was taken (else compiled now)."""
        matcher = self._matchers.get(pattern)
        return matcher if matcher is not None else glob_matcher(pattern)

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

    # -- the keyspace: every key is created by _store and removed by _forget --

    def _lookup(self, key: str | bytes) -> str | bytes | int | list | None:
        """The value at ``key``, None if missing or expired (an expired key is removed now)."""
        if self._expires and key in self._expires and self._expires[key] <= self._now_ms():
            self._forget(key)
            return None
        return self._data.get(key)

    def _store(self, key: str | bytes, value: str | bytes | int | list) -> None:
        """Put ``value`` at ``key``, a key known to be missing: a new slot, its memory."""
        self._data[key] = value
        self._used_memory += _key_size(key, value)
        self._take_slot(key)

    def _replace(self, key: str | bytes, value: str | bytes | int | list) -> None:
        """Put ``value`` at ``key`` whether or not it exists (it keeps its slot if it does)."""
        old = self._data.get(key)
        if old is None:
            self._store(key, value)
        else:
            self._used_memory += _value_size(value) - _value_size(old)
            self._data[key] = value

    def _forget(self, key: str | bytes) -> str | bytes | int | list | None:
        """Remove ``key`` if present, with its slot, expiry and memory; its old value or None."""
        value = self._data.pop(key, None)
        if value is not None:
            self._used_memory -= _key_size(key, value)
            self._expires.pop(key, None)
            self._free_slot(key)
            self._touch(key)
        return value

    def _take_slot(self, key: str | bytes) -> None:
        """Give a new key the lowest free slot (so the array's tail empties and shrinks)."""
        slots, free = self._slots, self._free_slots
        while free:
            slot = heapq.heappop(free)
            if slot < len(slots) and slots[slot] is None:
                break
        else:
            slot = len(slots)
            slots.append(None)
        slots[slot] = key
        self._slot_of[key] = slot
        self._count_in_blocks(slot, 1)

    def _count_in_blocks(self, slot: int, change: int) -> None:
        """Add ``change`` (1 or -1) to the key counts of the blocks holding ``slot``."""
        for counts, bits in ((self._small_block_keys, SMALL_BLOCK_BITS),
                             (self._large_block_keys, LARGE_BLOCK_BITS)):
            block = slot >> bits
            if block == len(counts):  # slots are taken in order at the end: blocks are too
                counts.append(0)
            counts[block] += change

    def _free_slot(self, key: str | bytes) -> None:
        slots = self._slots
        slot = self._slot_of.pop(key)
        slots[slot] = None
        self._count_in_blocks(slot, -1)
        if slot == len(slots) - 1:  # a cursor past the end ends its iteration: safe to shrink
            # Empty slots before it are in the free heap already; a bounded number go per call.
            for _ in range(SLOTS_SHRUNK_PER_DELETE):
                if not slots or slots[-1] is not None:
                    break
                slots.pop()
        else:
            heapq.heappush(self._free_slots, slot)

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

    # -- expiry --

    def _now_ms(self) -> int:
        now = self._exec_ms
        if now is None:
            now = int(self._clock() * 1000)
            if self._in_exec:
                self._exec_ms = now
        return now

    def _set_expiry(self, key: str | bytes, when_ms: int) -> None:
        self._expires[key] = when_ms
        heapq.heappush(self._deadlines, (when_ms, next(self._tiebreak), key))

    def _expire_some(self) -> None:
        """Remove up to ACTIVE_EXPIRE_KEYS keys past their expiry (Redis's active expiry)."""
        now = self._now_ms()
        for _ in range(ACTIVE_EXPIRE_KEYS):
            if not self._remove_one_due(now):
                return

    def _remove_one_due(self, now: int) -> bool:
        """Pop the earliest deadline if it is due at ``now`` (Unix ms), removing its key if
        that is still the key's expiry; False when nothing is due."""
        deadlines = self._deadlines
        if not deadlines or deadlines[0][0] > now:
            return False
        when, _, key = heapq.heappop(deadlines)
        if self._expires.get(key) == when:  # else the expiry changed since: a stale entry
            self._forget(key)
        return True

    def _ttl_ms(self, key: str | bytes) -> int:
        """Milliseconds left before ``key`` expires; -1 if never, -2 if missing (Redis's TTL)."""
        if self._lookup(key) is None:
            return -2
        when = self._expires.get(key)
        return -1 if when is None else max(when - self._now_ms(), 0)

    def _watched_key_expired(self, watch: _Watch) -> bool:
        """Whether a watched key has expired since WATCH (Redis 6.0.9+ aborts EXEC then)."""
        now = self._now_ms()
        return any(self._expires.get(key, now + 1) <= now for key in watch.keys
                   if key not in watch.expired)

    # -- the commands --

    def _ping(self, *message: str | bytes) -> Any:
        if len(message) > 1:
            raise ResponseError(WRONG_ARITY.format("ping"))
        return message[0] if message else _Status("PONG")

    def _string(self, key: str | bytes) -> str | bytes | int | None:
        value = self._lookup(key) if self._expires else self._data.get(key)
        if type(value) is list:
            raise ResponseError(WRONGTYPE)
        return value

    def _list(self, key: str | bytes) -> list | None:
        value = self._lookup(key) if self._expires else self._data.get(key)
        if value is not None and type(value) is not list:
            raise ResponseError(WRONGTYPE)
        return value

    def _get(self, key: str | bytes) -> str | bytes | None:
        value = self._string(key)
        return value if value is None or type(value) is not int else str(value)

    def _set(self, key: str | bytes, value: str | bytes, *options: str | bytes) -> Any:
        condition, get, keepttl, when_ms = self._set_options(options)
        old = self._get(key) if get else None  # WRONGTYPE before anything changes
        exists = self._lookup(key) is not None
        if (condition == "NX" and exists) or (condition == "XX" and not exists):
            return old
        self._replace(key, _int_encoded(value))
        if not keepttl:
            self._expires.pop(key, None)
        if when_ms is not None:
            self._set_expiry(key, when_ms)
        self._touch(key)
        return old if get else OK

    def _set_options(self, options: tuple) -> tuple[str, bool, bool, int | None]:
        """SET's options, as Redis's parseExtendedStringArgumentsOrReply reads them.

        Returns (NX, XX or "", GET given, KEEPTTL given, expiry in Unix ms or None).
        """
        condition, get, keepttl, expiry = "", False, False, None
        i = 0
        while i < len(options):
            word = _word(options[i])
            if word in ("NX", "XX") and condition in ("", word):
                condition = word
            elif word == "GET":
                get = True
            elif word == "KEEPTTL" and expiry is None:
                keepttl = True
            elif (word in ("EX", "PX", "EXAT", "PXAT") and not keepttl
                  and (expiry is None or expiry[0] == word) and i + 1 < len(options)):
                i += 1
                expiry = (word, options[i])
            else:
                raise ResponseError(SYNTAX_ERROR)
            i += 1
        when_ms = None if expiry is None else self._expiry_ms("set", *expiry)
        return condition, get, keepttl, when_ms

    def _expiry_ms(self, command: str, unit: str, text: str | bytes) -> int:
        """An expiry argument as a Unix time in ms, with Redis's checks (must be > 0)."""
        amount = _parse_int(text)
        if amount <= 0:
            raise ResponseError(INVALID_EXPIRE.format(command))
        return self._absolute_ms(command, unit, amount)

    def _absolute_ms(self, command: str, unit: str, amount: int) -> int:
        """``amount`` of ``unit`` (EX, PX, EXAT, PXAT) as Unix ms; Redis's overflow errors."""
        if unit in ("EX", "EXAT"):
            # C's LLONG_MIN / 1000 truncates toward zero; Python's // would round down.
            if not -(-_INT64_MIN // 1000) <= amount <= _INT64_MAX // 1000:
                raise ResponseError(INVALID_EXPIRE.format(command))
            amount *= 1000
        if unit in ("EX", "PX"):
            now = self._now_ms()
            if amount > _INT64_MAX - now:
                raise ResponseError(INVALID_EXPIRE.format(command))
            amount += now
        return amount

    def _mget(self, *keys: str | bytes) -> list:
        get = self._lookup if self._expires else self._data.get  # the GET path's fast case
        values = []
        for key in keys:  # a loop: cheaper than a comprehension for a few keys (CPython 3.11)
            value = get(key)
            values.append(str(value) if type(value) is int else None if type(value) is list
                          else value)
        return values

    def _incrby(self, key: str | bytes, amount: str | bytes) -> int:
        increment = 1 if amount == "1" else _parse_int(amount)  # "1": INCR, and every POST
        current = stored = self._data.get(key) if not self._expires else self._lookup(key)
        if type(stored) is int:  # the POST path's usual case: a counter counting on
            number = stored + increment
            if _INT64_MIN <= number <= _INT64_MAX:
                self._data[key] = number
                if self._watches:
                    self._touch(key)
                return number
        if type(current) is list:
            raise ResponseError(WRONGTYPE)
        if current is None:
            current = 0
        elif type(current) is not int:
            current = _parse_int(current)
        number = current + increment
        if not _INT64_MIN <= number <= _INT64_MAX:
            raise ResponseError(OVERFLOW)
        self._replace(key, number)  # now int-encoded; the expiry stays, as INCR keeps it
        if self._watches:
            self._touch(key)
        return number

    def _incr(self, key: str | bytes) -> int:
        return self._incrby(key, "1")

    def _decr(self, key: str | bytes) -> int:
        return self._incrby(key, "-1")

    def _decrby(self, key: str | bytes, amount: str | bytes) -> int:
        decrement = _parse_int(amount)
        if decrement == _INT64_MIN:  # its negation does not fit in 64 bits
            raise ResponseError("decrement would overflow")
        return self._incrby(key, str(-decrement))

    def _exec(self) -> Any:
        raise ResponseError("EXEC without MULTI")

    def _discard(self) -> Any:
        raise ResponseError("DISCARD without MULTI")

    def _rpush(self, key: str | bytes, *values: str | bytes) -> int:
        items = self._data.get(key) if not self._expires else self._lookup(key)
        if type(items) is not list:  # _list's rule, inline on the POST path
            if items is not None:
                raise ResponseError(WRONGTYPE)
            items = []
            self._store(key, items)
        items.extend(values)
        value = values[0]
        if len(values) == 1 and type(value) is str and value.isascii():  # the POST path
            self._used_memory += len(value) + ITEM_OVERHEAD_BYTES
        else:
            self._used_memory += _items_size(values)
        if self._watches:
            self._touch(key)
        return len(items)

    def _lrem(self, key: str | bytes, count: str | bytes, value: str | bytes) -> int:
        limit = _parse_int(count)
        items = self._list(key)
        if not items:
            return 0
        # Walk from the tail for a negative count; remove at most |count| (0 = every match).
        order = range(len(items) - 1, -1, -1) if limit < 0 else range(len(items))
        found = [i for i in order if items[i] == value][:abs(limit) or None]
        for i in sorted(found, reverse=True):
            del items[i]
        self._used_memory -= (_nbytes(value) + ITEM_OVERHEAD_BYTES) * len(found)
        if not items:
            self._forget(key)
        elif found and self._watches:
            self._touch(key)
        return len(found)

    def _lrange(self, key: str | bytes, start: str | bytes, end: str | bytes) -> list:
        first, last = _parse_int(start), _parse_int(end)
        items = self._list(key) or []
        size = len(items)
        first = max(first + size if first < 0 else first, 0)
        last = last + size if last < 0 else last
        if last < first:  # also an end before the start of the list
            return []
        return items[first:last + 1]

    def _llen(self, key: str | bytes) -> int:
        return len(self._list(key) or ())

    def _del(self, *keys: str | bytes) -> int:
        return sum(self._lookup(key) is not None and self._forget(key) is not None
                   for key in keys)

    def _exists(self, *keys: str | bytes) -> int:
        return sum(self._lookup(key) is not None for key in keys)

    def _expire(self, key: str | bytes, seconds: str | bytes, *flags: str | bytes) -> int:
        words = set()
        for flag in flags:
            word = _word(flag)
            if word not in ("NX", "XX", "GT", "LT"):
                raise ResponseError(f"Unsupported option {_shown(flag)}")
            words.add(word)
        if "NX" in words and len(words) > 1:
            raise ResponseError("NX and XX, GT or LT options at the same time are not compatible")
        if {"GT", "LT"} <= words:
            raise ResponseError("GT and LT options at the same time are not compatible")
        when = self._absolute_ms("expire", "EX", _parse_int(seconds))
        if self._lookup(key) is None:
            return 0
        current = self._expires.get(key, -1)
        if (("NX" in words and current != -1) or ("XX" in words and current == -1)
                or ("GT" in words and (current == -1 or when <= current))
                or ("LT" in words and current != -1 and when >= current)):
            return 0
        if when <= self._now_ms():
            self._forget(key)
        else:
            self._set_expiry(key, when)
            self._touch(key)
        return 1

    def _persist(self, key: str | bytes) -> int:
        if self._lookup(key) is None or self._expires.pop(key, None) is None:
            return 0
        self._touch(key)
        return 1

    def _ttl(self, key: str | bytes) -> int:
        left = self._ttl_ms(key)
        return left if left < 0 else (left + 500) // 1000

    def _pttl(self, key: str | bytes) -> int:
        return self._ttl_ms(key)

    def _rename(self, src: str | bytes, dst: str | bytes) -> Any:
        if self._lookup(src) is None:
            raise ResponseError(NO_SUCH_KEY)
        if src != dst:
            expiry = self._expires.get(src)
            value = self._data[src]
            size = _value_size(value)
            # The value moves as it is: its size is not recomputed (O(N) for a list), only the
            # key's share changes.
            self._data.pop(src)
            self._used_memory -= KEY_OVERHEAD_BYTES + _nbytes(src) + size
            self._expires.pop(src, None)
            self._free_slot(src)
            self._touch(src)
            old = self._lookup(dst)
            if old is None:
                self._data[dst] = value
                self._used_memory += KEY_OVERHEAD_BYTES + _nbytes(dst) + size
                self._take_slot(dst)
            else:
                # An existing dst keeps its slot, as it keeps its hash bucket in Redis: a SCAN
                # under way still reaches it (a key present for the whole iteration).
                self._data[dst] = value
                self._used_memory += size - _value_size(old)
                self._expires.pop(dst, None)
            if expiry is not None:
                self._set_expiry(dst, expiry)
            self._touch(dst)
        return OK

    def _renamenx(self, src: str | bytes, dst: str | bytes) -> int:
        if self._lookup(src) is not None and self._lookup(dst) is not None:
            return 0
        self._rename(src, dst)  # also Redis's "no such key" for a missing src
        return 1

    def _type(self, key: str | bytes) -> _Status:
        value = self._lookup(key)
        return _Status("none" if value is None else "list" if type(value) is list else "string")

    def _keys(self, pattern: str | bytes) -> list:
        now = self._now_ms() if self._expires else None
        keys = (key for key in self._data
                if now is None or self._expires.get(key, now + 1) > now)
        if pattern == "*":
            return list(keys)
        return list(filter(self._matcher(pattern), keys))

    def _scan(self, cursor: str | bytes, *options: str | bytes) -> list:
        # Redis reads the cursor with strtoul: a sign, leading zeros, even ""; no spaces, < 2**64.
        if type(cursor) is not str or not _CURSOR.fullmatch(cursor) or \
                abs(int(cursor or 0)) >= 2 ** 64:
            raise ResponseError("invalid cursor")
        if len(options) % 2:
            raise ResponseError(SYNTAX_ERROR)
        settings = {_word(name): value for name, value in zip(options[::2], options[1::2])}
        if not settings.keys() <= {"MATCH", "COUNT", "TYPE"}:
            raise ResponseError(SYNTAX_ERROR)
        count = SCAN_DEFAULT_COUNT
        if "COUNT" in settings:
            count = _parse_int(settings["COUNT"])
            if count < 1:
                raise ResponseError(SYNTAX_ERROR)
        start = int(cursor or 0) % 2 ** 64  # strtoul wraps a negative number around 2**64
        next_cursor, keys = self._scan_slots(start, count)
        if self._expires:  # an expired key is removed, not answered
            keys = [key for key in keys if self._lookup(key) is not None]
        if "MATCH" in settings:
            keys = list(filter(self._matcher(settings["MATCH"]), keys))
        if "TYPE" in settings:
            wanted = settings["TYPE"].lower() if type(settings["TYPE"]) is str else None
            keys = [key for key in keys if self._type(key) == wanted]
        return [str(next_cursor), keys]

    def _scan_slots(self, cursor: int, count: int) -> tuple[int, list]:
        """The keys in the slots from ``cursor``: at most ``count`` keys in at most 10 x
        ``count`` steps, a step being one slot or one empty block (at its first slot); with
        the next cursor, 0 once past the last slot."""
        slots, keys, size = self._slots, [], len(self._slots)
        small, large = self._small_block_keys, self._large_block_keys
        small_mask, large_mask = (1 << SMALL_BLOCK_BITS) - 1, (1 << LARGE_BLOCK_BITS) - 1
        slot, steps = cursor, count * SCAN_EMPTY_SLOTS_PER_KEY
        while slot < size and len(keys) < count and steps:
            steps -= 1
            if not slot & small_mask:  # a block starts here: step over it if it is empty
                if not slot & large_mask and not large[slot >> LARGE_BLOCK_BITS]:
                    slot += large_mask + 1
                    continue
                if not small[slot >> SMALL_BLOCK_BITS]:
                    slot += small_mask + 1
                    continue
            key = slots[slot]
            if key is not None:
                keys.append(key)
            slot += 1
        return (0 if slot >= size else slot), keys

    def _dbsize(self) -> int:
        return len(self._data)

    def _flushdb(self, *mode: str | bytes) -> _Status:
        if len(mode) > 1 or (mode and _word(mode[0]) not in ("ASYNC", "SYNC")):
            raise ResponseError(SYNTAX_ERROR)
        for key in list(self._watches):  # FLUSHDB touches every watched key that existed;
            # one past its expiry is removed first: no change to a WATCH made once it had
            # expired (Redis's touchAllWatchedKeysInDb)
            if key in self._data and self._lookup(key) is not None:
                self._touch(key)
        watches = self._watches
        self._reset_keyspace()
        self._watches = watches
        return OK

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
