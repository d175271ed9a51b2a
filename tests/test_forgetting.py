"""What the backup and the reconciliation do when a shared Redis forgets, on the in-memory
server standing in for one (RedisAdapter(place=...): as a real Redis outside the process).

The same cases against a real redis-server, through main.py: tests/test_redis_losses.py.
"""

import logging
import time

import pytest

from backup_data import BackupDataManager, BackupRefused
from db import ReactionsTable
from foundation.acks import READ_EVERY, UNREAD, Acknowledged
from live.reconcile import reconcile
from redis_adapter import InMemoryRedis, RedisAdapter


@pytest.fixture
def adapter():
    """A shared Redis's adapter whose dataset id exists, as live/preflight.py makes it before
    the first POST."""
    adapter = RedisAdapter(InMemoryRedis(), prefix="", place="test:1/0")
    adapter.source_id()
    return adapter


@pytest.fixture
def table():
    table = ReactionsTable(":memory:")
    yield table
    table.close()


def post(adapter, count, match_id=1, emoticon="heart", start=0):
    for n in range(start, start + count):
        adapter.record_reaction(n + 1, match_id, emoticon, 1000.0 + n)


def rows(table):
    with table._reading() as connection:
        return connection.execute("select count(*), count(distinct timestamp) from "
                                  "reactions_table").fetchone()


def test_acknowledged_keeps_the_highest_count_per_dataset():
    """Each write's count rises its cell's mark; the marks are handed over once."""
    acks = Acknowledged()
    acks.note("a", [((1, "heart"), 1)], 10.0)
    acks.note("a", [((1, "heart"), 5)], 11.0)
    assert acks.take_marks() == {"a": {(1, "heart"): 5}} and acks.take_marks() == {}
    assert acks.since("a") == 11.0 and acks.take_lapse() is None


def test_acknowledged_finds_a_counter_that_went_back():
    """A count at or below its mark: Redis went back; the lapse keeps the marks, once."""
    acks = Acknowledged()
    acks.note("a", [((1, "heart"), 7)], 10.0)
    acks.note("a", [((1, "heart"), 3)], 12.0)
    lapse = acks.take_lapse()
    assert (lapse.dataset, lapse.now, lapse.since, lapse.found) == ("a", "a", 10.0, 12.0)
    assert (lapse.cell, lapse.answered, lapse.marks) == ((1, "heart"), 3, {(1, "heart"): 7})
    acks.note("a", [((1, "heart"), 4)], 13.0)
    assert acks.take_lapse() is None and acks.fell("a") == {(1, "heart"): 3}


def test_acknowledged_finds_another_dataset():
    """A write answered in another dataset (or none: the id key gone): the first one lapsed."""
    acks = Acknowledged()
    acks.note("a", [((1, "heart"), 7)], 10.0)
    acks.note(None, [((1, "heart"), 1)], 11.0)
    lapse = acks.take_lapse()
    assert (lapse.dataset, lapse.now, lapse.marks) == ("a", None, {(1, "heart"): 7})


def test_each_post_on_a_shared_redis_is_noted_in_its_dataset(adapter):
    """One POST in READ_EVERY reads the dataset id in its MULTI/EXEC: the counts of those in
    between are its marks once the next read confirms the same dataset."""
    dataset = adapter.source_id()
    post(adapter, READ_EVERY)
    assert adapter.acks.take_marks() == {dataset: {(1, "heart"): 1}}
    post(adapter, 1, start=READ_EVERY)
    assert adapter.acks.take_marks() == {dataset: {(1, "heart"): READ_EVERY + 1}}


def test_counts_held_when_redis_was_emptied_are_the_old_datasets():
    """A count at or below its mark (emptied or rewound, seen at once): the counts held until
    then are the dataset's last read; those after it wait for a read."""
    acks = Acknowledged()
    acks.note("a", [((1, "heart"), 5)], 10.0)
    acks.note(UNREAD, [((1, "heart"), 9)], 11.0)
    acks.note(UNREAD, [((1, "heart"), 1)], 12.0)  # the counter started again
    acks.note(UNREAD, [((2, "sad"), 1)], 12.5)
    assert acks.take_marks() == {"a": {(1, "heart"): 9}} and acks.read_due()
    acks.note("b", [((1, "heart"), 2)], 13.0)
    assert acks.take_marks() == {"b": {(1, "heart"): 2}}


def test_the_in_memory_redis_keeps_no_marks():
    """The process's own server cannot forget behind its back: no dataset read per POST."""
    assert RedisAdapter(InMemoryRedis()).acks is None


