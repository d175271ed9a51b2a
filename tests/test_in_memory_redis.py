"""InMemoryRedis beyond the shared contract: its estimate of used memory and its maxmemory."""

import pytest

from foundation.in_memory_redis import (ITEM_OVERHEAD_BYTES, KEY_OVERHEAD_BYTES, InMemoryRedis,
                             OutOfMemoryError)


@pytest.fixture
def server():
    return InMemoryRedis()


def test_used_memory_starts_at_zero(server):
    """An empty server holds nothing."""
    assert server.used_memory == 0


def test_used_memory_counts_list_items(server):
    """A list costs its key and, per item, its text plus the item overhead."""
    server.rpush("l", "abc", "de")
    assert server.used_memory == KEY_OVERHEAD_BYTES + 1 + 5 + 2 * ITEM_OVERHEAD_BYTES


def test_used_memory_counter_is_int_encoded(server):
    """A counter costs its key only, however large it grows."""
    server.incrby("n", 10 ** 12)
    assert server.used_memory == KEY_OVERHEAD_BYTES + 1


def test_used_memory_integer_string_is_int_encoded(server):
    """SET of a canonical integer stores it int-encoded, as Redis does: its text costs nothing."""
    server.set("n", "12345")
    assert server.used_memory == KEY_OVERHEAD_BYTES + 1
    assert server.get("n") == "12345"


@pytest.mark.parametrize("text", ["012", "+1", "-0", "1 ", "9" * 20, "1.5"])
def test_used_memory_non_canonical_integer_is_a_string(server, text):
    """Only what Redis's string2l takes is int-encoded; other digits stay text, read back as is."""
    server.set("n", text)
    assert server.used_memory == KEY_OVERHEAD_BYTES + 1 + len(text)
    assert server.get("n") == text


def test_used_memory_set_overwrites(server):
    """SET over a list replaces its whole cost."""
    server.rpush("k", "abc")
    server.set("k", "xy")
    assert server.used_memory == KEY_OVERHEAD_BYTES + 1 + 2


def test_used_memory_rename_and_overwrite(server):
    """RENAME changes only the key's name; a replaced destination is freed."""
    server.rpush("a", "x")
    server.set("bb", "yyyy")
    server.rename("a", "bb")
    assert server.used_memory == KEY_OVERHEAD_BYTES + 2 + 1 + ITEM_OVERHEAD_BYTES


@pytest.mark.parametrize("free", [lambda s: s.delete("l", "n", "s"), lambda s: s.flushdb()])
def test_used_memory_back_to_zero(server, free):
    """DEL and FLUSHDB give every byte back."""
    server.rpush("l", "a", "b")
    server.incr("n")
    server.set("s", "v")
    free(server)
    assert server.used_memory == 0


def test_maxmemory_zero_is_no_limit(server):
    """maxmemory 0 (the default, as in Redis) never refuses."""
    for number in range(1000):
        server.rpush("l", "x" * 100)
    assert server.llen("l") == 1000


def test_maxmemory_lets_the_command_that_crosses_it_run():
    """As Redis, the check comes before the command: the one that crosses the limit still runs."""
    server = InMemoryRedis(maxmemory=KEY_OVERHEAD_BYTES + 1 + 10 + ITEM_OVERHEAD_BYTES)
    server.rpush("l", "x" * 10)
    server.rpush("l", "y")  # used == maxmemory: not over it yet
    with pytest.raises(OutOfMemoryError):
        server.rpush("l", "z")
    assert server.llen("l") == 2


def test_maxmemory_writes_resume_after_delete():
    """noeviction: once DEL brings used memory under the limit, writes are accepted again."""
    server = InMemoryRedis(maxmemory=200)
    server.rpush("l", "x" * 300)
    with pytest.raises(OutOfMemoryError):
        server.incr("n")
    server.delete("l")
    assert server.incr("n") == 1


@pytest.mark.parametrize("value", [-1, 1.5, True, "100"])
def test_maxmemory_must_be_bytes(value):
    """maxmemory is an int of bytes, 0 or more."""
    with pytest.raises(ValueError):
        InMemoryRedis(maxmemory=value)


