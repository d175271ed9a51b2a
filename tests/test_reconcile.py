"""reconcile(): every counter equals rows + pending (+ other sinks), read as one view."""

import pytest

from backup_data import BackupDataManager
from db import ReactionsTable
from live.reconcile import reconcile
from redis_adapter import InMemoryRedis, RedisAdapter


@pytest.fixture
def adapter():
    return RedisAdapter(InMemoryRedis(), prefix="")


@pytest.fixture
def table():
    table = ReactionsTable(":memory:")
    yield table
    table.close()


def post(adapter, *cells):
    for n, (match_id, emoticon) in enumerate(cells):
        adapter.record_reaction(n + 1, match_id, emoticon, float(n))


def test_rows_plus_pending_equal_the_counters(adapter, table):
    """Some events backed up, some pending: OK, with the totals split between them."""
    post(adapter, (1, "heart"), (2, "sad"))
    BackupDataManager(adapter, table).run()
    post(adapter, (1, "heart"))
    result = reconcile(adapter, table)
    assert (result.ok, result.counters, result.rows, result.pending) == (True, 3, 2, 1)
    assert result.line().endswith("pending_in_redis=1 OK")


def test_a_counted_event_found_nowhere_is_a_mismatch(adapter, table):
    """A counter above its rows + pending names that counter."""
    post(adapter, (1, "heart"))
    adapter.redis.incr("1_heart")
    result = reconcile(adapter, table)
    assert not result.ok and result.mismatches == {(1, "heart"): (2, 1)}
    assert "MISMATCH in 1 counters" in result.line()


def test_staged_list_in_the_ledger_counts_once(adapter, table):
    """A staged list whose rows are committed but not yet deleted is rows, not pending too."""
    post(adapter, (3, "happy"), (3, "happy"))
    [staged] = adapter.stage_all(adapter.match_data_keys(), "b1")
    table.insert_many(adapter.iter_events(staged), batch=staged, source=adapter.source_id())
    result = reconcile(adapter, table)
    assert (result.ok, result.rows, result.pending) == (True, 2, 0)


def test_other_sinks_are_added(adapter, table):
    """Events held elsewhere (dead letters, spill files) are counted through a sink."""
    post(adapter, (4, "sad"))
    adapter.redis.delete("match_data_4")
    result = reconcile(adapter, table, sinks=[lambda: {(4, "sad"): 1}])
    assert result.ok and result.sinks == 1 and "other_sinks=1" in result.line()


def test_rows_of_another_prefix_in_the_same_file_are_not_counted(adapter, table):
    """Two prefixes backing up into one file: each reconciles its own rows, OK."""
    other = RedisAdapter(adapter.redis, prefix="other:")
    post(adapter, (1, "heart"))
    post(other, (1, "heart"), (1, "heart"))
    BackupDataManager(adapter, table).run()
    BackupDataManager(other, table).run()
    assert table.count() == 3
    assert (reconcile(adapter, table).line(), reconcile(other, table).line()) == (
        "system-wide reconciliation: redis_counters=1 database_rows=1 pending_in_redis=0 OK",
        "system-wide reconciliation: redis_counters=2 database_rows=2 pending_in_redis=0 OK")


def test_rows_of_an_earlier_redis_are_not_counted(adapter, table):
    """Rows from another Redis dataset (an in-memory run) in the file: not this Redis's."""
    earlier = RedisAdapter(InMemoryRedis(), prefix="")
    post(earlier, (1, "heart"))
    BackupDataManager(earlier, table).run()
    post(adapter, (1, "heart"))
    result = reconcile(adapter, table)
    assert (result.ok, result.rows, result.pending) == (True, 0, 1)


