"""The Redis contract: each command's replies and errors, run against every backend.

Every test here runs on InMemoryRedis and, when REAL_REDIS_URL is set, on a real Redis through
redis-py (see conftest.py), so the fake's fidelity is checked, not assumed.
"""

import enum
import threading

import pytest

from in_memory_redis import InMemoryRedis

WRONGTYPE = "WRONGTYPE Operation against a key holding the wrong kind of value"
NOT_AN_INTEGER = "value is not an integer or out of range"


def error_text(excinfo) -> str:
    return str(excinfo.value)


# -- strings and counters -------------------------------------------------------------------------

def test_incr_missing_key_starts_at_zero(r):
    """INCR on a missing key creates it at 1."""
    assert r.incr("n") == 1
    assert r.incr("n") == 2


def test_incr_stores_a_string(r):
    """The counter reads back as a decimal string, as redis-py with decode_responses gives it."""
    r.incr("n")
    assert r.get("n") == "1"


def test_incrby_amount(r):
    """INCRBY adds the amount, negative ones too."""
    assert r.incrby("n", 5) == 5
    assert r.incrby("n", -7) == -2
    assert r.incr("n", 3) == 1


def test_incr_wrong_type(r, backend):
    """INCR on a list fails with WRONGTYPE and leaves the list alone."""
    r.rpush("l", "a")
    with pytest.raises(backend.ResponseError) as excinfo:
        r.incr("l")
    assert error_text(excinfo) == WRONGTYPE
    assert r.lrange("l", 0, -1) == ["a"]


@pytest.mark.parametrize("text", ["abc", "1.5", "", " 1", "+1", "01", "-0", "1 ", "9" * 20])
def test_incr_not_an_integer(r, backend, text):
    """INCR on a string that is not a canonical 64-bit integer fails and changes nothing."""
    r.set("n", text)
    with pytest.raises(backend.ResponseError) as excinfo:
        r.incr("n")
    assert error_text(excinfo) == NOT_AN_INTEGER
    assert r.get("n") == text


def test_incr_integer_string(r):
    """INCR accepts a string set by SET when it is an integer."""
    r.set("n", "-41")
    assert r.incr("n") == -40


def test_incr_overflow(r, backend):
    """INCR past 2**63-1 fails with Redis's overflow error."""
    r.set("n", str(2 ** 63 - 1))
    with pytest.raises(backend.ResponseError) as excinfo:
        r.incr("n")
    assert "increment or decrement would overflow" in error_text(excinfo)
    assert r.get("n") == str(2 ** 63 - 1)


@pytest.mark.parametrize("amount", [1.5, 2 ** 63, "x"])
def test_incrby_bad_amount(r, backend, amount):
    """INCRBY with an amount that is not a 64-bit integer fails."""
    with pytest.raises(backend.ResponseError) as excinfo:
        r.incrby("n", amount)
    assert error_text(excinfo) == NOT_AN_INTEGER
    assert r.exists("n") == 0


def test_incr_bool_amount_is_data_error(r, backend):
    """redis-py refuses to send a bool; nothing reaches the server."""
    with pytest.raises(backend.DataError):
        r.incrby("n", True)
    assert r.exists("n") == 0


def test_get_missing(r):
    """GET of a missing key is None."""
    assert r.get("nothing") is None


def test_get_wrong_type(r, backend):
    """GET of a list fails with WRONGTYPE."""
    r.rpush("l", "a")
    with pytest.raises(backend.ResponseError) as excinfo:
        r.get("l")
    assert error_text(excinfo) == WRONGTYPE


def test_set_replaces_any_type(r):
    """SET overwrites a key whatever it held."""
    r.rpush("k", "a")
    assert r.set("k", 7) is True
    assert r.get("k") == "7"


def test_mget_missing_and_wrong_type_are_none(r):
    """MGET answers None for a missing key and for a list, without an error."""
    r.set("a", "1")
    r.rpush("l", "x")
    assert r.mget(["a", "missing", "l"]) == ["1", None, None]


def test_mget_list_or_args(r):
    """MGET takes a list or separate arguments, as redis-py's list_or_args does."""
    r.set("a", "1")
    r.set("b", "2")
    assert r.mget("a", "b") == r.mget(["a", "b"]) == ["1", "2"]


