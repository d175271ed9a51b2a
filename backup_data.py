"""The write-behind backup: BackupDataManager moves the event lists from Redis to ReactionsTable.

The seed reads every ``match_data_*`` list, inserts it, then deletes the keys; an event posted
between the read and the delete is deleted unsaved. Here every list is first renamed to a staging
key, all in one atomic step, so new events start fresh lists and the run moves exactly what was
pending at that instant. Each staged list is inserted in one transaction and only then deleted.
If an insert fails, the staged lists stay in Redis and the next run inserts them first: every
event reaches the table exactly once.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

from db import ReactionsTable, get_reactions_table
from redis_adapter import RedisAdapter, get_adapter

__all__ = ["BackupDataManager", "BackupResult"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class BackupResult:
    """What one backup run did."""

    events: int
    """Event records moved from Redis into the table."""
    keys: int
    """Redis lists moved (one per match with new events, plus any retried staged list)."""
    seconds: float
    """Wall time the run took, in seconds."""


class BackupDataManager:
    """Moves every pending event list from Redis into ReactionsTable, then frees it in Redis.

    ``adapter`` and ``table`` default to the process-wide ones. ``run()`` may be called from any
    thread; runs of one manager never overlap (a second caller waits for the first).
    """

    def __init__(self, adapter: RedisAdapter | None = None,
                 table: ReactionsTable | None = None) -> None:
        self.adapter = adapter if adapter is not None else get_adapter()
        self.table = table if table is not None else get_reactions_table()
        self._run_lock = threading.Lock()

    @property
    def running(self) -> bool:
        """True while a run is in progress (a caller of run() would wait for it)."""
        return self._run_lock.locked()

    def run(self) -> BackupResult:
        """Move all pending events; return how many, from how many keys, in how many seconds.

        Staged lists left by a failed run go first, so the table keeps the posting order per
        match. Raises what the insert raised (sqlite3.Error, ...) after rolling it back; the
        events of that list, and of lists not reached yet, stay staged in Redis for the next
        run: none is lost or doubled.
        """
        with self._run_lock:
            started = time.monotonic()
            leftovers = self.adapter.staged_keys()  # from a failed run: older than the live lists
            events = sum(self._move(key) for key in leftovers)
            # Staged only now, so that no live list is refused for a leftover still waiting.
            staged = self.adapter.stage_all(self.adapter.match_data_keys())
            events += sum(self._move(key) for key in staged)
            return BackupResult(events, len(leftovers) + len(staged), time.monotonic() - started)

    def _move(self, staged: str) -> int:
        """Insert one staged list in one transaction, then delete it from Redis."""
        moved = self.table.insert_many(self.adapter.iter_events(staged))
        self.adapter.drop(staged)
        logger.debug("backed up %d events from %s", moved, staged)
        return moved
