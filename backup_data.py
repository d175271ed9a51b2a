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

A Redis outside this process can forget (docs/real-redis.md, "When Redis forgets"): emptied
(FLUSHDB, a restart without persistence), replaced, or rewound to an earlier state (a restart
from an older snapshot, a failover to a replica that lagged), which brings back lists already
moved. So on a shared Redis each staging also reads the dataset id and the counters and
increments the backup generation, and each deletion of a moved list increments it too; the
database records the generation with the rows. A generation at or below the recorded one means
Redis went back: the lists it holds then are put on a recheck list and each of their items
already in the table is skipped, never inserted twice. A dataset id gone or changed means it was
emptied or replaced. Either way the acknowledged events found in no table are recorded
(ReactionsTable.record_loss) and said once, in one line, by the process that recorded them.
"""

from __future__ import annotations

import itertools
import logging
import os
import secrets
import threading
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any, Callable, Collection, Iterable, Iterator

import config
from db import DeadLetter, ReactionsTable, content_of, get_reactions_table
from foundation.errors import ForeignValueError
from foundation.records import sort_items
from redis_adapter import (UNRECORDED_SOURCE, RedisAdapter, Staging, count_cells, error_text,
                           get_adapter, is_refused_command)

__all__ = ["BackupDataManager", "BackupResult", "BackupProgress", "BackupError",
           "BackupRefused", "CountMismatchError", "StagedListGone", "SortedItems",
           "PROGRESS_SECONDS", "clock_time", "between", "Forgotten"]

logger = logging.getLogger(__name__)

PROGRESS_SECONDS = 5.0
"""A run still going after this many seconds reports its progress, then again this often."""
TELL_AFTER_SECONDS = 2.0
"""A loss found is said this long after it was found, at the earliest: a posting process
writes what Redis acknowledged to it every second (live/preflight.py), and the figure should
hold what it saw before the loss."""

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


class BackupRefused(BackupError):
    """Redis refused the backup as a whole: one of our own keys holds another application's
    value (ForeignValueError), or the server refuses a command it needs (an ACL, a renamed
    command). Nothing was moved; the message is one line naming the key or the command."""

    def __init__(self, error: BaseException) -> None:
        self.result, self.errors = BackupResult(0, 0, 0.0), {}
        Exception.__init__(self, f"nothing moved: {error_text(error)}")


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
                 emoticon_types: Collection[str], match_id: int | None = None,
                 copies: tuple[Counter, Counter] | None = None) -> None:
        self.chunks, self.key, self.emoticon_types = chunks, key, emoticon_types
        self.match_id = match_id
        self.read = 0
        self.started = False
        self.dead_letters: list[DeadLetter] = []
        # (rows, dead letters) already in the table that items here may be copies of
        # (ReactionsTable.rows_like): each such item is skipped, as many times as it is there.
        self.copies = copies
        self.skipped = 0

    def events(self) -> Iterator[dict[str, Any]]:
        self.started = True
        for chunk in self.chunks:
            self.read += len(chunk)
            events, poison = sort_items(chunk, self.emoticon_types, self.match_id)
            if self.copies is not None:
                events, poison = self._without_copies(events, poison)
            self.dead_letters += [DeadLetter(raw, reason, self.key) for raw, reason in poison]
            yield from events

    def _without_copies(self, events: list[dict[str, Any]], poison: list[tuple[str, str]]
                        ) -> tuple[list[dict[str, Any]], list[tuple[str, str]]]:
        rows, letters = self.copies
        kept, kept_poison = [], []
        for event in events:
            content = content_of(event)
            if rows[content] > 0:
                rows[content] -= 1
                self.skipped += 1
            else:
                kept.append(event)
        for raw, reason in poison:
            if letters[raw] > 0:
                letters[raw] -= 1
                self.skipped += 1
            else:
                kept_poison.append((raw, reason))
        return kept, kept_poison

    def verify(self, rows: int, dead: int) -> None:
        """Raise CountMismatchError unless every item read became one row or one dead letter
        (or was skipped as a copy of one already in the table)."""
        if rows + dead + self.skipped != self.read:
            raise CountMismatchError(f"{self.key}: read {self.read} items but wrote {rows} rows "
                                     f"and {dead} dead letters"
                                     + (f", skipped {self.skipped} copies" if self.skipped
                                        else ""))


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
        self.dataset: str | None = None  # a shared Redis's dataset id, as the last run found it
        self._generation = 0  # the highest generation of the deletions in ``unforgotten``
        self._told_restored = False

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
        did move. Nothing is lost or doubled either way. On a shared Redis the run also finds
        out whether Redis forgot (the module's docstring), and raises BackupRefused when Redis
        refuses it as a whole (a key of ours holding another application's value, a command
        refused).
        """
        with self._run_lock:
            started = time.monotonic()
            progress_started = self._clock()
            deadline = started + self.busy_timeout
            if self.adapter.acks is None:
                dataset = self.adapter.source_id()
                leftovers = self.adapter.staged_keys()
                staged = self.adapter.stage_all(self.adapter.match_data_keys(),
                                                new_batch(dataset))
                keys = {key: dataset for key in leftovers + staged}
                forgotten = []
            else:
                try:
                    keys, forgotten = self._stage_shared(deadline)
                except Exception as error:
                    if isinstance(error, ForeignValueError) or is_refused_command(error):
                        raise BackupRefused(error) from error
                    raise
                dataset = self.dataset
            progress = _ProgressClock(on_progress, self.progress_seconds, len(keys),
                                      self._clock, progress_started)
            events, dead, errors, gone = self._move(keys, deadline, progress)
            self._forget(deadline)
            self._sweep(dataset, deadline)
            for found in forgotten:
                time.sleep(max(0.0, found.found + TELL_AFTER_SECONDS - time.time()))
                self._tell(found)
            result = BackupResult(events, len(keys) - len(errors) - gone,
                                  time.monotonic() - started, dead)
            if errors:
                raise BackupError(result, errors) from next(iter(errors.values()))
            return result

    def _move(self, keys: dict[str, str], deadline: float, progress: _ProgressClock
              ) -> tuple[int, int, dict[str, BaseException], int]:
        """Insert each staged list of ``keys`` (``{key: its dataset}``, in order), then
        delete it; (events, dead letters, {key: error} for those left staged, lists another
        worker had moved)."""
        events, dead, errors, gone = 0, 0, {}, 0
        recheck = self.table.recheck() if self.adapter.acks is not None else {}
        copies = self._copies([key for key in keys if key in recheck]) if recheck else None
        for key, dataset in keys.items():
            try:
                rows, letters = self._insert(key, deadline, recheck.get(key, dataset), progress,
                                             copies if key in recheck else None)
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
                generation = self.adapter.drop(key)
            except Exception as error:  # in the table already: the ledger skips it later
                errors[key] = error
                self.committed.add(key)
                continue
            self.committed.discard(key)
            if self.adapter.acks is None or generation is not None:
                # On a shared Redis a ledger row is dropped only with the generation of the
                # deletion recorded (_forget): a Redis back to a state holding the list shows a
                # lower one. Without it (Redis over maxmemory) the row stays, and does that job.
                self._generation = max(self._generation, generation or 0)
                self.unforgotten.add(key)
        return events, dead, errors, gone

    def _insert(self, staged: str, deadline: float, dataset: str,
                progress: _ProgressClock, copies: tuple[Counter, Counter] | None = None
                ) -> tuple[int, int]:
        """Insert one staged list with its dead letters (recorded in the ledger, its rows
        counted for ``dataset``: RedisAdapter.source_id), skipping the items of ``copies``
        (ReactionsTable.rows_like) if given."""
        chunks = progress.chunks(self.adapter.iter_items(staged))
        source = SortedItems(chunks, staged, self.table.emoticon_types,
                             self.adapter.layout.list_match_id(staged), copies)

        def verify(rows: int, dead: int) -> None:
            if source.started and not source.read:
                raise StagedListGone(staged)
            source.verify(rows, dead)

        shared = None
        try:
            if self.adapter.acks is None:
                rows, dead = self.table.insert_batch(source.events(), staged,
                                                     source.dead_letters, verify, deadline,
                                                     dataset)
            else:
                shared = (self.adapter.place, self.adapter.layout.prefix,
                          self._staged_generation)
                rows, dead = self.table.insert_batch(source.events(), staged,
                                                     source.dead_letters, verify, deadline,
                                                     dataset, shared)
        except StagedListGone:
            if shared is not None:  # moved by another backup process, or deleted: a loss
                self._vanished(staged, dataset)
            raise
        if source.skipped:
            self._skipped[staged] = source.skipped
        logger.debug("backed up %d events and %d dead letters from %s", rows, dead, staged)
        return rows, dead

    def _forget(self, deadline: float) -> None:
        """Drop from the ledger the lists moved and deleted from Redis (their names cannot come
        back). A failure (the file locked) is no failure of the move: they are kept in
        ``unforgotten`` and the next run tries again; a ledger row left behind is harmless."""
        if not self.unforgotten:
            return
        dataset = None
        if self.adapter.acks is not None:
            dataset = (self.dataset, self._generation)
        try:
            if dataset is None:
                self.table.forget_batches(sorted(self.unforgotten), deadline)
            else:
                self.table.forget_batches(sorted(self.unforgotten), deadline, dataset)
        except Exception as error:
            logger.debug("%d ledger rows kept until the next run: %r", len(self.unforgotten),
                         error)
            return
        self.unforgotten.clear()
        self._generation = 0

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
                # On a shared Redis with the generation read at this run's staging, which is
                # past those deletions: a Redis back to a state holding one shows a lower one.
                shared = (None if self.adapter.acks is None
                          else (dataset, self._staged_generation))
                self.table.forget_batches(gone, deadline, shared)
                logger.debug("dropped %d ledger rows of lists gone from Redis", len(gone))
        except Exception as error:
            logger.debug("ledger sweep left for the next run: %r", error)

    # -- a shared Redis: did it forget? ------------------------------------------------------

    def _stage_shared(self, deadline: float) -> tuple[dict[str, str], list[Forgotten]]:
        """Stage the live lists and read what tells whether Redis forgot (stage_checkpoint);
        act on what it shows. ``({staged key: its dataset}, what it found Redis forgot)``."""
        adapter, table = self.adapter, self.table
        place, prefix = adapter.place, adapter.layout.prefix
        self._skipped: dict[str, int] = {}
        self._save_marks(deadline)
        known = {row["source"]: row for row in table.datasets(place, prefix)}
        expected = self.dataset or next(
            (source for source, row in known.items() if row["ended"] is None), None)
        # What Redis acknowledged in it, read before the staging reads the counters: a POST
        # acknowledged after that read may show a higher count (_unmarked).
        marks = self._marks_of(expected) if expected is not None else {}
        leftovers = adapter.staged_keys()
        # The batch names the dataset it expects, for the ledger sweep (_sweep); a dataset
        # found replaced leaves its rows to stay, harmless.
        staging = adapter.stage_checkpoint(adapter.match_data_keys(), new_batch(expected),
                                           leftovers, self._cells())
        self._staged_generation = staging.generation
        self._lengths, self._heads = staging.lengths, staging.heads
        now = time.time()
        current = staging.dataset
        forgotten = []
        if current is None:
            current, emptied = self._unmarked(staging, expected, known, marks, now)
            forgotten += emptied
        elif expected is not None and current != expected:
            forgotten.append(self._emptied(expected, known, now))
        for source, row in known.items():  # any other this table took as current: gone too
            if source not in (current, expected) and row["ended"] is None:
                forgotten.append(self._emptied(source, known, now))
        # Its record, wherever it was recorded: a failover to a replica at another address
        # brings the same dataset there, in an earlier state.
        record = known.get(current) or table.dataset(current)
        if record is not None and (staging.generation <= record["generation"] if staging.counted
                                   else staging.generation < record["generation"]):
            forgotten.append(self._rewound(current, record, now))
            forgotten[-1].counters = staging.counters
            forgotten[-1].marks = marks if current == expected else self._marks_of(current)
            leftovers = adapter.staged_keys()  # every list Redis holds now: all rechecked
            staged = []
        else:
            staged = staging.staged
        if current != self.dataset:
            # Deletions counted in the generation of another dataset (or of this Redis before
            # it was emptied) cannot be recorded for this one: their ledger rows stay, harmless.
            self.unforgotten.clear()
            self._generation = 0
        self.dataset = current
        adapter.acks.see(current, staging.counters)
        # Its base, kept if it is new to the table: what it counted less what it held then.
        base = max(0, sum(staging.counters.values()) - sum(staging.lengths.values()))
        try:
            table.note_dataset(current, place, prefix, self._staged_generation, now, deadline,
                               staging.counters, current=True, base=base)
        except Exception as error:  # each list's insert records its generation anyway
            logger.debug("dataset %s not noted: %r", current, error)
        keys = {key: current for key in leftovers}
        keys.update((key, current) for key in staged)
        return keys, forgotten

    def _cells(self) -> list[tuple[int, str]]:
        """The counters a staging reads: every configured match's emoticons."""
        return [(match_id, emoticon) for match_id in range(1, config.MAX_MATCHES + 1)
                for emoticon in self.table.emoticon_types]

    def _save_marks(self, deadline: float) -> None:
        """Write to the table the counts this process saw Redis acknowledge (foundation/
        acks.py), so that they outlive Redis; kept for the next run if the file is locked."""
        acks = self.adapter.acks
        acks.confirm(self.adapter.source_id(create=False), time.time())  # counts held since
        marks = acks.take_marks()
        if not marks:
            return
        try:
            self.table.record_counts(marks, deadline)
        except Exception as error:
            self.adapter.acks.restore(marks)
            logger.debug("acknowledged counts not saved yet: %r", error)

    def _unmarked(self, staging: Staging, expected: str | None, known: dict[str, Any],
                  marks: dict[tuple[int, str], int], now: float
                  ) -> tuple[str, list[Forgotten]]:
        """Redis holds no dataset id. If only that key went (its generation is past the one
        recorded and no counter is below what it acknowledged), it is put back; else Redis was
        emptied: a new id, and the old dataset's loss. (dataset id, the loss or None)."""
        adapter = self.adapter
        if expected is not None and expected in known:
            intact = (staging.counted and staging.generation > known[expected]["generation"]
                      and all(staging.counters.get(cell, 0) >= mark
                              for cell, mark in marks.items()))
            if intact:
                adapter.redis.set(adapter.layout.source_key, expected, nx=True)
                if not self._told_restored:
                    self._told_restored = True
                    logger.warning("Redis %s: the key %s holding this data's id was deleted (by "
                                   "another client?) while the data stayed: put back, nothing "
                                   "lost", adapter.place, adapter.layout.source_key)
                return adapter.source_id(create=False) or expected, []
        current = adapter.source_id(new=True)
        if expected is None:
            return current, []
        return current, [self._emptied(expected, known, now)]

    def _marks_of(self, dataset: str) -> dict[tuple[int, str], int]:
        """The highest count Redis acknowledged per cell in ``dataset``: recorded in the table
        (every process's) or seen by this process."""
        marks = {cell: counted for cell, (counted, _) in
                 self.table.loss_figures(dataset).items()}
        for cell, mark in self.adapter.acks.marks(dataset).items():
            marks[cell] = max(mark, marks.get(cell, 0))
        return marks

    def _emptied(self, dataset: str, known: dict[str, Any], now: float) -> Forgotten:
        """Dataset ``dataset`` is gone from this Redis (emptied or replaced): end it, record
        its loss -- the acknowledged events found in no table -- and say it if this process
        recorded it first."""
        adapter, table = self.adapter, self.table
        since = max(adapter.acks.since(dataset) or 0.0,
                    known[dataset]["seen"] if dataset in known else 0.0) or now
        self._save_marks(time.monotonic() + table.busy_timeout)
        lost = _lost(table.loss_figures(dataset), _base(known.get(dataset)))
        table.note_dataset(dataset, adapter.place, adapter.layout.prefix, 0, since)
        table.end_dataset(dataset, now)
        first = table.record_loss(dataset, "emptied", 0, since, now, lost)
        return Forgotten("emptied", dataset, since, now, lost, first)

    def _rewound(self, dataset: str, record: dict[str, Any], now: float) -> Forgotten:
        """Redis went back to an earlier state of ``dataset`` (its generation is at or below
        the one recorded): every list it holds now may hold events already in the table. They
        are put on the recheck list first, then the live ones staged and the generation raised
        past the recorded one, in one MULTI/EXEC (so no later staging takes the state for
        rewound again, and no list escapes the recheck)."""
        adapter, table = self.adapter, self.table
        since = max(adapter.acks.since(dataset) or 0.0, record["seen"]) or now
        live, batch = adapter.match_data_keys(), new_batch()
        table.add_recheck([*adapter.staged_keys(),
                           *(adapter.layout.staging_key(key, batch) for key in live)], dataset)
        first = table.record_loss(dataset, "rewound", record["generation"], since, now, 0)
        _, generation = adapter.bump_generation(record["generation"], live, batch)
        self._staged_generation = generation
        return Forgotten("rewound", dataset, since, now, 0, first, record["generation"])

    def _copies(self, keys: list[str]) -> tuple[Counter, Counter]:
        """The rows and dead letters already in the table that items of ``keys`` (lists on
        the recheck list) may be copies of: one read of every list and one pass over the
        table's rows of their time span (ReactionsTable.rows_like)."""
        events, raws = [], []
        for key in keys:
            for chunk in self.adapter.iter_items(key):
                good, poison = sort_items(chunk, self.table.emoticon_types,
                                          self.adapter.layout.list_match_id(key))
                events += good
                raws += [raw for raw, _ in poison]
        return self.table.rows_like(events, raws)

    def _vanished(self, staged: str, dataset: str) -> None:
        """A list staged with items, read as empty: moved by another backup process (its first
        item is a row, or a dead letter, by now), or deleted by someone else before it was
        moved: then its events are lost (unless the whole dataset went: the next run finds
        that)."""
        length = self._lengths.get(staged, 0)
        if not length or self.adapter.source_id(create=False) != dataset:
            return
        head = self._heads.get(staged)
        if head is not None:
            good, poison = sort_items([head], self.table.emoticon_types)
            rows, letters = self.table.rows_like(good, [raw for raw, _ in poison])
            if rows or letters:
                return
        now = time.time()
        if self.table.record_loss(dataset, "deleted", self._staged_generation, now, now, length,
                                  detail=staged):
            logger.error("Redis lost acknowledged events: %s, key prefix %r: the staged list %s "
                         "was deleted by another client before this backup moved it: %s "
                         "acknowledged events are in no table (docs/failures.md)",
                         self.adapter.place, self.adapter.layout.prefix, staged, f"{length:,}")

    def _tell(self, forgotten: Forgotten) -> None:
        """Say once, in one line, what Redis forgot: by the process that recorded it, with the
        figure the table holds now (what posting processes wrote since is in it)."""
        adapter, table = self.adapter, self.table
        base = _base(next((row for row in table.datasets(adapter.place, adapter.layout.prefix)
                           if row["source"] == forgotten.dataset), None))
        if forgotten.kind == "emptied" and forgotten.first:
            self._save_marks(time.monotonic() + table.busy_timeout)
            forgotten.lost = _lost(table.loss_figures(forgotten.dataset), base)
            table.update_loss(forgotten.dataset, "emptied", 0, forgotten.lost, 0)
        if forgotten.kind == "rewound":
            # Per cell: what Redis acknowledged before (counted) less what is held now (rows,
            # pending), plus what was posted since it was found (held now, no loss of it).
            # Read in this order, each event counted by ``now`` is then pending or a row (an
            # event moved between the two reads is in both: the figure errs low, never high).
            marks = forgotten.marks or {}
            now = adapter.counts_of(marks)
            pending = _pending_cells(adapter)
            rows = {cell: rows for cell, (_, rows) in
                    table.loss_figures(forgotten.dataset).items()}
            # What each counter went back to, at most: its value when the rewind was found, or
            # this process's first answer after it, less that answer's own event.
            back = dict(forgotten.counters or {})
            for cell, answered in adapter.acks.fell(forgotten.dataset).items():
                back[cell] = min(back.get(cell, answered - 1), answered - 1)
            lost = max(0, sum(max(0, mark - rows.get(cell, 0) - pending.get(cell, 0)
                                  + max(0, now.get(cell, 0) - back.get(cell, now.get(cell, 0))))
                              for cell, mark in marks.items()) - base)
            copies = sum(self._skipped.values())
            forgotten.lost, forgotten.copies = lost, copies
            if forgotten.first:
                table.update_loss(forgotten.dataset, "rewound", forgotten.generation, lost,
                                  copies)
                # From now on its counts start from what it holds: the loss is in the record.
                table.reset_counts(forgotten.dataset, adapter.counts_of(self._cells()))
        if not forgotten.first:
            return
        what = ("was emptied or replaced" if forgotten.kind == "emptied"
                else "went back to an earlier state")
        how = ("FLUSHDB, a restart without persistence, a failover" if forgotten.kind ==
               "emptied" else "a restart from an older snapshot or AOF, a failover to a "
               "replica that lagged")
        where = f"Redis {adapter.place}, key prefix {adapter.layout.prefix!r}"
        window = between(forgotten.since, forgotten.found)
        copies = (f"; {forgotten.copies:,} copies of events already in the table were not "
                  "inserted again" if forgotten.kind == "rewound" else "")
        if forgotten.lost:
            logger.error("Redis lost acknowledged events: %s, %s %s (%s): at least %s "
                         "acknowledged events are in no table%s (docs/failures.md)", where, what,
                         window, how, f"{forgotten.lost:,}", copies)
        else:
            logger.warning("%s %s %s (%s): every event it acknowledged, as far as this database "
                           "recorded, is in the table%s (docs/failures.md)", where, what, window,
                           how, copies)


