"""ReactionsTable: batch inserts all or nothing, the seed's aggregate query, thread safety."""

import sqlite3
import threading

import pytest

import db
from db import AGGREGATE_QUERY, ROWS_PER_INSERT, ReactionsTable, SchemaMismatchError
from tests.threads import join_all


def event(user_id=1, match_id=1, emoticon_type="heart", timestamp=1670051582.545891):
    return {"user_id": user_id, "emoticon_type": emoticon_type, "timestamp": timestamp,
            "match_id": match_id}


@pytest.fixture
def table():
    table = ReactionsTable(":memory:")
    yield table
    table.close()


def test_insert_many_returns_rows_inserted(table):
    """insert_many answers how many rows it inserted, and count() sees them."""
    assert table.insert_many([event(user_id=n) for n in range(1, 6)]) == 5
    assert table.count() == 5


def test_insert_many_keeps_every_column(table):
    """A row holds the event's fields and an autoincrement id."""
    table.insert_many([event(7, 3, "sad", 1670051583.25), event(8, 3, "happy", 1670051584.5)])
    assert table.latest(2) == [
        {"id": 2, "user_id": 8, "match_id": 3, "emoticon_type": "happy", "timestamp": 1670051584.5},
        {"id": 1, "user_id": 7, "match_id": 3, "emoticon_type": "sad", "timestamp": 1670051583.25},
    ]


def test_insert_many_accepts_a_generator(table):
    """A generator of events is streamed into one transaction."""
    assert table.insert_many(event(user_id=n) for n in range(1, 1001)) == 1000
    assert table.count() == 1000


def test_insert_many_empty(table):
    """An empty batch inserts nothing and does not fail."""
    assert table.insert_many([]) == 0
    assert table.count() == 0


def test_insert_many_rolls_back_on_check_violation(table):
    """An emoticon outside the CHECK constraint fails the batch; none of its rows stays."""
    table.insert_many([event()])
    with pytest.raises(sqlite3.IntegrityError):
        table.insert_many([event(), event(), event(emoticon_type="angry"), event()])
    assert table.count() == 1


def test_insert_many_rolls_back_on_null(table):
    """A missing value (NULL) violates NOT NULL and rolls the batch back."""
    with pytest.raises(sqlite3.IntegrityError):
        table.insert_many([event(), event(user_id=None)])
    assert table.count() == 0


def test_insert_many_rolls_back_when_the_source_fails(table):
    """If the events' iterable raises midway, the rows already sent are rolled back."""
    def events():
        yield event()
        yield event()
        raise ConnectionError("Redis went away")

    with pytest.raises(ConnectionError):
        table.insert_many(events())
    assert table.count() == 0


def test_insert_many_missing_field(table):
    """An event without a column's field raises KeyError and inserts nothing."""
    with pytest.raises(KeyError):
        table.insert_many([event(), {"user_id": 1, "match_id": 1, "timestamp": 1.0}])
    assert table.count() == 0


def test_table_usable_after_a_failed_batch(table):
    """A rolled-back batch leaves no transaction open: the next insert commits."""
    with pytest.raises(sqlite3.IntegrityError):
        table.insert_many([event(emoticon_type="angry")])
    assert table.insert_many([event()]) == 1


def test_aggregate_runs_the_seeds_query(table):
    """aggregate() gives count(id) per emoticon of one match, other matches left out."""
    table.insert_many([event(match_id=1, emoticon_type="heart")] * 3
                      + [event(match_id=1, emoticon_type="sad")]
                      + [event(match_id=2, emoticon_type="heart")] * 5)
    assert table.aggregate(1) == {"heart": 3, "sad": 1}
    assert table.aggregate(2) == {"heart": 5}
    assert table.aggregate(3) == {}


def test_aggregate_query_is_the_seeds(table):
    """The query text is the seed's, word for word (bar the ? parameter)."""
    words = " ".join(AGGREGATE_QUERY.split())
    assert words == ("select count(id), emoticon_type from reactions_table "
                     "where match_id = ? group by emoticon_type")


