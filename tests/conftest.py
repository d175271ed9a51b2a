"""Shared fixtures: a fresh state per test, and the Redis backends the contract tests run on.

The Redis contract (test_redis_commands.py) runs against InMemoryRedis always, and against a real
Redis server through redis-py: the one at REAL_REDIS_URL when it is set (e.g.
redis://localhost:6379/15; that database is flushed before each test, so point it at a scratch
one), else a redis-server the tests start themselves on a free loopback port, when redis-server
and redis-py are installed (skipped with the reason otherwise).
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import config  # noqa: E402
from foundation import in_memory_redis  # noqa: E402
import redis_adapter  # noqa: E402
from tests import child  # noqa: E402
from tests.redis_server import (CLIENT_TIMEOUT_SECONDS, RedisServer,  # noqa: E402
                                require_real_redis)

_CONFIG_NAMES = [name for name in dir(config) if name.isupper()]


@pytest.fixture(autouse=True)
def fresh_state():
    """Each test starts with an empty process-wide Redis and config.py's own values."""
    saved = {name: getattr(config, name) for name in _CONFIG_NAMES}
    redis_adapter.set_adapter(None)
    redis_adapter.get_redis().flushdb()
    yield
    for name, value in saved.items():
        setattr(config, name, value)
    redis_adapter.close_ingest_buffer()
    redis_adapter.set_adapter(None)
    redis_adapter.get_redis().flushdb()


@pytest.fixture(autouse=True)
def no_child_left():
    """A main.py a test started (tests/child.py) ends with the test: one left by a failed test
    would go on posting, and using a core, after the suite ends."""
    yield
    child.kill_leftovers()


@dataclass
class Backend:
    """A Redis client under test with the exception classes its library raises."""

    client: Any
    ResponseError: type
    DataError: type
    OutOfMemoryError: type
    WatchError: type
    RedisError: type


@pytest.fixture(scope="session")
def real_redis_url(request) -> str:
    """The URL of a real Redis: REAL_REDIS_URL if set, else the session's own redis-server."""
    return os.environ.get("REAL_REDIS_URL") or request.getfixturevalue("redis_server").url


def _real_backend(url: str) -> Backend:
    redis = pytest.importorskip("redis", reason="real Redis: pip install redis to compare")
    client = redis.Redis.from_url(url, decode_responses=True,
                                  socket_timeout=CLIENT_TIMEOUT_SECONDS)
    try:
        client.ping()
    except redis.exceptions.ConnectionError as error:
        pytest.skip(f"real Redis at {url} is unreachable: {error}")
    return Backend(client, redis.exceptions.ResponseError, redis.exceptions.DataError,
                   redis.exceptions.OutOfMemoryError, redis.exceptions.WatchError,
                   redis.exceptions.RedisError)


@pytest.fixture(params=["fake", "real"])
def backend(request) -> Backend:
    """InMemoryRedis, then a real Redis (see real_redis_url): same tests, same asserts."""
    if request.param == "fake":
        backend = Backend(in_memory_redis.InMemoryRedis(), in_memory_redis.ResponseError,
                          in_memory_redis.DataError, in_memory_redis.OutOfMemoryError,
                          in_memory_redis.WatchError, in_memory_redis.RedisError)
    else:
        backend = _real_backend(request.getfixturevalue("real_redis_url"))
    backend.client.flushdb()
    yield backend
    backend.client.flushdb()


@pytest.fixture
def r(backend: Backend):
    """The Redis client of ``backend``."""
    return backend.client


@pytest.fixture(scope="session")
def redis_server():
    """One real redis-server for the session, on a free loopback port, no persistence.

    Skips with the reason when redis-server or redis-py is missing.
    """
    require_real_redis()
    server = RedisServer().start()
    yield server
    server.close()


@pytest.fixture
def own_redis_server():
    """A redis-server of the test's own, on a free loopback port, no persistence: for tests
    that flush, restart or lock down their server. Skips when redis-server or redis-py is
    missing."""
    require_real_redis()
    server = RedisServer().start()
    yield server
    server.close()


@pytest.fixture
def real_redis(redis_server):
    """A redis-py client (decode_responses=True) on the session's server, flushed around it."""
    import redis
    client = redis.Redis.from_url(redis_server.url, decode_responses=True,
                                  socket_timeout=CLIENT_TIMEOUT_SECONDS)
    client.flushdb()
    yield client
    client.flushdb()
    client.close()


@pytest.fixture
def fast_thread_switching():
    """Switch threads every microsecond, so a missing lock shows up as a race within the test."""
    previous = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    yield
    sys.setswitchinterval(previous)
