"""The DB layer: ReactionsTable, the seed's one table, on sqlite3.

The write-behind backup inserts events here in batches; nothing on the request path touches it.
The table is real SQL, so the seed's aggregate query runs as written. One connection serves every
thread (a ``:memory:`` database exists only inside its connection), guarded by one lock; each
batch is one transaction, all or nothing.
"""

from __future__ import annotations

import functools
import itertools
import json
import operator
import os
import re
import sqlite3
import threading
import time
import urllib.parse
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence

import config
from foundation.records import UNDECODABLE, named_cell

__all__ = ["ReactionsTable", "SchemaMismatchError", "HotJournalError", "get_reactions_table",
           "AGGREGATE_QUERY", "DeadLetter", "READ_WAIT_SECONDS", "roll_back_hot_journal",
           "content_of", "record_acknowledged"]

CREATE_TABLE = """
create table if not exists reactions_table (
    id integer not null primary key autoincrement,
    user_id integer not null,
    match_id integer not null,
    emoticon_type text not null check (emoticon_type in ({allowed})),
    timestamp real not null
)"""
# The write-behind backup's ledger: the staged Redis lists whose rows are committed. Recorded in
# the rows' own transaction, it lets a retry (or a second backup worker) skip a list already
# inserted whose DEL had not happened yet, instead of inserting it twice.
CREATE_BATCHES = """
create table if not exists backup_batches (
    batch text primary key
)"""
# Poison items (records.py): kept with their raw text and why they were refused, in the same
# transaction as the good rows of their list, so they neither block it nor vanish.
CREATE_DEAD_LETTERS = """
create table if not exists dead_letters (
    id integer not null primary key autoincrement,
    raw text not null,
    reason text not null,
    source_key text not null,
    time real not null  -- when it was set aside, Unix seconds
)"""
INSERT_DEAD_LETTER = """
insert into dead_letters (raw, reason, source_key, time) values (?, ?, ?, ?)"""
# The start-up write probe: a row written to the file and its journal, committed, then removed.
WRITE_PROBE = "write probe"
# Rows per source and (match, emoticon), written in each backup's own transaction. A source is
# one Redis dataset under one key prefix (RedisAdapter.source_id), so the reconciliation can
# compare that prefix's counters with the rows that came from it alone, in a file other
# prefixes, other Redis servers or earlier in-memory runs also fill.
CREATE_SOURCES = """
create table if not exists backup_sources (
    source text not null,
    match_id integer not null,
    emoticon_type text not null,
    rows integer not null,
    primary key (source, match_id, emoticon_type)
)"""
ADD_SOURCE_ROWS = """
insert into backup_sources (source, match_id, emoticon_type, rows) values (?, ?, ?, ?)
on conflict (source, match_id, emoticon_type) do update set rows = rows + excluded.rows"""
# What survives a Redis that forgets (docs/real-redis.md, "When Redis forgets"): the datasets of a
# real Redis this file took events from, the highest count Redis acknowledged per cell of each,
# the losses found, and the staged lists that may hold copies of rows already here.
CREATE_DATASETS = """
create table if not exists redis_datasets (
    source text primary key,      -- the dataset id ({prefix}live-reactions:dataset)
    place text not null,          -- host:port/db of its Redis
    prefix text not null,         -- its key prefix
    generation integer not null,  -- the highest backup generation recorded for it
    seen real not null,           -- when a process last found it intact, Unix seconds
    ended real,                   -- when it was found emptied or replaced; null while current
    base integer not null         -- events it had counted before this file recorded it, less
                                  -- those then pending: backed up elsewhere, not this file's
)"""
NOTE_DATASET = """
insert into redis_datasets (source, place, prefix, generation, seen, base)
values (?, ?, ?, ?, ?, ?)
on conflict (source) do update set generation = max(generation, excluded.generation),
    seen = max(seen, excluded.seen), place = excluded.place"""
CREATE_COUNTS = """
create table if not exists redis_counts (
    source text not null,
    match_id integer not null,
    emoticon_type text not null,
    counted integer not null,     -- the highest value Redis acknowledged for that counter
    primary key (source, match_id, emoticon_type)
)"""
ADD_COUNTS = """
insert into redis_counts (source, match_id, emoticon_type, counted) values (?, ?, ?, ?)
on conflict (source, match_id, emoticon_type) do update
set counted = max(counted, excluded.counted)"""
CREATE_LOSSES = """
create table if not exists redis_losses (
    source text not null,         -- the dataset that lost events
    kind text not null,           -- emptied, rewound or deleted
    generation integer not null,  -- the backup generation recorded when it was found
    detail text not null,         -- for a deleted staged list, its key
    since real not null,          -- last seen intact, Unix seconds
    found real not null,          -- when it was found, Unix seconds
    events integer not null,      -- acknowledged events found in no table
    copies integer not null,      -- events Redis held again that were already rows
    primary key (source, kind, generation, detail)
)"""
CREATE_RECHECK = """
create table if not exists backup_recheck (
    batch text primary key,       -- a staged list that may hold copies of rows already here
    source text not null          -- the dataset its events belong to
)"""
# (name, declared type, NOT NULL, primary key) of each column, as pragma table_info reports them.
COLUMNS = [("id", "INTEGER", 1, 1), ("user_id", "INTEGER", 1, 0), ("match_id", "INTEGER", 1, 0),
           ("emoticon_type", "TEXT", 1, 0), ("timestamp", "REAL", 1, 0)]
