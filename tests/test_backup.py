"""The write-behind backup: every posted event reaches the table exactly once, whatever races it."""

import random
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import config
import redis_adapter
from api_layer import POSTMethod, read_counts
from backup_data import BackupDataManager, BackupError, new_batch
from db import ReactionsTable
from redis_adapter import RedisAdapter, get_adapter, get_redis
from tests.threads import join_all

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def table():
    table = ReactionsTable(":memory:")
    yield table
    table.close()


class FlakyTable(ReactionsTable):
    """A ReactionsTable whose insert fails on chosen calls, after reading part of the batch."""

    def __init__(self, fail_calls):
        super().__init__(":memory:")
        self.fail_calls = set(fail_calls)
        self.calls = 0
        self.failures = 0

    def insert_batch(self, events, batch=None, *more):
        self.calls += 1
        if self.calls in self.fail_calls:
            self.failures += 1

            def half_then_fail(events=iter(events)):
                yield next(events)
                raise sqlite3.OperationalError("disk I/O error (injected)")
            return super().insert_batch(half_then_fail(), batch, *more)
        return super().insert_batch(events, batch, *more)


def race(posters, backups):
    """Run each of ``posters`` once, each in its thread, while every callable in ``backups`` is
    called again and again (1 ms apart) in a thread of its own; return when all have stopped."""
    stop = threading.Event()

    def again(back_up):
        while not stop.is_set():
            back_up()
            stop.wait(0.001)

    workers = [threading.Thread(target=again, args=(back_up,), daemon=True)
               for back_up in backups]
    posting = [threading.Thread(target=post, daemon=True) for post in posters]
    for thread in workers + posting:
        thread.start()
    try:
        join_all(posting)
    finally:
        stop.set()
    join_all(workers)


def table_rows(table):
    """Every row as a record dict, ordered by id."""
    return [{key: row[key] for key in ("user_id", "emoticon_type", "timestamp", "match_id")}
            for row in reversed(table.latest(table.count()))]


def assert_reconciled(table, posted):
    """Rows == posted records (as a multiset), per-match SQL aggregate == Redis counters."""
    adapter = get_adapter()
    assert adapter.pending_events() == 0
    assert table.count() == len(posted) == adapter.counter_total()
    key = lambda record: (record["match_id"], record["timestamp"], record["user_id"],
                          record["emoticon_type"])
    assert sorted(table_rows(table), key=key) == sorted(posted, key=key)
    for match_id in range(1, config.MAX_MATCHES + 1):
        counts = {emoticon: count for emoticon, count in read_counts(match_id).items() if count}
        assert table.aggregate(match_id) == counts


def test_backup_moves_every_list_and_frees_redis(table):
    """One run inserts every match's events and deletes their lists; counters stay."""
    posted = [POSTMethod(1, 1, "heart"), POSTMethod(2, 1, "sad"), POSTMethod(3, 2, "happy")]
    result = BackupDataManager(table=table).run()
    assert (result.events, result.keys) == (3, 2)
    assert result.seconds >= 0
    assert get_redis().keys("*match_data_*") == []
    assert sorted(get_redis().keys("*")) == ["1_heart", "1_sad", "2_happy",
                                            "live-reactions:dataset"]
    assert table_rows(table) == posted


def test_backup_with_nothing_pending(table):
    """A run with no pending events moves nothing."""
    result = BackupDataManager(table=table).run()
    assert (result.events, result.keys, table.count()) == (0, 0, 0)


def test_backup_keeps_posting_order_per_match(table):
    """Within a match, rows follow the order the events were posted in."""
    posted = [POSTMethod(user_id, 7, "heart") for user_id in range(1, 101)]
    BackupDataManager(table=table).run()
    assert [row["user_id"] for row in table_rows(table)] == [e["user_id"] for e in posted]


def test_backup_of_a_large_list_reads_it_in_chunks(table):
    """A list of 25 LRANGE chunks and one item more is moved whole, in posting order."""
    posted = [POSTMethod(n % 1000 + 1, 3, "sad") for n in range(25 * redis_adapter._READ_CHUNK + 1)]
    assert BackupDataManager(table=table).run().events == len(posted)
    assert_reconciled(table, posted)
    assert table_rows(table) == posted


