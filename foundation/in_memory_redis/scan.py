"""KEYS and SCAN, and the stable slots SCAN pages through.

Every key holds one slot in an array (``_slots``) from its creation to its deletion; a new key
takes the lowest free slot, and SCAN's cursor is a slot number. A call visits at most COUNT keys
and 10 * COUNT slots (Redis's own bound), so its lock hold does not grow with the keyspace, and
Redis's guarantees follow from the slots being stable: a key present for the whole iteration
keeps its slot and is reached once; a deleted key's slot is empty or reused. KEYS and SCAN MATCH
compile their glob pattern before the server lock is taken (``_compile_patterns``).
"""

from __future__ import annotations

import heapq
import re
from typing import Callable

from .command_table import NO_PATTERN
from .errors import SYNTAX_ERROR, ResponseError
from .patterns import glob_matcher
from .protocol import _parse_int, _word

_CURSOR = re.compile(r"[+-]?[0-9]+|")  # compiled here, not on a first SCAN under the lock
SCAN_DEFAULT_COUNT = 10  # Redis's default COUNT
SCAN_EMPTY_SLOTS_PER_KEY = 10  # Redis visits at most 10 * COUNT buckets per SCAN call
SLOTS_SHRUNK_PER_DELETE = 64  # empty slots dropped off SCAN's array by one deletion at most
# SCAN counts the keys in each block of 2**8 slots and of 2**16 slots, and steps over an empty
# block as over one empty slot: a keyspace emptied by mass deletion keeps its slots (no key can
# move to a lower slot without a SCAN under way missing it), but is scanned in a few calls.
SMALL_BLOCK_BITS, LARGE_BLOCK_BITS = 8, 16


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


class ScanCommands:
    """KEYS, SCAN and the slot bookkeeping of keys.

    Mixed into InMemoryRedis; its methods are only called with the server lock held.
    """

    def _reset_slots(self) -> None:
        """No slot: SCAN's stable slots (see the module docstring) of an empty keyspace."""
        self._slots: list[str | bytes | None] = []  # the key at each slot, None where free
        self._slot_of: dict[str | bytes, int] = {}
        self._free_slots: list[int] = []  # heap of freed slot numbers (some may be stale)
        self._small_block_keys: list[int] = []  # keys in slots [i << 8, (i + 1) << 8)
        self._large_block_keys: list[int] = []  # keys in slots [i << 16, (i + 1) << 16)

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

    def _matcher(self, pattern: str | bytes) -> Callable[[str | bytes], bool]:
        """The matcher of ``pattern``, compiled before the lock was taken (else compiled now)."""
        matcher = self._matchers.get(pattern)
        return matcher if matcher is not None else glob_matcher(pattern)

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