def test_mget_single_key_not_iterable(r):
    """redis-py's list_or_args takes a lone int key as one key."""
    r.set("5", "x")
    assert r.mget(5) == ["x"]


class Kind(str, enum.Enum):
    HEART = "heart"


def test_str_subclass_sent_as_its_value(r):
    """A str subclass (a str Enum) is sent as its plain string, and read back as str."""
    r.set(Kind.HEART, Kind.HEART)
    assert r.get("heart") == "heart"
    assert [type(key) for key in r.keys()] == [str]


def test_bytes_like_and_unencodable_values(r):
    """bytearray is sent like bytes; a lone surrogate cannot be encoded (nothing stored)."""
    assert r.rpush("l", bytearray(b"x")) == 1
    with pytest.raises(UnicodeEncodeError):
        r.rpush("u", "\ud800")
    assert r.exists("u") == 0


def test_mget_no_keys(r):
    """MGET of no keys is an empty list."""
    assert r.mget([]) == []


# -- lists --------------------------------------------------------------------------------------

def test_rpush_returns_new_length(r):
    """RPUSH appends in order and answers the list's length."""
    assert r.rpush("l", "a") == 1
    assert r.rpush("l", "b", "c") == 3
    assert r.lrange("l", 0, -1) == ["a", "b", "c"]


def test_rpush_encodes_numbers_as_strings(r):
    """Ints and floats are stored as their repr, and read back as strings."""
    r.rpush("l", 5, 1.5, b"raw")
    assert r.lrange("l", 0, -1) == ["5", "1.5", "raw"]


@pytest.mark.parametrize("value", [{"user_id": 1}, None, True, [1]])
def test_rpush_data_error(r, backend, value):
    """A value redis-py cannot encode raises DataError and stores nothing."""
    with pytest.raises(backend.DataError):
        r.rpush("l", value)
    assert r.exists("l") == 0


def test_rpush_wrong_type(r, backend):
    """RPUSH on a string fails with WRONGTYPE."""
    r.set("s", "1")
    with pytest.raises(backend.ResponseError) as excinfo:
        r.rpush("s", "a")
    assert error_text(excinfo) == WRONGTYPE
    assert r.get("s") == "1"


def test_rpush_no_values(r, backend):
    """RPUSH with nothing to push is a wrong-arity error."""
    with pytest.raises(backend.ResponseError) as excinfo:
        r.rpush("l")
    assert "wrong number of arguments" in error_text(excinfo)


@pytest.mark.parametrize("start, end, expected", [
    (0, -1, ["a", "b", "c", "d"]),
    (1, 2, ["b", "c"]),
    (-2, -1, ["c", "d"]),
    (-100, 1, ["a", "b"]),
    (2, 100, ["c", "d"]),
    (3, 1, []),
    (5, 10, []),
    (-100, -50, []),
    (0, -5, []),
    (0, 0, ["a"]),
])
def test_lrange_indexes(r, start, end, expected):
    """LRANGE's inclusive range, negative indexes counting from the end, out of range clipped."""
    r.rpush("l", "a", "b", "c", "d")
    assert r.lrange("l", start, end) == expected


def test_lrange_missing(r):
    """LRANGE of a missing key is an empty list."""
    assert r.lrange("nothing", 0, -1) == []


def test_lrange_wrong_type(r, backend):
    """LRANGE of a string fails with WRONGTYPE."""
    r.set("s", "1")
    with pytest.raises(backend.ResponseError) as excinfo:
        r.lrange("s", 0, -1)
    assert error_text(excinfo) == WRONGTYPE


def test_lrange_bad_index(r, backend):
    """LRANGE with an index that is not an integer fails."""
    r.rpush("l", "a")
    with pytest.raises(backend.ResponseError) as excinfo:
        r.lrange("l", "first", -1)
    assert error_text(excinfo) == NOT_AN_INTEGER


def test_set_ex_gives_a_ttl_and_plain_set_clears_it(r):
    """SET ... EX n: TTL n (rounded); a plain SET removes the expiry; a missing key is -2."""
    assert r.set("k", "v", ex=100) is True
    assert 99 <= r.ttl("k") <= 100
    r.set("k", "w")
    assert (r.ttl("k"), r.ttl("missing")) == (-1, -2)


