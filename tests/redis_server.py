"""A real redis-server for the tests, started by the tests themselves on a free loopback port.

Used by conftest.py's ``redis_server`` fixture (one server for the session), by the tests that
stop and restart a server of their own, and by the benchmarks (item 7). require_real_redis()
skips a test with the reason when redis-server or redis-py is missing.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

START_TIMEOUT_SECONDS = 20  # only stops a hung start, not a performance bound
CLIENT_TIMEOUT_SECONDS = 60
"""socket_timeout of the tests' own redis-py clients: a server that stops answering fails the
test instead of hanging it (a safety net, not a performance bound)."""


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now (bound to port 0, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def require_real_redis():
    """The redis-py module; skip the test when redis-server or redis-py is missing."""
    import pytest  # here, not at the top: the benchmarks use RedisServer without pytest

    if shutil.which("redis-server") is None:
        pytest.skip("real Redis: redis-server is not installed (apt-get install redis-server)")
    return pytest.importorskip("redis", reason="real Redis: redis-py missing "
                                               "(python3 -m pip install redis)")


class RedisServer:
    """One redis-server process on 127.0.0.1:``port``, its files in a temporary directory.

    ``durable=True`` turns on the append-only file with ``appendfsync always``: a write is on
    disk before its reply is sent, so whatever a client saw acknowledged survives a restart.
    Otherwise nothing is persisted (``--save '' --appendonly no``), except what a client's
    ``SAVE`` writes to the snapshot file, which a restart then loads (an older state).
    ``args`` are more configuration directives as redis-server takes them on its command line
    (``["--maxmemory-policy", "allkeys-lru"]``, ``["--user", "app", "on", ">pw", ...]``).
    """

    def __init__(self, durable: bool = False, args: tuple[str, ...] = ()) -> None:
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="redis-test-"))
        self.durable = durable
        self.args = tuple(args)
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self) -> Any:
        """A redis-py client of this server, replies decoded (needs redis-py)."""
        import redis
        return redis.Redis(port=self.port, decode_responses=True)

    def start(self) -> "RedisServer":
        """Start the server and wait until it answers PING."""
        persistence = (["--appendonly", "yes", "--appendfsync", "always"] if self.durable
                       else ["--appendonly", "no"])
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--dir", str(self.dir), *persistence, *self.args], stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while not self._answers():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"redis-server on port {self.port} did not start")
            time.sleep(0.05)
        return self

    def _answers(self) -> bool:
        # Any reply means it is up: a server whose default user is off answers PING with an
        # error (NOAUTH) rather than +PONG.
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16)[:1] in (b"+", b"-")
        except OSError:
            return False

    def stop(self) -> None:
        """Stop the server (SIGTERM: with appendonly, the file is complete), and wait for it."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=START_TIMEOUT_SECONDS)
            except subprocess.TimeoutExpired:
                self.process.kill()  # no server outlives its test, even a hung one
                self.process.wait(timeout=START_TIMEOUT_SECONDS)
                raise
        self.process = None

    def close(self) -> None:
        """Stop the server and remove its files."""
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)
