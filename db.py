"""The DB layer: ReactionsTable, the seed's one table, on sqlite3.

The write-behind backup inserts events here in batches; nothing on the request path touches it.
The table is real SQL, so the seed's aggregate query runs as written. One connection serves every
thread (a ``:memory:`` database exists only inside its connection), guarded by one lock; each
batch is one transaction, all or nothing.
"""

from __future__ import annotations

import functools
import itertools
import operator
import sqlite3
import threading
from contextlib import contextmanager
from typing import Any, Iterable, Iterator, Mapping, Sequence

import config

__all__ = ["ReactionsTable", "SchemaMismatchError", "get_reactions_table", "AGGREGATE_QUERY"]

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


# An event record's values in INSERT's column order (in C: the backup's per-row cost).
_ROW_OF_EVENT = operator.itemgetter("user_id", "match_id", "emoticon_type", "timestamp")

ROWS_PER_INSERT = 2000
"""Rows per INSERT statement in insert_many (fewer if SQLite allows fewer ? parameters).

sqlite3 lets other threads take the GIL once per statement, and a busy one -- the poster at
--rate 0 -- may then keep it for a whole switch interval. One row per statement (executemany)
so crawls at about 200 rows/s while posting runs flat out; 2,000 rows per statement keep the
backup ahead of the poster (README, Performance)."""


@functools.lru_cache(maxsize=64)
def _insert_sql(rows: int) -> str:
    """INSERT with ``rows`` groups of ? parameters."""
    return INSERT + ", (?, ?, ?, ?)" * (rows - 1)