# -- SCAN pages: Redis's guarantees, a bounded call ------------------------------------------------

import gc  # noqa: E402
import random  # noqa: E402
import threading  # noqa: E402

from hypothesis import given, settings, strategies as st  # noqa: E402

from foundation.in_memory_redis import lists, memory, patterns, quicklist, scan  # noqa: E402
from foundation.in_memory_redis.quicklist import QuickList  # noqa: E402
from foundation.in_memory_redis import ResponseError, WatchError  # noqa: E402
from tests.threads import join_all  # noqa: E402


def test_scan_call_looks_at_count_keys(server):
    """One SCAN call answers COUNT keys (10 by default), not the keyspace."""
    for number in range(1000):
        server.set(f"k{number}", "v")
    assert len(server.scan(0)[1]) == 10
    assert len(server.scan(0, count=100)[1]) == 100


def test_scan_call_visits_at_most_ten_empty_slots_per_key(server):
    """A sparse keyspace: a call visits at most 10 x COUNT slots, answering none if all empty."""
    for number in range(200):
        server.set(f"k{number}", "v")
    server.delete(*[f"k{number}" for number in range(199)])
    cursor, keys = server.scan(0, count=5)
    assert (cursor, keys) == (50, [])


def test_scan_steps_over_empty_blocks_after_mass_deletion(server):
    """70,000 keys, all but the last deleted: a full iteration takes 2 calls, not 700 (an
    empty block of 2**16 or 2**8 slots costs one step)."""
    pipe = server.pipeline(transaction=False)
    for number in range(70_000):
        pipe.set(f"k{number}", "v")
    pipe.execute()
    server.delete(*[f"k{number}" for number in range(69_999)])
    cursor, calls, seen = None, 0, []
    while cursor != 0:
        cursor, keys = server.scan(cursor or 0, count=10)
        calls, seen = calls + 1, seen + keys
    assert (calls, seen) == (2, ["k69999"])


def test_scan_block_counts_follow_churn(server):
    """After random creations and deletions the block counts equal a recount, and scan_iter
    returns exactly the keys present."""
    rng = random.Random(3)
    for _ in range(5000):
        key = f"k{rng.randrange(2000)}"
        server.delete(key) if rng.random() < 0.6 else server.set(key, "v")
    occupied = [slot for slot, key in enumerate(server._slots) if key is not None]
    for counts, bits in ((server._small_block_keys, scan.SMALL_BLOCK_BITS),
                         (server._large_block_keys, scan.LARGE_BLOCK_BITS)):
        assert [sum(1 for slot in occupied if slot >> bits == block)
                for block in range(len(counts))] == counts
    assert sorted(server.scan_iter(count=3)) == sorted(server.keys())


def test_scan_slot_of_a_deleted_key_is_reused(server):
    """A new key takes the lowest free slot, so the slot array does not grow with churn."""
    for number in range(100):
        server.set(f"k{number}", "v")
    for round_ in range(50):
        server.delete(f"k{round_}")
        server.set(f"new{round_}", "v")
    assert len(server._slots) == 100


def test_scan_slots_shrink_when_the_tail_empties(server):
    """Deleting the newest keys shrinks the slot array, so a later SCAN ends sooner."""
    for number in range(100):
        server.set(f"k{number}", "v")
    server.delete(*[f"k{number}" for number in range(99, 9, -1)])
    assert len(server._slots) == 10


def test_scan_slots_shrink_a_bounded_number_per_delete(server):
    """One deletion drops at most SLOTS_SHRUNK_PER_DELETE empty slots: its cost is bounded."""
    for number in range(200):
        server.set(f"k{number}", "v")
    server.delete(*[f"k{number}" for number in range(10, 199)])
    server.delete("k199")
    assert len(server._slots) == 200 - scan.SLOTS_SHRUNK_PER_DELETE
    server.set("new", "v")  # takes the lowest free slot, not the end
    assert server._slot_of["new"] == 10