def test_expiry_survives_incr_and_rename(r):
    """INCR keeps a key's expiry, and RENAME moves it with the value."""
    r.set("n", 1, ex=100)
    assert r.incr("n") == 2 and 99 <= r.ttl("n") <= 100
    r.rename("n", "m")
    assert 99 <= r.ttl("m") <= 100


@pytest.mark.parametrize("seconds, text", [(0, "invalid expire time in 'set' command"),
                                           (-5, "invalid expire time in 'set' command")])
def test_set_ex_not_positive(r, backend, seconds, text):
    """SET ... EX 0 or below fails with Redis's error and stores nothing."""
    with pytest.raises(backend.ResponseError) as excinfo:
        r.set("k", "v", ex=seconds)
    assert error_text(excinfo) == text and r.exists("k") == 0


def test_expired_key_is_gone():
    """A key past its expiry is never served (the in-memory server's clock injected)."""
    now = [0.0]
    server = InMemoryRedis(clock=lambda: now[0])
    server.set("marker", 3, ex=10)
    now[0] = 9.9
    assert server.get("marker") == "3"
    now[0] = 10.0
    assert (server.get("marker"), server.exists("marker"), server.keys("*")) == (None, 0, [])


def test_setnx_sets_only_a_missing_key(r):
    """SETNX sets a missing key (True) and leaves an existing one, of any type (False)."""
    assert r.setnx("k", "a") is True
    assert r.setnx("k", "b") is False and r.get("k") == "a"
    r.rpush("l", "x")
    assert r.setnx("l", "b") is False and r.lrange("l", 0, -1) == ["x"]


@pytest.mark.parametrize("count, removed, left", [
    (1, 1, ["b", "a", "c", "a"]),
    (-1, 1, ["a", "b", "a", "c"]),
    (-2, 2, ["a", "b", "c"]),
    (0, 3, ["b", "c"]),
    (10, 3, ["b", "c"]),
])
def test_lrem_counts_from_head_or_tail(r, count, removed, left):
    """LREM removes up to count matches from the head (>0), the tail (<0), or all (0)."""
    r.rpush("l", "a", "b", "a", "c", "a")
    assert r.lrem("l", count, "a") == removed
    assert r.lrange("l", 0, -1) == left


def test_lrem_empties_and_deletes_the_list(r):
    """A list LREM empties is deleted; a missing key removes nothing."""
    r.rpush("l", "a")
    assert r.lrem("l", 0, "a") == 1
    assert r.exists("l") == 0
    assert r.lrem("l", 0, "a") == 0


def test_lrem_wrong_type(r, backend):
    """LREM on a string fails with WRONGTYPE."""
    r.set("s", "1")
    with pytest.raises(backend.ResponseError) as excinfo:
        r.lrem("s", 0, "1")
    assert error_text(excinfo) == WRONGTYPE


def test_llen(r):
    """LLEN counts a list's items; 0 for a missing key."""
    assert r.llen("l") == 0
    r.rpush("l", "a", "b")
    assert r.llen("l") == 2


def test_llen_wrong_type(r, backend):
    """LLEN of a string fails with WRONGTYPE."""
    r.set("s", "1")
    with pytest.raises(backend.ResponseError) as excinfo:
        r.llen("s")
    assert error_text(excinfo) == WRONGTYPE


# -- keys ---------------------------------------------------------------------------------------

def test_delete_counts_removed_keys(r):
    """DEL answers how many of the keys existed; a key named twice counts once."""
    r.set("a", "1")
    r.rpush("l", "x")
    assert r.delete("a", "l", "missing", "a") == 2
    assert r.exists("a", "l") == 0


def test_delete_no_keys(r, backend):
    """DEL of no keys is a wrong-arity error."""
    with pytest.raises(backend.ResponseError) as excinfo:
        r.delete()
    assert "wrong number of arguments" in error_text(excinfo)


def test_exists_counts_repeats(r):
    """EXISTS counts a key once per time it is named."""
    r.set("a", "1")
    assert r.exists("a", "a", "missing") == 2


