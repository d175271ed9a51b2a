"""The write-behind backup: every posted event reaches the table exactly once, whatever races it."""

import random
import sqlite3
import threading

import pytest

import config
from api_layer import POSTMethod, read_counts
from backup_data import BackupDataManager
from db import ReactionsTable
from redis_adapter import get_adapter, get_redis


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

    def insert_many(self, events):
        self.calls += 1
        if self.calls in self.fail_calls:
            self.failures += 1

            def half_then_fail(events=iter(events)):
                yield next(events)
                raise sqlite3.OperationalError("disk I/O error (injected)")
            return super().insert_many(half_then_fail())
        return super().insert_many(events)


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
    assert sorted(get_redis().keys("*")) == ["1_heart", "1_sad", "2_happy"]
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
    """A list longer than one LRANGE chunk is moved whole."""
    posted = [POSTMethod(n % 1000 + 1, 3, "sad") for n in range(25_001)]
    assert BackupDataManager(table=table).run().events == 25_001
    assert_reconciled(table, posted)


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
    with pytest.raises(sqlite3.OperationalError):
        BackupDataManager(table=flaky).run()
    assert flaky.count() == 0
    assert get_adapter().pending_events() == 2


def test_failed_batch_is_retried_first_without_duplicates():
    """The next run inserts the staged list, then the newer events, each once and in order."""
    first = [POSTMethod(n, 1, "heart") for n in range(1, 4)]
    flaky = FlakyTable(fail_calls={1})
    manager = BackupDataManager(table=flaky)
    with pytest.raises(sqlite3.OperationalError):
        manager.run()
    later = [POSTMethod(n, 1, "sad") for n in range(4, 6)]
    result = manager.run()
    assert (result.events, result.keys) == (5, 2)
    assert table_rows(flaky) == first + later
    assert_reconciled(flaky, first + later)


def test_backup_loses_and_doubles_nothing_under_concurrent_posting(table):
    """Four posting threads and a backup every millisecond: rows == posted, exactly once."""
    config.MAX_MATCHES = 5
    manager = BackupDataManager(table=table)
    posted, stop = [], threading.Event()
    backups = []

    def post(thread_number):
        rng = random.Random(thread_number)
        mine = [POSTMethod(rng.randint(1, 1000), rng.randint(1, 5), rng.choice(("heart", "sad")))
                for _ in range(3000)]
        posted.extend(mine)

    def back_up():
        while not stop.is_set():
            backups.append(manager.run())
            stop.wait(0.001)

    backer = threading.Thread(target=back_up)
    backer.start()
    posters = [threading.Thread(target=post, args=(n,)) for n in range(4)]
    for thread in posters:
        thread.start()
    for thread in posters:
        thread.join()
    stop.set()
    backer.join()
    manager.run()
    assert len(posted) == 12_000
    assert sum(result.events for result in backups) > 0  # backups really ran during posting
    assert_reconciled(table, posted)


def test_backup_exactly_once_with_injected_failures_while_posting():
    """Inserts failing every third call, backups racing posts: still exactly once."""
    config.MAX_MATCHES = 4
    flaky = FlakyTable(fail_calls=set(range(3, 100_000, 3)))
    manager = BackupDataManager(table=flaky)
    posted, stop, failures = [], threading.Event(), []

    def post(thread_number):
        rng = random.Random(thread_number)
        posted.extend(POSTMethod(rng.randint(1, 1000), rng.randint(1, 4), "happy")
                      for _ in range(2000))

    def back_up():
        while not stop.is_set():
            try:
                manager.run()
            except sqlite3.OperationalError:
                failures.append(1)
            stop.wait(0.001)

    backer = threading.Thread(target=back_up)
    backer.start()
    posters = [threading.Thread(target=post, args=(n,)) for n in range(3)]
    for thread in posters:
        thread.start()
    for thread in posters:
        thread.join()
    stop.set()
    backer.join()
    flaky.fail_calls.clear()
    manager.run()
    assert flaky.failures > 0 and len(failures) == flaky.failures
    assert_reconciled(flaky, posted)


def test_concurrent_runs_of_one_manager_do_not_overlap(table):
    """run() from several threads at once still moves each event once."""
    posted = [POSTMethod(n % 1000 + 1, n % 10 + 1, "heart") for n in range(5000)]
    manager = BackupDataManager(table=table)
    threads = [threading.Thread(target=manager.run) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert_reconciled(table, posted)


def test_stage_never_overwrites_a_waiting_staged_list(table):
    """If a staged list still waits, the live list is not renamed onto it (RENAMENX)."""
    adapter = get_adapter()
    POSTMethod(1, 1, "heart")
    assert adapter.stage_all(["match_data_1"]) == ["backup_match_data_1"]
    POSTMethod(2, 1, "heart")
    POSTMethod(3, 2, "heart")
    assert adapter.stage_all(["match_data_1", "match_data_2"]) == ["backup_match_data_2"]
    assert get_redis().llen("backup_match_data_1") == 1
    assert get_redis().llen("match_data_1") == 1


def test_stage_skips_a_vanished_key():
    """A key gone since the SCAN (another run took it) is skipped, the others staged."""
    POSTMethod(1, 2, "heart")
    assert get_adapter().stage_all(["match_data_9", "match_data_2"]) == ["backup_match_data_2"]


def test_backup_moves_what_was_pending_when_it_started():
    """Events posted while a run inserts wait for the next run: a run's work is bounded."""
    first = [POSTMethod(1, match_id, "sad") for match_id in (1, 2, 3)]
    later = []

    class PostingTable(ReactionsTable):
        def insert_many(self, events):
            later.append(POSTMethod(2, 3, "happy"))  # a post lands during each insert
            return super().insert_many(events)

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

