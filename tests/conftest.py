"""Shared fixtures: a fresh state per test, and the Redis backends the contract tests run on.

The Redis contract (test_redis_commands.py) runs against InMemoryRedis always, and against a real
Redis server through redis-py: the one at REAL_REDIS_URL when it is set (e.g.
redis://localhost:6379/15; that database is flushed before each test, so point it at a scratch
one), else a redis-server the tests start themselves on a free loopback port, when redis-server
and redis-py are installed (skipped with the reason otherwise).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import config  # noqa: E402
import in_memory_redis  # noqa: E402
import redis_adapter  # noqa: E402

_CONFIG_NAMES = [name for name in dir(config) if name.isupper()]


@pytest.fixture(autouse=True)
def fresh_state():
    """Each test starts with an empty process-wide Redis and config.py's own values."""
    saved = {name: getattr(config, name) for name in _CONFIG_NAMES}
    redis_adapter.get_redis().flushdb()
    yield
    for name, value in saved.items():
        setattr(config, name, value)
    redis_adapter.get_redis().flushdb()


@dataclass
class Backend:
    """A Redis client under test with the exception classes its library raises."""

    client: Any
    ResponseError: type
    DataError: type
    OutOfMemoryError: type
    WatchError: type
    RedisError: type


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="session")
def real_redis_url():
    """The URL of a real Redis: REAL_REDIS_URL, else a redis-server started for this session."""
    url = os.environ.get("REAL_REDIS_URL")
    if url:
        yield url
        return
    pytest.importorskip("redis", reason="real Redis: pip install redis to compare with it")
    server = shutil.which("redis-server")
    if server is None:
        pytest.skip("real Redis: no redis-server on PATH (or set REAL_REDIS_URL=redis://HOST:PORT/DB)")
    port = _free_port()
    process = subprocess.Popen([server, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                                "--appendonly", "no"], stdout=subprocess.DEVNULL)
    try:
        _wait_for_port(port)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.terminate()
        process.wait(timeout=10)


def _wait_for_port(port: int) -> None:
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    pytest.skip(f"real Redis: redis-server did not start on port {port}")


def _real_backend(url: str) -> Backend:
    redis = pytest.importorskip("redis", reason="real Redis: pip install redis to compare")
    client = redis.Redis.from_url(url, decode_responses=True)
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


@pytest.fixture
def fast_thread_switching():
    """Switch threads every microsecond, so a missing lock shows up as a race within the test."""
    previous = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    yield
    sys.setswitchinterval(previous)
