"""RedisAdapter: the key layout, the stored event text, and the counts it reports."""

import json
import threading

import pytest

from redis_adapter import (MATCH_DATA_PATTERN, STAGING_PATTERN, RedisAdapter, InMemoryRedis,
                           counter_key, decode_events, encode_event, match_data_key, staging_key)


@pytest.fixture
def adapter():
    return RedisAdapter(InMemoryRedis())


def test_key_formats_are_the_seeds():
    """Counters are {match_id}_{emoticon_type}, event lists match_data_{match_id} (seed)."""
    assert counter_key(5, "heart") == "5_heart"
    assert match_data_key(5) == "match_data_5"
    assert MATCH_DATA_PATTERN == "match_data_*"


def test_staging_keys_are_outside_the_match_data_pattern():
    """A staged list is not found again by the scan for match_data_*."""
    assert staging_key("match_data_5", "0001") == "backup_0001_match_data_5"
    assert STAGING_PATTERN == "backup_*_match_data_*"


@pytest.mark.parametrize("event", [
    {"user_id": 6, "emoticon_type": "sad", "timestamp": 1670051582.545891, "match_id": 5},
    {"user_id": 1, "emoticon_type": 'quo"te\\', "timestamp": 0.1, "match_id": 10 ** 6},
    {"user_id": 1000, "emoticon_type": "héart", "timestamp": 1e-07, "match_id": 1},
])
def test_encode_event_is_json(event):
    """The stored text is exactly json.dumps(event), and decodes back to the same record."""
    text = encode_event(event)
    assert text == json.dumps(event)
    assert decode_events([text, text]) == [event, event]


def test_record_reaction_is_one_transaction(adapter):
    """Recording counts and appends; the counter total equals the events ever recorded."""
    adapter.record_reaction(1, 2, "heart", 10.5)
    adapter.record_reaction(3, 2, "sad", 11.5)
    assert adapter.get_counts(2, ["heart", "sad", "happy"]) == {"heart": 1, "sad": 1, "happy": 0}
    assert adapter.counter_total() == 2
    assert adapter.pending_events() == 2


def test_pending_counts_staged_lists(adapter):
    """Events in a staged list are still pending until they are dropped."""
    adapter.record_reaction(1, 2, "heart", 10.5)
    [staged] = adapter.stage_all(["match_data_2"], "b1")
    adapter.record_reaction(1, 2, "heart", 11.5)
    assert adapter.pending_events() == 2
    assert list(adapter.iter_events(staged)) == [
        {"user_id": 1, "emoticon_type": "heart", "timestamp": 10.5, "match_id": 2}]
    adapter.drop(staged)
    assert adapter.pending_events() == 1


def test_counter_total_of_empty_redis(adapter):
    """No counters: the total is 0."""
    assert adapter.counter_total() == 0


def test_counter_and_event_are_recorded_together(adapter, fast_thread_switching):
    """No reader ever sees a counted reaction without its event, or the reverse (MULTI/EXEC)."""
    redis, torn, stop = adapter.redis, [], threading.Event()

    def post():
        for n in range(1500):
            adapter.record_reaction(n % 1000 + 1, 1, "heart", float(n))

    def read():
        while not stop.is_set():
            count, length = redis.pipeline().get("1_heart").llen("match_data_1").execute()
            if int(count or 0) != length:
                torn.append((count, length))

    reader = threading.Thread(target=read)
    posters = [threading.Thread(target=post) for _ in range(3)]
    reader.start()
    for thread in posters:
        thread.start()
    for thread in posters:
        thread.join()
    stop.set()
    reader.join()
    assert torn == []
    assert redis.get("1_heart") == "4500" and redis.llen("match_data_1") == 4500


class RepeatingScan(InMemoryRedis):
    """A server whose SCAN iteration returns every key twice, as Redis may under rehashing."""

    def scan_iter(self, *args, **kwargs):
        for key in super().scan_iter(*args, **kwargs):
            yield key
            yield key


def test_scan_repeats_do_not_double_count():
    """counter_total, pending_events, match_data_keys, staged_keys and snapshot tolerate repeats."""
    adapter = RedisAdapter(RepeatingScan())
    adapter.record_reaction(1, 5, "heart", 1.0)
    adapter.record_reaction(2, 6, "heart", 1.0)
    adapter.stage_all(["match_data_6"], "b1")
    assert adapter.counter_total() == 2 and adapter.pending_events() == 2
    assert adapter.match_data_keys() == ["match_data_5"]
    assert adapter.staged_keys() == ["backup_b1_match_data_6"]
    assert sorted(adapter.snapshot()) == ["5_heart", "6_heart", "backup_b1_match_data_6",
                                          "match_data_5"]


def test_pending_count_is_one_get(adapter):
    """pending_events reads one counter: no SCAN, whatever the number of keys."""
    adapter.record_reaction(1, 5, "heart", 1.0)
    adapter.redis.scan = None  # a SCAN now would fail
    assert adapter.pending_events() == 1


def test_pending_count_matches_the_lists_through_a_backup(adapter):
    """The counter and the lists' own lengths agree before, during and after staging and drop."""
    for number in range(5):
        adapter.record_reaction(number, number % 2, "heart", 1.0)
    staged = adapter.stage_all(adapter.match_data_keys(), "b1")
    adapter.record_reaction(9, 0, "sad", 1.0)
    assert adapter.pending_events() == adapter.listed_events() == 6
    adapter.drop(staged[0])
    assert adapter.pending_events() == adapter.listed_events()
    for key in staged[1:]:
        adapter.drop(key)
    assert adapter.pending_events() == adapter.listed_events() == 1


def test_drop_twice_takes_events_off_once(adapter):
    """Two backups dropping the same staged list: the count goes down by its length once."""
    adapter.record_reaction(1, 5, "heart", 1.0)
    [staged] = adapter.stage_all(["match_data_5"], "b1")
    adapter.drop(staged)
    adapter.drop(staged)
    assert adapter.pending_events() == 0


def test_drop_retries_when_the_list_changes_under_its_watch(adapter):
    """A concurrent change between WATCH and EXEC makes drop retry, not miscount."""
    adapter.record_reaction(1, 5, "heart", 1.0)
    [staged] = adapter.stage_all(["match_data_5"], "b1")
    redis = adapter.redis
    real_llen = redis.pipeline().__class__.llen
    changed = []

    def llen_then_change(pipe, key):
        length = real_llen(pipe, key)
        if not changed:  # another backup drops the list right after the first read
            changed.append(True)
            redis.delete(key)
            redis.incrby("pending_events_count", -length)
        return length

    pipeline_class = redis.pipeline().__class__
    pipeline_class.llen = llen_then_change
    try:
        adapter.drop(staged)
    finally:
        pipeline_class.llen = real_llen
    assert adapter.pending_events() == 0 and redis.exists(staged) == 0