def test_rename_moves_value(r):
    """RENAME moves the value and the old name is gone."""
    r.rpush("src", "a", "b")
    assert r.rename("src", "dst") is True
    assert r.exists("src") == 0
    assert r.lrange("dst", 0, -1) == ["a", "b"]


def test_rename_overwrites_destination(r):
    """RENAME replaces an existing destination, whatever its type."""
    r.rpush("src", "a")
    r.set("dst", "1")
    r.rename("src", "dst")
    assert r.type("dst") == "list"


def test_rename_missing_key(r, backend):
    """RENAME of a missing key fails with "no such key"."""
    with pytest.raises(backend.ResponseError) as excinfo:
        r.rename("missing", "dst")
    assert error_text(excinfo) == "no such key"
    assert r.exists("dst") == 0


def test_rename_to_itself(r):
    """RENAME of a key onto itself succeeds and keeps it."""
    r.set("a", "1")
    assert r.rename("a", "a") is True
    assert r.get("a") == "1"


def test_renamenx_existing_destination(r):
    """RENAMENX leaves both keys alone when the destination exists."""
    r.set("src", "1")
    r.set("dst", "2")
    assert r.renamenx("src", "dst") is False
    assert r.mget("src", "dst") == ["1", "2"]


def test_renamenx_free_destination(r):
    """RENAMENX moves the key when the destination is free."""
    r.set("src", "1")
    assert r.renamenx("src", "dst") is True
    assert r.mget("src", "dst") == [None, "1"]


def test_renamenx_missing_key(r, backend):
    """RENAMENX of a missing key fails with "no such key"."""
    with pytest.raises(backend.ResponseError) as excinfo:
        r.renamenx("missing", "dst")
    assert error_text(excinfo) == "no such key"


def test_type(r):
    """TYPE names a key's type, "none" when missing."""
    r.set("s", "1")
    r.rpush("l", "a")
    assert [r.type("s"), r.type("l"), r.type("missing")] == ["string", "list", "none"]


KEYS = ["match_data_1", "match_data_2", "match_data_12", "1_heart", "2_sad", "backup_match_data_1",
        "a*b", "a[b"]


@pytest.mark.parametrize("pattern, expected", [
    ("*", KEYS),
    ("match_data_*", ["match_data_1", "match_data_2", "match_data_12"]),
    ("match_data_?", ["match_data_1", "match_data_2"]),
    ("match_data_[12]", ["match_data_1", "match_data_2"]),
    ("match_data_[^1]", ["match_data_2"]),
    ("match_data_[0-1]*", ["match_data_1", "match_data_12"]),
    ("[1-2]_*", ["1_heart", "2_sad"]),
    ("*_heart", ["1_heart"]),
    ("a\\*b", ["a*b"]),
    ("a\\[b", ["a[b"]),
    ("nothing*", []),
])
def test_keys_glob(r, pattern, expected):
    """KEYS matches Redis glob patterns: * ? [set] [^set] [a-z] and \\ escapes."""
    for key in KEYS:
        r.set(key, "1")
    assert sorted(r.keys(pattern)) == sorted(expected)


@pytest.mark.parametrize("pattern, expected", [
    ("[a-]", ["]", "a"]),  # Redis reads "a-]" as the range a..] (and the class runs on)
    ("?", ["]", "a", "-"]),  # "?" is one byte: "é" is two in UTF-8
    ("??", ["é"]),
    ("**", ["]", "a", "-", "é"]),  # only "*" itself (or "") matches the empty key
])
def test_keys_glob_bytes_and_edges(r, pattern, expected):
    """KEYS matches bytes, as Redis's stringmatchlen does."""
    for key in ["", "]", "a", "-", "é"]:
        r.set(key, "1")
    assert sorted(r.keys(pattern)) == sorted(expected)


def test_scan_invalid_cursor(r, backend):
    """SCAN reads its cursor as an unsigned number: anything else is "invalid cursor"."""
    with pytest.raises(backend.ResponseError) as excinfo:
        r.scan("abc")
    assert error_text(excinfo) == "invalid cursor"


