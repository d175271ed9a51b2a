"""A real Redis on request: ``connect(url)`` gives a redis-py client for RedisAdapter.

redis-py is an optional dependency: it is imported here, and only when a URL is given, so
``python3 main.py`` (the in-memory server) needs the standard library alone.
"""

from __future__ import annotations

import os
import shlex
import sys
import sysconfig
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

__all__ = ["RedisUnavailableError", "connect", "install_hint", "redacted"]

PROJECT_VENV = Path(__file__).resolve().parent.parent / ".venv"
"""The virtual environment the README's test command makes; it holds redis-py."""
CONNECT_TIMEOUT_SECONDS = 5.0
"""How long connecting (and then each reply) may take before the call fails, in seconds."""


class RedisUnavailableError(Exception):
    """No client could be made for the URL: redis-py is missing, the URL is malformed, or the
    server did not answer PING. The message is one line saying what to do."""


def redacted(url: str) -> str:
    """``url`` without its secrets, fit for a log line: the password of the userinfo
    (``user:***@``) and any query parameter whose name holds "pass" (``?password=***``), the two
    places redis-py reads a password from."""
    try:
        parts = urlsplit(url)
        netloc = parts.netloc
        if "@" in netloc:
            userinfo, _, hostport = netloc.rpartition("@")
            user, colon, _ = userinfo.partition(":")
            netloc = f"{user}{':***' if colon else ''}@{hostport}"
        query = "&".join(_redacted_parameter(pair) for pair in parts.query.split("&"))
        return urlunsplit(parts._replace(netloc=netloc, query=query if parts.query else ""))
    except ValueError:
        return "<malformed URL>"


def _redacted_parameter(pair: str) -> str:
    name, equals, value = pair.partition("=")
    return f"{name}{equals}***" if equals and "pass" in name.lower() else pair


def connect(url: str) -> Any:
    """A ``redis.Redis`` for ``url`` (e.g. ``redis://127.0.0.1:6379/0``) that answered PING.

    Replies are left as bytes (decode_responses=False) and decoded by RedisAdapter: a client
    decoding every reply fails on a whole SCAN page when another application's key name is not
    UTF-8, while the adapter skips such a name (it cannot be one of ours). redis-py's own
    retries are turned off: it would resend a MULTI/EXEC whose EXEC may already have run after a
    dropped connection, counting events twice; the poster, the ingest buffer and the backup
    retry at their own level instead (docs/real-redis.md). Raises RedisUnavailableError.
    """
    try:
        import redis
        from redis.backoff import NoBackoff
        from redis.retry import Retry
    except ImportError:
        raise RedisUnavailableError(
            f"--redis-url needs redis-py, which {sys.executable} does not have: "
            f"{install_hint()}") from None
    try:
        client = redis.Redis.from_url(url, decode_responses=False, retry=Retry(NoBackoff(), 0),
                                      socket_connect_timeout=CONNECT_TIMEOUT_SECONDS,
                                      socket_timeout=CONNECT_TIMEOUT_SECONDS)
    except ValueError as error:
        raise RedisUnavailableError(f"invalid Redis URL {redacted(url)}: {error}") from None
    try:
        client.ping()
    except redis.exceptions.RedisError as error:
        client.close()
        raise RedisUnavailableError(f"cannot reach Redis at {redacted(url)}: {error}") from None
    return client


def install_hint() -> str:
    """What to run to get redis-py for this program, as one instruction: the project's .venv
    (the test command installs redis-py there) if it exists, else a virtual environment where
    this Python refuses ``pip install`` (PEP 668: an "externally managed" system Python), else
    pip on this very interpreter (``python3`` may be another one)."""
    venv_python = PROJECT_VENV / "bin" / "python"
    if venv_python.exists() and Path(sys.prefix).resolve() != PROJECT_VENV:
        return (f"run it with {shlex.quote(str(venv_python))} (the test command's virtual "
                "environment, which has it)")
    python = shlex.quote(sys.executable)
    if os.path.exists(os.path.join(sysconfig.get_paths()["stdlib"], "EXTERNALLY-MANAGED")):
        return (f"{python} -m venv --system-site-packages {shlex.quote(str(PROJECT_VENV))} && "
                f"{shlex.quote(str(venv_python))} -m pip install redis, then run main.py "
                "with that Python")
    return f"{python} -m pip install redis"
