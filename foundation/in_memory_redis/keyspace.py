"""The keyspace: each key's value, its expiry and its share of used memory.

Every key is created by ``_store``, which gives it a SCAN slot and counts its memory, and removed
by ``_forget``, which frees both, drops its expiry and marks its watchers. Expiry is lazy,
as Redis's: a key past its deadline is removed when it is next looked up (``_lookup``); and
active: before each command (once per EXEC) up to ACTIVE_EXPIRE_KEYS keys whose deadline has
passed are removed, in deadline order, from a heap.
"""

from __future__ import annotations

import heapq
import itertools

from .errors import INVALID_EXPIRE, ResponseError
from .memory import _key_size, _value_size
from .protocol import _INT64_MAX, _INT64_MIN, _parse_int
from .quicklist import QuickList

ACTIVE_EXPIRE_KEYS = 20  # expired keys reclaimed per command at most (Redis: 20 per sample)


class Keyspace:
    """The values, deadlines and used memory of the keys.

    Mixed into InMemoryRedis; its methods are only called with the server lock held.
    """

    # Within EXEC the time is read once, at its first reading, and kept (Redis 7.0's call()
    # caches it for nested calls: fixed_time_expire), so no key expires in the middle of it.
    _in_exec = False
    _exec_ms: int | None = None

    def _reset_keyspace(self) -> None:
        """Start empty (a new server, FLUSHDB): no key, no expiry, no memory used."""
        self._used_memory = 0
        # A string value that INCR has made a number is kept as an int, as Redis keeps it
        # int-encoded; it still reads back as a string. Lists are QuickLists of strings.
        self._data: dict[str | bytes, str | bytes | int | QuickList] = {}
        self._expires: dict[str | bytes, int] = {}  # key -> Unix time in ms
        self._deadlines: list[tuple[int, int, str | bytes]] = []  # heap: (ms, tiebreak, key)
        self._tiebreak = itertools.count()
        self._reset_slots()

    # -- the keyspace: every key is created by _store and removed by _forget --

    def _lookup(self, key: str | bytes) -> str | bytes | int | QuickList | None:
        """The value at ``key``, None if missing or expired (an expired key is removed now)."""
        if self._expires and key in self._expires and self._expires[key] <= self._now_ms():
            self._forget(key)
            return None
        return self._data.get(key)

    def _store(self, key: str | bytes, value: str | bytes | int | QuickList) -> None:
        """Put ``value`` at ``key``, a key known to be missing: a new slot, its memory."""
        self._data[key] = value
        self._used_memory += _key_size(key, value)
        self._take_slot(key)

    def _replace(self, key: str | bytes, value: str | bytes | int | QuickList) -> None:
        """Put ``value`` at ``key`` whether or not it exists (it keeps its slot if it does)."""
        old = self._data.get(key)
        if old is None:
            self._store(key, value)
        else:
            self._used_memory += _value_size(value) - _value_size(old)
            self._data[key] = value

    def _forget(self, key: str | bytes) -> str | bytes | int | QuickList | None:
        """Remove ``key`` if present, with its slot, expiry and memory; its old value or None."""
        value = self._data.pop(key, None)
        if value is not None:
            self._used_memory -= _key_size(key, value)
            self._expires.pop(key, None)
            self._free_slot(key)
            self._touch(key)
        return value

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
