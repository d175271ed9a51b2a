"""The Redis contract: each command's replies and errors, run against every backend.

Every test here runs on InMemoryRedis and, when REAL_REDIS_URL is set, on a real Redis through
redis-py (see conftest.py), so the fake's fidelity is checked, not assumed.
"""

import enum
import threading

import pytest

from tests.threads import JOIN_TIMEOUT_SECONDS, join_all

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


LONG_LIST = [f"e{number}" for number in range(2_500)]
"""A list longer than one node of the in-memory server's quicklist (1,000 items): the reads
and removals below cross node borders."""


@pytest.mark.parametrize("start, end", [(0, -1), (999, 1000), (0, 999), (1000, 1999),
                                        (998, 2001), (-1501, -1499), (2400, 5000), (-1, -1)])
def test_lrange_of_a_long_list(r, start, end):
    """LRANGE over a list of 2,500 items, pushed one by one and in one RPUSH, answers the same
    slices as Python's (an end past the list clipped), across any border between nodes."""
    for item in LONG_LIST:
        r.rpush("one", item)
    r.rpush("many", *LONG_LIST)
    expected = LONG_LIST[start:(end + 1) or None]
    assert r.lrange("one", start, end) == expected
    assert r.lrange("many", start, end) == expected
    assert r.llen("one") == r.llen("many") == len(LONG_LIST)


@pytest.mark.parametrize("count", [1, -1, 2, -3, 0])
def test_lrem_in_a_long_list(r, count):
    """LREM in a list of 2,500 items, the matches spread over it: the right ones go, from the
    head or the tail, the rest stays in order, and pushing on after it still appends."""
    items = ["x" if number % 700 == 5 else item for number, item in enumerate(LONG_LIST)]
    r.rpush("l", *items)
    where = [number for number, item in enumerate(items) if item == "x"]
    gone = set(where if count == 0 else where[:count] if count > 0 else where[count:])
    assert r.lrem("l", count, "x") == len(gone)
    left = [item for number, item in enumerate(items) if number not in gone]
    assert r.lrange("l", 0, -1) == left
    assert r.rpush("l", "end") == len(left) + 1
    assert r.lrange("l", -2, -1) == [left[-1], "end"]


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


def test_unlink_removes_keys_as_del_does(r, backend):
    """UNLINK answers how many of the keys existed, a key named twice counting once; they are
    gone for every reader at once (EXISTS, TYPE, LRANGE, SCAN), a long list too, and a push
    then starts a new list. With no keys it is a wrong-arity error."""
    r.set("a", "1")
    r.rpush("l", *LONG_LIST)
    assert r.unlink("a", "l", "missing", "a") == 2
    assert r.exists("a", "l") == 0 and r.type("l") == "none" and r.lrange("l", 0, -1) == []
    assert list(r.scan_iter()) == []
    assert r.rpush("l", "new") == 1 and r.lrange("l", 0, -1) == ["new"]
    with pytest.raises(backend.ResponseError) as excinfo:
        r.unlink()
    assert "wrong number of arguments" in error_text(excinfo)


def test_unlink_in_a_transaction(r):
    """UNLINK queued in MULTI/EXEC runs in order with the rest (the backup's drop of a list
    with its generation INCR)."""
    r.rpush("l", *LONG_LIST)
    pipe = r.pipeline(transaction=True)
    pipe.llen("l").unlink("l").llen("l").incr("generation")
    assert pipe.execute() == [len(LONG_LIST), 1, 0, 1]


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
    reader = threading.Thread(target=read, args=(stop,), daemon=True)
    reader.start()
    threads = [threading.Thread(target=write, daemon=True) for _ in range(writers)]
    for thread in threads:
        thread.start()
    try:
        join_all(threads)
    finally:
        stop.set()
    join_all([reader])
    assert torn == []
    assert r.mget("a", "b") == [str(writers * increments)] * 2


def test_incr_from_many_threads_loses_nothing(r, fast_thread_switching):
    """Concurrent INCRs all count."""
    start = threading.Barrier(4, timeout=JOIN_TIMEOUT_SECONDS)

    def increment():
        start.wait()
        for _ in range(10_000):
            r.incr("n")

    threads = [threading.Thread(target=increment, daemon=True) for _ in range(4)]
    for thread in threads:
        thread.start()
    join_all(threads)
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


# -- SET's options and expiry -----------------------------------------------------------------------

def test_set_nx_only_when_missing(r):
    """SET NX sets a missing key (True) and leaves an existing one (None)."""
    assert r.set("k", "a", nx=True) is True
    assert r.set("k", "b", nx=True) is None
    assert r.get("k") == "a"


