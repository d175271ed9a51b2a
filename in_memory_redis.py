"""An in-memory Redis server with redis-py's API: ``InMemoryRedis``.

``InMemoryRedis`` stands in for ``redis.Redis(decode_responses=True)``: every method is one Redis
command with redis-py's name, argument order, return values and errors, so a real client could
replace it and the reactions' code (redis_adapter.py) cannot tell them apart. Values are stored
the way Redis stores them (strings and lists of strings); one lock serialises every command, as
Redis's single thread does, and ``pipeline(transaction=True)`` runs its queued commands under that
lock, as MULTI/EXEC does.
"""

from __future__ import annotations

import functools
import re
import textwrap
import threading
import time
from typing import Any, Callable, Iterator

__all__ = ["RedisError", "ResponseError", "OutOfMemoryError", "DataError", "InMemoryRedis",
           "Pipeline"]

# Error texts as redis-py shows them: it strips a leading "ERR " and keeps other prefixes.
WRONGTYPE = "WRONGTYPE Operation against a key holding the wrong kind of value"
NOT_AN_INTEGER = "value is not an integer or out of range"
OVERFLOW = "increment or decrement would overflow"
NO_SUCH_KEY = "no such key"
WRONG_ARITY = "wrong number of arguments for '{}' command"
SYNTAX_ERROR = "syntax error"
INVALID_EXPIRE = "invalid expire time in '{}' command"
# redis-py strips the "OOM " error code and raises OutOfMemoryError with the rest.
OUT_OF_MEMORY = "command not allowed when used memory > 'maxmemory'."

_INT64_MIN, _INT64_MAX = -(2 ** 63), 2 ** 63 - 1


class RedisError(Exception):
    """Root of the Redis errors (redis.exceptions.RedisError)."""


class ResponseError(RedisError):
    """Redis answered with an error reply, e.g. WRONGTYPE (redis.exceptions.ResponseError)."""


class OutOfMemoryError(ResponseError):
    """Used memory is over ``maxmemory`` and the command may grow it (redis.exceptions.OutOfMemoryError).

    Redis's ``noeviction`` policy: nothing is evicted; commands that can add data are refused
    until memory is freed (by DEL, say), and the data already stored is untouched.
    """


class DataError(RedisError):
    """A value redis-py cannot send: only str, bytes, int and float are (redis.exceptions.DataError)."""


def _encode(value: Any) -> str:
    """Turn an argument into the string Redis receives, as redis-py's Encoder does."""
    if isinstance(value, str):  # a subclass (e.g. a str Enum) is sent as its plain str value
        if not value.isascii():
            value.encode()  # UnicodeEncodeError on a lone surrogate, as redis-py's Encoder
        return str.__str__(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).decode()
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return repr(value)
    raise DataError(f"Invalid input of type: '{type(value).__name__}'. "
                    "Convert to a bytes, string, int or float first.")


def _parse_int(text: str) -> int:
    """Parse a signed 64-bit integer the way Redis's string2ll does, or raise ResponseError.

    Only the canonical form counts: no '+', no leading zeros or spaces, no "-0" -- exactly the
    strings that str() gives back unchanged.
    """
    try:
        number = int(text)
    except ValueError:
        raise ResponseError(NOT_AN_INTEGER) from None
    if str(number) != text or not _INT64_MIN <= number <= _INT64_MAX:
        raise ResponseError(NOT_AN_INTEGER)
    return number


@functools.lru_cache(maxsize=256)
def _glob(pattern: str) -> re.Pattern[str]:
    """Compile a Redis glob (``*``, ``?``, ``[abc]``, ``[^a]``, ``[a-z]``, ``\\x``) to a regex.

    Redis's stringmatchlen works on bytes (``?`` is one byte of UTF-8): the regex is built on the
    pattern's UTF-8 bytes, read as latin-1, and matched against ``_as_bytes(key)``.
    Written out rather than fnmatch because fnmatch negates with ``!`` and has no escapes.
    """
    p = pattern.encode()
    out, i, n = [], 0, len(p)
    while i < n:
        char = p[i:i + 1]
        if char == b"\\" and i + 1 < n:
            i += 1
            out.append(re.escape(p[i:i + 1]))
        elif char == b"*":
            out.append(b".*")
        elif char == b"?":
            out.append(b".")
        elif char == b"[":
            i, char_class = _glob_class(p, i + 1)
            out.append(char_class)
        else:
            out.append(re.escape(char))
        i += 1
    return re.compile(b"".join(out).decode("latin-1"), re.DOTALL)