def test_backup_leaves_get_unchanged(table):
    """The counters GET reads are not touched by a backup."""
    for user_id in range(1, 6):
        POSTMethod(user_id, 4, "heart")
    before = read_counts(4)
    BackupDataManager(table=table).run()
    assert read_counts(4) == before == {"heart": 5, "sad": 0, "happy": 0}


def test_failed_insert_keeps_events_in_redis(table):
    """When the insert fails, the run raises, nothing is inserted and the events stay pending."""
    POSTMethod(1, 1, "heart")
    POSTMethod(2, 1, "sad")
    flaky = FlakyTable(fail_calls={1})
    with pytest.raises(BackupError) as excinfo:
        BackupDataManager(table=flaky).run()
    assert isinstance(excinfo.value.__cause__, sqlite3.OperationalError)
    assert excinfo.value.result.events == 0
    assert flaky.count() == 0
    assert get_adapter().pending_events() == 2


def test_failed_batch_is_retried_first_without_duplicates():
    """The next run inserts the staged list, then the newer events, each once and in order."""
    first = [POSTMethod(n, 1, "heart") for n in range(1, 4)]
    flaky = FlakyTable(fail_calls={1})
    manager = BackupDataManager(table=flaky)
    with pytest.raises(BackupError):
        manager.run()
    later = [POSTMethod(n, 1, "sad") for n in range(4, 6)]
    result = manager.run()
    assert (result.events, result.keys) == (5, 2)
    assert table_rows(flaky) == first + later
    assert_reconciled(flaky, first + later)


def test_backup_loses_and_doubles_nothing_under_concurrent_posting(table,
                                                                   fast_thread_switching):
    """Four posting threads and a backup every millisecond: rows == posted, exactly once."""
    config.MAX_MATCHES = 5
    manager = BackupDataManager(table=table)
    posted, backups = [], []

    def post(seed):
        rng = random.Random(seed)
        mine = [POSTMethod(rng.randint(1, 1000), rng.randint(1, 5), rng.choice(("heart", "sad")))
                for _ in range(3000)]
        posted.extend(mine)

    race([lambda n=n: post(n) for n in range(4)], [lambda: backups.append(manager.run())])
    manager.run()
    assert len(posted) == 12_000
    assert sum(result.events for result in backups) > 0  # backups really ran during posting
    assert_reconciled(table, posted)


def test_backup_exactly_once_with_injected_failures_while_posting():
    """Inserts failing every third call, backups racing posts: still exactly once."""
    config.MAX_MATCHES = 4
    flaky = FlakyTable(fail_calls=set(range(3, 100_000, 3)))
    manager = BackupDataManager(table=flaky)
    posted, failures = [], []

    def post(seed):
        rng = random.Random(seed)
        posted.extend(POSTMethod(rng.randint(1, 1000), rng.randint(1, 4), "happy")
                      for _ in range(2000))

    def back_up():
        try:
            manager.run()
        except BackupError as error:
            failures.extend(error.errors.values())

    race([lambda n=n: post(n) for n in range(3)], [back_up])
    flaky.fail_calls.clear()
    manager.run()
    assert flaky.failures > 0 and len(failures) == flaky.failures
    assert all(isinstance(error, sqlite3.OperationalError) for error in failures)
    assert_reconciled(flaky, posted)


def test_concurrent_runs_of_one_manager_do_not_overlap(table):
    """run() from several threads at once still moves each event once."""
    posted = [POSTMethod(n % 1000 + 1, n % 10 + 1, "heart") for n in range(5000)]
    manager = BackupDataManager(table=table)
    threads = [threading.Thread(target=manager.run, daemon=True) for _ in range(4)]
    for thread in threads:
        thread.start()
    join_all(threads)
    assert_reconciled(table, posted)


def test_each_run_stages_under_its_own_name():
    """A list staged by a failed run is never overwritten; staged keys sort oldest first."""
    adapter = get_adapter()
    POSTMethod(1, 1, "heart")
    assert adapter.stage_all(["match_data_1"], "b1") == ["match_data_1:backup:b1"]
    POSTMethod(2, 1, "heart")
    POSTMethod(3, 2, "heart")
    assert adapter.stage_all(["match_data_1", "match_data_2"], "b2") == [
        "match_data_1:backup:b2", "match_data_2:backup:b2"]
    assert adapter.staged_keys() == ["match_data_1:backup:b1", "match_data_1:backup:b2",
                                     "match_data_2:backup:b2"]
    assert adapter.match_data_keys() == []