def test_scan_releases_the_lock_between_calls(server):
    """Another thread's command runs between two pages of one iteration."""
    for number in range(100):
        server.set(f"k{number}", "v")
    iterator = server.scan_iter(count=10)
    first = [next(iterator) for _ in range(10)]
    done = threading.Event()
    threading.Thread(target=lambda: (server.set("other", "v"), done.set()), daemon=True).start()
    assert done.wait(timeout=10)
    assert len(set(first) | set(iterator)) == 100 + 1  # "other" took a free slot at the end


operations = st.lists(st.tuples(st.sampled_from(["set", "del", "rename", "scan"]),
                                st.integers(min_value=0, max_value=60)), max_size=200)


@settings(max_examples=200, deadline=None)
@given(initial=st.integers(min_value=0, max_value=60), steps=operations)
def test_scan_guarantees_under_interleaved_writes(initial, steps):
    """Keys present throughout come at least once (overwritten by SET or RENAME too); keys
    removed before the start and not created again never come."""
    server = InMemoryRedis()
    for number in range(initial):
        server.set(f"k{number}", "v")
    cursor, seen, removed, removed_before, created = 0, [], set(), set(), set()
    started = False
    for action, number in steps + [("scan", 0)] * 200:
        key = f"k{number}"
        if action == "set":
            server.set(key, "v")
            created.add(key)
        elif action in ("del", "rename"):
            # RENAME k{n} over k{n+1}: k{n} leaves, k{n+1} is overwritten (present if it was).
            target = f"k{(number + 1) % 61}"
            moved = action == "rename" and server.exists(key)
            server.rename(key, target) if moved else server.delete(key)
            removed.add(key)
            removed_before |= set() if started else {key}
            if moved:
                created.add(target)
        else:
            cursor, keys = server.scan(cursor, count=3)
            started = True
            seen += keys
            if cursor == 0:
                break
    assert cursor == 0
    assert {f"k{n}" for n in range(initial)} - removed <= set(seen)
    assert not (removed_before - created) & set(seen)


def test_scan_guarantee_with_a_concurrent_writer(server, fast_thread_switching):
    """Keys never touched by a thread churning other keys are all returned by scan_iter."""
    stable = {f"stable{number}" for number in range(2000)}
    for key in stable:
        server.set(key, "v")
    stop = threading.Event()

    def churn():
        rng = random.Random(7)
        while not stop.is_set():
            key = f"churn{rng.randrange(500)}"
            server.delete(key) if rng.random() < 0.5 else server.set(key, "v")

    writer = threading.Thread(target=churn, daemon=True)
    writer.start()
    try:
        seen = set(server.scan_iter(count=7))
    finally:
        stop.set()
    join_all([writer])
    assert stable <= seen


# -- expiry with a clock the test controls -----------------------------------------------------------

class Clock:
    """A settable clock in Unix seconds."""

    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def timed(clock):
    return InMemoryRedis(clock=clock)


def test_key_expires_when_its_time_comes(timed, clock):
    """SET EX 10: there at 9.999 s, gone at 10 s."""
    timed.set("k", "v", ex=10)
    clock.now += 9.999
    assert timed.get("k") == "v" and timed.pttl("k") == 1
    clock.now += 0.001
    assert timed.get("k") is None and timed.ttl("k") == -2


def test_expired_key_frees_its_memory_and_slot(timed, clock):
    """An expired key is removed with its share of used memory and its SCAN slot."""
    timed.set("k", "v", px=5)
    clock.now += 1
    assert timed.exists("k") == 0
    assert timed.used_memory == 0 and timed._slots == []


def test_active_expiry_reclaims_keys_no_one_reads(timed, clock):
    """Expired keys nobody asks for are removed by later commands (Redis's active expiry)."""
    for number in range(50):
        timed.set(f"k{number}", "v", ex=1)
    clock.now += 2
    for _ in range(3):
        timed.get("other")
    assert timed.dbsize() == 0 and timed.used_memory == 0


