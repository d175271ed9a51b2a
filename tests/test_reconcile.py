"""reconcile(): every counter equals rows + pending (+ other sinks), read as one view."""

import pytest

from backup_data import BackupDataManager
from db import ReactionsTable
from reconcile import reconcile
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
    table.insert_many(adapter.iter_events(staged), batch=staged)
    result = reconcile(adapter, table)
    assert (result.ok, result.rows, result.pending) == (True, 2, 0)


def test_other_sinks_are_added(adapter, table):
    """Events held elsewhere (dead letters, spill files) are counted through a sink."""
    post(adapter, (4, "sad"))
    adapter.redis.delete("match_data_4")
    result = reconcile(adapter, table, sinks=[lambda: {(4, "sad"): 1}])
    assert result.ok and result.sinks == 1 and "other_sinks=1" in result.line()
