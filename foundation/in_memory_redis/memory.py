"""The estimate of used memory, counted against ``maxmemory`` (Redis's INFO used_memory).

Each key costs a fixed overhead, its name and its value, as calibrated on redis-server 7.0; the
server adds and subtracts these sizes as keys and list items come and go, so ``used_memory`` is
kept current without ever walking the keyspace.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # quicklist.py imports this module
    from .quicklist import QuickList

# Calibrated on redis-server 7.0 (INFO memory, used_memory): a key costs about 56 bytes besides
# its name (dict entry, object header), a list item about 5 bytes besides its text. Counters are
# int-encoded, so their value costs nothing extra.
KEY_OVERHEAD_BYTES = 56
ITEM_OVERHEAD_BYTES = 5


def _nbytes(text: str | bytes) -> int:
    """The length in bytes of a key or string as Redis stores it (str as UTF-8)."""
    return len(text) if type(text) is bytes or text.isascii() else len(text.encode())


_SIZED_PER_JOIN = 10_000  # list items joined at once to measure their text (about 1 MB)


def _items_size(items: list | tuple) -> int:
    """Estimated bytes of list items: their text plus ITEM_OVERHEAD_BYTES each."""
    size = ITEM_OVERHEAD_BYTES * len(items)
    if len(items) == 1:  # the POST path pushes one event
        return size + _nbytes(items[0])
    try:  # text only (an ingest flush pushes a thousand records): measured joined, in C, a
        # chunk at a time so that sizing a long RPUSH copies little
        return size + sum(_nbytes("".join(items[start:start + _SIZED_PER_JOIN]))
                          for start in range(0, len(items), _SIZED_PER_JOIN))
    except TypeError:  # some items are bytes
        return size + sum(map(_nbytes, items))


def _value_size(value: str | bytes | int | QuickList) -> int:
    """Estimated bytes of a stored value, without its key (see KEY_OVERHEAD_BYTES); a list's
    (QuickList.nbytes) walks none of its sealed nodes, only its tail."""
    if type(value) is int:
        return 0
    if type(value) is str or type(value) is bytes:
        return _nbytes(value)
    return value.nbytes


def _key_size(key: str | bytes, value: str | bytes | int | QuickList) -> int:
    """Estimated bytes of one key with its value, as counted against ``maxmemory``."""
    return KEY_OVERHEAD_BYTES + _nbytes(key) + _value_size(value)
