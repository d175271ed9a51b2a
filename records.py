"""Event records as stored text: which items are exactly one valid record, and why the others not.

A Redis list item (or a spill-file line) must be exactly one JSON object with the seed's four
fields ``{user_id, emoticon_type, timestamp, match_id}``: ids ints from 1 to 2**63-1 (SQLite's
INTEGER), ``emoticon_type`` one the table allows, ``timestamp`` a finite number of Unix seconds.
Anything else -- not JSON, two records in one item, a missing or extra field, a wrong type, an
emoticon the table's CHECK refuses -- is a poison item: the backup dead-letters it (db.py) rather
than let it block its list or become two rows. This module is the one place that rule lives.
"""

from __future__ import annotations

import json
import math
from typing import Any, Collection

__all__ = ["FIELDS", "ID_MAX", "poison_reason", "sort_items"]

FIELDS = frozenset({"user_id", "emoticon_type", "timestamp", "match_id"})
"""The fields of an event record (seed: the Redis snapshot), no more, no fewer."""
ID_MAX = 2 ** 63 - 1
"""The largest id: SQLite INTEGERs are signed 64-bit."""


def _is_id(value: Any) -> bool:
    return type(value) is int and 1 <= value <= ID_MAX


def _is_timestamp(value: Any) -> bool:
    return type(value) in (int, float) and math.isfinite(value)


def _is_event(record: Any, emoticon_types: Collection[str]) -> bool:
    # The fast check, one per record on the backup's hot path: poison_reason says why not.
    return (type(record) is dict and record.keys() == FIELDS and _is_id(record["user_id"])
            and _is_id(record["match_id"]) and _is_timestamp(record["timestamp"])
            and type(record["emoticon_type"]) is str
            and record["emoticon_type"] in emoticon_types)


def poison_reason(text: str, emoticon_types: Collection[str]) -> str | None:
    """Why ``text`` is not exactly one valid event record, or None if it is one."""
    try:
        record = json.loads(text)
    except (ValueError, TypeError) as error:  # "Extra data": two records in one item
        return f"not one JSON value: {error}"
    if type(record) is not dict:
        return f"not a JSON object but a {type(record).__name__}"
    if record.keys() != FIELDS:
        missing, extra = sorted(FIELDS - record.keys()), sorted(record.keys() - FIELDS)
        return "; ".join(([f"missing field {', '.join(missing)}"] if missing else [])
                         + ([f"extra field {', '.join(extra)}"] if extra else []))
    for field in ("user_id", "match_id"):
        if not _is_id(record[field]):
            return f"{field} {record[field]!r} is not an int from 1 to 2**63-1"
    if not _is_timestamp(record["timestamp"]):
        return f"timestamp {record['timestamp']!r} is not a finite number of seconds"
    if type(record["emoticon_type"]) is not str or record["emoticon_type"] not in emoticon_types:
        return (f"emoticon_type {record['emoticon_type']!r} is not one of the table's "
                f"({', '.join(emoticon_types)})")
    return None


def _decode_all(texts: list[str]) -> list[Any] | None:
    """Every item decoded in one json.loads, if each item is provably one JSON object; else None.

    Joining the items into one array is several times faster than one json.loads per item, but a
    joined array could hide item borders (``{a}, {b`` then ``c}``). Each item starting with the
    only "{" it holds rules that out: then the N objects decoded start at the N items' starts.
    """
    joined = ",".join(texts)
    if joined.count("{") != len(texts) or not all(text[:1] == "{" for text in texts):
        return None
    try:
        records = json.loads("[" + joined + "]")
    except ValueError:
        return None
    return records if len(records) == len(texts) else None


def sort_items(texts: list[str], emoticon_types: Collection[str]
               ) -> tuple[list[dict[str, Any]], list[tuple[str, str]]]:
    """Split stored items into ``(events, poison)``: the valid records decoded, in order, and
    ``(raw text, reason)`` for every other item. ``len(events) + len(poison) == len(texts)``."""
    records = _decode_all(texts)
    if records is not None and all(_is_event(record, emoticon_types) for record in records):
        return records, []
    events, poison = [], []
    for text in texts:
        reason = poison_reason(text, emoticon_types)
        if reason is None:
            events.append(json.loads(text))
        else:
            poison.append((text, reason))
    return events, poison