def test_scan_iter_match(r):
    """scan_iter yields every matching key (here, match-data lists but not their staged copies)."""
    for key in ["match_data_1", "match_data_2", "backup_match_data_3", "1_heart"]:
        r.rpush(key, "x")
    assert sorted(r.scan_iter(match="match_data_*")) == ["match_data_1", "match_data_2"]


def test_scan_iter_type(r):
    """scan_iter with _type yields only keys of that type."""
    r.set("1_heart", "3")
    r.rpush("match_data_1", "x")
    assert list(r.scan_iter(_type="string")) == ["1_heart"]


def test_scan_iter_many_keys(r):
    """scan_iter visits every key exactly once in a database larger than one COUNT."""
    pipe = r.pipeline()
    for number in range(500):
        pipe.set(f"k{number}", number)
    pipe.execute()
    keys = list(r.scan_iter(count=10))
    assert sorted(set(keys)) == sorted(f"k{number}" for number in range(500))


def test_dbsize_and_flushdb(r):
    """DBSIZE counts keys; FLUSHDB empties the database."""
    r.set("a", "1")
    r.rpush("l", "x")
    assert r.dbsize() == 2
    assert r.flushdb() is True
    assert r.dbsize() == 0


# -- pipelines ----------------------------------------------------------------------------------

def test_pipeline_returns_replies_in_order(r):
    """execute() answers each queued command's reply, in order; commands chain."""
    replies = r.pipeline().incr("n").rpush("l", "a", "b").get("n").lrange("l", 0, -1).execute()
    assert replies == [1, 2, "1", ["a", "b"]]


def test_pipeline_empty(r):
    """execute() of nothing answers []."""
    assert r.pipeline().execute() == []


def test_pipeline_runtime_error_does_not_undo_others(r, backend):
    """As in MULTI/EXEC, a WRONGTYPE reply does not roll back the other commands."""
    r.set("s", "x")
    pipe = r.pipeline(transaction=True)
    pipe.incr("before").rpush("s", "y").incr("after")
    with pytest.raises(backend.ResponseError) as excinfo:
        pipe.execute()
    assert WRONGTYPE in error_text(excinfo)
    assert r.mget("before", "after", "s") == ["1", "1", "x"]


def test_pipeline_errors_in_replies(r, backend):
    """With raise_on_error=False the error stands in the reply list."""
    r.set("s", "x")
    replies = r.pipeline().rpush("s", "y").incr("n").execute(raise_on_error=False)
    assert isinstance(replies[0], backend.ResponseError)
    assert replies[1] == 1


def test_pipeline_transaction_arity_error_runs_nothing(r, backend):
    """A command Redis refuses to queue aborts the whole MULTI/EXEC: nothing runs."""
    pipe = r.pipeline(transaction=True)
    pipe.incr("n").delete()
    with pytest.raises(backend.ResponseError) as excinfo:
        pipe.execute()
    assert "wrong number of arguments" in error_text(excinfo)
    assert r.exists("n") == 0


def test_pipeline_data_error_raised_by_execute(r, backend):
    """redis-py encodes at execute(): a bad value is queued, then execute() sends nothing."""
    pipe = r.pipeline()
    pipe.incr("n").set("k", None)
    with pytest.raises(backend.DataError):
        pipe.execute()
    assert r.exists("n", "k") == 0
    assert len(pipe) == 0


def test_pipeline_error_shortens_command(r, backend):
    """The failing command is named as textwrap.shorten(..., 100) gives it."""
    r.set("s", "x")
    with pytest.raises(backend.ResponseError) as excinfo:
        r.pipeline().rpush("s", "a  b" + " word" * 30).execute()
    assert error_text(excinfo).startswith("Command # 1 (RPUSH s a b word word")
    assert "...) of pipeline caused error: WRONGTYPE" in error_text(excinfo)


def test_pipeline_context_manager(r):
    """A pipeline is a context manager; commands left unexecuted are dropped."""
    with r.pipeline() as pipe:
        pipe.incr("n")
    assert r.exists("n") == 0