def test_keys_and_scan_skip_expired_keys(timed, clock):
    """KEYS and SCAN do not answer a key past its expiry."""
    timed.set("gone", "v", ex=1)
    timed.set("kept", "v")
    clock.now += 2
    timed._deadlines.clear()  # as if the active expiry had not reached it yet
    assert timed.keys() == ["kept"] and timed.scan(0)[1] == ["kept"]


def test_ttl_rounds_to_the_nearest_second(timed, clock):
    """TTL is (ms + 500) // 1000, as Redis computes it."""
    timed.set("k", "v", px=1500)
    assert timed.ttl("k") == 2
    clock.now += 0.001
    assert timed.ttl("k") == 1


def test_watched_key_expiring_fails_exec(timed, clock):
    """A watched key that expires before EXEC fails it, as Redis 6.0.9+ does."""
    timed.set("k", "v", ex=1)
    with timed.pipeline() as pipe:
        pipe.watch("k")
        clock.now += 2
        pipe.multi()
        pipe.get("k")
        with pytest.raises(WatchError):
            pipe.execute()


def test_no_key_expires_in_the_middle_of_exec():
    """EXEC reads the time once (Redis 7.0's call() caches it: fixed_time_expire), so a key
    not expired when EXEC starts is there for every command of it, however long EXEC takes."""
    clock, step = Clock(), [0.0]

    def ticking() -> float:  # each reading ``step[0]`` seconds after the one before
        clock.now += step[0]
        return clock.now

    server = InMemoryRedis(clock=ticking)
    server.set("k", "v", px=1500)
    pipe = server.pipeline()
    pipe.get("k").get("k").get("k")
    step[0] = 1.0
    assert pipe.execute() == ["v", "v", "v"]


def test_watching_a_key_already_expired_does_not_fail_exec(timed, clock):
    """WATCH of a key past its expiry but not yet removed: EXEC runs (redis-server: [None])."""
    timed.set("k", "v", px=1)
    clock.now += 0.01
    with timed.pipeline() as pipe:
        pipe.watch("k")
        pipe.multi()
        pipe.get("k")
        assert pipe.execute() == [None]


@pytest.mark.parametrize("removal", [lambda s: s.get("k"), lambda s: s.delete("k"),
                                     lambda s: s.exists("k"), lambda s: s.expire("k", 100)])
def test_removing_a_key_expired_when_watched_does_not_fail_exec(timed, clock, removal):
    """A key expired when WATCHed, removed by a later read or DEL: no change, EXEC runs
    (redis-server: [None], its touchWatchedKey skips the expired key's removal)."""
    timed.set("k", "v", px=1)
    clock.now += 0.01
    with timed.pipeline() as pipe:
        pipe.watch("k")
        removal(timed)
        pipe.multi()
        pipe.get("k")
        assert pipe.execute() == [None]


def test_flushdb_of_a_key_expired_when_watched_does_not_fail_exec(timed, clock):
    """FLUSHDB removing a key that was past its expiry when WATCHed is no change: EXEC runs
    (redis-server: [None], touchAllWatchedKeysInDb skips it)."""
    timed.set("k", "v", px=1)
    clock.now += 0.01
    timed._deadlines.clear()  # as if the active expiry had not reached it yet
    with timed.pipeline() as pipe:
        pipe.watch("k")
        timed.flushdb()
        pipe.multi()
        pipe.get("k")
        assert pipe.execute() == [None]


def test_setting_a_key_expired_when_watched_fails_exec(timed, clock):
    """A key expired when WATCHed and then written again is a change: WatchError, as
    redis-server raises it."""
    timed.set("k", "v", px=1)
    clock.now += 0.01
    with timed.pipeline() as pipe:
        pipe.watch("k")
        timed.set("k", "w")
        pipe.multi()
        pipe.get("k")
        with pytest.raises(WatchError):
            pipe.execute()


@pytest.mark.parametrize("write", [
    lambda s: s.set("k", "abcdef", keepttl=True), lambda s: s.set("k", "abcdef", ex=5),
    lambda s: s.set("k", "abcdef", get=True), lambda s: s.set("k", "abcdef", xx=True)])
