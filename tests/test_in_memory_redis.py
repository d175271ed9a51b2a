"""InMemoryRedis beyond the shared contract: its estimate of used memory and its maxmemory."""

import pytest

from in_memory_redis import (ITEM_OVERHEAD_BYTES, KEY_OVERHEAD_BYTES, InMemoryRedis,
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


def test_used_memory_string_made_counter(server):
    """SET then INCR: the string's text no longer counts once it is int-encoded."""
    server.set("n", "12345")
    server.incr("n")
    assert server.used_memory == KEY_OVERHEAD_BYTES + 1


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
