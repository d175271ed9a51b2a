"""The client side's command methods: redis-py's names, argument order and argument checks.

``Commands`` builds each command the way redis-py's Redis class builds it (its options turned
into Redis's words, redis-py's own DataError for arguments it refuses) and hands it to
``execute_command``, which InMemoryRedis runs at once and Pipeline queues: the split redis-py
itself uses, so both get every method from here.
"""

from __future__ import annotations

from typing import Any

from .errors import DataError
from .protocol import EMPTY_RESPONSE


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

    def unlink(self, *names: str) -> Any:
        """UNLINK: remove the keys as DEL does, their memory reclaimed later; how many existed."""
        return self.execute_command("UNLINK", *names)

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
