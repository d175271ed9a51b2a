"""RedisAdapter: the key layout, the stored event text, and the counts it reports."""

import json
import threading

import pytest

from backup_data import new_batch
from redis_adapter import (MATCH_DATA_PATTERN, SEED_LAYOUT, STAGING_PATTERN, InMemoryRedis, KeyLayout,
                           RedisAdapter, counter_key, decode_events, encode_event, match_data_key,
                           staging_key)
from tests.redis_server import CLIENT_TIMEOUT_SECONDS
from tests.threads import join_all


@pytest.fixture
def adapter():
    return RedisAdapter(InMemoryRedis())


def test_key_formats_are_the_seeds():
    """Counters are {match_id}_{emoticon_type}, event lists match_data_{match_id} (seed)."""
    assert counter_key(5, "heart") == "5_heart"
    assert match_data_key(5) == "match_data_5"
    assert MATCH_DATA_PATTERN == "match_data_*"


def test_staging_keys_are_not_live_lists():
    """A staged list is not taken for a live list, nor is any live list taken for a staged one."""
    assert staging_key("match_data_5", "0001") == "match_data_5:backup:0001"
    assert STAGING_PATTERN == "match_data_*:backup:*"
    assert not SEED_LAYOUT.is_match_data("match_data_5:backup:0001")
    assert SEED_LAYOUT.is_staged("match_data_5:backup:0001")


@pytest.mark.parametrize("prefix, key", [
    ("", "backup_v2_match_data_3"),  # another app's list, and the old staging shape
    ("", "backup_v2_match_data_3:backup:0001"),  # staged by prefix "backup_v2_"
    ("live:", "live:backup_x_match_data_3"),
    ("live:", "live:x:match_data_3:backup:0001"),
    ("a:", "a:match_data_3:backup:00:01"),
])
def test_staged_key_of_another_shape_or_prefix_is_not_ours(prefix, key):
    """Only a staged key embedding exactly this prefix is recognised as staged."""
    assert not KeyLayout(prefix).is_staged(key) and not KeyLayout(prefix).is_match_data(key)


def test_prefixes_never_share_a_key():
    """Every key of one prefix is none of the keys of another (shapes and prefixes tried)."""
    prefixes = ["", "backup_v2_", "live:", "match_data_", "x_", "1_"]
    for p in prefixes:
        layout = KeyLayout(p)
        keys = [layout.counter_key(5, "heart"), layout.match_data_key(5),
                layout.staging_key(layout.match_data_key(5), "0001.0002"),
                layout.ingest_marker_key("ab12")]
        for q in prefixes:
            if q != p:
                other = KeyLayout(q)
                assert not any(other.is_pending(k) or other.parse_counter(k, ["heart"])
                               for k in keys), (p, q)


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

    reader = threading.Thread(target=read, daemon=True)
    posters = [threading.Thread(target=post, daemon=True) for _ in range(3)]
    reader.start()
    for thread in posters:
        thread.start()
    try:
        join_all(posters)
    finally:
        stop.set()
    join_all([reader])
    assert torn == []
    assert redis.get("1_heart") == "4500" and redis.llen("match_data_1") == 4500


# -- prefixes, foreign keys and clients that do not decode replies --------------------------------

@pytest.fixture(params=["in-memory", "redis-py decoded", "redis-py bytes"])
def client(request):
    """InMemoryRedis, then a real redis-server through redis-py with decode_responses True and
    False (the tests' own server; skipped when redis-server or redis-py is missing)."""
    if request.param == "in-memory":
        yield InMemoryRedis()
        return
    import redis
    url = request.getfixturevalue("redis_server").url
    client = redis.Redis.from_url(url, decode_responses=request.param == "redis-py decoded",
                                  socket_timeout=CLIENT_TIMEOUT_SECONDS)
    client.flushdb()
    yield client
    client.flushdb()
    client.close()


FOREIGN = {"session:42": "a string", "cache_match_data_3": "not a list", "7_likes": "99",
           "other:5_heart": "1000"}
FOREIGN_LISTS = {"other:match_data_5": ["x"], "backup_1_other:match_data_5": ["y"],
                 "backup_v2_match_data_3": ["z"], "match_data_7:backup:0001_x": ["w"]}


def put_foreign_keys(client):
    """Another application's keys, some named like ours."""
    for key, value in FOREIGN.items():
        client.set(key, value)
    for key, items in FOREIGN_LISTS.items():
        client.rpush(key, *items)


def assert_foreign_keys_untouched(client):
    for key, value in FOREIGN.items():
        assert client.get(key) in (value, value.encode())
    for key, items in FOREIGN_LISTS.items():
        assert client.lrange(key, 0, -1) in (items, [item.encode() for item in items])