def test_set_xx_only_when_present(r):
    """SET XX leaves a missing key missing (None) and replaces an existing one (True)."""
    assert r.set("k", "a", xx=True) is None
    assert r.exists("k") == 0
    r.set("k", "a")
    assert r.set("k", "b", xx=True) is True
    assert r.get("k") == "b"


def test_set_get_returns_old_value(r):
    """SET GET answers the old string (None if missing) and sets the new one."""
    assert r.set("k", "a", get=True) is None
    assert r.set("k", "b", get=True) == "a"
    assert r.get("k") == "b"


def test_set_nx_get_on_existing_key(r):
    """SET NX GET on an existing key answers its value and changes nothing (Redis 7)."""
    r.set("k", "a")
    assert r.set("k", "b", nx=True, get=True) == "a"
    assert r.get("k") == "a"


def test_set_get_on_a_list_is_wrongtype(r, backend):
    """SET GET on a list fails with WRONGTYPE and leaves the list."""
    r.rpush("l", "x")
    with pytest.raises(backend.ResponseError) as excinfo:
        r.set("l", "v", get=True)
    assert error_text(excinfo) == WRONGTYPE
    assert r.lrange("l", 0, -1) == ["x"]


@pytest.mark.parametrize("option, amount, low, high", [
    ("ex", 100, 99, 100), ("px", 100_000, 99, 100)])
def test_set_with_expiry_has_ttl(r, option, amount, low, high):
    """SET EX/PX gives the key a TTL in seconds (TTL rounds, as Redis)."""
    r.set("k", "v", **{option: amount})
    assert low <= r.ttl("k") <= high
    assert 98_000 < r.pttl("k") <= 100_000


def test_set_exat_in_the_past_expires_at_once(r):
    """SET EXAT/PXAT with a past Unix time: the key is gone at once."""
    r.set("k", "v", exat=1)
    r.set("p", "v", pxat=1)
    assert r.get("k") is None and r.exists("p") == 0 and r.ttl("k") == -2


def test_set_removes_ttl_unless_keepttl(r):
    """A plain SET drops the key's TTL; SET KEEPTTL keeps it."""
    r.set("k", "v", ex=100)
    r.set("k", "w", keepttl=True)
    assert r.ttl("k") > 0
    r.set("k", "x")
    assert r.ttl("k") == -1


@pytest.mark.parametrize("args, message", [
    (["EX", "0"], "invalid expire time in 'set' command"),
    (["PX", "-5"], "invalid expire time in 'set' command"),
    (["EX", "9223372036854775"], "invalid expire time in 'set' command"),
    (["EX", "abc"], NOT_AN_INTEGER),
    (["PX", "1.5"], NOT_AN_INTEGER),
    (["NX", "XX"], "syntax error"),
    (["EX", "10", "PX", "100"], "syntax error"),
    (["KEEPTTL", "EX", "1"], "syntax error"),
    (["EX"], "syntax error"),
    (["FOO"], "syntax error"),
])
def test_set_raw_bad_options(r, backend, args, message):
    """Raw SET with bad options answers Redis's error and stores nothing."""
    with pytest.raises(backend.ResponseError) as excinfo:
        r.execute_command("SET", "k", "v", *args)
    assert error_text(excinfo) == message
    assert r.exists("k") == 0


def test_set_raw_options_any_case_and_repeated(r):
    """SET's options are case-insensitive; GET twice and EX twice are accepted, as Redis does.

    Sent raw, without redis-py's get=True option, the old value meets the OK check: False.
    """
    assert r.execute_command("set", "k", "v", "nx", "ex", "100", "EX", "100") is True
    assert r.execute_command("SET", "k", "w", "get", "GET") is False
    assert r.execute_command("SET", "k", "x", "GET", get=True) == "w"


def test_set_conflicting_options_data_error(r, backend):
    """redis-py refuses ex with px, and nx with xx, before sending anything."""
    with pytest.raises(backend.DataError):
        r.set("k", "v", ex=1, px=1)
    with pytest.raises(backend.DataError):
        r.set("k", "v", nx=True, xx=True)


def test_ttl_of_missing_and_persistent_keys(r):
    """TTL and PTTL answer -2 for a missing key and -1 for a key without expiry."""
    r.set("k", "v")
    assert (r.ttl("nothing"), r.pttl("nothing"), r.ttl("k"), r.pttl("k")) == (-2, -2, -1, -1)


