"""A Redis shared with other applications and locked down by its operator: another
application's values under our names, and commands an ACL or rename-command refuses.

Each case runs main.py against a redis-server the test starts (tests/redis_server.py).
"""

import re

import pytest

from tests.redis_server import RedisServer, require_real_redis
from tests.test_main import finish, start


@pytest.fixture
def server():
    require_real_redis()
    server = RedisServer().start()
    yield server
    server.close()


def client(server):
    import redis
    return redis.Redis(port=server.port, decode_responses=True)


def short_run(url, path, *flags):
    """main.py for a moment on ``url`` and database ``path``; (exit status, lines)."""
    return finish(start("--redis-url", url, "--db", str(path), "--rate", "500", "--duration",
                        "1.2", "--backup-interval", "0.3", "--get-interval", "0.3", *flags), [])


def test_a_foreign_counter_value_costs_that_counter_only(server, tmp_path):
    """SET 5_heart abc: every GET table still appears, that cell shows unreadable, and one line
    names the key once (not every tick); no traceback."""
    client(server).set("5_heart", "abc")
    status, lines = short_run(server.url, tmp_path / "r.db")
    tables = [n for n, line in enumerate(lines) if " GET weighted" in line]
    assert len(tables) >= 2, "\n".join(lines)
    row = next(line for line in lines[tables[-1]:] if re.search(r"^\S+ +5  ", line))
    assert row.split()[2:4] == ["unreadable", "1"], row  # heart unreadable, sad read
    assert sum("5_heart" in line and "unreadable" in line for line in lines) == 1, lines
    assert not any("Traceback" in line for line in lines), "\n".join(lines)
    assert client(server).get("5_heart") == "abc"
