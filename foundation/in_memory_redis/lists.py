"""The list commands: RPUSH, LRANGE, LREM, LLEN.

A list is a QuickList of strings (quicklist.py). RPUSH holds the POST path's fast case (one
ASCII event pushed, its size taken as its length); a list emptied by LREM is deleted, as Redis
deletes it.
"""

from __future__ import annotations

from .errors import WRONGTYPE, ResponseError
from .memory import ITEM_OVERHEAD_BYTES, _items_size, _nbytes
from .protocol import _parse_int
from .quicklist import NODE_ITEMS, QuickList


class ListCommands:
    """RPUSH, LRANGE, LREM, LLEN.

    Mixed into InMemoryRedis; its methods are only called with the server lock held.
    """

    def _list(self, key: str | bytes) -> QuickList | None:
        value = self._lookup(key) if self._expires else self._data.get(key)
        if value is not None and type(value) is not QuickList:
            raise ResponseError(WRONGTYPE)
        return value

    def _rpush(self, key: str | bytes, *values: str | bytes) -> int:
        items = self._data.get(key) if not self._expires else self._lookup(key)
        if type(items) is not QuickList:  # _list's rule, inline on the POST path
            if items is not None:
                raise ResponseError(WRONGTYPE)
            items = QuickList()
            self._store(key, items)
        value = values[0]
        if len(values) == 1 and type(value) is str and value.isascii():  # the POST path
            self._used_memory += len(value) + ITEM_OVERHEAD_BYTES
            # QuickList.push's rule, inline: the call cost a POST 2% more (callgrind's count)
            tail = items.tail
            tail.append(value)
            length = len(tail)
            if length == NODE_ITEMS:
                items.seal()
                length = 0
            length += items.sealed
        else:
            self._used_memory += _items_size(values)
            length = items.push(values)
        if self._watches:
            self._touch(key)
        return length

    def _lrem(self, key: str | bytes, count: str | bytes, value: str | bytes) -> int:
        limit = _parse_int(count)
        items = self._list(key)
        if not items:
            return 0
        found = items.remove(value, limit)
        self._used_memory -= (_nbytes(value) + ITEM_OVERHEAD_BYTES) * found
        if not items:
            self._forget(key)
        elif found and self._watches:
            self._touch(key)
        return found

    def _lrange(self, key: str | bytes, start: str | bytes, end: str | bytes) -> list:
        first, last = _parse_int(start), _parse_int(end)
        items = self._list(key)
        size = len(items) if items is not None else 0
        first = max(first + size if first < 0 else first, 0)
        last = min(last + size if last < 0 else last, size - 1)
        if last < first:  # also an end before the start of the list, or an empty list
            return []
        return items.range(first, last)

    def _llen(self, key: str | bytes) -> int:
        return len(self._list(key) or ())