def test_aggregate_query_uses_the_index(table):
    """The aggregate query is answered from the (match_id, emoticon_type) index."""
    plan = table._connection.execute("explain query plan " + AGGREGATE_QUERY, (1,)).fetchall()
    assert any("reactions_match_emoticon" in row[-1] for row in plan)


def test_schema_matches_the_seed(table):
    """reactions_table has the seed's columns, all NOT NULL, id the autoincrement key."""
    columns = table._connection.execute("pragma table_info(reactions_table)").fetchall()
    assert [(c[1], c[2].lower(), c[3], c[5]) for c in columns] == [
        ("id", "integer", 1, 1),
        ("user_id", "integer", 1, 0),
        ("match_id", "integer", 1, 0),
        ("emoticon_type", "text", 1, 0),
        ("timestamp", "real", 1, 0),
    ]
    sql = table._connection.execute(
        "select sql from sqlite_master where name = 'reactions_table'").fetchone()[0]
    assert "autoincrement" in sql.lower()


def test_file_database_keeps_rows(tmp_path):
    """A file database keeps its rows for the next ReactionsTable on the same path."""
    path = str(tmp_path / "reactions.db")
    first = ReactionsTable(path)
    first.insert_many([event(), event()])
    first.close()
    second = ReactionsTable(path)
    assert second.count() == 2
    second.close()


def test_custom_emoticon_types(tmp_path):
    """The CHECK constraint allows exactly the configured emoticons, quotes included."""
    table = ReactionsTable(":memory:", emoticon_types=("wow", "it's"))
    assert table.insert_many([event(emoticon_type="wow"), event(emoticon_type="it's")]) == 2
    with pytest.raises(sqlite3.IntegrityError):
        table.insert_many([event(emoticon_type="heart")])


def test_inserts_from_many_threads(table):
    """Batches from several threads all land, each whole."""
    def insert(thread_number):
        for batch in range(20):
            table.insert_many([event(user_id=thread_number)] * 50)

    threads = [threading.Thread(target=insert, args=(n,), daemon=True) for n in range(1, 5)]
    for thread in threads:
        thread.start()
    join_all(threads)
    assert table.count() == 4 * 20 * 50


def test_file_made_for_other_emoticons_is_refused(tmp_path):
    """Opening a file whose CHECK allows other emoticons raises SchemaMismatchError."""
    path = str(tmp_path / "reactions.db")
    ReactionsTable(path, emoticon_types=("heart", "sad")).close()
    with pytest.raises(SchemaMismatchError) as excinfo:
        ReactionsTable(path, emoticon_types=("heart", "sad", "angry"))
    assert path in str(excinfo.value) and "another database file" in str(excinfo.value)


def test_failed_commit_is_rolled_back_and_the_table_stays_usable(table):
    """A COMMIT that fails (here a deferred constraint) ends its transaction: nothing stays,
    and the next batch commits instead of failing "within a transaction"."""
    connection = table._connection
    connection.execute("pragma foreign_keys = on")
    connection.execute("create table parent (id integer primary key)")
    connection.execute("create table child (parent_id integer references parent (id) "
                       "deferrable initially deferred)")
    with pytest.raises(sqlite3.IntegrityError):
        with table._transaction() as transaction:
            transaction.executemany(
                "insert into reactions_table (user_id, match_id, emoticon_type, timestamp) "
                "values (?, ?, ?, ?)", [(1, 1, "heart", 1.0)])
            transaction.execute("insert into child values (42)")  # fails only at COMMIT
    assert not connection.in_transaction
    assert table.count() == 0
    assert table.insert_many([event()]) == 1


def test_batch_is_inserted_once(table):
    """A batch name already in the ledger inserts nothing; forgetting it frees the name."""
    assert table.insert_many([event(), event()], batch="match_data_1:backup:b1") == 2
    assert table.insert_many([event(), event()], batch="match_data_1:backup:b1") == 0
    table.forget_batch("match_data_1:backup:b1")
    assert table.insert_many([event()], batch="match_data_1:backup:b1") == 1
    assert table.count() == 3


