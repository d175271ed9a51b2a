"""A real Redis checked at start-up for what could make it forget: an eviction policy that may
drop our keys (refused unless allowed), and no persistence at all (said).

Each case runs main.py against a redis-server the test starts (tests/redis_server.py).
"""

import pytest

from tests.redis_server import RedisServer, require_real_redis
from tests.test_main import finish, start


def startup(url, tmp_path, *flags):
    """main.py for a moment on ``url``; (exit status, lines)."""
    return finish(start("--redis-url", url, "--db", str(tmp_path / "r.db"), "--rate", "100",
                        "--duration", "0.5", "--backup-interval", "0.2", *flags), [])


@pytest.mark.parametrize("policy", ["allkeys-lru", "allkeys-lfu", "allkeys-random"])
def test_an_evicting_policy_is_refused_at_start(tmp_path, policy):
    """maxmemory-policy allkeys-*: one line naming the policy and the flag, exit 2, nothing
    posted."""
    require_real_redis()
    server = RedisServer(args=("--maxmemory-policy", policy)).start()
    try:
        status, lines = startup(server.url, tmp_path)
        keys = server.client().dbsize()
    finally:
        server.close()
    assert status == 2 and len(lines) == 1, lines
    assert policy in lines[0] and "--allow-eviction" in lines[0] and keys == 0, lines


def test_an_evicting_policy_is_run_with_when_allowed(tmp_path):
    """--allow-eviction: the run goes on, with one warning line saying what it risks."""
    require_real_redis()
    server = RedisServer(args=("--maxmemory-policy", "allkeys-lru")).start()
    try:
        status, lines = startup(server.url, tmp_path, "--allow-eviction")
    finally:
        server.close()
    assert status == 0, "\n".join(lines)
    assert sum("allkeys-lru" in line and "WARNING" in line for line in lines) == 1, lines


@pytest.mark.parametrize("batch, status", [("1", 0), ("100", 2)])
def test_a_volatile_policy_is_refused_only_where_our_keys_expire(tmp_path, batch, status):
    """volatile-lru evicts keys with a TTL only: ours have one only as batched-ingest markers."""
    require_real_redis()
    server = RedisServer(args=("--maxmemory-policy", "volatile-lru")).start()
    try:
        got, lines = startup(server.url, tmp_path, "--ingest-batch", batch)
    finally:
        server.close()
    assert got == status, "\n".join(lines)


def test_the_policy_is_read_from_info_when_config_is_renamed(tmp_path):
    """A managed Redis that forbids CONFIG: the policy comes from INFO memory, still refused,
    and one line says what could not be checked."""
    require_real_redis()
    server = RedisServer(args=("--maxmemory-policy", "allkeys-lru",
                               "--rename-command", "CONFIG", "")).start()
    try:
        status, lines = startup(server.url, tmp_path)
    finally:
        server.close()
    assert status == 2 and "allkeys-lru" in lines[-1], lines
    assert any("CONFIG" in line for line in lines), lines


def test_a_redis_without_persistence_is_said_in_one_line(own_redis_server, tmp_path):
    """save '' and appendonly no: one warning line at start that a restart loses what is
    pending; the run goes on."""
    status, lines = startup(own_redis_server.url, tmp_path)
    assert status == 0, "\n".join(lines)
    assert sum("keeps no persistence" in line for line in lines) == 1, lines