def test_stage_skips_a_vanished_key():
    """A key gone since the SCAN (another run took it) is skipped, the others staged."""
    POSTMethod(1, 2, "heart")
    assert get_adapter().stage_all(["match_data_9", "match_data_2"], "b") == [
        "match_data_2:backup:b"]


def test_batch_names_sort_in_start_order():
    """Run names are unique and sort like their start times."""
    names = [new_batch() for _ in range(1000)]
    assert names == sorted(names) and len(set(names)) == 1000


def test_failed_delete_does_not_double_rows(table):
    """Rows committed but their list not deleted: the next run deletes it, inserts nothing."""
    posted = [POSTMethod(n, 1, "heart") for n in range(1, 6)]
    manager = BackupDataManager(table=table)
    real_drop = manager.adapter.drop

    def failing_drop(key):
        manager.adapter.drop = real_drop
        raise ConnectionError("Redis went away after the commit (injected)")

    manager.adapter.drop = failing_drop
    try:
        with pytest.raises(BackupError):
            manager.run()
        assert table.count() == 5 and get_adapter().pending_events() == 5
        result = manager.run()
    finally:
        manager.adapter.drop = real_drop
    assert (result.events, result.keys) == (0, 1)
    assert_reconciled(table, posted)


def test_second_manager_between_commit_and_delete(table):
    """Another worker that finds a committed, not yet deleted list leaves the rows as they are."""
    posted = [POSTMethod(n, m, "sad") for n in range(1, 4) for m in (1, 2)]
    other = BackupDataManager(RedisAdapter(get_redis()), table)
    first = BackupDataManager(RedisAdapter(get_redis()), table)
    real_drop = first.adapter.drop
    runs = []

    def drop_after_the_other_ran(key):
        if not runs:
            runs.append(other.run())  # the other worker runs in this very gap
        real_drop(key)

    first.adapter.drop = drop_after_the_other_ran
    first.run()
    assert runs[0].events == 3  # it moved only the list the first worker had not reached
    assert_reconciled(table, posted)


def test_several_managers_while_posting_stay_exactly_once(table, fast_thread_switching):
    """Three workers backing up one Redis into one table while two threads post."""
    config.MAX_MATCHES = 3
    managers = [BackupDataManager(RedisAdapter(get_redis()), table) for _ in range(3)]
    posted = []

    def post(seed):
        rng = random.Random(seed)
        posted.extend(POSTMethod(rng.randint(1, 1000), rng.randint(1, 3), "heart")
                      for _ in range(3000))

    race([lambda n=n: post(n) for n in range(2)], [manager.run for manager in managers])
    managers[0].run()
    assert_reconciled(table, posted)


def test_a_failing_list_does_not_block_other_lists():
    """A list whose insert fails stays staged; every other list still moves."""
    posted = [POSTMethod(1, match_id, "heart") for match_id in (1, 2, 3)]
    flaky = FlakyTable(fail_calls={2})
    with pytest.raises(BackupError) as excinfo:
        BackupDataManager(table=flaky).run()
    [failed] = excinfo.value.errors
    assert isinstance(excinfo.value.errors[failed], sqlite3.OperationalError)
    assert (excinfo.value.result.events, excinfo.value.result.keys) == (2, 2)
    assert get_redis().llen(failed) == 1
    assert "kept staged in Redis" in str(excinfo.value)
    assert "next run" not in str(excinfo.value)
    BackupDataManager(table=flaky).run()
    assert_reconciled(flaky, posted)


def test_backup_moves_what_was_pending_when_it_started():
    """Events posted while a run inserts wait for the next run: a run's work is bounded."""
    first = [POSTMethod(1, match_id, "sad") for match_id in (1, 2, 3)]
    later = []

    class PostingTable(ReactionsTable):
        def insert_batch(self, events, batch=None, *more):
            later.append(POSTMethod(2, 3, "happy"))  # a post lands during each insert
            return super().insert_batch(events, batch, *more)

    table = PostingTable(":memory:")
    result = BackupDataManager(table=table).run()
    assert (result.events, result.keys) == (3, 3)
    assert table_rows(table) == first
    assert get_adapter().pending_events() == len(later) == 3