def test_used_memory_exact_for_set_variants(server, write):
    """Every SET form replacing a 3-byte value with a 6-byte one adds exactly 3 bytes."""
    server.set("k", "abc")
    write(server)
    assert server.used_memory == KEY_OVERHEAD_BYTES + 1 + 6


def test_used_memory_non_utf8_value_counts_its_bytes(server):
    """A value kept as bytes costs its length in bytes."""
    server.set("k", b"\xff\xfe\xfd")
    assert server.used_memory == KEY_OVERHEAD_BYTES + 1 + 3


# -- no argument list crashes the server --------------------------------------------------------------

TOKENS = ["SET", "GET", "MGET", "INCRBY", "RPUSH", "LRANGE", "LLEN", "DEL", "EXISTS", "EXPIRE",
          "PERSIST", "TTL", "PTTL", "RENAME", "RENAMENX", "TYPE", "KEYS", "SCAN", "DBSIZE",
          "FLUSHDB", "PING", "WATCH", "UNWATCH", "set", "scan", "expire", "k", "l", "*", "[",
          "\\", "NX", "XX", "GT", "LT", "GET", "EX", "PX", "EXAT", "PXAT", "KEEPTTL", "MATCH",
          "COUNT", "TYPE", "ASYNC", "SYNC", "0", "1", "-1", "10", "+1", "", " ", "1.5",
          "9223372036854775807", "-9223372036854775808", "99999999999999999999", "é",
          b"\xff", b"\x80abc", 3, -7, 2.5, "INCR", "decr", "DECRBY", "EXEC", "DISCARD", "GET k",
          "FLUSHDB ASYNC", b"SET k", "LREM", "UNLINK"]


@settings(max_examples=1500, deadline=None)
@given(st.lists(st.lists(st.sampled_from(TOKENS), min_size=1, max_size=7), max_size=6))
def test_fuzzed_commands_answer_a_reply_or_a_redis_error(commands):
    """Random token lists: each command answers a reply or a ResponseError, never a Python error;
    inside a transaction every command still runs (unless one is refused or a DISCARD ends it),
    and used memory stays exact."""
    server = InMemoryRedis()
    server.rpush("l", "a")
    server.set("k", "1")
    for command in commands:
        try:
            server.execute_command(*command)
        except (ResponseError, UnicodeDecodeError):
            pass
    # WATCH switches a pipeline to immediate mode (tested elsewhere): left out of the queue here.
    commands = [command for command in commands if str(command[0]).upper() != "WATCH"]
    pipe = server.pipeline()
    for command in commands:
        pipe.execute_command(*command)
    pipe.execute_command("SET", "last", "done")
    try:
        replies = pipe.execute(raise_on_error=False)
    except (ResponseError, UnicodeDecodeError):  # EXECABORT (arity), EXEC after a DISCARD,
        replies = None  # or an undecodable reply
    if replies is not None:
        assert len(replies) == len(commands) + 1 and server.get("last") == "done"
    assert server.used_memory == sum(stored_size(key, value)
                                     for key, value in server._data.items())


def stored_size(key, value) -> int:
    """A key's share of used memory, counted from its items (a list keeps its own count)."""
    if type(value) is QuickList:
        return KEY_OVERHEAD_BYTES + memory._nbytes(key) + memory._items_size(list(value))
    return memory._key_size(key, value)


# -- maxmemory and expiry ------------------------------------------------------------------------------

def fill_with_expiring_keys(server) -> None:
    """SET keys of 100 bytes expiring in 1 s until maxmemory refuses one."""
    number = 0
    while True:
        try:
            server.set(f"e{number}", "x" * 100, ex=1)
        except OutOfMemoryError:
            return
        number += 1


def test_maxmemory_expired_keys_are_reclaimed_before_refusing(timed, clock):
    """Once their time is past, expired keys free memory for a POST's MULTI (Redis's active
    expiry frees them in the background)."""
    timed.maxmemory = 10_000
    fill_with_expiring_keys(timed)
    clock.now += 3600
    pipe = timed.pipeline()
    pipe.incr("c")
    pipe.rpush("l", "ev")
    assert pipe.execute() == [1, 1]