def test_prefix_goes_before_every_key():
    """A prefix puts counters, lists and staged lists under it; "" gives the seed's names."""
    layout = KeyLayout("live:")
    assert layout.counter_key(5, "heart") == "live:5_heart"
    assert layout.match_data_key(5) == "live:match_data_5"
    assert layout.staging_key("live:match_data_5", "b1") == "live:match_data_5:backup:b1"
    assert KeyLayout("").counter_key(5, "heart") == counter_key(5, "heart") == "5_heart"


@pytest.mark.parametrize("prefix", [5, None, "a1", "x" * 201, "\udcff:"])
def test_prefix_refused_when_ambiguous_or_not_text(prefix):
    """A prefix ending in a digit (or not a str, over 200 characters, not UTF-8) is refused."""
    with pytest.raises(ValueError, match="invalid key prefix"):
        KeyLayout(prefix)


def test_prefix_with_glob_characters_matches_only_itself(client):
    """A prefix holding * or [ is matched literally: "a*:" never sees "ab:" keys."""
    RedisAdapter(client, prefix="ab:").record_reaction(1, 2, "heart", 1.0)
    ours = RedisAdapter(client, prefix="a*:")
    assert ours.counter_total() == 0 and ours.pending_events() == 0 and ours.match_data_keys() == []


def test_foreign_keys_are_not_counted(client):
    """Another application's strings and lists (even named *match_data_*) are not counted."""
    put_foreign_keys(client)
    adapter = RedisAdapter(client, prefix="")
    adapter.record_reaction(1, 2, "heart", 1.0)
    assert adapter.counter_total() == 1
    assert adapter.pending_events() == 1
    assert adapter.snapshot() == {"2_heart": 1, "match_data_2": [
        {"user_id": 1, "emoticon_type": "heart", "timestamp": 1.0, "match_id": 2}]}


def test_backup_moves_and_deletes_only_this_prefix(client):
    """A backup of prefix "live:" moves its own lists; every other key stays as it was."""
    from backup_data import BackupDataManager
    from db import ReactionsTable
    put_foreign_keys(client)
    RedisAdapter(client, prefix="").record_reaction(1, 3, "sad", 2.0)
    adapter = RedisAdapter(client, prefix="live:")
    adapter.record_reaction(1, 2, "heart", 1.0)
    table = ReactionsTable(":memory:")
    assert BackupDataManager(adapter, table).run().events == 1
    assert_foreign_keys_untouched(client)
    assert client.llen("match_data_3") == 1 and adapter.pending_events() == 0
    assert adapter.counter_total() == 1 and table.count() == 1


def test_every_client_backs_up_the_same(client):
    """Post, GET and back up alike whether the client decodes replies or answers bytes."""
    from backup_data import BackupDataManager
    from db import ReactionsTable
    adapter = RedisAdapter(client, prefix="")
    for n in range(5):
        adapter.record_reaction(n + 1, 7, "happy", float(n))
    table = ReactionsTable(":memory:")
    result = BackupDataManager(adapter, table).run()
    assert (result.events, table.count()) == (5, 5)
    assert adapter.get_counts(7, ["happy", "sad"]) == {"happy": 5, "sad": 0}
    assert adapter.staged_keys() == [] and client.keys("*match_data*") == []


def test_record_batch_counts_and_appends_in_one_step(client):
    """One flush: an INCRBY per counter, one RPUSH per match in order, and its marker set."""
    adapter = RedisAdapter(client, prefix="")
    events = [{"user_id": 1, "emoticon_type": e, "timestamp": 1.0, "match_id": m}
              for m, e in [(1, "heart"), (2, "sad"), (1, "heart"), (1, "sad")]]
    adapter.record_batch(events, "ingest_x", 3)
    assert adapter.get_counts(1, ["heart", "sad"]) == {"heart": 2, "sad": 1}
    assert list(adapter.iter_events("match_data_1")) == [events[0], events[2], events[3]]
    assert adapter.batch_applied("ingest_x", 3) and not adapter.batch_applied("ingest_x", 4)
    assert adapter.counter_total() == adapter.pending_events() == 4


# -- another application's value under one of our names: no half-applied event -----------------

def test_post_on_a_foreign_list_key_is_undone(client):
    """A POST whose list key is another app's string is not stored and not counted."""
    from redis_adapter import WrongTypeError
    client.set("match_data_3", "x")
    adapter = RedisAdapter(client, prefix="")
    with pytest.raises(WrongTypeError) as excinfo:
        adapter.record_reaction(1, 3, "heart", 1.0)
    assert (excinfo.value.keys, excinfo.value.dropped) == (["match_data_3"], 1)
    assert adapter.get_counts(3, ["heart"]) == {"heart": 0}
    assert client.get("match_data_3") in ("x", b"x")