def test_seed_order_would_lose_events(table):
    """Why staging exists: read-insert-delete loses what is posted in between (seed's order)."""
    redis = get_redis()
    POSTMethod(1, 1, "heart")
    read = redis.lrange("match_data_1", 0, -1)      # seed: read the list ...
    POSTMethod(2, 1, "heart")                       # ... a post lands meanwhile ...
    redis.delete("match_data_1")                    # ... and is deleted unsaved
    assert len(read) == 1 and get_adapter().pending_events() == 0
    assert get_adapter().counter_total() == 2


def test_snapshot_matches_the_seed_format():
    """The snapshot shows counters as ints and lists as event records (seed's Redis layout)."""
    records = [POSTMethod(6, 5, "sad"), POSTMethod(9, 5, "happy"), POSTMethod(87, 6, "sad")]
    snapshot = get_adapter().snapshot()
    assert snapshot == {"5_happy": 1, "5_sad": 1, "6_sad": 1,
                        "match_data_5": records[:2], "match_data_6": records[2:]}
    assert all(isinstance(snapshot[key], int) for key in ("5_happy", "5_sad", "6_sad"))



class LockedLedger(ReactionsTable):
    """A table whose ledger cleanup fails (the file locked by another process) while told to."""

    locked = False

    def forget_batches(self, batches, deadline=None):
        if self.locked:
            raise sqlite3.OperationalError("database is locked")
        super().forget_batches(batches, deadline)


def ledger(table):
    with table._reading() as connection:
        return [batch for (batch,) in connection.execute("select batch from backup_batches")]


def test_list_moved_whose_ledger_row_stays_is_reported_moved():
    """A lock between a list's DEL and its ledger cleanup: the run still reports every list
    moved (no BackupError), Redis is empty, and the next run drops the ledger rows."""
    table = LockedLedger(":memory:")
    table.locked = True
    for match_id in (1, 2, 3):
        POSTMethod(1, match_id, "sad")
    manager = BackupDataManager(table=table)
    result = manager.run()
    assert (result.events, result.keys) == (3, 3)
    assert get_adapter().pending_events() == 0 and not manager.committed
    assert len(ledger(table)) == len(manager.unforgotten) == 3
    table.locked = False
    assert manager.run().keys == 0
    assert ledger(table) == [] and not manager.unforgotten


def test_batch_names_of_two_processes_differ_in_their_process_part():
    """Two processes (one ledger, one Redis) never name a run alike: each name carries the
    pid and a random part drawn per process, and stays a valid staging key."""
    code = "from backup_data import new_batch; print(new_batch())"
    names = [subprocess.run([sys.executable, "-c", code], cwd=ROOT, text=True, check=True,
                            capture_output=True, timeout=60).stdout.strip() for _ in range(2)]
    names.append(new_batch())
    assert len({name.split(".", 1)[1].rsplit(".", 1)[0] for name in names}) == 3
    assert all(get_adapter().layout.is_staged(get_adapter().layout.staging_key(
        "match_data_1", name)) for name in names)


class SteppingClock:
    """A fake monotonic clock: each reading is ``step`` seconds after the one before."""

    def __init__(self, step):
        self.step, self.now = step, 0.0

    def __call__(self):
        self.now += self.step
        return self.now


def test_long_backup_reports_its_progress_per_list_and_per_chunk(table):
    """A run past progress_seconds reports lists moved and events so far, in a huge list too."""
    chunk = redis_adapter._READ_CHUNK
    for n in range(2 * chunk + 1):
        POSTMethod(n % 1000 + 1, 1, "sad")
    POSTMethod(1, 2, "heart")
    reports = []
    manager = BackupDataManager(table=table, progress_seconds=1.0, clock=SteppingClock(1.0))
    assert manager.run(reports.append).events == 2 * chunk + 2
    assert [(p.lists, p.of_lists, p.events) for p in reports] == [
        (0, 2, chunk), (0, 2, 2 * chunk), (0, 2, 2 * chunk + 1), (1, 2, 2 * chunk + 1),
        (1, 2, 2 * chunk + 2), (2, 2, 2 * chunk + 2)]
    assert [p.seconds for p in reports] == [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]


def test_quick_backup_reports_no_progress(table):
    """A run shorter than progress_seconds calls on_progress never."""
    POSTMethod(1, 1, "sad")
    reports = []
    manager = BackupDataManager(table=table, progress_seconds=5.0, clock=SteppingClock(1.0))
    manager.run(reports.append)
    assert reports == [] and table.count() == 1