def test_expire_sets_ttl_and_persist_removes_it(r):
    """EXPIRE gives a TTL (True); PERSIST removes it (True), then has nothing to remove (False)."""
    r.rpush("l", "x")
    assert r.expire("l", 100) is True
    assert 99 <= r.ttl("l") <= 100
    assert r.persist("l") is True
    assert r.persist("l") is False
    assert r.ttl("l") == -1


def test_expire_missing_key_is_false(r):
    """EXPIRE and PERSIST of a missing key answer False."""
    assert r.expire("nothing", 10) is False
    assert r.persist("nothing") is False


def test_expire_negative_deletes_now(r):
    """EXPIRE with a time <= 0 deletes the key at once, answering True."""
    r.set("k", "v")
    assert r.expire("k", -1) is True
    assert r.exists("k") == 0


@pytest.mark.parametrize("flags, has_ttl, seconds, expected", [
    ({"nx": True}, False, 50, True), ({"nx": True}, True, 50, False),
    ({"xx": True}, False, 50, False), ({"xx": True}, True, 50, True),
    ({"gt": True}, False, 50, False), ({"gt": True}, True, 500, True),
    ({"gt": True}, True, 50, False), ({"lt": True}, False, 50, True),
    ({"lt": True}, True, 50, True), ({"lt": True}, True, 500, False),
    ({"xx": True, "gt": True}, True, 500, True),
])
def test_expire_flags(r, flags, has_ttl, seconds, expected):
    """EXPIRE NX/XX/GT/LT (Redis 7): set only when the flag's condition holds (no TTL = forever)."""
    r.set("k", "v", ex=100 if has_ttl else None)
    assert r.expire("k", seconds, **flags) is expected


@pytest.mark.parametrize("args, message", [
    (["10", "NX", "XX"], "NX and XX, GT or LT options at the same time are not compatible"),
    (["10", "GT", "LT"], "GT and LT options at the same time are not compatible"),
    (["10", "foo"], "Unsupported option foo"),
    (["ten"], NOT_AN_INTEGER),
    (["9999999999999999"], "invalid expire time in 'expire' command"),
])
def test_expire_raw_bad_arguments(r, backend, args, message):
    """Raw EXPIRE with bad flags or time answers Redis's error."""
    r.set("k", "v")
    with pytest.raises(backend.ResponseError) as excinfo:
        r.execute_command("EXPIRE", "k", *args)
    assert error_text(excinfo) == message


def test_rename_carries_the_ttl(r):
    """RENAME moves the key's TTL with it and drops the destination's own."""
    r.set("a", "1", ex=100)
    r.set("b", "2", ex=5000)
    r.rename("a", "b")
    assert 99 <= r.ttl("b") <= 100


def test_incr_keeps_the_ttl(r):
    """INCR changes the value in place: the TTL stays."""
    r.set("n", "1", ex=100)
    r.incr("n")
    assert r.ttl("n") > 0


# -- any argument list, any case -----------------------------------------------------------------

@pytest.mark.parametrize("args", [("FLUSHDB", "ASYNC"), ("flushdb", "sync"), ("FlushDB",)])
def test_flushdb_modes(r, args):
    """FLUSHDB takes ASYNC or SYNC, in any case, and empties the database."""
    r.set("k", "v")
    assert r.execute_command(*args) is True
    assert r.dbsize() == 0


def test_flushdb_asynchronous_argument(r):
    """redis-py's flushdb(asynchronous=True) sends ASYNC."""
    r.set("k", "v")
    assert r.flushdb(asynchronous=True) is True
    assert r.dbsize() == 0


def test_flushdb_bad_mode(r, backend):
    """FLUSHDB with another word is a syntax error and deletes nothing."""
    r.set("k", "v")
    with pytest.raises(backend.ResponseError) as excinfo:
        r.execute_command("FLUSHDB", "NOW")
    assert error_text(excinfo) == "syntax error"
    assert r.dbsize() == 1


def test_command_names_in_any_case(r):
    """Redis takes command names in any case, and redis-py's reply callbacks still apply."""
    r.execute_command("rpush", "l", "a")
    assert r.execute_command("get", "nothing") is None
    assert r.execute_command("LlEn", "l") == 1
    assert r.execute_command("rename", "l", "m") is True
    assert r.execute_command("scan", 0) == (0, ["m"])


def test_unknown_command(r, backend):
    """An unknown command answers Redis's error, naming it and its first arguments."""
    with pytest.raises(backend.ResponseError) as excinfo:
        r.execute_command("NOSUCH", "a", "b")
    assert error_text(excinfo) == "unknown command 'NOSUCH', with args beginning with: 'a' 'b' "