# Serves the aggregate query from the index alone: rows of one match, grouped by emoticon.
CREATE_INDEX = """
create index if not exists reactions_match_emoticon
on reactions_table (match_id, emoticon_type)"""
INSERT = """
insert into reactions_table (user_id, match_id, emoticon_type, timestamp)
values (?, ?, ?, ?)"""
AGGREGATE_QUERY = """
select count(id), emoticon_type
from reactions_table
where match_id = ?
group by emoticon_type"""
"""The seed's aggregate query, as written there (with a ? parameter for the match id)."""
LATEST = """
select id, user_id, match_id, emoticon_type, timestamp
from reactions_table order by id desc limit ?"""


READ_WAIT_SECONDS = 0.1
"""The longest wait (seconds) of a status read -- count(), latest(), aggregate() -- for a file
another process holds locked; then it raises "database is locked". These reads only decorate
log lines, so they must not hold the table's lock past a backup's deadline nor stretch a
shutdown (a busy timeout left by the last transaction could be DB_BUSY_TIMEOUT_SECONDS)."""

# An event record's values in INSERT's column order (in C: the backup's per-row cost).
_ROW_OF_EVENT = operator.itemgetter("user_id", "match_id", "emoticon_type", "timestamp")
# What tells one event from another, in the column order rows_like reads them.
_CONTENT_OF_EVENT = operator.itemgetter("match_id", "emoticon_type", "user_id", "timestamp")
_CELL_OF_ROW = operator.itemgetter(1, 2)  # (match_id, emoticon_type) of such a row

ROWS_PER_INSERT = 2000
"""Rows per INSERT statement in insert_many (fewer if SQLite allows fewer ? parameters).

sqlite3 lets other threads take the GIL once per statement, and a busy one -- the poster at
--rate 0 -- may then keep it for a whole switch interval. One row per statement (executemany)
so crawls at about 200 rows/s while posting runs flat out; 2,000 rows per statement keep the
backup ahead of the poster (docs/performance.md)."""


@functools.lru_cache(maxsize=64)
def _insert_sql(rows: int) -> str:
    """INSERT with ``rows`` groups of ? parameters."""
    return INSERT + ", (?, ?, ?, ?)" * (rows - 1)


