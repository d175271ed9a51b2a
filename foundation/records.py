"""Event records as stored text: which items are exactly one valid record, and why the others not.

A Redis list item (or a spill-file line) must be exactly one JSON object with the seed's four
fields ``{user_id, emoticon_type, timestamp, match_id}``: ids ints from 1 to 2**63-1 (SQLite's
INTEGER), ``emoticon_type`` one the table allows, ``timestamp`` a finite number of Unix seconds.
Anything else -- not JSON, two records in one item, a missing, extra or repeated field, a wrong
type, an emoticon the table's CHECK refuses, a match_id other than its list's -- is a poison
item: the backup dead-letters it (db.py) rather than let it block its list or become two rows. This module is the one place that rule lives.
"""

from __future__ import annotations

import json
import math
from typing import Any, Collection, Iterable

from foundation.shown import cut

__all__ = ["FIELDS", "ID_MAX", "UNDECODABLE", "poison_reason", "sort_items", "named_cell",
           "borders_kept"]

FIELDS = frozenset({"user_id", "emoticon_type", "timestamp", "match_id"})
"""The fields of an event record (seed: the Redis snapshot), no more, no fewer."""
ID_MAX = 2 ** 63 - 1
"""The largest id: SQLite INTEGERs are signed 64-bit."""
UNDECODABLE = (ValueError, RecursionError)
"""What json.loads raises for a stored text it cannot decode: ValueError (not JSON, an int past
Python's digit limit, bytes not UTF-8) or RecursionError (arrays or objects nested past the
recursion limit, e.g. 100,000 "["). Either way the text names no record."""


def _is_id(value: Any) -> bool:
    return type(value) is int and 1 <= value <= ID_MAX


def _is_timestamp(value: Any) -> bool:
    # An int must fit SQLite's 64 bits (else the INSERT fails, and with it the whole list) and
    # is not passed to isfinite, which raises OverflowError for one beyond a float's range.
    return (math.isfinite(value) if type(value) is float
            else type(value) is int and -ID_MAX - 1 <= value <= ID_MAX)


def _is_event(record: Any, emoticon_types: Collection[str], match_id: int | None) -> bool:
    # The fast check, one per record on the backup's hot path (_is_id and _is_timestamp
    # written out: calls cost more there than the checks): poison_reason says why not.
    if type(record) is not dict or record.keys() != FIELDS:
        return False
    user_id, record_match, timestamp = record["user_id"], record["match_id"], record["timestamp"]
    return (type(user_id) is int and 1 <= user_id <= ID_MAX
            and type(record_match) is int and 1 <= record_match <= ID_MAX
            and (math.isfinite(timestamp) if type(timestamp) is float
                 else type(timestamp) is int and -ID_MAX - 1 <= timestamp <= ID_MAX)
            and type(record["emoticon_type"]) is str
            and record["emoticon_type"] in emoticon_types
            and (match_id is None or record_match == match_id))


def _shown(value: Any) -> str:
    """``repr(value)``, cut (foundation/shown.py)."""
    return cut(repr(value))


def _names(names: Iterable[str]) -> str:
    """Field names joined for a reason, a lone surrogate (a JSON ``"\\ud800"`` escape) shown as
    its escape: a reason must be UTF-8 for SQLite to store it, or the list could never move."""
    return ", ".join(map(cut, names)).encode("utf-8", "backslashreplace").decode("utf-8")


class _RepeatedField(ValueError):
    """A JSON object names a field twice (json.loads would keep the last value silently)."""