def _as_bytes(key: str) -> str:
    """``key``'s UTF-8 bytes, one character each (an ASCII key is already that)."""
    return key if key.isascii() else key.encode().decode("latin-1")


def _glob_class(p: bytes, i: int) -> tuple[int, bytes]:
    """Translate the ``[...]`` starting at ``p[i]``; return (index of ``]``, regex)."""
    negate = p[i:i + 1] == b"^"
    i += negate
    members = []
    while i < len(p) and p[i:i + 1] != b"]":
        if p[i:i + 1] == b"\\" and i + 1 < len(p):
            i += 1
            members.append(re.escape(p[i:i + 1]))
        elif i + 2 < len(p) and p[i + 1:i + 2] == b"-":  # as Redis: "[a-]" is the range a..]
            low, high = sorted((p[i], p[i + 2]))  # Redis accepts [z-a] as [a-z]
            members.append(re.escape(bytes([low])) + b"-" + re.escape(bytes([high])))
            i += 2
        else:
            members.append(re.escape(p[i:i + 1]))
        i += 1
    if not members:  # "[]" matches nothing and "[^]" anything, as in Redis
        return i, b"." if negate else b"(?!)"
    return i, b"[" + (b"^" if negate else b"") + b"".join(members) + b"]"


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


# The estimate of used memory, calibrated on redis-server 7.0 (INFO memory, used_memory): a key
# costs about 56 bytes besides its name (dict entry, object header), a list item about 5 bytes
# besides its text. Counters are int-encoded, so their value costs nothing extra.
KEY_OVERHEAD_BYTES = 56
ITEM_OVERHEAD_BYTES = 5


def _value_size(value: str | int | list[str]) -> int:
    """Estimated bytes of a stored value, without its key (see KEY_OVERHEAD_BYTES)."""
    if type(value) is int:
        return 0
    if type(value) is list:
        return sum(map(len, value)) + ITEM_OVERHEAD_BYTES * len(value)
    return len(value)


def _key_size(key: str, value: str | int | list[str]) -> int:
    """Estimated bytes of one key with its value, as counted against ``maxmemory``."""
    return KEY_OVERHEAD_BYTES + len(key) + _value_size(value)