class BusyRedis(InMemoryRedis):
    """A Redis where another process posts to a new match just before each view's MULTI."""

    matches = 0

    def pipeline(self, transaction=True):
        pipe = super().pipeline(transaction)
        execute = pipe.execute

        def execute_after_a_post(raise_on_error=True):
            if any(args[0] == "KEYS" for args, _ in pipe.command_stack):  # a reconcile view
                self.matches += 1
                RedisAdapter(self, prefix="").record_reaction(1, self.matches, "heart", 0.0)
            return execute(raise_on_error)

        pipe.execute = execute_after_a_post
        return pipe


def test_no_consistent_view_is_not_checked_rather_than_mismatch(table):
    """When every view missed a key made meanwhile, the line says NOT CHECKED, not MISMATCH."""
    result = reconcile(RedisAdapter(BusyRedis(), prefix=""), table, seconds=60)
    assert not result.ok and not result.consistent and result.tries == 20
    assert "NOT CHECKED" in result.line() and "MISMATCH" not in result.line()


def test_time_limit_ends_the_tries(table):
    """The tries stop at the time limit (an injected clock), not only after 20 views; it counts
    from the end of the first view, which reads every pending event however long that takes."""
    ticks = iter(range(1000))
    result = reconcile(RedisAdapter(BusyRedis(), prefix=""), table, seconds=2.5,
                       clock=lambda: next(ticks))
    assert not result.consistent and result.tries == 4  # clock 0 (+2.5), 1, 2, then 3 >= 2.5


def test_a_backup_cannot_commit_while_the_view_is_read(tmp_path):
    """held_census's read lock, in the rollback-journal mode the program creates files in,
    makes another connection's commit wait (SQLite busy) until the block ends."""
    import sqlite3
    path = str(tmp_path / "r.db")
    ReactionsTable(path).close()
    reader = ReactionsTable(path, read_only=True)
    writer = sqlite3.connect(path, timeout=0, isolation_level=None)
    with reader.held_census():
        writer.execute("begin immediate")
        writer.execute("insert into backup_batches (batch) values ('x')")
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            writer.execute("commit")
    writer.execute("commit")
    assert "x" in reader.census()[1]


def test_a_counter_made_during_the_scan_is_read_again(adapter, table, monkeypatch):
    """A cell posted between the SCAN and the MULTI makes that view incomplete: taken again."""
    post(adapter, (1, "heart"))
    scans = []
    original = RedisAdapter.counter_keys

    def counter_keys_then_post(self, *args):
        found = original(self, *args)
        if not scans:
            post(adapter, (1, "sad"))  # new counter 1_sad, and its event in match_data_1
        scans.append(found)
        return found

    monkeypatch.setattr(RedisAdapter, "counter_keys", counter_keys_then_post)
    result = reconcile(adapter, table)
    assert (result.ok, result.counters, result.pending, result.tries) == (True, 2, 2, 2)


def test_poison_items_are_counted_unreadable_not_a_traceback(adapter, table):
    """Items that are not one event record are counted apart; the records still reconcile."""
    post(adapter, (2, "sad"))
    adapter.redis.rpush("match_data_2", "not json", "1, 2", '{"user_id": 1}', "[]")
    result = reconcile(adapter, table)
    assert (result.ok, result.unreadable, result.pending) == (True, 4, 1)
    assert "unreadable_in_redis=4 OK" in result.line()


def test_an_item_nested_too_deep_is_counted_unreadable_not_a_traceback(adapter, table):
    """An item json.loads cannot decode for its nesting (RecursionError, not ValueError) is
    unreadable like any other poison item; the records still reconcile."""
    post(adapter, (2, "sad"))
    adapter.redis.rpush("match_data_2", "[" * 100_000 + "]" * 100_000)
    result = reconcile(adapter, table)
    assert (result.ok, result.unreadable, result.pending) == (True, 1, 1)


