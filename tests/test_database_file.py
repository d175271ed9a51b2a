"""One database file shared by several processes, and the operator's tools on it: a file in WAL
mode, a writer killed mid-transaction, the backup ledger after killed backups.

The processes are main.py subprocesses on a real redis-server the tests start themselves
(skipped with the reason when redis-server or redis-py is missing: tests/redis_server.py).
"""

import signal
import sqlite3

import pytest

from db import ReactionsTable
from foundation.redis_client import connect
from live.reconcile import reconcile
from live.summary import dead_letter_sink
from redis_adapter import RedisAdapter

from tests.test_main import finish, read_until, start

RECONCILIATIONS = 10  # in-process reconciliations taken while the load runs


def database(path, journal_mode):
    """A Live Reactions database at ``path``, switched to ``journal_mode`` as an operator
    would (``sqlite3 FILE "pragma journal_mode=wal"``: the mode stays with the file)."""
    ReactionsTable(str(path)).close()
    with sqlite3.connect(path) as connection:
        assert connection.execute(f"pragma journal_mode={journal_mode}").fetchone() == (
            journal_mode,)


def journal_mode(path):
    with sqlite3.connect(path) as connection:
        return connection.execute("pragma journal_mode").fetchone()[0]


@pytest.mark.parametrize("mode", ["wal", "delete"])
def test_reconciliation_under_load_is_never_a_false_mismatch(redis_server, real_redis,
                                                              tmp_path, mode):
    """A backup process and a fast poster share the file: every reconciliation taken while they
    run is a consistent cut (OK, or NOT CHECKED at worst), in WAL mode as in rollback mode."""
    path = tmp_path / "shared.db"
    database(path, mode)
    common = ("--redis-url", redis_server.url, "--db", str(path))
    backup = start(*common, "--role", "backup", "--backup-interval", "0.2")
    read_until(backup, lambda line: "role backup" in line)
    poster = start(*common, "--role", "post", "--rate", "20000", "--ingest-batch", "200",
                   "--matches", "200", "--duration", "60", "--get-interval", "0.5")
    try:
        read_until(poster, lambda line: "posted" in line)
        adapter = RedisAdapter(connect(redis_server.url), "")
        table = ReactionsTable(str(path), read_only=True)
        results = [reconcile(adapter, table, [dead_letter_sink(adapter, table)])
                   for _ in range(RECONCILIATIONS)]
        table.close()
    finally:
        poster.send_signal(signal.SIGINT)
        finish(poster, [])
        backup.send_signal(signal.SIGINT)
        status, lines = finish(backup, [])
    lines_seen = [result.line() for result in results]
    assert not any(result.mismatches for result in results), "\n".join(lines_seen)
    assert any(result.ok and result.pending for result in results), "\n".join(lines_seen)
    assert status == 0 and lines[-1].endswith(" OK"), "\n".join(lines)
    assert journal_mode(path) == mode  # the program leaves the operator's choice alone
