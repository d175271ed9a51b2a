"""The string commands: GET, SET, MGET and the counters (INCRBY, INCR, DECRBY, DECR).

A string that is a canonical 64-bit integer is stored as an int, as Redis stores it
int-encoded, so a counter counts on without parsing its text; it reads back as a string. INCRBY
holds the POST path's fast case (a counter counting on), MGET the GET path's.
"""

from __future__ import annotations

from typing import Any

from .errors import OVERFLOW, SYNTAX_ERROR, WRONGTYPE, ResponseError
from .protocol import _INT64_MAX, _INT64_MIN, OK, _parse_int, _word
from .quicklist import QuickList


def _int_encoded(value: str | bytes) -> str | bytes | int:
    """A string value as Redis stores it: an int when it is a canonical 64-bit integer of at
    most 20 characters (Redis's OBJ_ENCODING_INT, via string2l), else the string itself."""
    if type(value) is str and len(value) <= 20 and value.isascii() and value.lstrip("-").isdigit():
        try:
            return _parse_int(value)
        except ResponseError:
            return value
    return value


class StringCommands:
    """GET, SET, MGET, INCRBY, INCR, DECRBY, DECR.

    Mixed into InMemoryRedis; its methods are only called with the server lock held.
    """

    def _string(self, key: str | bytes) -> str | bytes | int | None:
        value = self._lookup(key) if self._expires else self._data.get(key)
        if type(value) is QuickList:
            raise ResponseError(WRONGTYPE)
        return value

    def _get(self, key: str | bytes) -> str | bytes | None:
        value = self._string(key)
        return value if value is None or type(value) is not int else str(value)

    def _set(self, key: str | bytes, value: str | bytes, *options: str | bytes) -> Any:
        condition, get, keepttl, when_ms = self._set_options(options)
        old = self._get(key) if get else None  # WRONGTYPE before anything changes
        exists = self._lookup(key) is not None
        if (condition == "NX" and exists) or (condition == "XX" and not exists):
            return old
        self._replace(key, _int_encoded(value))
        if not keepttl:
            self._expires.pop(key, None)
        if when_ms is not None:
            self._set_expiry(key, when_ms)
        self._touch(key)
        return old if get else OK

    def _set_options(self, options: tuple) -> tuple[str, bool, bool, int | None]:
        """SET's options, as Redis's parseExtendedStringArgumentsOrReply reads them.

        Returns (NX, XX or "", GET given, KEEPTTL given, expiry in Unix ms or None).
        """
        condition, get, keepttl, expiry = "", False, False, None
        i = 0
        while i < len(options):
            word = _word(options[i])
            if word in ("NX", "XX") and condition in ("", word):
                condition = word
            elif word == "GET":
                get = True
            elif word == "KEEPTTL" and expiry is None:
                keepttl = True
            elif (word in ("EX", "PX", "EXAT", "PXAT") and not keepttl
                  and (expiry is None or expiry[0] == word) and i + 1 < len(options)):
                i += 1
                expiry = (word, options[i])
            else:
                raise ResponseError(SYNTAX_ERROR)
            i += 1
        when_ms = None if expiry is None else self._expiry_ms("set", *expiry)
        return condition, get, keepttl, when_ms

    def _mget(self, *keys: str | bytes) -> list:
        get = self._lookup if self._expires else self._data.get  # the GET path's fast case
        values = []
        for key in keys:  # a loop: cheaper than a comprehension for a few keys (CPython 3.11)
            value = get(key)
            values.append(str(value) if type(value) is int else None if type(value) is QuickList
                          else value)
        return values

    def _incrby(self, key: str | bytes, amount: str | bytes) -> int:
        increment = 1 if amount == "1" else _parse_int(amount)  # "1": INCR, and every POST
        current = stored = self._data.get(key) if not self._expires else self._lookup(key)
        if type(stored) is int:  # the POST path's usual case: a counter counting on
            number = stored + increment
            if _INT64_MIN <= number <= _INT64_MAX:
                self._data[key] = number
                if self._watches:
                    self._touch(key)
                return number
        if type(current) is QuickList:
            raise ResponseError(WRONGTYPE)
        if current is None:
            current = 0
        elif type(current) is not int:
            current = _parse_int(current)
        number = current + increment
        if not _INT64_MIN <= number <= _INT64_MAX:
            raise ResponseError(OVERFLOW)
        self._replace(key, number)  # now int-encoded; the expiry stays, as INCR keeps it
        if self._watches:
            self._touch(key)
        return number

    def _incr(self, key: str | bytes) -> int:
        return self._incrby(key, "1")

    def _decr(self, key: str | bytes) -> int:
        return self._incrby(key, "-1")

    def _decrby(self, key: str | bytes, amount: str | bytes) -> int:
        decrement = _parse_int(amount)
        if decrement == _INT64_MIN:  # its negation does not fit in 64 bits
            raise ResponseError("decrement would overflow")
        return self._incrby(key, str(-decrement))