class Commands:
    """The Redis commands offered, in redis-py's names and argument order.

    Each method only builds the command; ``execute_command`` runs it (InMemoryRedis) or queues it
    (Pipeline), the split redis-py itself uses.
    """

    def execute_command(self, *args: Any) -> Any:
        raise NotImplementedError

    def get(self, name: str) -> Any:
        """GET: the string at ``name``, or None if missing. WRONGTYPE on a list."""
        return self.execute_command("GET", name)

    def set(self, name: str, value: Any, ex: int | None = None) -> Any:
        """SET: store the string ``value`` at ``name`` (any old value, type or expiry is
        replaced). True. ``ex``: expire the key after that many seconds (SET ... EX; an int
        above 0, else ResponseError "invalid expire time in 'set' command")."""
        if ex is None:
            return self.execute_command("SET", name, value)
        return self.execute_command("SET", name, value, "EX", ex)

    def ttl(self, name: str) -> Any:
        """TTL: seconds until ``name`` expires (rounded), -1 if it never does, -2 if missing."""
        return self.execute_command("TTL", name)

    def setnx(self, name: str, value: Any) -> Any:
        """SETNX: SET only if ``name`` does not exist; True if it was set, False if not."""
        return self.execute_command("SETNX", name, value)

    def mget(self, keys: Any, *args: Any) -> Any:
        """MGET: a list with the string of each key, None where missing or not a string.

        No keys at all gives [] (redis-py answers that itself rather than send a bad MGET).
        """
        return self.execute_command("MGET", *_list_or_args(keys, args))

    def incrby(self, name: str, amount: int = 1) -> Any:
        """INCRBY: add ``amount`` to the integer at ``name`` (missing = 0); the new value (int).

        Raises ResponseError: WRONGTYPE on a list, "value is not an integer or out of range" on a
        string that is not a 64-bit integer, "increment or decrement would overflow".
        """
        return self.execute_command("INCRBY", name, amount)

    incr = incrby  # redis-py's incr(name, amount=1) is INCRBY too

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

    def rename(self, src: str, dst: str) -> Any:
        """RENAME: move ``src`` to ``dst``, replacing it; True. ResponseError "no such key"."""
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
        """SCAN: (next cursor, keys); cursor 0 ends the iteration.

        COUNT is a hint Redis may exceed; this server answers every key in one batch at cursor 0
        (and nothing at any other cursor, since it never hands one out).
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

    def flushdb(self) -> Any:
        """FLUSHDB: delete every key; True."""
        return self.execute_command("FLUSHDB")


class InMemoryRedis(Commands):
    """A thread-safe in-memory Redis server, used like ``redis.Redis(decode_responses=True)``.

    Offered commands: see ``Commands``, plus ``scan_iter`` and ``pipeline``. Errors are raised as
    ResponseError with Redis's own text; arguments redis-py could not send raise DataError.

    ``maxmemory`` is Redis's setting of that name, in bytes (0 = no limit, Redis's default), with
    the ``noeviction`` policy: once the estimated used memory (``used_memory``) is over it, every
    command that can add data (SET, INCRBY, RPUSH; inside MULTI/EXEC, any command) is refused with
    OutOfMemoryError and changes nothing, until DEL or FLUSHDB brings it back under.
    """

    # Redis's arity: argc counting the name, negative for "at least". MGET is -2 in Redis, but
    # redis-py answers mget([]) with [] itself, so -1 here.
    _ARITY = {"GET": 2, "SET": -3, "SETNX": 3, "TTL": 2, "MGET": -1, "INCRBY": 3, "RPUSH": -3, "LRANGE": 4, "LREM": 4, "LLEN": 2,
              "DEL": -2, "EXISTS": -2, "RENAME": 3, "RENAMENX": 3, "TYPE": 2, "KEYS": 2,
              "SCAN": -2, "DBSIZE": 1, "FLUSHDB": -1}

    # Commands Redis flags "denyoom": refused while used memory is over maxmemory.
    _DENYOOM = frozenset({"SET", "SETNX", "INCRBY", "RPUSH"})

    def __init__(self, maxmemory: int = 0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if type(maxmemory) is not int or maxmemory < 0:
            raise ValueError(f"maxmemory must be an int of bytes, 0 or more, got {maxmemory!r}")
        self.maxmemory = maxmemory
        self._used_memory = 0
        self._lock = threading.Lock()
        # A string value that INCR has made a number is kept as an int, as Redis keeps it
        # int-encoded; it still reads back as a string. Lists are Python lists of strings.
        self._data: dict[str, str | int | list[str]] = {}
        # Keys given an expiry (SET ... EX): {key: clock() when it goes}. Expired keys are
        # removed before each command runs, as Redis never serves one; few keys expire here.
        self._expires: dict[str, float] = {}
        self._clock = clock
        self._handlers = {
            "GET": self._get, "SET": self._set, "SETNX": self._setnx, "TTL": self._ttl, "MGET": self._mget, "INCRBY": self._incrby,
            "RPUSH": self._rpush, "LRANGE": self._lrange, "LREM": self._lrem,
            "LLEN": self._llen,
            "DEL": self._del, "EXISTS": self._exists, "RENAME": self._rename,
            "RENAMENX": self._renamenx, "TYPE": self._type, "KEYS": self._keys,
            "SCAN": self._scan, "DBSIZE": self._dbsize, "FLUSHDB": self._flushdb,
        }

    @property
    def used_memory(self) -> int:
        """Estimated bytes held by keys and values (Redis's INFO used_memory, less its baseline)."""
        return self._used_memory

    # -- client side -------------------------------------------------------------------------

    def execute_command(self, *args: Any) -> Any:
        """Run one command atomically and return its reply; raise its error reply."""
        command = _pack(args)
        with self._lock:
            reply = self._run(command)
        if isinstance(reply, ResponseError):
            raise reply
        return reply

    def pipeline(self, transaction: bool = True) -> Pipeline:
        """A Pipeline queuing commands; with ``transaction`` its execute() is one atomic step."""
        return Pipeline(self, transaction)

    def scan_iter(self, match: str | None = None, count: int | None = None,
                  _type: str | None = None) -> Iterator[str]:
        """Iterate over the keys matching ``match`` with SCAN (never blocks the server long)."""
        cursor = None
        while cursor != 0:
            cursor, keys = self.scan(cursor or 0, match=match, count=count, _type=_type)
            yield from keys

    def _execute_pipeline(self, commands: list[list[str]], transaction: bool) -> list[Any]:
        """Run queued commands; replies in order, an error reply as a ResponseError instance."""
        if not transaction:
            return [self._run_locked(command) for command in commands]
        with self._lock:
            self._expire_due()
            # MULTI refuses to queue a command of wrong arity, or any command at all while used
            # memory is over maxmemory; EXEC is then aborted, nothing runs, and redis-py raises
            # the first refusal.
            for number, command in enumerate(commands, 1):
                refusal = self._refusal(command, in_transaction=True)
                if refusal is not None:
                    raise _annotate(refusal, number, command)
            return [self._dispatch(command) for command in commands]

    def _run_locked(self, command: list[str]) -> Any:
        with self._lock:
            return self._run(command)

    # -- server side: the methods below are only called with the lock held -------------------

    def _wrong_arity(self, command: list[str]) -> bool:
        arity = self._ARITY.get(command[0])
        if arity is None:  # an unknown command
            return True
        return len(command) != arity if arity > 0 else len(command) < -arity

    def _arity_error(self, command: list[str]) -> ResponseError:
        if command[0] not in self._ARITY:
            args = "".join(f"'{arg}' " for arg in command[1:])
            return ResponseError(f"unknown command '{command[0]}', "
                                 f"with args beginning with: {args}")
        return ResponseError(WRONG_ARITY.format(command[0].lower()))

    def _refusal(self, command: list[str], in_transaction: bool = False) -> ResponseError | None:
        """The error Redis answers before running ``command``, or None if it would run it."""
        if self._wrong_arity(command):
            return self._arity_error(command)
        if (self.maxmemory and self._used_memory > self.maxmemory
                and (in_transaction or command[0] in self._DENYOOM)):
            return OutOfMemoryError(OUT_OF_MEMORY)
        return None

    def _expire_due(self) -> None:
        if self._expires:
            now = self._clock()
            for key in [key for key, when in self._expires.items() if when <= now]:
                self._forget(key)

    def _run(self, command: list[str]) -> Any:
        self._expire_due()
        refusal = self._refusal(command)
        if refusal is not None:
            return refusal
        return self._dispatch(command)

    def _dispatch(self, command: list[str]) -> Any:
        """The reply of a command whose arity is known to be right; an error reply as a value."""
        try:
            return self._handlers[command[0]](*command[1:])
        except ResponseError as error:
            return error

    def _string(self, key: str) -> str | int | None:
        value = self._data.get(key)
        if type(value) is list:
            raise ResponseError(WRONGTYPE)
        return value

    def _list(self, key: str) -> list[str] | None:
        value = self._data.get(key)
        if value is not None and type(value) is not list:
            raise ResponseError(WRONGTYPE)
        return value

    def _get(self, key: str) -> str | None:
        value = self._string(key)
        return None if value is None else str(value)

    def _set(self, key: str, value: str, *options: str) -> bool:
        expires = None
        if options:
            if len(options) != 2 or options[0].upper() != "EX":
                raise ResponseError(SYNTAX_ERROR)
            seconds = _parse_int(options[1])
            if seconds <= 0:
                raise ResponseError(INVALID_EXPIRE.format("set"))
            expires = self._clock() + seconds
        self._forget(key)
        self._data[key] = value
        self._used_memory += _key_size(key, value)
        if expires is not None:
            self._expires[key] = expires
        return True

    def _ttl(self, key: str) -> int:
        if key not in self._data:
            return -2
        if key not in self._expires:
            return -1
        return int(self._expires[key] - self._clock() + 0.5)  # Redis rounds ms to seconds

    def _setnx(self, key: str, value: str) -> bool:
        if key in self._data:
            return False
        return self._set(key, value)

    def _forget(self, key: str) -> str | int | list[str] | None:
        """Remove ``key`` if present, with its share of used memory; its old value or None."""
        value = self._data.pop(key, None)
        self._expires.pop(key, None)
        if value is not None:
            self._used_memory -= _key_size(key, value)
        return value

    def _mget(self, *keys: str) -> list[str | None]:
        get = self._data.get
        return [None if (value := get(key)) is None or type(value) is list else str(value)
                for key in keys]

    def _incrby(self, key: str, amount: str) -> int:
        increment = _parse_int(amount)
        stored = current = self._string(key)
        if current is None:
            current = 0
        elif type(current) is str:
            current = _parse_int(current)
        number = current + increment
        if not _INT64_MIN <= number <= _INT64_MAX:
            raise ResponseError(OVERFLOW)
        if type(stored) is not int:  # a new key, or a string becoming int-encoded
            expires = self._expires.get(key)  # INCR keeps the key's expiry
            self._forget(key)
            self._used_memory += _key_size(key, number)
            if expires is not None:
                self._expires[key] = expires
        self._data[key] = number
        return number

    def _rpush(self, key: str, *values: str) -> int:
        items = self._list(key)
        if items is None:
            items = self._data[key] = []
            self._used_memory += _key_size(key, items)
        items.extend(values)
        self._used_memory += sum(map(len, values)) + ITEM_OVERHEAD_BYTES * len(values)
        return len(items)

    def _lrange(self, key: str, start: str, end: str) -> list[str]:
        first, last = _parse_int(start), _parse_int(end)
        items = self._list(key) or []
        size = len(items)
        first = max(first + size if first < 0 else first, 0)
        last = last + size if last < 0 else last
        if last < first:  # also an end before the start of the list
            return []
        return items[first:last + 1]

    def _lrem(self, key: str, count: str, value: str) -> int:
        limit = _parse_int(count)
        items = self._list(key)
        if not items:
            return 0
        # Walk from the tail for a negative count; remove at most |count| (0 = every match).
        order = range(len(items) - 1, -1, -1) if limit < 0 else range(len(items))
        found = [i for i in order if items[i] == value][:abs(limit) or None]
        for i in sorted(found, reverse=True):
            del items[i]
        self._used_memory -= (len(value) + ITEM_OVERHEAD_BYTES) * len(found)
        if not items:
            self._data.pop(key)
            self._used_memory -= _key_size(key, [])
        return len(found)

    def _llen(self, key: str) -> int:
        return len(self._list(key) or ())

    def _del(self, *keys: str) -> int:
        return sum(self._forget(key) is not None for key in keys)

    def _exists(self, *keys: str) -> int:
        return sum(key in self._data for key in keys)

    def _rename(self, src: str, dst: str) -> bool:
        if src not in self._data:
            raise ResponseError(NO_SUCH_KEY)
        if src != dst:
            self._forget(dst)
            # The value moves as it is: only the key's name changes size (a list's whole size
            # is not recomputed, which would make RENAME O(N)).
            expires = self._expires.pop(src, None)  # the expiry moves with the value
            self._data[dst] = self._data.pop(src)
            if expires is not None:
                self._expires[dst] = expires
            self._used_memory += len(dst) - len(src)
        return True

    def _renamenx(self, src: str, dst: str) -> bool:
        if src in self._data and dst in self._data:
            return False
        return self._rename(src, dst)  # also Redis's "no such key" for a missing src

    def _type(self, key: str) -> str:
        value = self._data.get(key)
        return "none" if value is None else "list" if type(value) is list else "string"

    def _keys(self, pattern: str) -> list[str]:
        if pattern == "*":
            return list(self._data)
        regex = _glob(pattern)
        # Redis matches the empty key only with the patterns "*" and "".
        return [key for key in self._data
                if (regex.fullmatch(_as_bytes(key)) if key else pattern == "")]

    def _scan(self, cursor: str, *options: str) -> tuple[int, list[str]]:
        # Redis reads the cursor with strtoul: a sign, leading zeros, even ""; no spaces, < 2**64.
        if not re.fullmatch(r"[+-]?[0-9]+|", cursor) or abs(int(cursor or 0)) >= 2 ** 64:
            raise ResponseError("invalid cursor")
        if len(options) % 2:
            raise ResponseError(SYNTAX_ERROR)
        settings = {name.upper(): value for name, value in zip(options[::2], options[1::2])}
        if not settings.keys() <= {"MATCH", "COUNT", "TYPE"}:
            raise ResponseError(SYNTAX_ERROR)
        if "COUNT" in settings and _parse_int(settings["COUNT"]) < 1:
            raise ResponseError(SYNTAX_ERROR)
        if int(cursor or 0) != 0:  # every key went out with cursor 0: no cursor continues it
            return 0, []
        keys = self._keys(settings.get("MATCH", "*"))
        if "TYPE" in settings:
            keys = [key for key in keys if self._type(key) == settings["TYPE"].lower()]
        return 0, keys

    def _dbsize(self) -> int:
        return len(self._data)

    def _flushdb(self) -> bool:
        self._data.clear()
        self._expires.clear()
        self._used_memory = 0
        return True


def _pack(args: tuple) -> list[str]:
    """The command as Redis receives it: the name, then every argument encoded."""
    return [arg if type(arg) is str and arg.isascii() else _encode(arg) for arg in args]


def _annotate(error: ResponseError, number: int, command: list[str]) -> ResponseError:
    """Prefix an error with the failing command's place, as redis-py's pipeline does."""
    text = textwrap.shorten(" ".join(command), width=100, placeholder="...", break_long_words=True)
    error.args = (f"Command # {number} ({text}) of pipeline caused error: "
                  f"{error.args[0]}",)
    return error


class Pipeline(Commands):
    """Commands queued on the client and sent together by ``execute()`` (redis-py's Pipeline).

    Each command method returns the pipeline, so calls chain. With ``transaction=True`` (the
    default) execute() is MULTI/EXEC: no other client's command runs between the queued ones.
    As in Redis, a command failing at run time (e.g. WRONGTYPE) does not undo the others.
    """

    def __init__(self, server: InMemoryRedis, transaction: bool = True) -> None:
        self._server = server
        self.transaction = transaction
        self.command_stack: list[tuple] = []

    def __enter__(self) -> Pipeline:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.reset()

    def __len__(self) -> int:
        return len(self.command_stack)

    def execute_command(self, *args: Any) -> Pipeline:
        self.command_stack.append(args)  # encoded by execute(), as redis-py does
        return self

    def reset(self) -> None:
        """Forget the queued commands."""
        self.command_stack = []

    def execute(self, raise_on_error: bool = True) -> list[Any]:
        """Send the queued commands; a list with each one's reply, in order.

        With ``raise_on_error`` the first error reply is raised (as ResponseError naming the
        command's place) after every command has run; otherwise it stands in the list.
        """
        stack, self.command_stack = self.command_stack, []
        if not stack:
            return []
        commands = [_pack(args) for args in stack]  # DataError here: nothing is sent
        replies = self._server._execute_pipeline(commands, self.transaction)
        if raise_on_error:
            for number, (reply, command) in enumerate(zip(replies, commands), 1):
                if isinstance(reply, ResponseError):
                    raise _annotate(reply, number, command)
        return replies