@dataclass
class Forgotten:
    """What a backup found Redis forgot (ReactionsTable.record_loss has the same)."""

    kind: str
    """"emptied" (emptied or replaced: its dataset id gone or changed) or "rewound"."""
    dataset: str
    """The dataset id whose acknowledged events are concerned."""
    since: float
    """When it was last seen intact, Unix seconds."""
    found: float
    """When it was found, Unix seconds."""
    lost: int
    """Acknowledged events found in no table."""
    first: bool
    """True if this process recorded it first: then it says it."""
    generation: int = 0
    """The backup generation recorded when it was found (a rewind's record key)."""
    copies: int = 0
    """Events Redis held again that were rows already (a rewind's): skipped."""
    counters: dict[tuple[int, str], int] | None = None
    """A rewind's: the counters when it was found (posts since then are no loss of it)."""
    marks: dict[tuple[int, str], int] | None = None
    """A rewind's: the highest counts Redis had acknowledged before, as known when found."""


def _lost(figures: dict[tuple[int, str], tuple[int, int]], base: int = 0) -> int:
    """Acknowledged events in no table: per cell, what Redis acknowledged less the rows, less
    ``base`` (what the dataset had counted before this table recorded it, held elsewhere)."""
    return max(0, sum(max(0, counted - rows) for counted, rows in figures.values()) - base)


def _base(dataset: dict[str, Any] | None) -> int:
    """A recorded dataset's base (ReactionsTable.note_dataset); 0 if unknown."""
    return int(dataset.get("base") or 0) if dataset else 0


def _pending_cells(adapter: RedisAdapter) -> dict[tuple[int, str], int]:
    """Events per cell in the lists Redis holds now (after a rewind's recovery: few)."""
    cells: Counter = Counter()
    for key in adapter.pending_keys():
        for chunk in adapter.iter_items(key):
            cells.update(count_cells(chunk))
    return cells


def clock_time(seconds: float) -> str:
    """Unix seconds as the console's local ``HH:MM:SS.mmm``."""
    return time.strftime("%H:%M:%S", time.localtime(seconds)) + f".{int(seconds % 1 * 1000):03d}"


def between(since: float, found: float) -> str:
    """``between HH:MM:SS.mmm and HH:MM:SS.mmm``, or ``at HH:MM:SS.mmm`` when they are one."""
    first, last = clock_time(since), clock_time(found)
    return f"at {last}" if first == last else f"between {first} and {last}"