def test_raw_transaction_with_a_bad_option_runs_the_rest(r, backend):
    """A raw command that fails inside MULTI/EXEC fails alone: the others still run."""
    pipe = r.pipeline()
    pipe.execute_command("SET", "a", "1", "NX", "XX")
    pipe.execute_command("FLUSHDB", "ASYNC", "x")
    pipe.set("b", "2")
    replies = pipe.execute(raise_on_error=False)
    assert [type(reply) for reply in replies[:2]] == [backend.ResponseError] * 2
    assert replies[2] is True and r.get("b") == "2"


# -- values that are not UTF-8 -----------------------------------------------------------------------

def test_non_utf8_value_is_stored_and_fails_only_when_decoded(r):
    """Redis stores any bytes; a decoding client fails on reading them (UnicodeDecodeError)."""
    assert r.set("k", b"\xff\xfe") is True
    assert r.rpush("l", b"\x80") == 1
    with pytest.raises(UnicodeDecodeError):
        r.get("k")
    assert r.execute_command("GET", "k", NEVER_DECODE=True) == b"\xff\xfe"
    assert r.execute_command("LRANGE", "l", 0, -1, NEVER_DECODE=True) == [b"\x80"]
    assert r.llen("l") == 1 and r.type("k") == "string"


def test_never_decode_and_keys_options(r):
    """execute_command's client-side options (NEVER_DECODE, keys=...) are accepted."""
    r.set("k", "v")
    assert r.execute_command("GET", "k", keys=["k"]) == "v"
    assert r.execute_command("GET", "k", NEVER_DECODE=True) == b"v"


# -- the client and pipeline as Python objects ---------------------------------------------------

def test_client_mapping_protocol(r):
    """r[k] = v, r[k], k in r and del r[k] are SET, GET, EXISTS and DEL; r[missing] is KeyError."""
    r["k"] = "v"
    assert r["k"] == "v" and "k" in r
    del r["k"]
    assert "k" not in r
    with pytest.raises(KeyError):
        r["k"]


def test_client_context_manager(r):
    """`with r:` gives the client back."""
    with r as client:
        assert client.ping() is True


def test_empty_pipeline_is_true(r):
    """An empty pipeline is truthy, as redis-py's is (it defines __bool__)."""
    assert bool(r.pipeline()) is True and len(r.pipeline()) == 0


def test_pipeline_shard_hint(r):
    """pipeline(shard_hint=...) is accepted, as redis-py accepts it."""
    pipe = r.pipeline(transaction=True, shard_hint="k")
    pipe.set("k", "v")
    assert pipe.execute() == [True]


# -- WATCH / MULTI / EXEC ---------------------------------------------------------------------------

def test_watch_unchanged_key_exec_runs(r):
    """WATCH, read at once (immediate mode), MULTI, queue, EXEC: runs when nothing changed."""
    r.set("n", "5")
    with r.pipeline() as pipe:
        pipe.watch("n")
        value = int(pipe.get("n"))
        pipe.multi()
        pipe.set("n", value + 1)
        assert pipe.execute() == [True]
    assert r.get("n") == "6"


def test_watch_changed_key_raises_watch_error(r, backend):
    """A watched key changed by another client before EXEC: WatchError, nothing runs."""
    r.set("n", "5")
    with r.pipeline() as pipe:
        pipe.watch("n")
        r.set("n", "7")
        pipe.multi()
        pipe.set("other", "x")
        with pytest.raises(backend.WatchError):
            pipe.execute()
    assert r.get("n") == "7" and r.exists("other") == 0


@pytest.mark.parametrize("change", [
    lambda r: r.delete("n"), lambda r: r.unlink("n"), lambda r: r.incr("n"),
    lambda r: r.expire("n", 100),
    lambda r: r.rename("n", "m"), lambda r: r.flushdb(), lambda r: r.set("n", "5")])
def test_watch_sees_every_kind_of_change(r, backend, change):
    """DEL, UNLINK, INCR, EXPIRE, RENAME, FLUSHDB, even SET of the same value all fail the
    EXEC."""
    r.set("n", "5")
    with r.pipeline() as pipe:
        pipe.watch("n")
        change(r)
        pipe.multi()
        pipe.get("n")
        with pytest.raises(backend.WatchError):
            pipe.execute()


def test_watch_failed_command_is_no_change(r):
    """A command that changes nothing (INCR failing, SET NX refused) does not fail the EXEC."""
    r.set("n", "x")
    with r.pipeline() as pipe:
        pipe.watch("n")
        with pytest.raises(Exception):
            r.incr("n")
        r.set("n", "y", nx=True)
        pipe.multi()
        pipe.get("n")
        assert pipe.execute() == ["x"]


