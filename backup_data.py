"""The write-behind backup: BackupDataManager moves the event lists from Redis to ReactionsTable.

The seed reads every ``match_data_*`` list, inserts it, then deletes the keys; an event posted
between the read and the delete is deleted unsaved. Here each list is first RENAMEd (atomically)
to a staging key, so new events start a fresh list; the staged list is inserted in one transaction
and only then deleted. If the insert fails the staged list stays in Redis and the next run inserts
it first: every event reaches the table exactly once.
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

    def run(self) -> BackupResult:
        """Move all pending events; return how many, from how many keys, in how many seconds.

        Staged lists left by a failed run go first, so the table keeps the posting order per
        match. Raises what the insert raised (sqlite3.Error, ...) after rolling it back; the
        events of that list stay staged in Redis for the next run, none is lost or doubled.
        """
        with self._run_lock:
            started = time.monotonic()
            events = keys = 0
            for staged in self.adapter.staged_keys():
                events += self._move(staged)
                keys += 1
            for key in self.adapter.match_data_keys():
                staged = self.adapter.stage(key)
                if staged is None:
                    continue
                events += self._move(staged)
                keys += 1
            return BackupResult(events, keys, time.monotonic() - started)

    def _move(self, staged: str) -> int:
        """Insert one staged list in one transaction, then delete it from Redis."""
        moved = self.table.insert_many(self.adapter.iter_events(staged))
        self.adapter.drop(staged)
        logger.debug("backed up %d events from %s", moved, staged)
        return moved