def test_progress_reports_come_at_most_once_per_interval(table):
    """Checks closer together than progress_seconds report once per interval, not each check."""
    for match_id in range(1, 11):
        POSTMethod(1, match_id, "happy")
    reports = []
    manager = BackupDataManager(table=table, progress_seconds=3.0, clock=SteppingClock(1.0))
    manager.run(reports.append)
    assert [p.seconds for p in reports] == [3.0, 6.0, 9.0, 12.0, 15.0, 18.0]


def test_a_failing_progress_report_does_not_fail_the_backup(table):
    """on_progress raising is logged; every list still moves."""
    POSTMethod(1, 1, "sad")

    def broken(progress):
        raise ValueError("display gone")
    manager = BackupDataManager(table=table, progress_seconds=0.0, clock=SteppingClock(1.0))
    assert manager.run(broken).events == 1 and table.count() == 1


def test_progress_counts_the_time_spent_staging(table, monkeypatch):
    """A run whose staging step alone outlasts progress_seconds reports at its first check."""
    POSTMethod(1, 1, "sad")
    now = [0.0]
    adapter = get_adapter()
    stage_all = adapter.stage_all

    def slow_stage_all(*args):
        now[0] += 6.0  # as SCAN and RENAME of 100,000 lists may take
        return stage_all(*args)
    monkeypatch.setattr(adapter, "stage_all", slow_stage_all)
    reports = []
    manager = BackupDataManager(adapter, table, progress_seconds=5.0, clock=lambda: now[0])
    manager.run(reports.append)
    assert [(p.lists, p.events, p.seconds) for p in reports] == [(0, 1, 6.0)]


def test_a_list_another_worker_moved_meanwhile_leaves_no_ledger_row(table, monkeypatch):
    """A worker that found a staged list another worker then moved, deleted and dropped from
    the ledger finds it empty: it records nothing (the ledger names only lists whose rows it
    holds) and reports no failure."""
    adapter = RedisAdapter()
    POSTMethod(1, 1, "heart")
    [staged] = adapter.stage_all(adapter.match_data_keys(), "b1")
    late = BackupDataManager(adapter, table)
    found = adapter.staged_keys()  # the late worker's SCAN, before the other one moves it
    assert BackupDataManager(adapter, table).run().events == 1
    monkeypatch.setattr(adapter, "staged_keys", lambda: found)
    result = late.run()
    assert (result.events, result.keys) == (0, 0)
    assert not table.has_batch(staged) and table.count() == 1


def test_ledger_rows_left_by_killed_runs_are_dropped_by_the_next_run(table, monkeypatch):
    """Runs killed after deleting their lists, before dropping their ledger rows, leave the
    rows behind; the next run drops every one of them (their lists are gone for good), and
    nothing is inserted twice."""
    adapter = RedisAdapter()
    posted = []
    for _ in range(3):
        posted += [POSTMethod(n, m, "happy") for n in (1, 2) for m in range(1, 6)]
        killed = BackupDataManager(adapter, table)
        monkeypatch.setattr(killed, "_forget", lambda deadline: None)  # it died before these
        monkeypatch.setattr(killed, "_sweep", lambda dataset, deadline: None)
        killed.run()
    assert len(table.census()[1]) == 15
    BackupDataManager(adapter, table).run()
    assert table.census()[1] == frozenset()
    assert_reconciled(table, posted)


def test_the_sweep_keeps_rows_of_lists_still_there_and_of_other_datasets(table):
    """The sweep drops a row only once its list is gone from this Redis: a list committed but
    not deleted yet keeps its row (it stops a second insert), and rows of another Redis's
    lists, or of names that carry no dataset, are not this run's to judge."""
    adapter = RedisAdapter()
    manager = BackupDataManager(adapter, table)
    dataset = adapter.source_id()
    POSTMethod(1, 1, "sad")
    [staged] = adapter.stage_all(adapter.match_data_keys(), new_batch(dataset))
    table.insert_many(adapter.iter_events(staged), batch=staged, source=dataset)
    other = f"match_data_1:backup:{new_batch('f' * 32)}"
    older = f"match_data_1:backup:{new_batch()}"
    for name in (other, older):
        table.insert_many([], batch=name)
    manager._sweep(dataset, time.monotonic() + 5)
    assert table.census()[1] == {staged, other, older}
    adapter.drop(staged)
    manager._sweep(dataset, time.monotonic() + 5)
    assert table.census()[1] == {other, older}
