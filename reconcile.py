"""The system-wide reconciliation of one Redis key prefix and one database file, at any time.

Every counter ``{prefix}{match_id}_{emoticon}`` must equal the rows of that match and emoticon in
ReactionsTable plus its events still pending in Redis (live or staged lists), plus those another
sink holds (dead letters, spill files: ``sinks``). It holds at every instant, even while
several processes post and back up: a POST counts and appends in one MULTI/EXEC, and the backup
commits rows before it deletes their list.

Read with ``python3 main.py --reconcile --redis-url URL --db FILE [--key-prefix P]``.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable, Iterable

from db import ReactionsTable
from redis_adapter import RedisAdapter, decode_events

__all__ = ["Reconciliation", "reconcile", "Sink"]

logger = logging.getLogger(__name__)

Sink = Callable[[], dict[tuple[int, str], int]]
"""Another place events can end up (issue 6: dead letters, spill files): a function returning
its events per ``(match_id, emoticon_type)``. reconcile() adds them to the rows and pending."""

_TRIES = 20  # views taken until one had no backup commit inside it; then the last is reported


@dataclass
class Reconciliation:
    """Totals over every counter of the prefix, and the counters that do not add up."""

    counters: int
    """Sum of the counters: reactions ever counted."""
    rows: int
    """Rows in the table (of the counted matches and emoticons)."""
    pending: int
    """Events in Redis lists not yet in the table."""
    sinks: int = 0
    """Events held by the other sinks (dead letters, spill files), 0 until those exist."""
    mismatches: dict[tuple[int, str], tuple[int, int]] = field(default_factory=dict)
    """``{(match_id, emoticon): (counter, rows + pending + sinks)}`` where they differ."""
    consistent: bool = True
    """False if every view read had a backup commit in it (a busy system): then best effort."""

    @property
    def ok(self) -> bool:
        return not self.mismatches

    def line(self) -> str:
        """One line: ``counters=N database_rows=N pending_in_redis=N ... OK|MISMATCH``."""
        extra = f" other_sinks={self.sinks}" if self.sinks else ""
        verdict = "OK" if self.ok else f"MISMATCH in {len(self.mismatches)} counters"
        caveat = "" if self.consistent else " (backups committed while reading: best effort)"
        return (f"system-wide reconciliation: redis_counters={self.counters} "
                f"database_rows={self.rows} pending_in_redis={self.pending}{extra} "
                f"{verdict}{caveat}")


def reconcile(adapter: RedisAdapter, table: ReactionsTable,
              sinks: Iterable[Sink] = ()) -> Reconciliation:
    """Compare every counter of ``adapter``'s prefix with the rows, pending events and sinks.

    Reads Redis in one MULTI/EXEC between two reads of the table, and takes the view again
    while a backup committed in between (the same events would be both rows and pending).
    A staged list whose rows are committed but which is not deleted yet is in the ledger: it is
    counted as rows, not pending.
    """
    for _ in range(_TRIES):
        # The ledger as it was before Redis was read: a list staged then is deleted, and only
        # afterwards forgotten, after the read; a later ledger might have forgotten it already.
        rows_before, ledger = table.census()
        counters, pending = _redis_view(adapter)
        rows, _ = table.census()
        if rows == rows_before:
            break
    consistent = rows == rows_before
    pending_counts = Counter()
    for key, counts in pending.items():
        if key not in ledger:
            pending_counts.update(counts)
    other = Counter()
    for sink in sinks:
        other.update(sink())
    mismatches = {}
    for cell in set(counters) | set(rows) | set(pending_counts) | set(other):
        held = rows.get(cell, 0) + pending_counts[cell] + other[cell]
        if counters.get(cell, 0) != held:
            mismatches[cell] = (counters.get(cell, 0), held)
    return Reconciliation(sum(counters.values()), sum(rows.values()),
                          sum(pending_counts.values()), sum(other.values()), mismatches,
                          consistent)


def _redis_view(adapter: RedisAdapter
                ) -> tuple[dict[tuple[int, str], int], dict[str, Counter]]:
    """Counters per (match, emoticon) and each pending list's events per (match, emoticon),
    read in one MULTI/EXEC; SCANned again until no key appeared or went meanwhile."""
    counter_keys, list_keys = adapter.counter_keys(), sorted(adapter.pending_keys())
    for _ in range(_TRIES):
        pipe = adapter.redis.pipeline(transaction=True)
        if counter_keys:
            pipe.mget(list(counter_keys))
        for key in list_keys:
            pipe.lrange(key, 0, -1)
        replies = pipe.execute()
        keys_then = (counter_keys, list_keys)
        counter_keys, list_keys = adapter.counter_keys(), sorted(adapter.pending_keys())
        if (counter_keys, list_keys) == keys_then:
            break
    values = replies.pop(0) if keys_then[0] else []
    counters = {cell: int(value or 0) for cell, value in zip(keys_then[0].values(), values)}
    pending = {key: Counter((event["match_id"], event["emoticon_type"])
                            for event in decode_events(texts))
               for key, texts in zip(keys_then[1], replies)}
    return counters, pending