def _unique_fields(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    record = dict(pairs)
    if len(record) != len(pairs):
        names = [name for name, _ in pairs]
        raise _RepeatedField(_names(sorted({n for n in names if names.count(n) > 1})))
    return record


def poison_reason(text: str, emoticon_types: Collection[str],
                  match_id: int | None = None) -> str | None:
    """Why ``text`` is not exactly one valid event record, or None if it is one. ``match_id``,
    if given, is the match of the list the item came from: a record of another match is not
    this list's event (someone else wrote it there)."""
    try:
        record = json.loads(text, object_pairs_hook=_unique_fields)
    except _RepeatedField as error:  # not one record: two values for one field
        return f"repeated field {error}"
    except (*UNDECODABLE, TypeError) as error:  # "Extra data": two records in one item
        return f"not one JSON value: {error}"
    if type(record) is not dict:
        return f"not a JSON object but a {type(record).__name__}"
    if record.keys() != FIELDS:
        missing, extra = sorted(FIELDS - record.keys()), sorted(record.keys() - FIELDS)
        return "; ".join(([f"missing field {_names(missing)}"] if missing else [])
                         + ([f"extra field {_names(extra)}"] if extra else []))
    for field in ("user_id", "match_id"):
        if not _is_id(record[field]):
            return f"{field} {_shown(record[field])} is not an int from 1 to 2**63-1"
    if not _is_timestamp(record["timestamp"]):
        return (f"timestamp {_shown(record['timestamp'])} is not a finite number of seconds "
                "(a float, or an int of 64 bits)")
    if type(record["emoticon_type"]) is not str or record["emoticon_type"] not in emoticon_types:
        return (f"emoticon_type {_shown(record['emoticon_type'])} is not one of the table's "
                f"({', '.join(emoticon_types)})")
    if match_id is not None and record["match_id"] != match_id:
        return f"match_id {record['match_id']} is not its list's ({match_id})"
    return None


def borders_kept(texts: list[str] | list[bytes], joined: str | bytes | None = None) -> bool:
    """True if decoding ``texts`` joined with "," (``joined``, if already made) into one JSON
    array cannot hide an item border, so each object decoded is one item's.

    Joining the items is several times faster than one json.loads per item, but a joined array
    could hide item borders (``{a}, {b`` then ``c}``: two items, two objects, neither an item's
    own). Each item starting with the only "{" it holds rules that out: then the N objects
    decoded start at the N items' starts.
    """
    brace = b"{" if texts and type(texts[0]) is bytes else "{"
    if joined is None:
        joined = (b"," if type(brace) is bytes else ",").join(texts)
    return joined.count(brace) == len(texts) and all(text[:1] == brace for text in texts)


def _decode_all(texts: list[str], emoticon_types: Collection[str]) -> list[Any] | None:
    """Every item decoded in one json.loads, if each item is provably one JSON object naming
    no field twice (borders_kept); else None.

    Nor does json.loads tell a repeated field: a valid record has exactly 10 '"' (4 names and
    the emoticon's string, when no emoticon holds a '"'), one with a fifth name at least 12.
    """
    joined = ",".join(texts)
    if not borders_kept(texts, joined):
        return None
    if joined.count('"') != 10 * len(texts) or any('"' in e for e in emoticon_types):
        return None
    try:
        records = json.loads("[" + joined + "]")
    except UNDECODABLE:
        return None
    return records if len(records) == len(texts) else None


def sort_items(texts: list[str], emoticon_types: Collection[str], match_id: int | None = None
               ) -> tuple[list[dict[str, Any]], list[tuple[str, str]]]:
    """Split stored items into ``(events, poison)``: the valid records decoded, in order, and
    ``(raw text, reason)`` for every other item. ``len(events) + len(poison) == len(texts)``.
    ``match_id``: the match of the list they came from, if one list (see poison_reason)."""
    records = _decode_all(texts, emoticon_types)
    if records is not None:
        for record in records:  # a loop: cheaper than all() over a generator (CPython 3.11)
            if not _is_event(record, emoticon_types, match_id):
                break
        else:
            return records, []
    events, poison = [], []
    for text in texts:
        reason = poison_reason(text, emoticon_types, match_id)
        if reason is None:
            events.append(json.loads(text))
        else:
            poison.append((text, reason))
    return events, poison


def named_cell(record: Any) -> tuple[int, str] | None:
    """The ``(match_id, emoticon_type)`` a decoded item names, or None if it names none.

    An item that names a cell was counted under that cell's counter when it was posted, even if
    it is otherwise spoiled (poison): the system-wide reconciliation counts it there, pending in
    Redis (reconcile.py) or dead-lettered (ReactionsTable.dead_letter_cells).
    """
    if type(record) is dict:
        match_id, emoticon_type = record.get("match_id"), record.get("emoticon_type")
        if type(match_id) is int and type(emoticon_type) is str:
            return match_id, emoticon_type
    return None