def test_pipeline_transaction_is_atomic(r, fast_thread_switching):
    """No reader ever sees one of two counters incremented by a transaction without the other."""
    writers, increments = 4, 500
    torn = []

    def write():
        for _ in range(increments):
            r.pipeline(transaction=True).incr("a").incr("b").execute()

    def read(stop):
        while not stop.is_set():
            a, b = r.pipeline(transaction=True).get("a").get("b").execute()
            if a != b:
                torn.append((a, b))

    stop = threading.Event()
    reader = threading.Thread(target=read, args=(stop,))
    reader.start()
    threads = [threading.Thread(target=write) for _ in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    stop.set()
    reader.join()
    assert torn == []
    assert r.mget("a", "b") == [str(writers * increments)] * 2


def test_incr_from_many_threads_loses_nothing(r, fast_thread_switching):
    """Concurrent INCRs all count."""
    start = threading.Barrier(4)

    def increment():
        start.wait()
        for _ in range(10_000):
            r.incr("n")

    threads = [threading.Thread(target=increment) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert r.get("n") == "40000"


# -- maxmemory with the noeviction policy -------------------------------------------------------

OUT_OF_MEMORY = "command not allowed when used memory > 'maxmemory'."


@pytest.fixture
def full(r):
    """The backend with some data and maxmemory set to 1 byte: it is over the limit at once."""
    r.rpush("l", "a")
    r.set("s", "v")
    if hasattr(r, "config_set"):  # a real Redis: CONFIG SET, put back afterwards
        r.config_set("maxmemory-policy", "noeviction")
        r.config_set("maxmemory", 1)
        yield r
        r.config_set("maxmemory", 0)
    else:
        r.maxmemory = 1
        yield r


@pytest.mark.parametrize("command", [lambda r: r.incr("n"), lambda r: r.rpush("l", "b"),
                                     lambda r: r.set("s", "w"), lambda r: r.incrby("s2", 5)])
def test_maxmemory_refuses_commands_that_add_data(full, backend, command):
    """Over maxmemory, SET, INCRBY and RPUSH answer OOM and change nothing."""
    with pytest.raises(backend.OutOfMemoryError) as excinfo:
        command(full)
    assert error_text(excinfo) == OUT_OF_MEMORY
    assert full.lrange("l", 0, -1) == ["a"]
    assert full.mget("s", "n", "s2") == ["v", None, None]


def test_maxmemory_oom_is_a_response_error(full, backend):
    """OutOfMemoryError is a ResponseError, as in redis-py."""
    with pytest.raises(backend.ResponseError):
        full.incr("n")


def test_maxmemory_allows_reads_renames_and_deletes(full):
    """Over maxmemory, commands that add nothing still run: reads, RENAME, DEL."""
    assert full.get("s") == "v"
    assert full.llen("l") == 1
    assert full.rename("l", "l2") is True
    assert full.delete("l2", "s") == 2
    assert full.dbsize() == 0


def test_maxmemory_transaction_refused_whole(full, backend):
    """A MULTI/EXEC over maxmemory runs none of its commands; the first is named in the error."""
    pipe = full.pipeline(transaction=True)
    pipe.incr("n")
    pipe.rpush("l", "b")
    with pytest.raises(backend.OutOfMemoryError) as excinfo:
        pipe.execute()
    assert error_text(excinfo) == ("Command # 1 (INCRBY n 1) of pipeline caused error: "
                                   + OUT_OF_MEMORY)
    assert full.get("n") is None
    assert full.lrange("l", 0, -1) == ["a"]


def test_maxmemory_transaction_of_reads_refused(full, backend):
    """Over maxmemory, MULTI queues no command at all, reads included (Redis 7)."""
    pipe = full.pipeline(transaction=True)
    pipe.get("s")
    with pytest.raises(backend.OutOfMemoryError):
        pipe.execute(raise_on_error=False)


def test_maxmemory_plain_pipeline_refuses_per_command(full, backend):
    """Without a transaction, each command is judged alone: reads answer, writes get OOM."""
    pipe = full.pipeline(transaction=False)
    pipe.get("s")
    pipe.rpush("l", "b")
    replies = pipe.execute(raise_on_error=False)
    assert replies[0] == "v"
    assert isinstance(replies[1], backend.OutOfMemoryError)
    assert full.llen("l") == 1