def test_items_that_only_join_into_records_name_no_cell(adapter, table):
    """Two items, neither one JSON value, that joined with a comma would read as two records
    naming cells are two unreadable items, as the backup dead-letters them: the view counts
    no cell for them (it would count two that no counter or dead letter matches)."""
    post(adapter, (2, "sad"))
    adapter.redis.delete("match_data_2")
    adapter.redis.incrby("2_sad", -1)
    adapter.redis.rpush("match_data_2",
                        '{"match_id": 2, "emoticon_type": "sad"}, {"match_id": 2, '
                        '"emoticon_type": "heart", "y": [1', '2]}')
    result = reconcile(adapter, table)
    assert (result.ok, result.unreadable, result.pending) == (True, 2, 0)


def test_foreign_keys_of_our_shape_and_the_other_type_do_not_block(adapter, table):
    """Another app's string named like a list (and list named like a counter): view is OK."""
    adapter.redis.set("match_data_7", "x")
    adapter.redis.rpush("7_sad", "y")
    adapter.redis.set("7_heart", "not a number")
    post(adapter, (1, "heart"))
    result = reconcile(adapter, table)
    assert (result.ok, result.tries, result.counters) == (True, 1, 1)


def test_dead_letters_of_another_prefix_are_not_counted(adapter, table):
    """The dead-letter sink keeps the letters of this prefix's staged lists only."""
    from live.summary import dead_letter_sink
    other = RedisAdapter(adapter.redis, prefix="other:")
    for layout_adapter in (adapter, other):
        post(layout_adapter, (5, "sad"))
        layout_adapter.redis.rpush(layout_adapter.layout.match_data_key(5),
                                   '{"user_id": 1, "emoticon_type": "sad", "match_id": 5}')
        BackupDataManager(layout_adapter, table).run()
    assert len(table.dead_letters()) == 2
    assert dead_letter_sink(adapter, table)() == {(5, "sad"): 1}


class AfterViewRedis(InMemoryRedis):
    """An InMemoryRedis that runs ``after_view()`` once, right after a reconciliation view's
    MULTI (the one with KEYS) and before the table is read: what a backup process does then."""

    after_view = None

    def pipeline(self, transaction=True):
        pipe = super().pipeline(transaction)
        execute = pipe.execute

        def execute_then_hook(raise_on_error=True):
            view = any(args[0] == "KEYS" for args, _ in pipe.command_stack)
            replies = execute(raise_on_error)
            if view and self.after_view is not None:
                hook, self.after_view = self.after_view, None
                hook()
            return replies

        pipe.execute = execute_then_hook
        return pipe


def test_a_backup_run_between_the_view_and_the_table_read_is_not_counted_twice(table):
    """A whole backup run (stage, commit, delete, drop the ledger rows) between the view's
    MULTI and the table read: its rows are in the table, its lists were pending in the view.
    The renamed live list shows it; the view is taken again, and is OK."""
    adapter = RedisAdapter(AfterViewRedis(), prefix="")
    post(adapter, (1, "heart"), (2, "sad"))
    adapter.redis.after_view = lambda: BackupDataManager(adapter, table).run()
    result = reconcile(adapter, table)
    assert (result.ok, result.rows, result.pending, result.tries) == (True, 2, 0, 2)


def test_a_staged_list_moved_and_forgotten_between_the_view_and_the_table_read(table):
    """A staged list of the view committed, deleted and dropped from the ledger before the
    table read: neither the ledger read nor Redis names it any more. Its rows are in the
    table and it was pending in the view: the view is taken again, and is OK."""
    adapter = RedisAdapter(AfterViewRedis(), prefix="")
    post(adapter, (3, "happy"), (3, "happy"))
    adapter.stage_all(adapter.match_data_keys(), "b1")
    adapter.redis.after_view = lambda: BackupDataManager(adapter, table).run()
    result = reconcile(adapter, table)
    assert (result.ok, result.rows, result.pending, result.tries) == (True, 2, 0, 2)
    assert table.census()[1] == frozenset()  # the ledger row was dropped indeed