def test_a_flush_between_backups_is_recorded_with_the_events_lost(adapter, table):
    """FLUSHDB after a backup: the next one records the old dataset's loss (what Redis had
    acknowledged less its rows) and goes on with a new dataset id."""
    manager = BackupDataManager(adapter, table)
    old = adapter.source_id()
    post(adapter, 5)
    manager.run()
    post(adapter, 3, start=5)  # acknowledged, then gone
    adapter.redis.flushdb()
    post(adapter, 2, start=8)  # into the emptied Redis
    manager.run()
    [loss] = table.losses()
    assert (loss["source"], loss["kind"], loss["events"]) == (old, "emptied", 3)
    assert adapter.source_id(create=False) not in (None, old)
    assert rows(table) == (7, 7)
    result = reconcile(adapter, table)
    assert (result.verdict, result.lost) == ("LOSS", 3) and "emptied" in result.line()


def test_reconcile_finds_a_flush_no_backup_recorded_yet(adapter, table):
    """--reconcile right after FLUSHDB, before any backup ran again: LOSS, not OK."""
    manager = BackupDataManager(adapter, table)
    post(adapter, 4)
    manager.run()
    post(adapter, 2, start=4)
    manager._save_marks(time.monotonic() + 1)  # as a posting process does every second
    adapter.redis.flushdb()
    result = reconcile(adapter, table)
    assert (result.verdict, result.lost) == ("LOSS", 2), result.line()


def test_a_deleted_dataset_id_alone_is_put_back(adapter, table, caplog):
    """DEL of the dataset id key only (its data still there): put back, nothing lost."""
    manager = BackupDataManager(adapter, table)
    dataset = adapter.source_id()
    post(adapter, 3)
    manager.run()
    adapter.redis.delete(adapter.layout.source_key)
    post(adapter, 2, start=3)
    with caplog.at_level(logging.WARNING):
        manager.run()
    assert adapter.source_id(create=False) == dataset and table.losses() == []
    assert sum("was deleted" in record.getMessage() for record in caplog.records) == 1
    assert reconcile(adapter, table).ok


def test_a_rewound_redis_brings_back_no_copy(adapter, table):
    """The lists and counters of an earlier state come back after they were moved: the backup
    finds the generation behind, inserts none of the copies, and records the loss."""
    manager = BackupDataManager(adapter, table)
    adapter.source_id()
    post(adapter, 4)
    snapshot = {key: adapter.redis.lrange(key, 0, -1) for key in ["match_data_1"]}
    counters = adapter.redis.get("1_heart")
    generation = adapter.redis.get(adapter.layout.generation_key)
    manager.run()  # moves the 4
    post(adapter, 3, start=4)  # acknowledged after the snapshot: lost in the rewind
    manager.run()
    post(adapter, 2, start=7)  # acknowledged after the snapshot: lost in the rewind
    for key, items in snapshot.items():  # Redis restarted from the snapshot
        adapter.redis.delete(key)
        adapter.redis.rpush(key, *items)
    adapter.redis.set("1_heart", counters)
    adapter.redis.set(adapter.layout.generation_key, generation or 0)
    manager.run()
    assert rows(table) == (7, 7)  # the 4 copies skipped, none of them twice
    [loss] = table.losses()
    assert (loss["kind"], loss["events"], loss["copies"]) == ("rewound", 2, 4)


def test_reconcile_of_a_dataset_backed_up_elsewhere_claims_no_loss(adapter, table):
    """Events counted before this file recorded the dataset went to another file: a
    MISMATCH, as before, but no loss."""
    other = ReactionsTable(":memory:")
    post(adapter, 5)
    BackupDataManager(adapter, other).run()
    post(adapter, 2, start=5)
    BackupDataManager(adapter, table).run()
    result = reconcile(adapter, table)
    assert result.lost == 0 and result.verdict.startswith("MISMATCH"), result.line()


def test_a_foreign_value_at_the_dataset_key_refuses_the_backup_in_one_line(adapter, table):
    """A list at live-reactions:dataset: BackupRefused naming the key, nothing moved to the
    table (the event stays in Redis, staged for a later run)."""
    adapter.redis.delete(adapter.layout.source_key)
    adapter.redis.rpush(adapter.layout.source_key, "another app's")
    post(adapter, 1)
    with pytest.raises(BackupRefused, match="live-reactions:dataset holds another application"):
        BackupDataManager(adapter, table).run()
    assert adapter.pending_events() == 1 and table.count() == 0


def test_deleting_the_loss_record_clears_the_verdict(adapter, table):
    """docs/failures.md: once dealt with, `delete from redis_losses` gives OK again."""
    manager = BackupDataManager(adapter, table)
    post(adapter, 3)
    manager.run()
    post(adapter, 2, start=3)
    adapter.redis.flushdb()
    manager.run()
    assert reconcile(adapter, table).verdict == "LOSS"
    with table._transaction() as connection:
        connection.execute("delete from redis_losses")
    assert reconcile(adapter, table).ok