def test_unwatch_forgets_the_keys(r):
    """After UNWATCH a change no longer fails the EXEC."""
    r.set("n", "5")
    with r.pipeline() as pipe:
        pipe.watch("n")
        pipe.unwatch()
        r.set("n", "6")
        pipe.multi()
        pipe.get("n")
        assert pipe.execute() == ["6"]


def test_watch_after_multi_is_refused(r, backend):
    """redis-py refuses WATCH after MULTI, and a second MULTI."""
    pipe = r.pipeline()
    pipe.multi()
    with pytest.raises(backend.RedisError):
        pipe.watch("n")
    with pytest.raises(backend.RedisError):
        pipe.multi()


def test_multi_after_queued_commands_is_refused(r, backend):
    """multi() once commands are queued without WATCH is refused by redis-py."""
    pipe = r.pipeline()
    pipe.get("n")
    with pytest.raises(backend.RedisError):
        pipe.multi()


def test_watch_then_execute_with_nothing_queued(r):
    """WATCH with nothing queued: execute() runs an empty transaction and answers []."""
    with r.pipeline() as pipe:
        pipe.watch("n")
        assert pipe.execute() == []


# -- Pipeline.discard(): redis-py queues DISCARD like any command, or sends it at once ----------

EXEC_WITHOUT_MULTI = "EXEC without MULTI"


def test_discard_after_multi_makes_execute_raise_exec_without_multi(r, backend):
    """multi(), a command, discard(): execute() raises ResponseError "EXEC without MULTI"."""
    pipe = r.pipeline()
    pipe.multi()
    pipe.incr("x")
    pipe.discard()
    with pytest.raises(backend.ResponseError) as excinfo:
        pipe.execute()
    assert type(excinfo.value).__name__ == "ResponseError"
    assert error_text(excinfo) == EXEC_WITHOUT_MULTI


def test_discard_in_a_transaction_pipeline_without_multi(r, backend):
    """In pipeline(transaction=True) without multi(), discard() ends the transaction too."""
    pipe = r.pipeline()
    pipe.incr("x")
    pipe.discard()
    with pytest.raises(backend.ResponseError) as excinfo:
        pipe.execute()
    assert error_text(excinfo) == EXEC_WITHOUT_MULTI


def test_discard_drops_the_commands_queued_before_it(r, backend):
    """The commands queued before DISCARD never run."""
    pipe = r.pipeline()
    pipe.multi()
    pipe.incr("x")
    pipe.rpush("l", "a")
    pipe.discard()
    with pytest.raises(backend.ResponseError):
        pipe.execute()
    assert r.exists("x", "l") == 0


def test_discard_commands_queued_after_it_run_outside_the_transaction(r, backend):
    """The commands queued after DISCARD run, one by one, before EXEC finds no MULTI."""
    pipe = r.pipeline()
    pipe.multi()
    pipe.incr("x")
    pipe.discard()
    pipe.incr("y")
    pipe.rpush("l", "a")
    with pytest.raises(backend.ResponseError) as excinfo:
        pipe.execute()
    assert error_text(excinfo) == EXEC_WITHOUT_MULTI
    assert (r.get("x"), r.get("y"), r.lrange("l", 0, -1)) == (None, "1", ["a"])


def test_discard_raises_exec_without_multi_also_without_raise_on_error(r, backend):
    """execute(raise_on_error=False) still raises the EXEC's error: there are no replies."""
    pipe = r.pipeline()
    pipe.incr("x")
    pipe.discard()
    with pytest.raises(backend.ResponseError) as excinfo:
        pipe.execute(raise_on_error=False)
    assert error_text(excinfo) == EXEC_WITHOUT_MULTI


def test_discard_an_error_after_it_is_not_raised(r, backend):
    """A command failing after DISCARD is not what execute() raises: EXEC's error is."""
    r.set("s", "text")
    pipe = r.pipeline()
    pipe.discard()
    pipe.incr("s")
    pipe.incr("y")
    with pytest.raises(backend.ResponseError) as excinfo:
        pipe.execute()
    assert error_text(excinfo) == EXEC_WITHOUT_MULTI
    assert r.get("y") == "1"


def test_discard_clears_an_arity_refusal_queued_before_it(r, backend):
    """A command MULTI refused before DISCARD does not abort: DISCARD drops it with the rest."""
    pipe = r.pipeline()
    pipe.execute_command("MGET")
    pipe.discard()
    pipe.incr("y")
    with pytest.raises(backend.ResponseError) as excinfo:
        pipe.execute()
    assert error_text(excinfo) == EXEC_WITHOUT_MULTI
    assert r.get("y") == "1"


