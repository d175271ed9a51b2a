"""The key commands (Redis's "generic" group) and those on the whole keyspace.

DEL, UNLINK, EXISTS, TYPE, RENAME, RENAMENX; EXPIRE, PERSIST, TTL, PTTL; DBSIZE, FLUSHDB. RENAME
moves a value as it is, with its expiry; an existing destination keeps its SCAN slot. UNLINK
removes keys as DEL does, at once for every reader, and leaves freeing a long list till the lock
is released.
"""

from __future__ import annotations

from typing import Any

from .errors import NO_SUCH_KEY, SYNTAX_ERROR, ResponseError, _shown
from .memory import KEY_OVERHEAD_BYTES, _nbytes, _value_size
from .protocol import OK, _parse_int, _Status, _word
from .quicklist import QuickList


class KeyCommands:
    """DEL, UNLINK, EXISTS, EXPIRE, PERSIST, TTL, PTTL, RENAME, RENAMENX, TYPE, DBSIZE, FLUSHDB.

    Mixed into InMemoryRedis; its methods are only called with the server lock held.
    """

    def _del(self, *keys: str | bytes) -> int:
        return sum(self._lookup(key) is not None and self._forget(key) is not None
                   for key in keys)

    def _unlink(self, *keys: str | bytes) -> int:
        # DEL's reply and keyspace; a list of a full node or more is freed once the lock is
        # released (InMemoryRedis._free_unlinked), not here.
        removed = 0
        for key in keys:
            value = self._forget(key) if self._lookup(key) is not None else None
            if value is None:
                continue
            removed += 1
            if type(value) is QuickList and value.nodes:
                self._unlinked.append(value)
        return removed

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
            value = self._data.pop(src)
            # The value moves as it is: only the key's share of used memory changes.
            self._used_memory -= KEY_OVERHEAD_BYTES + _nbytes(src)
            self._expires.pop(src, None)
            self._free_slot(src)
            self._touch(src)
            old = self._lookup(dst)
            if old is None:
                self._data[dst] = value
                self._used_memory += KEY_OVERHEAD_BYTES + _nbytes(dst)
                self._take_slot(dst)
            else:
                # An existing dst keeps its slot, as it keeps its hash bucket in Redis: a SCAN
                # under way still reaches it (a key present for the whole iteration).
                self._data[dst] = value
                self._used_memory -= _value_size(old)
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
        return _Status("none" if value is None else "list" if type(value) is QuickList
                       else "string")

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
        self._reset_keyspace()  # the watches stay: FLUSHDB does not unwatch
        return OK