def test_maxmemory_expired_keys_are_reclaimed_before_refusing_a_command(timed, clock):
    """A single SET over maxmemory is accepted once the keys filling memory have expired."""
    timed.maxmemory = 10_000
    fill_with_expiring_keys(timed)
    clock.now += 2
    assert timed.set("new", "v") is True


def test_maxmemory_keys_not_yet_expired_still_refuse(timed, clock):
    """Before their time the expiring keys hold their memory: writes stay refused."""
    timed.maxmemory = 10_000
    fill_with_expiring_keys(timed)
    clock.now += 0.5
    with pytest.raises(OutOfMemoryError):
        timed.set("new", "v")


# -- watches of dropped pipelines ---------------------------------------------------------------------

def test_dropped_watching_pipelines_leave_no_watch(server):
    """A pipeline dropped while watching (no reset) is unwatched, as redis-py's __del__ does:
    the server's watch registry does not grow with dropped pipelines."""
    for _ in range(1000):
        pipe = server.pipeline()
        pipe.watch("c")
        del pipe
    server.incr("c")
    assert server._watches == {}


def test_dropped_watching_pipeline_is_unwatched_at_the_next_watch(server):
    """The next WATCH drops the abandoned pipelines' watches before adding its own."""
    for _ in range(100):
        server.pipeline().watch("c")
    pipe = server.pipeline()
    pipe.watch("c")
    assert server._watches == {"c": {pipe._watch}}
    pipe.reset()


# -- glob compilation: outside the lock, compact --------------------------------------------------------

@pytest.mark.parametrize("run", [
    lambda s: s.keys("[^a]x*"), lambda s: s.scan(0, match="[^a]x*", count=10),
    lambda s: s.execute_command("scan", 0, "match", "[^a]x*"),
    lambda s: s.pipeline().scan(0, match="[^a]x*").keys("[^a]x*").execute(),
    lambda s: s.pipeline(transaction=False).keys("[^a]x*").execute()])
def test_glob_is_compiled_before_the_lock_is_taken(server, monkeypatch, run):
    """KEYS and SCAN MATCH compile their pattern with the server lock free."""
    held = []
    real = scan.glob_matcher  # both callers, _compile_patterns and _matcher, live there
    monkeypatch.setattr(scan, "glob_matcher",
                        lambda pattern: held.append(server._lock.locked()) or real(pattern))
    server.set("bx", "v")
    run(server)
    assert held and not any(held)


@pytest.mark.parametrize("pattern, regex", [
    (b"[^a]", "[^\\x61]\\Z"), (b"[a-z0-9]", "[\\x30-\\x39\\x61-\\x7a]\\Z"),
    (b"?" * 100000, "(?:.){100000}\\Z"), (b"[^\x00]" * 3, "(?:[^\\x00]){3}\\Z")])
def test_glob_regex_is_compact(pattern, regex):
    """A negated class is written as what it leaves out, ranges as runs, repeats as counts."""
    assert patterns._glob(pattern).__self__.pattern == regex


# -- used memory in bytes ---------------------------------------------------------------------------

def test_used_memory_counts_utf8_bytes_of_values(server):
    """A non-ASCII value costs its UTF-8 bytes (é is 2), not its characters."""
    server.set("k", "é" * 100)
    assert server.used_memory == KEY_OVERHEAD_BYTES + 1 + 200


def test_used_memory_counts_utf8_bytes_of_keys_and_items(server):
    """Non-ASCII key names and list items cost their UTF-8 bytes too, through RENAME as well."""
    server.rpush("é" * 50, "ü", "abc")
    size = KEY_OVERHEAD_BYTES + 100 + 2 + 3 + 2 * ITEM_OVERHEAD_BYTES
    assert server.used_memory == size
    server.rename("é" * 50, "ö")
    assert server.used_memory == size - 100 + 2
    server.delete("ö")
    assert server.used_memory == 0


# -- lists as a quicklist of nodes the collector does not walk ---------------------------------------