def test_discard_with_arguments_aborts_the_transaction(r, backend):
    """DISCARD x is only an arity error: the transaction is aborted, nothing runs."""
    pipe = r.pipeline()
    pipe.incr("x")
    pipe.execute_command("DISCARD", "x")
    pipe.incr("y")
    with pytest.raises(backend.ResponseError) as excinfo:
        pipe.execute()
    assert error_text(excinfo) == ("Command # 2 (DISCARD x) of pipeline caused error: "
                                   "wrong number of arguments for 'discard' command")
    assert r.exists("x", "y") == 0


def test_discard_twice_is_the_same(r, backend):
    """A second DISCARD (then outside MULTI) changes nothing: EXEC without MULTI."""
    pipe = r.pipeline()
    pipe.discard()
    pipe.discard()
    with pytest.raises(backend.ResponseError) as excinfo:
        pipe.execute()
    assert error_text(excinfo) == EXEC_WITHOUT_MULTI


def test_discard_returns_none_and_stays_queued(r):
    """discard() answers None and empties nothing: DISCARD is one more queued command."""
    pipe = r.pipeline()
    pipe.multi()
    pipe.incr("x")
    assert pipe.discard() is None
    assert len(pipe) == 2


def test_discard_then_multi_is_nested(r, backend):
    """After multi() and discard(), the pipeline is still in MULTI: multi() is refused."""
    pipe = r.pipeline()
    pipe.multi()
    pipe.discard()
    with pytest.raises(backend.RedisError) as excinfo:
        pipe.multi()
    assert error_text(excinfo) == "Cannot issue nested calls to MULTI"


def test_discard_then_multi_without_watch_is_refused(r, backend):
    """Without multi(), discard() is a queued command: a later multi() is refused for it."""
    pipe = r.pipeline()
    pipe.discard()
    with pytest.raises(backend.RedisError) as excinfo:
        pipe.multi()
    assert error_text(excinfo) == "Commands without an initial WATCH have already been issued"


def test_discard_pipeline_is_usable_after_execute_raises(r, backend):
    """The failed execute() resets the pipeline: its next transaction runs."""
    pipe = r.pipeline()
    pipe.multi()
    pipe.incr("x")
    pipe.discard()
    with pytest.raises(backend.ResponseError):
        pipe.execute()
    pipe.incr("y")
    assert pipe.execute() == [1]


def test_discard_while_watching_raises_discard_without_multi(r, backend):
    """After watch(), before multi(), DISCARD is sent at once: "DISCARD without MULTI"."""
    with r.pipeline() as pipe:
        pipe.watch("k")
        with pytest.raises(backend.ResponseError) as excinfo:
            pipe.discard()
        assert error_text(excinfo) == "DISCARD without MULTI"


def test_discard_while_watching_keeps_the_watch(r, backend):
    """The failed immediate DISCARD unwatches nothing: a change still fails the EXEC."""
    r.set("k", "1")
    with r.pipeline() as pipe:
        pipe.watch("k")
        with pytest.raises(backend.ResponseError):
            pipe.discard()
        r.set("k", "2")
        pipe.multi()
        pipe.get("k")
        with pytest.raises(backend.WatchError):
            pipe.execute()


def test_discard_after_watch_and_multi_raises_exec_without_multi(r, backend):
    """watch(), a change, multi(), discard(): EXEC's error, not WatchError (DISCARD unwatched)."""
    r.set("k", "1")
    with r.pipeline() as pipe:
        pipe.watch("k")
        r.set("k", "2")
        pipe.multi()
        pipe.incr("x")
        pipe.discard()
        with pytest.raises(backend.ResponseError) as excinfo:
            pipe.execute()
        assert type(excinfo.value).__name__ == "ResponseError"
        assert error_text(excinfo) == EXEC_WITHOUT_MULTI
    assert r.exists("x") == 0


def test_discard_in_a_plain_pipeline_is_an_error_reply(r, backend):
    """Without a transaction DISCARD is Redis's "DISCARD without MULTI"; the others run."""
    pipe = r.pipeline(transaction=False)
    pipe.incr("x")
    pipe.discard()
    pipe.incr("y")
    with pytest.raises(backend.ResponseError) as excinfo:
        pipe.execute()
    assert error_text(excinfo) == ("Command # 2 (DISCARD) of pipeline caused error: "
                                   "DISCARD without MULTI")
    assert r.mget("x", "y") == ["1", "1"]