def test_batch_is_recorded_only_with_its_rows(table):
    """A failed batch leaves no ledger entry behind, so its retry inserts it."""
    with pytest.raises(sqlite3.IntegrityError):
        table.insert_many([event(), event(emoticon_type="angry")], batch="b")
    assert table.insert_many([event()], batch="b") == 1


def test_file_with_other_columns_is_refused(tmp_path):
    """A reactions_table with the same CHECK but other columns is not taken for ours."""
    path = str(tmp_path / "reactions.db")
    with sqlite3.connect(path) as connection:
        connection.execute(
            "create table reactions_table (id integer not null primary key autoincrement, "
            "user_id integer not null, match_id integer not null, emoticon_type text not null "
            "check (emoticon_type in ('heart', 'sad', 'happy')), timestamp real not null, "
            "extra text not null)")
    with pytest.raises(SchemaMismatchError):
        ReactionsTable(path)


@pytest.mark.parametrize("rows", [ROWS_PER_INSERT - 1, ROWS_PER_INSERT, ROWS_PER_INSERT + 1,
                                  2 * ROWS_PER_INSERT + 7])
def test_insert_many_in_several_statements(table, rows):
    """Batches longer than one INSERT statement's rows go in whole, in order."""
    assert table.insert_many(event(user_id=n) for n in range(1, rows + 1)) == rows
    assert [row["user_id"] for row in table.latest(rows)] == list(range(rows, 0, -1))


@pytest.mark.skipif(sqlite3.sqlite_version_info < (3, 32), reason="SQLite before 3.32 allows "
                    "999 parameters a statement by default, 249 rows")
def test_one_insert_statement_holds_rows_per_insert_rows_on_every_python():
    """Where SQLite allows it, an INSERT carries ROWS_PER_INSERT rows on Python 3.10 too, which
    cannot ask SQLite its limit (no Connection.getlimit before 3.11)."""
    connection = sqlite3.connect(":memory:")
    try:
        assert db._max_rows_per_insert(connection) == ROWS_PER_INSERT
    finally:
        connection.close()


@pytest.mark.skipif(not hasattr(sqlite3.Connection, "setlimit"),
                    reason="Python 3.10 cannot lower SQLite's limit (no Connection.setlimit)")
def test_a_lower_parameter_limit_is_found_without_getlimit():
    """The probe Python 3.10 relies on sees a limit below what a full INSERT needs."""
    connection = sqlite3.connect(":memory:")
    try:
        connection.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, 4 * ROWS_PER_INSERT - 1)
        assert db._parameters_allowed(connection, 4 * ROWS_PER_INSERT) == 999
    finally:
        connection.close()


def test_failure_in_a_later_statement_rolls_back_the_earlier_ones(table):
    """A bad row past the first INSERT statement still undoes the whole batch."""
    events = [event()] * (ROWS_PER_INSERT + 5) + [event(emoticon_type="angry")]
    with pytest.raises(sqlite3.IntegrityError):
        table.insert_many(events)
    assert table.count() == 0


@pytest.mark.parametrize("read_only", [False, True])
def test_file_made_for_the_same_emoticons_in_another_order_is_accepted(tmp_path, read_only):
    """EMOTICON_TYPES reordered (the GET table's columns) is the same set: the file opens and
    its rows stay readable."""
    path = str(tmp_path / "r.db")
    ReactionsTable(path, ("heart", "sad", "happy")).close()
    table = ReactionsTable(path, ("happy", "heart", "sad"), read_only=read_only)
    assert table.count() == 0
    table.close()


def test_file_made_for_fewer_emoticons_is_refused(tmp_path):
    """A subset or superset is another set: refused, as before."""
    path = str(tmp_path / "r.db")
    ReactionsTable(path, ("heart", "sad")).close()
    with pytest.raises(SchemaMismatchError):
        ReactionsTable(path, ("heart", "sad", "happy"))