def _max_rows_per_insert(connection: sqlite3.Connection) -> int:
    try:
        parameters = connection.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)
    except AttributeError:  # Python 3.10 has no getlimit (3.11 added it)
        parameters = _parameters_allowed(connection, 4 * ROWS_PER_INSERT)
    return max(1, min(ROWS_PER_INSERT, parameters // 4))


def _parameters_allowed(connection: sqlite3.Connection, wanted: int) -> int:
    """``wanted`` if one statement may hold that many ? parameters, else 999 (SQLite's default
    limit before 3.32, 32,766 since). A statement with too many fails to compile, so one probe
    tells. Assuming 999 on every SQLite made 249 rows per INSERT on Python 3.10, and a backup
    racing a busy poster for the GIL ran six times slower than with 2,000."""
    rows = ", ".join(["(?, ?, ?, ?)"] * (wanted // 4))
    try:
        connection.execute(f"values {rows}", (None,) * (wanted // 4 * 4)).fetchall()
    except sqlite3.OperationalError:  # "too many SQL variables"
        return 999
    return wanted


@dataclass(frozen=True)
class DeadLetter:
    """A stored item that is not exactly one valid event record (records.py), kept aside."""

    raw: str
    """The item's text, as it was stored."""
    reason: str
    """Why it was refused (records.poison_reason)."""
    source_key: str
    """Where it came from: the staged Redis list's key, or ``spill:FILE``."""


class SchemaMismatchError(ValueError):
    """The database file holds a reactions_table whose CHECK allows other emoticons."""


class HotJournalError(sqlite3.OperationalError):
    """A writer was killed in the middle of a transaction and left a hot journal beside the
    database file, which this process may not roll back (it needs write permission on the
    file and its directory): nothing can read the file until a process that may does."""


def _hot_journal(path: str, error: sqlite3.Error) -> bool:
    """True if ``error``, raised by a read-only connection to ``path``, means a hot journal it
    cannot roll back (SQLite's SQLITE_READONLY_ROLLBACK; Python 3.10 gives no error code: its
    message and the journal beside the file tell it)."""
    name = getattr(error, "sqlite_errorname", None)
    if name is not None:
        return name == "SQLITE_READONLY_ROLLBACK"
    return "readonly" in str(error) and os.path.exists(path + "-journal")


def roll_back_hot_journal(path: str, busy_timeout: float) -> None:
    """Roll back the hot journal a writer killed mid-transaction left beside ``path``.

    SQLite does it itself on the first read by any connection that can write: this one opens
    the file for writing (``mode=rw``: never creates it), reads, and closes. It restores the
    last committed state, which is what every reader must see anyway, under SQLite's own
    exclusive lock, so it is safe while other processes use the file. It needs write
    permission on the file, the journal and the directory (the journal is deleted). Raises
    HotJournalError saying what to run if this process cannot."""
    uri = "file:" + urllib.parse.quote(os.path.abspath(path)) + "?mode=rw"
    try:
        connection = sqlite3.connect(uri, uri=True, timeout=busy_timeout)
        try:
            connection.execute("select count(*) from sqlite_master").fetchone()
        finally:
            connection.close()
    except sqlite3.Error as error:
        raise HotJournalError(
            f"{path} has a hot journal ({path}-journal): a writer was killed in the middle of "
            f"a transaction, and this process cannot roll it back ({error}). Any process that "
            "can write the file and its directory rolls it back when it opens it: start the "
            f"backup process, or run, as such a user: sqlite3 {path} 'pragma integrity_check'"
            ) from None


def _sql_string(text: str) -> str:
    """``text`` as an SQL string literal (DDL takes no ? parameters)."""
    return "'" + text.replace("'", "''") + "'"


_ALLOWED_LIST = re.compile(r"check \(emoticon_type in \(((?:'(?:[^']|'')*'(?:, )?)*)\)\)")
_SQL_STRING = re.compile(r"'((?:[^']|'')*)'")


def _allowed_in(schema: str) -> set[str] | None:
    """The emoticons the CHECK of a reactions_table ``schema`` (its CREATE TABLE) allows, or
    None if it has no such CHECK."""
    found = _ALLOWED_LIST.search(schema)
    if found is None:
        return None
    return {text.replace("''", "'") for text in _SQL_STRING.findall(found.group(1))}


def _check_schema(connection: sqlite3.Connection, path: str, types: Sequence[str]) -> None:
    """Raise SchemaMismatchError unless reactions_table is the one CREATE_TABLE makes for the
    emoticons ``types``, in any order (their order is only the GET table's column order)."""
    columns = [(c[1], c[2].upper(), c[3], c[5])
               for c in connection.execute("pragma table_info(reactions_table)")]
    schema = connection.execute(
        "select sql from sqlite_master where name = 'reactions_table'").fetchone()[0]
    if columns != COLUMNS or _allowed_in(schema) != set(types):
        raise SchemaMismatchError(
            f"{path} holds a reactions_table other than this one for emoticons "
            f"{', '.join(types)} (its schema: {' '.join(schema.split())}); "
            "use another database file")


def _recorded(connection: sqlite3.Connection, batch: str) -> bool:
    """True if ``batch`` is in the ledger."""
    return connection.execute("select 1 from backup_batches where batch = ?",
                              (batch,)).fetchone() is not None


def _where(table: str = "", **equal: Any) -> tuple[str, list[Any]]:
    """`` where a = ? and b = ?`` for the ``equal`` values that are not None, and the values."""
    names = [name for name, value in equal.items() if value is not None]
    column = f"{table}." if table else ""
    clause = " and ".join(f"{column}{name} = ?" for name in names)
    return (f" where {clause}" if clause else ""), [equal[name] for name in names]


def content_of(event: Mapping[str, Any]) -> tuple[int, str, int, float]:
    """``(match_id, emoticon_type, user_id, timestamp)``: what rows_like counts."""
    return _CONTENT_OF_EVENT(event)


def _dicts(cursor: sqlite3.Cursor) -> list[dict[str, Any]]:
    """The cursor's rows, each as a dict of its columns."""
    columns = [column[0] for column in cursor.description]
    return [dict(zip(columns, row)) for row in cursor.fetchall()]


def _connect(path: str, read_only: bool, busy_timeout: float) -> sqlite3.Connection:
    """A connection to ``path``; read-only through a ``mode=ro`` URI (never creates the file)."""
    if not read_only:
        return sqlite3.connect(path, check_same_thread=False, isolation_level=None,
                               timeout=busy_timeout)
    if path == ":memory:":
        raise SchemaMismatchError("a read-only :memory: database holds no reactions_table")
    uri = "file:" + urllib.parse.quote(os.path.abspath(path)) + "?mode=ro"
    try:
        return sqlite3.connect(uri, uri=True, check_same_thread=False, isolation_level=None,
                               timeout=busy_timeout)
    except sqlite3.OperationalError as error:
        raise SchemaMismatchError(f"{path} cannot be opened read-only: {error}") from None


def _check_ours(connection: sqlite3.Connection, path: str) -> None:
    """Raise SchemaMismatchError unless the file holds a reactions_table (another application's
    SQLite file is not this program's database: nothing is created in it)."""
    if connection.execute("select 1 from sqlite_master where type = 'table' "
                          "and name = 'reactions_table'").fetchone() is None:
        raise SchemaMismatchError(f"{path} holds no reactions_table: not a Live Reactions "
                                  "database (give the --db file the backup writes)")


class ReactionsTable:
    """The table ``reactions_table`` (seed: ReactionsTable) in the SQLite database at ``path``.

    ``path`` is ":memory:" or a file (created if missing, its rows kept). ``emoticon_types`` is
    the set the CHECK constraint allows (default config.EMOTICON_TYPES). ``busy_timeout`` is how
    many seconds a transaction waits for a file another process holds locked (default
    config.DB_BUSY_TIMEOUT_SECONDS; a deadline passed to a method replaces it). Raises
    SchemaMismatchError if the file's table was made for another set, and sqlite3.Error if the
    file cannot be opened or written (a write probe commits a row and removes it). Every method
    is safe to call from any thread.

    ``read_only=True`` is for a process that never writes (``--reconcile``, a post or get
    role): the file is opened read-only, nothing is created, probed or locked for writing, and
    a file that does not exist or holds no reactions_table raises SchemaMismatchError. The one
    exception: a hot journal left by a writer killed mid-transaction, which no reader can read
    past, is rolled back at the open and by census() (roll_back_hot_journal), or raises
    HotJournalError when this process may not write the file.
    """

    def __init__(self, path: str = ":memory:",
                 emoticon_types: Sequence[str] | None = None,
                 busy_timeout: float | None = None, read_only: bool = False) -> None:
        self.path = path
        self.emoticon_types = tuple(config.EMOTICON_TYPES if emoticon_types is None
                                    else emoticon_types)
        self.busy_timeout = (config.DB_BUSY_TIMEOUT_SECONDS if busy_timeout is None
                             else busy_timeout)
        self.read_only = read_only
        self._lock = threading.Lock()
        # isolation_level=None: transactions are begun and ended explicitly in _transaction().
        self._connection = _connect(path, read_only, self.busy_timeout)
        self._rows_per_insert = _max_rows_per_insert(self._connection)
        allowed = ", ".join(_sql_string(emoticon) for emoticon in self.emoticon_types)
        try:
            if read_only:
                self._recovered(lambda: (_check_ours(self._connection, path),
                                         _check_schema(self._connection, path,
                                                       self.emoticon_types)))
                return
            with self._transaction() as connection:
                connection.execute(CREATE_TABLE.format(allowed=allowed))
                connection.execute(CREATE_INDEX)
                connection.execute(CREATE_BATCHES)
                connection.execute(CREATE_DEAD_LETTERS)
                connection.execute(CREATE_SOURCES)
                for create in (CREATE_DATASETS, CREATE_COUNTS, CREATE_LOSSES, CREATE_RECHECK):
                    connection.execute(create)
                _check_schema(connection, path, self.emoticon_types)
            self._probe_writes()
        except BaseException:
            self._connection.close()
            raise

    def _recovered(self, read: Callable[[], Any]) -> Any:
        """``read()``; if this read-only table meets a hot journal (a writer killed in the
        middle of a transaction), roll it back (roll_back_hot_journal: HotJournalError if this
        process may not) and read again."""
        try:
            return read()
        except sqlite3.OperationalError as error:
            if not (self.read_only and _hot_journal(self.path, error)):
                raise
        roll_back_hot_journal(self.path, self.busy_timeout)
        return read()

    def _probe_writes(self) -> None:
        """Commit a row and remove it again, so a file SQLite opened read-only (chmod 444), or
        whose directory refuses the journal (chmod 555), fails now with sqlite3.Error rather
        than at every backup. CREATE ... IF NOT EXISTS on an existing file writes nothing."""
        with self._transaction() as connection:
            connection.execute("insert or ignore into backup_batches (batch) values (?)",
                               (WRITE_PROBE,))
        self.forget_batch(WRITE_PROBE)

    @contextmanager
    def _transaction(self, deadline: float | None = None) -> Iterator[sqlite3.Connection]:
        """Hold the lock for one write transaction: commit if the block ends, else roll back.

        ``begin immediate`` takes SQLite's write lock first, so writers on other connections to
        the same file wait their turn instead of failing halfway. They wait until ``deadline``
        (time.monotonic() seconds), or ``busy_timeout`` seconds if None; past it, SQLite raises
        sqlite3.OperationalError "database is locked".
        """
        with self._lock:
            wait = self.busy_timeout if deadline is None else deadline - time.monotonic()
            self._wait_for_locks(wait)
            self._connection.execute("begin immediate")
            try:
                yield self._connection
                self._connection.execute("commit")
            except BaseException:
                # A failed COMMIT (e.g. "database is locked") leaves the transaction open: end
                # it, or every later one fails. SQLite may have rolled back already (disk full).
                if self._connection.in_transaction:
                    self._connection.execute("rollback")
                raise

    @contextmanager
    def _reading(self, wait: float | None = None) -> Iterator[sqlite3.Connection]:
        """Hold the lock for reads that wait at most ``wait`` seconds (default busy_timeout)
        for a file another process holds locked."""
        with self._lock:
            self._wait_for_locks(self.busy_timeout if wait is None else wait)
            yield self._connection

    def _wait_for_locks(self, seconds: float) -> None:
        # SQLite's busy handler is per connection: each use sets its own, or inherits the last.
        self._connection.execute(f"pragma busy_timeout = {max(0, int(seconds * 1000))}")

    def insert_many(self, events: Iterable[Mapping[str, Any]], batch: str | None = None,
                    source: str | None = None) -> int:
        """Insert event records ``{user_id, match_id, emoticon_type, timestamp}`` in one transaction.

        ``events`` may be any iterable, a generator included (consumed once, streaming, and only
        if the rows go in). Returns the number of rows inserted. All or nothing: if any row fails
        (sqlite3.Error, e.g. an emoticon outside the CHECK) or the iterable raises, none stays.
        ``batch`` names the batch (the backup passes its staged list's key): it is recorded with
        the rows, and a batch already recorded inserts nothing and returns 0. ``source``: see
        insert_batch.
        """
        return self.insert_batch(events, batch, source=source)[0]

    def insert_batch(self, events: Iterable[Mapping[str, Any]], batch: str | None = None,
                     dead_letters: Iterable[DeadLetter] = (),
                     verify: Callable[[int, int], None] | None = None,
                     deadline: float | None = None,
                     source: str | None = None,
                     dataset: tuple[str, str, int] | None = None) -> tuple[int, int]:
        """insert_many, plus the batch's poison items: ``(rows inserted, dead letters inserted)``.

        ``dead_letters`` is read after ``events`` is exhausted (so a generator of events may fill
        it as it goes) and goes into the table dead_letters in the same transaction.
        ``verify(rows, dead_letters)``, if given, runs before the commit; whatever it raises rolls
        everything back. A batch already in the ledger inserts nothing: ``(0, 0)``. ``deadline``:
        see _transaction. Raises sqlite3.Error (all rolled back) when SQLite refuses.
        ``source`` (the backup passes its Redis dataset and prefix, RedisAdapter.source_id) adds
        the rows per ``(match_id, emoticon_type)`` to that source's count, in the same
        transaction: the reconciliation compares a prefix's counters with those alone.
        ``dataset`` = (place, prefix, generation) of a shared Redis (the backup generation when
        the batch was staged) records the source there with that generation, in the same
        transaction, and the batch leaves the recheck list (backup_recheck), if it was on it.
        """
        with self._transaction(deadline) as connection:
            if batch is not None:
                if _recorded(connection, batch):
                    return 0, 0
                connection.execute("insert into backup_batches (batch) values (?)", (batch,))
            if dataset is not None and batch is not None:
                connection.execute(NOTE_DATASET, (source, *dataset, time.time(), 0))
                connection.execute("delete from backup_recheck where batch = ?", (batch,))
            cells: Counter = Counter()
            rows = self._insert_rows(connection, map(_ROW_OF_EVENT, events), cells)
            if source is not None:
                connection.executemany(ADD_SOURCE_ROWS, [
                    (source, match_id, emoticon, count)
                    for (match_id, emoticon), count in cells.items()])
            now = time.time()
            letters = [(letter.raw, letter.reason, letter.source_key, now)
                       for letter in dead_letters]
            connection.executemany(INSERT_DEAD_LETTER, letters)
            dead = len(letters)
            if verify is not None:
                verify(rows, dead)
            return rows, dead

    def _insert_rows(self, connection: sqlite3.Connection, rows: Iterator[tuple],
                     cells: Counter) -> int:
        """INSERT ``rows`` (user, match, emoticon, time) up to self._rows_per_insert per
        statement, each counted in ``cells`` by ``(match_id, emoticon_type)``; how many went in."""
        inserted = 0
        while block := list(itertools.islice(rows, self._rows_per_insert)):
            connection.execute(_insert_sql(len(block)), list(itertools.chain.from_iterable(block)))
            cells.update(map(_CELL_OF_ROW, block))  # in C, a block at a time: not per row
            inserted += len(block)
        return inserted

    def has_batch(self, batch: str) -> bool:
        """True if ``batch`` is in the ledger (its rows are committed)."""
        with self._reading() as connection:
            return _recorded(connection, batch)

    def batches_ending(self, suffix: str) -> list[str]:
        """The ledger's batch names that end with ``suffix``. Raises sqlite3.OperationalError
        if another process holds the file locked for more than READ_WAIT_SECONDS."""
        with self._reading(READ_WAIT_SECONDS) as connection:
            return [batch for (batch,) in connection.execute(
                "select batch from backup_batches where substr(batch, -?) = ?",
                (len(suffix), suffix))]

    def forget_batch(self, batch: str, deadline: float | None = None) -> None:
        """Drop ``batch`` from the ledger, once its source is gone and it cannot come again."""
        self.forget_batches([batch], deadline)

    def forget_batches(self, batches: Iterable[str], deadline: float | None = None,
                       dataset: tuple[str, int] | None = None) -> None:
        """forget_batch for each of ``batches``, in one transaction (one commit, not one a
        batch: on a file each commit waits for the disk). ``dataset`` = (source, generation):
        the shared Redis's backup generation after their deletion, recorded in the same
        transaction (a Redis that goes back to a state holding them shows a lower one)."""
        with self._transaction(deadline) as connection:
            if dataset is not None:
                connection.execute("update redis_datasets set generation = max(generation, ?) "
                                   "where source = ?", (dataset[1], dataset[0]))
            connection.executemany("delete from backup_batches where batch = ?",
                                   [(batch,) for batch in batches])

    # -- what survives a Redis that forgets (backup_data.py, live/reconcile.py) ---------------

    def note_dataset(self, source: str, place: str, prefix: str, generation: int = 0,
                     seen: float | None = None, deadline: float | None = None,
                     counts: Mapping[tuple[int, str], int] | None = None,
                     current: bool = False, base: int = 0) -> None:
        """Record that dataset ``source`` of the Redis at ``place`` (key prefix ``prefix``)
        was found intact at ``seen`` (Unix seconds, default now) with backup generation
        ``generation``; raise its acknowledged ``counts`` per cell (record_counts), in the same
        transaction. ``current``: Redis holds it now (one found ended that came back, with a
        Redis gone back to an older state, is no longer ended). ``base``, kept only when the
        dataset is recorded for the first time: the events it had counted then less those
        pending then (in another file: not this file's to account for)."""
        with self._transaction(deadline) as connection:
            connection.execute(NOTE_DATASET, (source, place, prefix, generation,
                                              time.time() if seen is None else seen, base))
            if current:
                connection.execute("update redis_datasets set ended = null where source = ? "
                                   "and ended is not null", (source,))
            if counts:
                connection.executemany(ADD_COUNTS, [(source, match_id, emoticon, count) for
                                                    (match_id, emoticon), count in counts.items()])

    def record_counts(self, marks: Mapping[str, Mapping[tuple[int, str], int]],
                      deadline: float | None = None) -> None:
        """Raise each dataset's recorded acknowledged counts to ``marks``
        (``{source: {(match_id, emoticon): count}}``, foundation/acks.py) in one transaction."""
        with self._transaction(deadline) as connection:
            connection.executemany(ADD_COUNTS, [
                (source, match_id, emoticon, count) for source, cells in marks.items()
                for (match_id, emoticon), count in cells.items()])

    def reset_counts(self, source: str, counts: Mapping[tuple[int, str], int]) -> None:
        """Make ``counts`` the acknowledged counts of dataset ``source`` (a rewound Redis's,
        once its loss is recorded: what it acknowledged before is in that record)."""
        with self._transaction() as connection:
            connection.execute("delete from redis_counts where source = ?", (source,))
            connection.executemany(ADD_COUNTS, [(source, match_id, emoticon, count) for
                                                (match_id, emoticon), count in counts.items()])

    def end_dataset(self, source: str, when: float) -> None:
        """Record that dataset ``source`` was found emptied or replaced at ``when``."""
        with self._transaction() as connection:
            connection.execute("update redis_datasets set ended = coalesce(ended, ?) "
                               "where source = ?", (when, source))

    def datasets(self, place: str | None = None, prefix: str | None = None
                 ) -> list[dict[str, Any]]:
        """The recorded datasets ``{source, place, prefix, generation, seen, ended}``, of that
        place and prefix if given, the last seen first; none in a file from before them."""
        where, values = _where(place=place, prefix=prefix)
        return self._optional_read(f"select * from redis_datasets{where} order by seen desc",
                                   values)

    def dataset(self, source: str) -> dict[str, Any] | None:
        """The recorded dataset ``source``, wherever its Redis was; None if not recorded."""
        found = self._optional_read("select * from redis_datasets where source = ?", (source,))
        return found[0] if found else None

    def loss_figures(self, source: str) -> dict[tuple[int, str], tuple[int, int]]:
        """``{(match_id, emoticon): (highest count Redis acknowledged, rows in this table)}``
        for dataset ``source``, over the cells with a recorded count."""
        counted = self._optional_read(
            "select c.match_id, c.emoticon_type, c.counted, coalesce(s.rows, 0) as rows "
            "from redis_counts c left join backup_sources s on s.source = c.source and "
            "s.match_id = c.match_id and s.emoticon_type = c.emoticon_type where c.source = ?",
            (source,))
        return {(row["match_id"], row["emoticon_type"]): (row["counted"], row["rows"])
                for row in counted}

    def record_loss(self, source: str, kind: str, generation: int, since: float, found: float,
                    events: int, copies: int = 0, detail: str = "") -> bool:
        """Record a loss found in dataset ``source`` (kind emptied, rewound or deleted, found
        when the recorded backup generation was ``generation``); True if it was not recorded
        yet (several processes find the same loss: the one that records it reports it)."""
        with self._transaction() as connection:
            cursor = connection.execute(
                "insert or ignore into redis_losses (source, kind, generation, detail, since, "
                "found, events, copies) values (?, ?, ?, ?, ?, ?, ?, ?)",
                (source, kind, generation, detail, since, found, events, copies))
            return cursor.rowcount == 1

    def update_loss(self, source: str, kind: str, generation: int, events: int, copies: int,
                    detail: str = "") -> None:
        """Set the figures of a recorded loss (a rewind's, once its lists are moved)."""
        with self._transaction() as connection:
            connection.execute("update redis_losses set events = ?, copies = ? where source = ? "
                               "and kind = ? and generation = ? and detail = ?",
                               (events, copies, source, kind, generation, detail))

    def losses(self, place: str | None = None, prefix: str | None = None
               ) -> list[dict[str, Any]]:
        """The recorded losses ``{source, kind, generation, detail, since, found, events,
        copies}`` of the datasets of that place and prefix, oldest first."""
        where, values = _where(place=place, prefix=prefix, table="d")
        return self._optional_read(
            "select l.* from redis_losses l join redis_datasets d on d.source = l.source"
            f"{where} order by l.found", values)

    def add_recheck(self, batches: Iterable[str], source: str,
                    deadline: float | None = None) -> None:
        """Put staged lists on the recheck list: their items may be rows already (a rewound
        Redis brought them back), so each is checked against the table before it is inserted."""
        with self._transaction(deadline) as connection:
            connection.executemany("insert or ignore into backup_recheck (batch, source) "
                                   "values (?, ?)", [(batch, source) for batch in batches])

    def recheck(self) -> dict[str, str]:
        """``{staged list: dataset}`` of the lists on the recheck list."""
        return {row["batch"]: row["source"] for row in
                self._optional_read("select batch, source from backup_recheck", ())}

    def rows_like(self, events: Iterable[Mapping[str, Any]], raws: Iterable[str] = ()
                  ) -> tuple[Counter, Counter]:
        """How many rows (and dead letters) the table holds already of each of ``events``
        (and of each raw text in ``raws``): ``(Counter of (match_id, emoticon, user_id,
        timestamp), Counter of raw texts)``, for those present. One pass over the rows whose
        timestamp is within the events' (a recovery's cost, never a normal backup's)."""
        wanted = {_CONTENT_OF_EVENT(event) for event in events}
        raws = set(raws)
        found: Counter = Counter()
        letters: Counter = Counter()
        if wanted:
            times = [content[3] for content in wanted]
            with self._reading() as connection:
                for row in connection.execute(
                        "select match_id, emoticon_type, user_id, timestamp from reactions_table "
                        "where timestamp between ? and ?", (min(times), max(times))):
                    if row in wanted:
                        found[row] += 1
        if raws:
            with self._reading() as connection:
                for (raw,) in connection.execute("select raw from dead_letters"):
                    if raw in raws:
                        letters[raw] += 1
        return found, letters

    def _optional_read(self, sql: str, values: Sequence[Any]) -> list[dict[str, Any]]:
        """Rows of a table a file made before it does not have (opened read-only, it cannot
        gain it): none then."""
        try:
            with self._reading() as connection:
                return _dicts(connection.execute(sql, values))
        except sqlite3.OperationalError as error:
            if "no such table" not in str(error):
                raise
            return []

    def count(self) -> int:
        """The number of rows in the table. Raises sqlite3.OperationalError if another process
        holds the file locked for more than READ_WAIT_SECONDS."""
        with self._reading(READ_WAIT_SECONDS) as connection:
            return connection.execute("select count(*) from reactions_table").fetchone()[0]

    def aggregate(self, match_id: int) -> dict[str, int]:
        """The seed's aggregate query for one match: ``{emoticon_type: count}``, posted ones only.
        Raises sqlite3.OperationalError as count() does."""
        with self._reading(READ_WAIT_SECONDS) as connection:
            rows = connection.execute(AGGREGATE_QUERY, (match_id,)).fetchall()
        return {emoticon: count for count, emoticon in rows}

    def census(self, source: str | None = None
               ) -> tuple[dict[tuple[int, str], int], frozenset[str]]:
        """Rows per ``(match_id, emoticon_type)`` and the ledger's batch names, read in one
        read transaction (one consistent view of the file, whatever other processes commit).

        With ``source``, only the rows that source's backups inserted (insert_batch); a file
        written before sources were recorded has none. A read-only table rolls back a hot
        journal first (HotJournalError if it may not)."""
        def read() -> tuple[dict[tuple[int, str], int], frozenset[str]]:
            with self.held_census(source) as census:
                return census
        return self._recovered(read)

    @contextmanager
    def held_census(self, source: str | None = None
                    ) -> Iterator[tuple[dict[tuple[int, str], int], frozenset[str]]]:
        """census(), with its read transaction held open until the block ends.

        In SQLite's rollback-journal mode a held read lock makes every other connection's
        COMMIT wait (up to its busy timeout), so no backup commits until the block ends; in WAL
        mode (a file someone switched) it does not. The reconciliation needs neither
        (live/reconcile.py). Keep the block short; nothing is written."""
        with self._reading():
            self._connection.execute("begin")
            try:
                if source is None:
                    rows = self._connection.execute(
                        "select match_id, emoticon_type, count(*) from reactions_table "
                        "group by match_id, emoticon_type").fetchall()
                else:
                    rows = self._source_rows(source)
                ledger = self._connection.execute("select batch from backup_batches").fetchall()
                yield ({(match_id, emoticon): count for match_id, emoticon, count in rows},
                       frozenset(batch for (batch,) in ledger))
            finally:
                self._connection.execute("commit")

    def _source_rows(self, source: str) -> list[tuple[int, str, int]]:
        try:
            return self._connection.execute(
                "select match_id, emoticon_type, rows from backup_sources where source = ?",
                (source,)).fetchall()
        except sqlite3.OperationalError:  # no such table: a file from before sources, read-only
            return []

    def dead_letter_cells(self, from_key: Callable[[str], bool] | None = None
                          ) -> dict[tuple[int, str], int]:
        """Dead letters per ``(match_id, emoticon_type)``, for those whose text is a JSON object
        naming both (an event that was counted in Redis, then spoiled): reconcile.py's sink.
        ``from_key(source_key)``, if given, keeps only the letters of those Redis lists (e.g.
        one prefix's staged lists: KeyLayout.is_staged)."""
        cells: dict[tuple[int, str], int] = {}
        for letter in self.dead_letters():
            if from_key is not None and not from_key(letter["source_key"]):
                continue
            try:
                cell = named_cell(json.loads(letter["raw"]))
            except UNDECODABLE:  # not JSON (or nested too deep): it names no cell
                continue
            if cell is not None:
                cells[cell] = cells.get(cell, 0) + 1
        return cells

    def dead_letters(self) -> list[dict[str, Any]]:
        """Every dead letter ``{id, raw, reason, source_key, time}``, oldest first."""
        with self._reading() as connection:
            return _dicts(connection.execute("select * from dead_letters order by id"))

    def latest(self, limit: int = 5) -> list[dict[str, Any]]:
        """The last ``limit`` rows inserted, newest first, each as a dict of the table's columns.
        Raises sqlite3.OperationalError as count() does."""
        with self._reading(READ_WAIT_SECONDS) as connection:
            return _dicts(connection.execute(LATEST, (limit,)))

    def close(self) -> None:
        """Close the connection (a ``:memory:`` table is gone after this)."""
        with self._lock:
            self._connection.close()


def record_acknowledged(path: str, marks: Mapping[str, Mapping[tuple[int, str], int]],
                        seen: Mapping[str, float], wait: float = READ_WAIT_SECONDS) -> set[str]:
    """Record what a shared Redis acknowledged to a process that does not back up (a post
    role): for each dataset of ``marks`` (``{source: {(match_id, emoticon): count}}``), that
    it was intact at ``seen[source]``, and its counts, in one transaction on a connection of
    its own that creates nothing and waits at most ``wait`` seconds for a lock. Only datasets
    a backup recorded already are written (it recorded what they held before: their base).
    Returns the datasets not written -- all of them if the file (or, made by a version before
    them, its tables) is missing or locked: the caller keeps their marks for next time."""
    if path == ":memory:" or not os.path.isfile(path):
        return set(marks)
    uri = "file:" + urllib.parse.quote(os.path.abspath(path)) + "?mode=rw"
    try:
        connection = sqlite3.connect(uri, uri=True, isolation_level=None, timeout=wait)
    except sqlite3.Error:
        return set(marks)
    try:
        connection.execute("begin immediate")
        unknown = set()
        for source, cells in marks.items():
            if not connection.execute("update redis_datasets set seen = max(seen, ?) where "
                                      "source = ?", (seen.get(source) or time.time(),
                                                     source)).rowcount:
                unknown.add(source)
                continue
            connection.executemany(ADD_COUNTS, [(source, match_id, emoticon, count) for
                                                (match_id, emoticon), count in cells.items()])
        connection.execute("commit")
        return unknown
    except sqlite3.Error:
        if connection.in_transaction:
            connection.execute("rollback")
        return set(marks)
    finally:
        connection.close()


_table: ReactionsTable | None = None
_table_lock = threading.Lock()


def get_reactions_table() -> ReactionsTable:
    """The process-wide ReactionsTable at ``config.DB_PATH``, created on first use."""
    global _table
    with _table_lock:
        if _table is None:
            _table = ReactionsTable(config.DB_PATH)
        return _table
