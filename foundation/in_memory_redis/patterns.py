"""Redis's glob patterns (KEYS, SCAN MATCH), matched byte for byte and without backtracking.

A pattern is split at its stars into fixed-length segments (each token one byte: a literal,
``?`` or a ``[...]`` set) and compiled to one regular expression that commits each middle
segment to its leftmost match, so no pattern can make the engine backtrack exponentially (see
``_glob``). Keys are matched as their bytes (latin-1 text, one character per byte), and a
range's ends are compared as C's signed char, as redis-server's stringmatchlen compares them.
"""

from __future__ import annotations

import functools
import itertools
import re
from typing import Any, Callable, Iterable

from .protocol import _raw


def _signed(byte: int) -> int:
    """A byte as C's (signed) char, which is how Redis's stringmatchlen compares range ends."""
    return byte - 256 if byte >= 128 else byte


def _glob_class(p: bytes, i: int) -> tuple[int, frozenset[int]]:
    """The byte set of the ``[...]`` whose first member is at ``p[i]``; (index of its end, set).

    As Redis's stringmatchlen: ``^`` negates, ``\\x`` is x, ``a-z`` is a range (either order,
    ends compared as signed chars), ``[a-]`` is the range a..], an unclosed class ends with the
    pattern, ``[]`` matches nothing and ``[^]`` anything.
    """
    negate = p[i:i + 1] == b"^"
    i += negate
    literals: list[int] = []
    ranges: list[tuple[int, int]] = []
    while i < len(p) and p[i] != ord("]"):
        if p[i] == ord("\\") and i + 1 < len(p):
            i += 1
            literals.append(p[i])
        elif i + 2 < len(p) and p[i + 1] == ord("-"):
            ranges.append((p[i], p[i + 2]))
            i += 2
        else:
            literals.append(p[i])
        i += 1
    return i, _class_set(negate, tuple(literals), tuple(ranges))


@functools.lru_cache(maxsize=1024)
def _class_set(negate: bool, literals: tuple[int, ...],
               ranges: tuple[tuple[int, int], ...]) -> frozenset[int]:
    """The bytes of a class: ``literals`` and ``ranges`` (ends as signed chars), or the others.

    Cached, so a pattern repeating one class builds its set once (and its tokens compare by
    identity when runs are grouped).
    """
    members = set(literals)
    for first, last in ranges:
        low, high = sorted((_signed(first), _signed(last)))
        members.update(byte for byte in range(256) if low <= _signed(byte) <= high)
    return frozenset(ANY_BYTE - members if negate else members)


ANY_BYTE = frozenset(range(256))


def _glob_tokens(pattern: bytes) -> list[frozenset[int] | None]:
    """The pattern as a list of one-byte tokens (each a set of bytes) and stars (None)."""
    tokens: list[frozenset[int] | None] = []
    i = 0
    while i < len(pattern):
        byte = pattern[i]
        if byte == ord("*"):
            if not tokens or tokens[-1] is not None:  # "**" is "*"
                tokens.append(None)
        elif byte == ord("?"):
            tokens.append(ANY_BYTE)
        elif byte == ord("["):
            i, members = _glob_class(pattern, i + 1)
            tokens.append(members)
        else:
            if byte == ord("\\") and i + 1 < len(pattern):
                i += 1
            tokens.append(frozenset((pattern[i],)))
        i += 1
    return tokens


def _byte_ranges(members: Iterable[int]) -> str:
    """Sorted bytes as the inside of a regex class: runs written ``\\xLL-\\xHH``."""
    runs: list[list[int]] = []
    for byte in sorted(members):
        if runs and runs[-1][1] == byte - 1:
            runs[-1][1] = byte
        else:
            runs.append([byte, byte])
    return "".join(f"\\x{low:02x}" if low == high else f"\\x{low:02x}-\\x{high:02x}"
                   for low, high in runs)


@functools.lru_cache(maxsize=1024)
def _regex_token(members: frozenset[int]) -> str:
    """One byte of ``members`` as a regex over latin-1 text (one character per byte).

    A class is written as runs of bytes, or as the runs it leaves out when that is shorter
    (``[^a]`` is ``[^\\x61]``, not 255 members), so its cost to compile stays small.
    """
    if len(members) == 256:
        return "."
    if len(members) == 1:
        return re.escape(chr(next(iter(members))))
    if len(members) <= 128:
        return f"[{_byte_ranges(members)}]" if members else "[^\\x00-\\xff]"  # [] : none
    return f"[^{_byte_ranges(ANY_BYTE - members)}]"


def _regex_segment(tokens: list[frozenset[int]]) -> str:
    """Fixed-length tokens as a regex, a run of equal tokens as one repeat: ``.{100000}``."""
    parts = []
    for token, run in itertools.groupby(tokens):
        count = sum(1 for _ in run)
        regex = _regex_token(token)
        parts.append(regex if count == 1 else f"(?:{regex}){{{count}}}")
    return "".join(parts)


@functools.lru_cache(maxsize=256)
def _glob(pattern: bytes) -> Callable[[str], Any]:
    """A match function for the Redis glob ``pattern``, taking a key as latin-1 text.

    The pattern is split at its stars into fixed-length segments: the first is anchored at the
    start, the last at the end, and each middle one is placed at its leftmost match, which is
    where any match can place it (what follows a star may start anywhere after it). Each is
    committed to that leftmost place, so the regex engine never retries it: a match costs
    O(key length x pattern length) instead of the exponential backtracking of ``a*a*a*...b``.
    The commitment is ``(?=(.*?segment))\\N``: a lookahead is atomic once it has matched, and
    the backreference consumes what it found. (The atomic group ``(?>...)`` says the same, but
    only from Python 3.11.)
    """
    tokens = _glob_tokens(pattern)
    parts, segment = [], []
    for token in tokens:
        if token is None:
            parts.append(_regex_segment(segment))
            segment = []
        else:
            segment.append(token)
    if len(parts) == 0:  # no star: the whole key is one segment
        return re.compile(_regex_segment(segment) + r"\Z", re.DOTALL).match
    head, middles, tail = parts[0], parts[1:], _regex_segment(segment)
    committed = (f"(?=(.*?{middle}))\\{number}" for number, middle in enumerate(middles, 1))
    regex = head + "".join(committed) + ".*" + tail + r"\Z"
    return re.compile(regex, re.DOTALL).match


def _as_latin1(key: str | bytes) -> str:
    """``key``'s bytes, one character each (an ASCII key is already that)."""
    if type(key) is bytes:
        return key.decode("latin-1")
    return key if key.isascii() else key.encode().decode("latin-1")


def glob_matcher(pattern: str | bytes) -> Callable[[str | bytes], bool]:
    """A test of keys against the Redis glob ``pattern`` (KEYS, SCAN MATCH), byte for byte.

    As Redis: ``*`` any bytes, ``?`` one byte, ``[...]`` a byte set, ``\\x`` the byte x; the
    pattern ``*`` matches every key, and the empty key matches only ``*`` and the empty pattern.
    """
    pattern = _raw(pattern)
    if pattern == b"*":
        return lambda key: True
    match = _glob(pattern)
    return lambda key: (match(_as_latin1(key)) is not None if len(key)
                        else pattern == b"")
