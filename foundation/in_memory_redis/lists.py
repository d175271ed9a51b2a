"""The list commands: RPUSH, LRANGE, LREM, LLEN.

A list is a Python list of strings. RPUSH holds the POST path's fast case (one ASCII event
pushed, its size taken as its length); a list emptied by LREM is deleted, as Redis deletes it.
"""

from __future__ import annotations

from .errors import WRONGTYPE, ResponseError
from .memory import ITEM_OVERHEAD_BYTES, _items_size, _nbytes
from .protocol import _parse_int


class ListCommands:
    """RPUSH, LRANGE, LREM, LLEN.

    Mixed into InMemoryRedis; its methods are only called with the server lock held.
    """

    def _list(self, key: str | bytes) -> list | None:
        value = self._lookup(key) if self._expires else self._data.get(key)
        if value is not None and type(value) is not list:
            raise ResponseError(WRONGTYPE)
        return value

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
