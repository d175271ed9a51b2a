"""The write-behind backup: BackupDataManager moves the event lists from Redis to ReactionsTable.

The seed reads every ``match_data_*`` list, inserts it, then deletes the keys; an event posted
between the read and the delete is deleted unsaved. Here every list is first renamed to a staging
key of this run, all in one atomic step, so new events start fresh lists and the run moves exactly
what was pending at that instant. Each staged list is inserted in one transaction that also
records the list's name in the table's ledger (backup_batches), and only then deleted from Redis.

So every event reaches the table exactly once: a failed insert rolls back and leaves its list
staged for the next run; a list whose rows are in but whose DEL did not happen is recognised by
the ledger and not inserted again, even by a second backup worker.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from dataclasses import dataclass

from db import ReactionsTable, get_reactions_table
from redis_adapter import RedisAdapter, get_adapter

__all__ = ["BackupDataManager", "BackupResult", "BackupError"]

logger = logging.getLogger(__name__)

_batch_numbers = itertools.count()  # tells apart runs started in the same nanosecond


@dataclass(frozen=True)
class BackupResult:
    """What one backup run did."""

    events: int
    """Event records moved from Redis into the table."""
    keys: int
    """Redis lists moved (one per match with new events, plus any older staged list)."""
    seconds: float
    """Wall time the run took, in seconds."""


class BackupError(Exception):
    """Some staged lists could not be moved; they stay in Redis for the next run.

    ``result`` is what the run did move; ``errors`` maps each failed staged key to its error.
    The first error is also the ``__cause__``.
    """

    def __init__(self, result: BackupResult, errors: dict[str, BaseException]) -> None:
        self.result, self.errors = result, errors
        key, error = next(iter(errors.items()))
        super().__init__(f"{len(errors)} of {result.keys + len(errors)} lists not moved, "
                         f"left in Redis for the next run; first: {key}: {error!r}")


def new_batch() -> str:
    """A name for one backup run, unique and sorting in start order (nanoseconds, then count)."""
    return f"{time.time_ns():020d}.{next(_batch_numbers) % 10_000:04d}"


class BackupDataManager:
    """Moves every pending event list from Redis into ReactionsTable, then frees it in Redis.

    ``adapter`` and ``table`` default to the process-wide ones. ``run()`` may be called from any
    thread; runs of one manager never overlap (a second caller waits for the first). Several
    managers on the same Redis and table may run at once: the ledger keeps them exactly-once.
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

        Staged lists left by earlier runs go first, so the table keeps the posting order per
        match. A list that fails (sqlite3.Error, ...) is rolled back and left staged while the
        others still move; then BackupError is raised with what did move. Nothing is lost or
        doubled either way.
        """
        with self._run_lock:
            started = time.monotonic()
            leftovers = self.adapter.staged_keys()
            staged = self.adapter.stage_all(self.adapter.match_data_keys(), new_batch())
            events, errors = 0, {}
            for key in leftovers + staged:
                try:
                    events += self._move(key)
                except Exception as error:  # the list stays staged; the next run retries it
                    errors[key] = error
            result = BackupResult(events, len(leftovers) + len(staged) - len(errors),
                                  time.monotonic() - started)
            if errors:
                raise BackupError(result, errors) from next(iter(errors.values()))
            return result

    def _move(self, staged: str) -> int:
        """Insert one staged list (recorded in the ledger), delete it from Redis, forget it."""
        moved = self.table.insert_many(self.adapter.iter_events(staged), batch=staged)
        self.adapter.drop(staged)
        self.table.forget_batch(staged)  # the list is gone: its name cannot come back
        logger.debug("backed up %d events from %s", moved, staged)
        return moved
