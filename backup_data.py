"""The write-behind backup: BackupDataManager moves the event lists from Redis to ReactionsTable.

The seed reads every ``match_data_*`` list, inserts it, then deletes the keys; an event posted
between the read and the delete is deleted unsaved. Here every list is first renamed to a staging
key of this run, all in one atomic step, so new events start fresh lists and the run moves exactly
what was pending at that instant. Each staged list is inserted in one transaction that also
records the list's name in the table's ledger (backup_batches), and only then deleted from Redis.

So every event reaches the table exactly once: a failed insert rolls back and leaves its list
staged for the next run; a list whose rows are in but whose DEL did not happen is recognised by
the ledger and not inserted again, even by a second backup worker. An item that is not exactly one
valid record (records.py) goes to the table dead_letters in the same transaction, and the list is
deleted only once rows + dead letters equal the items read from it. Each run waits at most
``busy_timeout`` seconds in all for a database locked by another process (a deadline per run).
"""

from __future__ import annotations

import itertools
import logging
import os
import secrets
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Collection, Iterable, Iterator

from db import DeadLetter, ReactionsTable, get_reactions_table
from foundation.records import sort_items
from redis_adapter import UNRECORDED_SOURCE, RedisAdapter, error_text, get_adapter

__all__ = ["BackupDataManager", "BackupResult", "BackupProgress", "BackupError",
           "CountMismatchError", "StagedListGone", "SortedItems", "PROGRESS_SECONDS"]

logger = logging.getLogger(__name__)

PROGRESS_SECONDS = 5.0
"""A run still going after this many seconds reports its progress, then again this often."""

_batch_numbers = itertools.count()  # tells apart runs started in the same nanosecond
_PROCESS_TAG = secrets.token_hex(4)  # tells apart processes with one pid (other hosts)


@dataclass(frozen=True)
class BackupResult:
    """What one backup run did."""

    events: int
    """Event records moved from Redis into the table."""
    keys: int
    """Redis lists moved (one per match with new events, plus any older staged list)."""
    seconds: float
    """Wall time the run took, in seconds."""
    dead_lettered: int = 0
    """Items moved into the table dead_letters instead (not exactly one valid record)."""


@dataclass(frozen=True)
class BackupProgress:
    """How far a long backup run has got, for its progress line (BackupDataManager.run)."""

    lists: int
    """Lists moved so far (their rows committed)."""
    of_lists: int
    """Lists this run set out to move."""
    events: int
    """Events moved so far, plus those read of the list in progress (not yet committed)."""
    seconds: float
    """Seconds since the run started."""


ProgressCallback = Callable[[BackupProgress], None]


class _ProgressClock:
    """The one rule for progress reports: the first once a run has taken ``every`` seconds,
    then at most one per ``every`` seconds, checked after each chunk read and each list moved
    (so one huge list reports too)."""

    def __init__(self, report: ProgressCallback | None, every: float, of_lists: int,
                 clock: Callable[[], float], started: float) -> None:
        self.report, self.every, self.of_lists, self.clock = report, every, of_lists, clock
        self.started = started  # the run's start: its staging step counts too
        self._next = started + every
        self.lists, self.events = 0, 0

    def chunks(self, chunks: Iterable[list[str]]) -> Iterator[list[str]]:
        """``chunks`` as they are, checking the clock after each (its items count as events)."""
        read = 0
        for chunk in chunks:
            yield chunk
            read += len(chunk)
            self.check(read)

    def moved(self, events: int) -> None:
        """One more list moved, with ``events`` rows."""
        self.lists, self.events = self.lists + 1, self.events + events
        self.check()

    def check(self, reading: int = 0) -> None:
        now = self.clock()
        if self.report is None or now < self._next:
            return
        self._next = now + self.every
        try:
            self.report(BackupProgress(self.lists, self.of_lists, self.events + reading,
                                       now - self.started))
        except Exception:  # a report is no part of the move: it must not fail a list
            logger.exception("backup progress report failed")


class BackupError(Exception):
    """Some staged lists could not be moved; they stay staged in Redis (a later run retries them
    while the process lives).

    ``result`` is what the run did move; ``errors`` maps each failed staged key to its error.
    The first error is also the ``__cause__``.
    """

    def __init__(self, result: BackupResult, errors: dict[str, BaseException]) -> None:
        self.result, self.errors = result, errors
        key, error = next(iter(errors.items()))
        super().__init__(f"{len(errors)} of {result.keys + len(errors)} lists not moved, "
                         f"kept staged in Redis; first: {key}: {error_text(error)}")


class CountMismatchError(RuntimeError):
    """Rows + dead letters written for a list differ from the items read from it (rolled back)."""