def _max_rows_per_insert(connection: sqlite3.Connection) -> int:
    try:
        parameters = connection.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)
    except AttributeError:  # Python 3.10 has no getlimit: assume SQLite's old default, 999
        parameters = 999
    return max(1, min(ROWS_PER_INSERT, parameters // 4))


class SchemaMismatchError(ValueError):
    """The database file holds a reactions_table whose CHECK allows other emoticons."""


def _sql_string(text: str) -> str:
    """``text`` as an SQL string literal (DDL takes no ? parameters)."""
    return "'" + text.replace("'", "''") + "'"


def _check_schema(connection: sqlite3.Connection, path: str, allowed: str,
                  types: Sequence[str]) -> None:
    """Raise SchemaMismatchError unless reactions_table is the one CREATE_TABLE makes."""
    columns = [(c[1], c[2].upper(), c[3], c[5])
               for c in connection.execute("pragma table_info(reactions_table)")]
    schema = connection.execute(
        "select sql from sqlite_master where name = 'reactions_table'").fetchone()[0]
    if columns != COLUMNS or f"in ({allowed})" not in schema:
        raise SchemaMismatchError(
            f"{path} holds a reactions_table other than this one for emoticons "
            f"{', '.join(types)} (its schema: {' '.join(schema.split())}); "
            "use another database file")


class ReactionsTable:
    """The table ``reactions_table`` (seed: ReactionsTable) in the SQLite database at ``path``.

    ``path`` is ":memory:" or a file (created if missing, its rows kept). ``emoticon_types`` is
    the set the CHECK constraint allows (default config.EMOTICON_TYPES). Raises
    SchemaMismatchError if the file's table was made for another set, and sqlite3.Error if the
    file cannot be opened. Every method is safe to call from any thread.
    """

    def __init__(self, path: str = ":memory:",
                 emoticon_types: Sequence[str] | None = None) -> None:
        self.path = path
        self._lock = threading.Lock()
        # isolation_level=None: transactions are begun and ended explicitly in _transaction().
        self._connection = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._rows_per_insert = _max_rows_per_insert(self._connection)
        types = config.EMOTICON_TYPES if emoticon_types is None else emoticon_types
        allowed = ", ".join(_sql_string(emoticon) for emoticon in types)
        try:
            # A write transaction at once: a read-only file fails here, not at the first backup.
            with self._transaction() as connection:
                connection.execute(CREATE_TABLE.format(allowed=allowed))
                connection.execute(CREATE_INDEX)
                connection.execute(CREATE_BATCHES)
                _check_schema(connection, path, allowed, types)
        except BaseException:
            self._connection.close()
            raise

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """Hold the lock for one write transaction: commit if the block ends, else roll back.

        ``begin immediate`` takes SQLite's write lock first, so writers on other connections to
        the same file wait their turn instead of failing halfway.
        """
        with self._lock:
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

    def insert_many(self, events: Iterable[Mapping[str, Any]], batch: str | None = None) -> int:
        """Insert event records ``{user_id, match_id, emoticon_type, timestamp}`` in one transaction.

        ``events`` may be any iterable, a generator included (consumed once, streaming, and only
        if the rows go in). Returns the number of rows inserted. All or nothing: if any row fails
        (sqlite3.Error, e.g. an emoticon outside the CHECK) or the iterable raises, none stays.
        ``batch`` names the batch (the backup passes its staged list's key): it is recorded with
        the rows, and a batch already recorded inserts nothing and returns 0.
        """
        with self._transaction() as connection:
            if batch is not None:
                if connection.execute("select 1 from backup_batches where batch = ?",
                                      (batch,)).fetchone():
                    return 0
                connection.execute("insert into backup_batches (batch) values (?)", (batch,))
            return self._insert_rows(connection, map(_ROW_OF_EVENT, events))

    def _insert_rows(self, connection: sqlite3.Connection, rows: Iterator[tuple]) -> int:
        """INSERT ``rows`` up to self._rows_per_insert per statement; how many went in."""
        inserted = 0
        while block := list(itertools.islice(rows, self._rows_per_insert)):
            connection.execute(_insert_sql(len(block)), list(itertools.chain.from_iterable(block)))
            inserted += len(block)
        return inserted

    def forget_batch(self, batch: str) -> None:
        """Drop ``batch`` from the ledger, once its source is gone and it cannot come again."""
        with self._transaction() as connection:
            connection.execute("delete from backup_batches where batch = ?", (batch,))

    def count(self) -> int:
        """The number of rows in the table."""
        with self._lock:
            return self._connection.execute("select count(*) from reactions_table").fetchone()[0]

    def aggregate(self, match_id: int) -> dict[str, int]:
        """The seed's aggregate query for one match: ``{emoticon_type: count}``, posted ones only."""
        with self._lock:
            rows = self._connection.execute(AGGREGATE_QUERY, (match_id,)).fetchall()
        return {emoticon: count for count, emoticon in rows}

    def census(self) -> tuple[dict[tuple[int, str], int], frozenset[str]]:
        """Rows per ``(match_id, emoticon_type)`` and the ledger's batch names, read in one
        read transaction (one consistent view of the file, whatever other processes commit)."""
        with self._lock:
            self._connection.execute("begin")
            try:
                rows = self._connection.execute(
                    "select match_id, emoticon_type, count(*) from reactions_table "
                    "group by match_id, emoticon_type").fetchall()
                ledger = self._connection.execute("select batch from backup_batches").fetchall()
            finally:
                self._connection.execute("commit")
        return {(match_id, emoticon): count for match_id, emoticon, count in rows}, \
            frozenset(batch for (batch,) in ledger)

    def latest(self, limit: int = 5) -> list[dict[str, Any]]:
        """The last ``limit`` rows inserted, newest first, each as a dict of the table's columns."""
        with self._lock:
            cursor = self._connection.execute(LATEST, (limit,))
            columns = [column[0] for column in cursor.description]
            return [dict(zip(columns, row)) for row in cursor.fetchall()]

    def close(self) -> None:
        """Close the connection (a ``:memory:`` table is gone after this)."""
        with self._lock:
            self._connection.close()


_table: ReactionsTable | None = None
_table_lock = threading.Lock()


def get_reactions_table() -> ReactionsTable:
    """The process-wide ReactionsTable at ``config.DB_PATH``, created on first use."""
    global _table
    with _table_lock:
        if _table is None:
            _table = ReactionsTable(config.DB_PATH)
        return _table