def test_discard_in_a_plain_pipeline_without_raise_on_error(r, backend):
    """With raise_on_error=False the DISCARD's error stands in the replies."""
    pipe = r.pipeline(transaction=False)
    pipe.incr("x")
    pipe.discard()
    pipe.incr("y")
    replies = pipe.execute(raise_on_error=False)
    assert replies[0] == 1 and replies[2] == 1
    assert isinstance(replies[1], backend.ResponseError)
    assert str(replies[1]) == "DISCARD without MULTI"


def test_discard_over_maxmemory_is_not_refused(full, backend):
    """Over maxmemory DISCARD still ends the transaction; after it, writes are refused alone."""
    pipe = full.pipeline()
    pipe.incr("n")
    pipe.discard()
    pipe.get("s")
    pipe.rpush("l", "b")
    with pytest.raises(backend.ResponseError) as excinfo:
        pipe.execute()
    assert error_text(excinfo) == EXEC_WITHOUT_MULTI
    assert full.lrange("l", 0, -1) == ["a"] and full.exists("n") == 0


# -- glob at scale and its bytes ----------------------------------------------------------------

def test_glob_many_stars_does_not_backtrack(r):
    """31 'a*' groups against 31 'a's and a 'b' is answered (no exponential backtracking)."""
    r.set("a" * 31, "1")
    r.set("a" * 30 + "b", "2")
    assert r.keys("a*" * 31) == ["a" * 31]
    assert r.keys("a*" * 31 + "b") == []


@pytest.mark.parametrize("pattern, key, matches", [
    ("[é-z]", "m", True),  # é is C3 A9: the range is A9-'z', signed -87..122, which holds 'm'
    ("[é-z]", "{", False),  # '{' (123) lies between 'z' and A9 unsigned, not signed
    ("[é-z]", "é", False),  # a two-byte key against a one-byte pattern
    ("[é-z]?", "é", True),  # C3 is a member, A9 any byte
    ("[^é-z]", "{", True),
])
def test_glob_ranges_with_high_bytes(r, pattern, key, matches):
    """Ranges whose ends are >= 0x80 compare them as signed chars, as redis-server does."""
    r.set(key, "v")
    assert (r.keys(pattern) == [key]) is matches


def test_scan_returns_a_key_overwritten_by_rename(r):
    """A key present for the whole iteration comes back even when RENAME overwrites it."""
    for number in range(100):
        r.set(f"k{number}", "v")
    r.set("dst", "old")
    cursor, seen = r.scan(0, count=50)
    seen = set(seen)
    r.delete("k3")
    r.rename("k99", "dst")
    while cursor:
        cursor, keys = r.scan(cursor, count=50)
        seen |= set(keys)
    assert "dst" in seen


@pytest.mark.parametrize("pattern, expected", [
    ("[^a]" * 3, ["bcd"]), ("?" * 4, ["abcd", "bcde"]), ("[^x]" * 4 + "*", ["abcd", "bcde"]),
    ("[a-c]" * 3 + "?", ["abcd"]), ("[^a-b]*", ["cab"])])
def test_keys_glob_repeated_classes(r, pattern, expected):
    """Repeated and negated classes (written compactly here) match as Redis matches them."""
    for key in ("abc", "abcd", "bcd", "bcde", "cab"):
        r.set(key, "v")
    assert sorted(r.keys(pattern)) == expected


def test_expire_below_int64_min_in_ms_is_invalid(r, backend):
    """EXPIRE below LLONG_MIN / 1000 (C truncates: -9223372036854775) fails; the key stays."""
    r.set("k", "v")
    with pytest.raises(backend.ResponseError) as excinfo:
        r.expire("k", -9223372036854776)
    assert error_text(excinfo) == "invalid expire time in 'expire' command"
    assert r.get("k") == "v"


def test_expire_at_int64_min_in_ms_deletes(r):
    """EXPIRE -9223372036854775 (the lowest allowed) deletes the key, as any time in the past."""
    r.set("k", "v")
    assert r.expire("k", -9223372036854775) is True
    assert r.exists("k") == 0


# -- command names as redis-py sends them -----------------------------------------------------------

@pytest.mark.parametrize("args, expected", [
    (("GET k",), "v"), ((b"GET k",), "v"), (("  GET  ", "k"), "v"), (("GET\tk",), "v"),
    (("SET k", "w"), "OK"), (("FLUSHDB ASYNC",), "OK"), (("", "GET", "k"), "v")])
def test_command_name_with_spaces_is_split(r, args, expected):
    """redis-py splits a name holding whitespace into words; the reply skips its callback."""
    r.set("k", "v")
    assert r.execute_command(*args) == expected