class StagedListGone(Exception):
    """A staged list held no items when its transaction read it: another backup worker moved
    and deleted it meanwhile (Redis keeps no empty list). Its transaction is rolled back, so
    the ledger never names a list whose rows it did not insert."""


def new_batch(dataset: str | None = None) -> str:
    """A name for one backup run, sorting in start order (nanoseconds first), then unique
    across processes sharing one Redis and one ledger: the pid, a random part drawn once per
    process (pids repeat across hosts and restarts) and a per-process count; then, if given,
    ``dataset``, the id of the Redis dataset whose lists the run stages
    (RedisAdapter.source_id), so that its ledger rows can be told apart (_dataset_suffix)."""
    name = (f"{time.time_ns():020d}.{os.getpid()}.{_PROCESS_TAG}."
            f"{next(_batch_numbers) % 10_000:04d}")
    suffix = _dataset_suffix(dataset)
    return name if suffix is None else name + suffix


def _dataset_suffix(dataset: str | None) -> str | None:
    """How the names of the lists staged from ``dataset`` end (``.{dataset}``); None for no
    dataset, or one no name can carry (not letters and digits) or that is not one Redis's own
    (UNRECORDED_SOURCE, which every Redis over its memory limit shares)."""
    if (not dataset or dataset == UNRECORDED_SOURCE or not dataset.isascii()
            or not dataset.isalnum()):
        return None
    return "." + dataset


class SortedItems:
    """Stored items on their way to the table: ``events()`` yields the valid records of
    ``chunks`` (lists of item texts, e.g. a staged list's LRANGEs; all of match ``match_id``, if
    given, as a list's are), and fills, as it runs, ``dead_letters`` (the poison items, tagged
    with ``key``) and ``read`` (items seen); ``started`` is True once ``events()`` was first
    iterated (a batch the ledger skips is not)."""

    def __init__(self, chunks: Iterable[list[str]], key: str,
                 emoticon_types: Collection[str], match_id: int | None = None) -> None:
        self.chunks, self.key, self.emoticon_types = chunks, key, emoticon_types
        self.match_id = match_id
        self.read = 0
        self.started = False
        self.dead_letters: list[DeadLetter] = []

    def events(self) -> Iterator[dict[str, Any]]:
        self.started = True
        for chunk in self.chunks:
            self.read += len(chunk)
            events, poison = sort_items(chunk, self.emoticon_types, self.match_id)
            self.dead_letters += [DeadLetter(raw, reason, self.key) for raw, reason in poison]
            yield from events

    def verify(self, rows: int, dead: int) -> None:
        """Raise CountMismatchError unless every item read became one row or one dead letter."""
        if rows + dead != self.read:
            raise CountMismatchError(f"{self.key}: read {self.read} items but wrote {rows} rows "
                                     f"and {dead} dead letters")