def test_post_on_a_foreign_counter_key_is_undone(client):
    """A POST whose counter key is another app's list is not appended to the event list."""
    from redis_adapter import WrongTypeError
    client.rpush("4_sad", "y")
    adapter = RedisAdapter(client, prefix="")
    with pytest.raises(WrongTypeError):
        adapter.record_reaction(1, 4, "sad", 1.0)
    assert adapter.pending_events() == 0 and client.llen("4_sad") == 1


def test_batch_with_foreign_keys_keeps_the_other_cells(client):
    """A flush stores every cell but those of foreign keys; counters still match the lists."""
    from redis_adapter import WrongTypeError
    client.set("match_data_3", "x")
    client.rpush("4_sad", "y")
    adapter = RedisAdapter(client, prefix="")
    cells = [(3, "heart"), (4, "sad"), (4, "heart"), (5, "sad"), (4, "sad")]
    events = [{"user_id": 1, "emoticon_type": e, "timestamp": float(n), "match_id": m}
              for n, (m, e) in enumerate(cells)]
    with pytest.raises(WrongTypeError) as excinfo:
        adapter.record_batch(events, "ingest_x", 1)
    assert excinfo.value.dropped == 3
    assert adapter.counter_total() == adapter.pending_events() == 2
    assert list(adapter.iter_events("match_data_4")) == [events[2]]


def test_foreign_string_named_like_a_list_is_not_staged(client):
    """A backup leaves another app's string match_data_3 alone (only lists are staged)."""
    from backup_data import BackupDataManager
    from db import ReactionsTable
    client.set("match_data_3", "x")
    adapter = RedisAdapter(client, prefix="")
    adapter.record_reaction(1, 2, "heart", 1.0)
    assert BackupDataManager(adapter, ReactionsTable(":memory:")).run().events == 1
    assert client.get("match_data_3") in ("x", b"x") and client.keys("*backup*") == []


def test_foreign_list_shaped_like_an_old_staged_list_is_left_alone(client):
    """backup_v2_match_data_3 (another app's list) is neither moved nor deleted."""
    from backup_data import BackupDataManager
    from db import ReactionsTable
    client.rpush("backup_v2_match_data_3", "z")
    table = ReactionsTable(":memory:")
    assert BackupDataManager(RedisAdapter(client, prefix=""), table).run().events == 0
    assert client.llen("backup_v2_match_data_3") == 1 and table.count() == 0


def test_live_lists_of_prefix_backup_v2_are_not_taken_by_the_empty_prefix(client):
    """The empty prefix's backup does not move prefix backup_v2_'s live lists."""
    from backup_data import BackupDataManager
    from db import ReactionsTable
    RedisAdapter(client, prefix="backup_v2_").record_reaction(1, 3, "heart", 1.0)
    assert BackupDataManager(RedisAdapter(client, prefix=""),
                             ReactionsTable(":memory:")).run().events == 0
    assert client.llen("backup_v2_match_data_3") == 1


def test_non_utf8_foreign_key_is_skipped(client):
    """Another app's binary key name does not break the scans of a bytes-answering client."""
    if not isinstance(client, InMemoryRedis) and client.get_encoder().decode_responses:
        pytest.skip("a client decoding every reply cannot read such a key name at all")
    if isinstance(client, InMemoryRedis):
        pytest.skip("the in-memory server holds str key names only")
    client.set(b"1_\xff\xd8", b"x")
    client.rpush(b"match_data_\xff", b"x")
    adapter = RedisAdapter(client, prefix="")
    adapter.record_reaction(1, 2, "heart", 1.0)
    assert adapter.counter_total() == adapter.pending_events() == 1


def test_ingest_marker_expires_by_itself(client):
    """A flush's marker carries a day's expiry: a killed poster's marker does not stay forever."""
    from redis_adapter import INGEST_MARKER_TTL_SECONDS
    adapter = RedisAdapter(client, prefix="")
    adapter.record_batch([{"user_id": 1, "emoticon_type": "sad", "timestamp": 1.0,
                           "match_id": 1}], "ingest_x", 1)
    assert INGEST_MARKER_TTL_SECONDS - 1 <= client.ttl("ingest_x") <= INGEST_MARKER_TTL_SECONDS


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
    assert adapter.staged_keys() == ["match_data_6:backup:b1"]
    assert sorted(adapter.snapshot()) == ["5_heart", "6_heart", "match_data_5",
                                          "match_data_6:backup:b1"]


@pytest.mark.parametrize("prefix", ["", "live:", "match_data_9:"])
def test_list_match_id_reads_live_and_staged_lists(prefix):
    """A live list's and a staged list's match is read past the prefix, whatever it holds."""
    layout = KeyLayout(prefix)
    live = layout.match_data_key(42)
    assert layout.list_match_id(live) == 42
    assert layout.list_match_id(layout.staging_key(live, new_batch())) == 42
    assert layout.list_match_id(f"{live}:backup:{new_batch()}") == 42  # the suffix shape too