def test_long_list_is_sealed_in_nodes_the_collector_does_not_track(server):
    """A list of 2,500 items is two full nodes and a tail; once the collector has seen them, the
    nodes are untracked, so a full collection visits one object per node, not per item."""
    server.rpush("l", *[f"e{number}" for number in range(2_000)])
    for number in range(2_000, 2_500):
        server.rpush("l", f"e{number}")
    value = server._data["l"]
    assert [len(node) for node in value.nodes] == [quicklist.NODE_ITEMS] * 2
    assert len(value.tail) == 500 and len(value) == 2_500
    gc.collect()
    assert not any(gc.is_tracked(node) for node in value.nodes)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(st.tuples(st.just("push"), st.lists(st.sampled_from("abc"),
                                                                min_size=1, max_size=9)),
                          st.tuples(st.just("rem"), st.integers(-4, 4), st.sampled_from("abc"))),
                max_size=30),
       st.integers(-30, 30), st.integers(-30, 30))
def test_quicklist_reads_and_removes_as_a_python_list(monkeypatch_nodes, steps, start, end):
    """With nodes of 3 items: any mix of RPUSH and LREM leaves the list a Python list would be,
    every sealed node full; LRANGE of any range, LLEN and used memory agree with it."""
    server, model = InMemoryRedis(), []
    for step in steps:
        if step[0] == "push":
            assert server.rpush("l", *step[1]) == len(model) + len(step[1])
            model += step[1]
            continue
        _, count, value = step
        where = [number for number, item in enumerate(model) if item == value]
        gone = set(where if count == 0 else where[:count] if count > 0 else where[count:])
        assert server.lrem("l", count, value) == len(gone)
        model = [item for number, item in enumerate(model) if number not in gone]
    assert server.llen("l") == len(model)
    size = len(model)
    first, last = max(start + size if start < 0 else start, 0), end + size if end < 0 else end
    assert server.lrange("l", start, end) == model[first:max(last + 1, 0)]
    if model:
        value = server._data["l"]
        assert all(len(node) == 3 for node in value.nodes) and len(value.tail) < 3
        assert server.used_memory == stored_size("l", value)
    else:
        assert server.used_memory == 0


@pytest.fixture(scope="module")
def monkeypatch_nodes():
    """Nodes of 3 items for the module's tests that ask (quicklist.NODE_ITEMS)."""
    patch = pytest.MonkeyPatch()
    patch.setattr(quicklist, "NODE_ITEMS", 3)
    patch.setattr(lists, "NODE_ITEMS", 3)  # its RPUSH of one item runs QuickList.push inline
    yield
    patch.undo()


def test_rename_and_delete_of_a_long_list_keep_used_memory_exact(server):
    """RENAME and DEL of a list of many nodes count its bytes as it kept them, to the byte."""
    server.rpush("l", *[f"item {number}" for number in range(3_456)])
    value = server._data["l"]
    assert server.used_memory == stored_size("l", value)
    server.set("dst", "old value")
    server.rename("l", "dst")
    assert server.used_memory == stored_size("dst", value)
    server.delete("dst")
    assert server.used_memory == 0


@pytest.mark.parametrize("how", ["command", "transaction", "pipeline", "watching"])
def test_unlinked_long_list_is_freed_after_the_lock_is_released(server, how):
    """UNLINK of a list of several nodes: its memory counts as freed at once; its items are
    freed node by node by the client's own thread once the lock is released, before UNLINK
    answers, whether sent alone, in MULTI/EXEC, in a plain pipeline or after a WATCH."""
    server.rpush("l", *[f"event {number}" for number in range(2_500)])
    value = server._data["l"]
    freed_with_the_lock = []
    free = server._free_unlinked
    server._free_unlinked = lambda: (freed_with_the_lock.append(server._lock.locked()), free())
    if how == "command":
        assert server.unlink("l") == 1
    elif how == "watching":
        with server.pipeline() as pipe:
            pipe.watch("other")
            assert pipe.unlink("l") == 1
    else:
        assert server.pipeline(transaction=how == "transaction").unlink("l").execute() == [1]
    assert freed_with_the_lock == [False]
    assert value.nodes == [] and server._unlinked == [] and server.used_memory == 0