class BackupDataManager:
    """Moves every pending event list from Redis into ReactionsTable, then frees it in Redis.

    ``adapter`` and ``table`` default to the process-wide ones. ``busy_timeout`` (seconds,
    default the table's) bounds each run's waits for a database locked by another process, all
    lists together. ``run()`` may be called from any thread; runs of one manager never overlap (a
    second caller waits for the first). Several managers on the same Redis and table may run at
    once: the ledger keeps them exactly-once. ``events`` and ``dead_lettered`` total what this
    manager's runs wrote; ``committed`` holds staged keys whose rows are in the table but whose
    DEL failed (whoever writes the pending events elsewhere must skip them); ``unforgotten``
    holds lists moved and deleted whose ledger row could not be dropped yet (moved all the
    same: the next run drops the row). ``progress_seconds`` and ``clock`` (monotonic seconds)
    pace the progress reports of run(on_progress=...).
    """

    def __init__(self, adapter: RedisAdapter | None = None,
                 table: ReactionsTable | None = None,
                 busy_timeout: float | None = None,
                 progress_seconds: float = PROGRESS_SECONDS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.adapter = adapter if adapter is not None else get_adapter()
        self.table = table if table is not None else get_reactions_table()
        self.busy_timeout = self.table.busy_timeout if busy_timeout is None else busy_timeout
        self.events = 0
        self.dead_lettered = 0
        self.committed: set[str] = set()
        self.unforgotten: set[str] = set()
        self._run_lock = threading.Lock()
        self.progress_seconds, self._clock = progress_seconds, clock

    @property
    def running(self) -> bool:
        """True while a run is in progress (a caller of run() would wait for it)."""
        return self._run_lock.locked()

    def run(self, on_progress: ProgressCallback | None = None) -> BackupResult:
        """Move all pending events; return how many, from how many keys, in how many seconds.

        A run that lasts (many lists, or a huge one) calls ``on_progress`` with a
        BackupProgress once it has run ``progress_seconds``, then at most that often, from
        this thread, while it goes on (none for a quick run).

        Staged lists left by earlier runs go first, so the table keeps the posting order per
        match. A list that fails (sqlite3.Error, the run's busy deadline passed, ...) is rolled
        back and left staged while the others still move; then BackupError is raised with what
        did move. Nothing is lost or doubled either way.
        """
        with self._run_lock:
            started = time.monotonic()
            progress_started = self._clock()
            deadline = started + self.busy_timeout
            dataset = self.adapter.source_id()
            leftovers = self.adapter.staged_keys()
            staged = self.adapter.stage_all(self.adapter.match_data_keys(), new_batch(dataset))
            progress = _ProgressClock(on_progress, self.progress_seconds,
                                      len(leftovers) + len(staged), self._clock,
                                      progress_started)
            events, dead, errors, gone = 0, 0, {}, 0
            for key in leftovers + staged:
                try:
                    rows, letters = self._insert(key, deadline, dataset, progress)
                except StagedListGone:  # moved by another worker: nothing left to do
                    gone += 1
                    continue
                except Exception as error:  # the list stays staged; the next run retries it
                    errors[key] = error
                    continue
                events, dead = events + rows, dead + letters
                # In the table from now on: the status line reads these totals (main.py).
                self.events, self.dead_lettered = self.events + rows, self.dead_lettered + letters
                progress.moved(rows)
                try:
                    self.adapter.drop(key)
                except Exception as error:  # in the table already: the ledger skips it later
                    errors[key] = error
                    self.committed.add(key)
                    continue
                self.committed.discard(key)
                self.unforgotten.add(key)
            self._forget(deadline)
            self._sweep(dataset, deadline)
            result = BackupResult(events, len(leftovers) + len(staged) - len(errors) - gone,
                                  time.monotonic() - started, dead)
            if errors:
                raise BackupError(result, errors) from next(iter(errors.values()))
            return result

    def _insert(self, staged: str, deadline: float, dataset: str,
                progress: _ProgressClock) -> tuple[int, int]:
        """Insert one staged list with its dead letters (recorded in the ledger, its rows
        counted for ``dataset``: RedisAdapter.source_id)."""
        chunks = progress.chunks(self.adapter.iter_items(staged))
        source = SortedItems(chunks, staged, self.table.emoticon_types,
                             self.adapter.layout.list_match_id(staged))

        def verify(rows: int, dead: int) -> None:
            if source.started and not source.read:
                raise StagedListGone(staged)
            source.verify(rows, dead)

        rows, dead = self.table.insert_batch(source.events(), staged, source.dead_letters,
                                             verify, deadline, dataset)
        logger.debug("backed up %d events and %d dead letters from %s", rows, dead, staged)
        return rows, dead

    def _forget(self, deadline: float) -> None:
        """Drop from the ledger the lists moved and deleted from Redis (their names cannot come
        back). A failure (the file locked) is no failure of the move: they are kept in
        ``unforgotten`` and the next run tries again; a ledger row left behind is harmless."""
        if not self.unforgotten:
            return
        try:
            self.table.forget_batches(sorted(self.unforgotten), deadline)
        except Exception as error:
            logger.debug("%d ledger rows kept until the next run: %r", len(self.unforgotten),
                         error)
            return
        self.unforgotten.clear()

    def _sweep(self, dataset: str, deadline: float) -> None:
        """Drop the ledger rows of ``dataset``'s staged lists that are gone from Redis.

        A backup killed after deleting a list but before dropping its ledger row leaves the
        row behind for good: the list's name never comes back, so nothing else drops it. The
        names of the lists a run stages end with the dataset's id (new_batch), so this run can
        tell its Redis's rows from those of other Redis servers sharing the file, and ask its
        Redis whether each list is still there. The ledger is read first and Redis after: a
        row read while its list still exists is kept, so a list committed but not deleted yet
        (by any worker) keeps the row that stops its rows going in twice. A failure (the file
        locked) is no failure of the backup: the next run sweeps."""
        suffix = _dataset_suffix(dataset)
        if suffix is None:
            return
        try:
            names = [name for name in self.table.batches_ending(suffix)
                     if self.adapter.layout.is_staged(name)]
            gone = sorted(set(names) - self.adapter.existing(names)) if names else []
            if gone:
                self.table.forget_batches(gone, deadline)
                logger.debug("dropped %d ledger rows of lists gone from Redis", len(gone))
        except Exception as error:
            logger.debug("ledger sweep left for the next run: %r", error)
