"""``QuickList``: how a list value is stored, as Redis stores one -- a quicklist of nodes.

Redis keeps a list as a linked list of nodes (listpacks) each holding many items. Here a list
is a Python list of full nodes, each a tuple of exactly NODE_ITEMS items, and a tail (a Python
list) that fills until it is sealed into the next node. The reason is Python's cyclic garbage
collector: on each of its full collections it visits every item of every Python list that is
alive, and a backlog of a million events in lists made each such collection take 40-60 ms,
with every thread stopped (docs/in-memory-redis.md). A tuple holding only strings is one the
collector stops tracking, so a full collection visits one node per NODE_ITEMS items.

Each node's size in bytes, as counted against maxmemory (memory.py), is measured once, when it
is sealed, so deleting or renaming a list of millions of items does not walk them.
"""

from __future__ import annotations

from typing import Iterable, Iterator

from .memory import _items_size

NODE_ITEMS = 1000
"""Items per sealed node: a full collection visits one object per this many items, and one
LRANGE slices at most (its length / NODE_ITEMS) + 2 nodes."""


class QuickList:
    """A Redis list's items in order: ``nodes`` (tuples of exactly NODE_ITEMS items), then
    ``tail`` (a list of fewer than NODE_ITEMS once push() returns); ``sealed``, the items in
    the nodes, and ``sealed_bytes``, their estimated size (memory._items_size). Only the
    server changes it, with its lock held."""

    __slots__ = ("nodes", "tail", "sealed", "sealed_bytes")

    def __init__(self) -> None:
        self.nodes: list[tuple[str | bytes, ...]] = []
        self.tail: list[str | bytes] = []
        self.sealed = 0
        self.sealed_bytes = 0

    def __len__(self) -> int:
        return self.sealed + len(self.tail)

    def __iter__(self) -> Iterator[str | bytes]:
        for node in self.nodes:
            yield from node
        yield from self.tail

    @property
    def nbytes(self) -> int:
        """The items' estimated size in bytes, as maxmemory counts them (memory._items_size)."""
        return self.sealed_bytes + _items_size(self.tail)

    def push(self, values: Iterable[str | bytes]) -> int:
        """Append ``values`` (RPUSH); the new length. (The POST path's RPUSH of one item runs
        the same steps inline: lists.py.)"""
        tail = self.tail
        tail.extend(values)
        if len(tail) >= NODE_ITEMS:
            self.seal()
        return self.sealed + len(self.tail)

    def seal(self) -> None:
        """Move every full NODE_ITEMS of the tail into nodes of their own."""
        tail, nodes = self.tail, self.nodes
        full = len(tail) - len(tail) % NODE_ITEMS
        for start in range(0, full, NODE_ITEMS):
            node = tuple(tail[start:start + NODE_ITEMS])
            nodes.append(node)
            self.sealed_bytes += _items_size(node)
        self.sealed += full
        self.tail = tail[full:]

    def range(self, first: int, last: int) -> list[str | bytes]:
        """The items ``first``..``last`` inclusive, ``0 <= first``, ``last < len(self)``."""
        nodes, tail, sealed = self.nodes, self.tail, self.sealed
        items: list[str | bytes] = []
        index = first
        while index <= last:
            if index >= sealed:
                items += tail[index - sealed:last - sealed + 1]
                break
            node, offset = divmod(index, NODE_ITEMS)
            items += nodes[node][offset:offset + last - index + 1]
            index = (node + 1) * NODE_ITEMS
        return items

    def remove(self, value: str | bytes, limit: int) -> int:
        """LREM: remove up to ``|limit|`` items equal to ``value``, from the head (``limit`` >
        0), from the tail (< 0), or all of them (0); how many went. The nodes from the first
        one touched on are packed again, so every sealed node stays full."""
        found = self._find(value, limit)
        if not found:
            return 0
        first = min(found) // NODE_ITEMS  # the first node touched
        gone = set(found)
        kept = [item for index, item in enumerate(self.range(first * NODE_ITEMS, len(self) - 1),
                                                  first * NODE_ITEMS)
                if index not in gone]
        for node in self.nodes[first:]:
            self.sealed_bytes -= _items_size(node)
        del self.nodes[first:]
        self.sealed = first * NODE_ITEMS
        self.tail = []
        self.push(kept)
        return len(found)

    def _find(self, value: str | bytes, limit: int) -> list[int]:
        """The indexes of the items equal to ``value``, from the head (``limit`` >= 0) or the
        tail, at most ``|limit|`` of them (0: all)."""
        chunks = [*self.nodes, self.tail]  # chunk c starts at index c * NODE_ITEMS
        backwards = limit < 0
        found: list[int] = []
        for number in (range(len(chunks) - 1, -1, -1) if backwards else range(len(chunks))):
            chunk = chunks[number]
            if value not in chunk:  # in C: most nodes hold no match
                continue
            for offset in (range(len(chunk) - 1, -1, -1) if backwards else range(len(chunk))):
                if chunk[offset] == value:
                    found.append(number * NODE_ITEMS + offset)
                    if len(found) == abs(limit):
                        return found
        return found