class HookedRedis(InMemoryRedis):
    """An InMemoryRedis that records how many list items each call returned, and runs
    ``before_read()`` once, just before the first LRANGE outside a view's MULTI: what another
    process does while the reconciliation reads the lists."""

    before_read = None

    def __init__(self):
        super().__init__()
        self.items_per_call = []

    def pipeline(self, transaction=True):
        pipe = super().pipeline(transaction)
        execute = pipe.execute

        def execute_and_count(raise_on_error=True):
            ranges = [args[0] == "LRANGE" for args, _ in pipe.command_stack]
            view = any(args[0] == "KEYS" for args, _ in pipe.command_stack)
            if any(ranges) and not view and self.before_read is not None:
                hook, self.before_read = self.before_read, None
                hook()
            replies = execute(raise_on_error)
            self.items_per_call.append(sum(len(reply) for is_range, reply in zip(ranges, replies)
                                           if is_range and isinstance(reply, list)))
            return replies

        pipe.execute = execute_and_count
        return pipe

    def lrange(self, name, start, end):
        reply = super().lrange(name, start, end)
        self.items_per_call.append(len(reply))
        return reply


def test_no_redis_call_returns_more_than_a_chunk_of_items(table):
    """A backlog bigger than READ_CHUNK_ITEMS (live and staged) is read a chunk per call,
    never in one reply: the client's memory and each Redis call stay bounded."""
    from live.reconcile import READ_CHUNK_ITEMS
    adapter = RedisAdapter(HookedRedis(), prefix="")
    backlog = READ_CHUNK_ITEMS * 2 + 500
    for n in range(backlog):
        adapter.record_reaction(n + 1, 1 + n % 2, "heart", float(n))
    adapter.stage_all(["match_data_1"], "b1")
    result = reconcile(adapter, table)
    assert (result.ok, result.counters, result.pending) == (True, backlog, backlog)
    assert max(adapter.redis.items_per_call) == READ_CHUNK_ITEMS


def test_a_list_renamed_while_it_is_read_is_read_again(table):
    """A backup stages a live list after the view's MULTI and new events start a new list of
    that name, as long as the old one: the view sees the list is not the same and is taken
    again, rather than counting the new list's events as the old one's."""
    adapter = RedisAdapter(HookedRedis(), prefix="")
    post(adapter, (1, "heart"), (1, "heart"), (1, "heart"))

    def stage_then_post():
        adapter.stage_all(["match_data_1"], "b1")
        post(adapter, (1, "sad"), (1, "sad"), (1, "sad"))

    adapter.redis.before_read = stage_then_post
    result = reconcile(adapter, table)
    # view 1: the list changed; view 2: its keys miss the staged list (KEYS shows it); view 3
    assert (result.ok, result.pending, result.tries) == (True, 6, 3)


def test_a_staged_list_moved_before_it_is_read_is_counted_as_rows_by_the_next_view(table):
    """A backup commits and deletes a staged list after the view's MULTI, before its items
    are read: that view cannot count it; the next one finds its rows in the table."""
    adapter = RedisAdapter(HookedRedis(), prefix="")
    post(adapter, (2, "sad"), (2, "happy"))
    adapter.stage_all(["match_data_2"], "b1")
    adapter.redis.before_read = lambda: BackupDataManager(adapter, table).run()
    result = reconcile(adapter, table)
    assert (result.ok, result.rows, result.pending, result.tries) == (True, 2, 0, 2)


def test_staged_lists_read_in_full_are_not_read_again(table):
    """A view taken again does not read again the staged lists the last one read in full:
    they never change (a POST to a new match during the first view makes it unprovable)."""
    adapter = RedisAdapter(HookedRedis(), prefix="")
    for n in range(15_000):
        adapter.record_reaction(n + 1, 1, "heart", float(n))
    adapter.stage_all(["match_data_1"], "b1")
    adapter.redis.before_read = lambda: post(adapter, (9, "sad"))
    result = reconcile(adapter, table)
    assert (result.ok, result.pending, result.tries) == (True, 15_001, 3)
    assert sum(adapter.redis.items_per_call) == 15_001  # the staged list once, then match 9's