def test_command_name_with_spaces_in_a_pipeline(r):
    """A split name works inside MULTI/EXEC too."""
    pipe = r.pipeline()
    pipe.execute_command("SET k3 v3")
    pipe.execute_command("GET k3")
    assert pipe.execute() == ["OK", "v3"]


def test_never_decode_is_ignored_inside_a_transaction(r):
    """redis-py decodes every EXEC reply, NEVER_DECODE or not."""
    r.set("k", "v")
    pipe = r.pipeline()
    pipe.execute_command("GET", "k", NEVER_DECODE=True)
    assert pipe.execute() == ["v"]


def test_never_decode_in_a_plain_pipeline(r):
    """Outside a transaction NEVER_DECODE answers bytes, as redis-py reads each reply."""
    r.set("k", "v")
    pipe = r.pipeline(transaction=False)
    pipe.execute_command("GET", "k", NEVER_DECODE=True)
    assert pipe.execute() == [b"v"]


def test_raw_mget_without_keys_is_an_arity_error(r, backend):
    """A raw MGET of no keys gets Redis's arity error (only redis-py's mget([]) answers [])."""
    with pytest.raises(backend.ResponseError) as excinfo:
        r.execute_command("MGET")
    assert error_text(excinfo) == "wrong number of arguments for 'mget' command"


def test_raw_mget_without_keys_aborts_a_transaction(r, backend):
    """Queued in MULTI, a raw MGET of no keys aborts the whole transaction."""
    pipe = r.pipeline()
    pipe.execute_command("MGET")
    pipe.set("x", "1")
    with pytest.raises(backend.ResponseError) as excinfo:
        pipe.execute()
    assert error_text(excinfo) == ("Command # 1 (MGET) of pipeline caused error: "
                                   "wrong number of arguments for 'mget' command")
    assert r.exists("x") == 0


@pytest.mark.parametrize("transaction", [True, False])
def test_mget_no_keys_in_a_pipeline(r, transaction):
    """mget([]) in a pipeline answers [] in its place (redis-py does not send it)."""
    pipe = r.pipeline(transaction=transaction)
    pipe.mget([])
    pipe.set("x", "1")
    assert pipe.execute() == [[], True]


def test_unwatch_inside_multi_checks_arity_first(r, backend):
    """UNWATCH x queued in MULTI gets the arity error, checked before 'not allowed in MULTI'."""
    pipe = r.pipeline()
    pipe.execute_command("UNWATCH", "x")
    with pytest.raises(backend.ResponseError) as excinfo:
        pipe.execute()
    assert error_text(excinfo) == ("Command # 1 (UNWATCH x) of pipeline caused error: "
                                   "wrong number of arguments for 'unwatch' command")


def test_raw_incr_decr_decrby(r):
    """INCR, DECR and DECRBY sent raw, in any case, count as Redis counts."""
    assert r.execute_command("incr", "n") == 1
    assert r.execute_command("DECR", "n") == 0
    assert r.execute_command("DecrBy", "n", 5) == -5


def test_decr_and_decrby_methods(r):
    """redis-py's decr(name, amount=1) and decrby send DECRBY."""
    assert r.decr("n") == -1
    assert r.decrby("n", 2) == -3
    assert r.decr("n", 4) == -7


def test_decrby_int64_min_overflows(r, backend):
    """DECRBY -2**63 cannot be negated: Redis's 'decrement would overflow'."""
    with pytest.raises(backend.ResponseError) as excinfo:
        r.decrby("n", -2 ** 63)
    assert error_text(excinfo) == "decrement would overflow"
    assert r.exists("n") == 0


@pytest.mark.parametrize("args, message", [
    (("INCR",), "wrong number of arguments for 'incr' command"),
    (("EXEC",), "EXEC without MULTI"), (("DISCARD",), "DISCARD without MULTI")])
def test_raw_incr_exec_discard_errors(r, backend, args, message):
    """Raw INCR without a key, EXEC and DISCARD outside MULTI answer Redis's errors."""
    with pytest.raises(backend.ResponseError) as excinfo:
        r.execute_command(*args)
    assert error_text(excinfo) == message


def test_raw_exec_with_arguments_is_an_exec_abort(r, backend):
    """EXEC of wrong arity is Redis's EXECABORT (redis-py's ExecAbortError)."""
    with pytest.raises(backend.ResponseError) as excinfo:
        r.execute_command("EXEC", "x")
    assert type(excinfo.value).__name__ == "ExecAbortError"
    assert error_text(excinfo) == ("Transaction discarded because of: "
                                   "wrong number of arguments for 'exec' command")
