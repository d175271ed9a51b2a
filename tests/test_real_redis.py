"""main.py against a real redis-server started by the tests: one process, several processes
sharing one Redis and one database, and a server stopped and restarted mid-run.

Skipped with the reason when redis-server or redis-py is missing (tests/redis_server.py).
"""

import re
import signal
import sqlite3
import subprocess
import sys
import time

import pytest

from db import ReactionsTable

from tests.redis_server import RedisServer, require_real_redis
from tests.test_main import ROOT, finish, read_until, start

SYSTEM = re.compile(r"system-wide reconciliation: redis_counters=(\d+) database_rows=(\d+) "
                    r"pending_in_redis=(\d+) (OK|MISMATCH)")
POSTED = re.compile(r"posted ([\d,]+) events .* refused ([\d,]+)")


def system_line(lines):
    """(counters, rows, pending, verdict) of the last system-wide reconciliation line."""
    found = [SYSTEM.search(line) for line in lines]
    found = [match for match in found if match]
    assert found, "no system-wide reconciliation in:\n" + "\n".join(lines)
    counters, rows, pending, verdict = found[-1].groups()
    return int(counters), int(rows), int(pending), verdict


def posted_and_refused(lines):
    """This process's (posted, refused) from its summary line."""
    for line in reversed(lines):
        match = POSTED.search(line)
        if match and "summary:" in line:
            return tuple(int(group.replace(",", "")) for group in match.groups())
    raise AssertionError("no summary with posts in:\n" + "\n".join(lines))


def distinct_rows(path):
    """(rows, distinct event records) in the table at ``path``."""
    with sqlite3.connect(path) as connection:
        return connection.execute(
            "select count(*), (select count(*) from (select distinct user_id, match_id, "
            "emoticon_type, timestamp from reactions_table)) from reactions_table").fetchone()


def reconcile_command(url, path, prefix=""):
    """Run ``main.py --reconcile``; (exit status, output)."""
    done = subprocess.run([sys.executable, "main.py", "--reconcile", "--redis-url", url, "--db",
                           str(path), "--key-prefix", prefix], cwd=ROOT, text=True,
                          capture_output=True, timeout=120)
    return done.returncode, done.stdout + done.stderr


def test_main_with_redis_url_ends_ok(redis_server, real_redis, tmp_path):
    """One process on a real Redis, batched ingest: exit 0, every posted event in the table."""
    path = tmp_path / "r.db"
    status, lines = finish(start("--redis-url", redis_server.url, "--db", str(path), "--rate",
                                 "0", "--duration", "2", "--backup-interval", "0.5",
                                 "--ingest-batch", "500"), [])
    assert status == 0, "\n".join(lines)
    posted, refused = posted_and_refused(lines)
    assert system_line(lines) == (posted, posted, 0, "OK") and refused == 0
    assert distinct_rows(path) == (posted, posted)


def test_two_posting_processes_and_one_backup_process(redis_server, real_redis, tmp_path):
    """Two posters (one batched) and a backup process: the table holds every event once."""
    path, url = tmp_path / "shared.db", redis_server.url
    common = ("--redis-url", url, "--db", str(path), "--key-prefix", "shared:")
    backup = start(*common, "--role", "backup", "--backup-interval", "0.3")
    read_until(backup, lambda line: "role backup" in line)
    posters = [start(*common, "--role", "post", "--rate", "3000", "--duration", "3",
                     "--get-interval", "0.5", "--seed", "1"),
               start(*common, "--role", "post", "--rate", "0", "--duration", "3",
                     "--ingest-batch", "200", "--seed", "2")]
    read_until(posters[0], lambda line: "posted" in line)
    status, output = reconcile_command(url, path, "shared:")  # while they post and back up
    assert status == 0 and " OK" in output, output
    outputs = [finish(poster, []) for poster in posters]
    assert [status for status, _ in outputs] == [0, 0], outputs
    posted = sum(posted_and_refused(lines)[0] for _, lines in outputs)
    backup.send_signal(signal.SIGINT)
    status, lines = finish(backup, [])
    assert status == 0, "\n".join(lines)
    assert system_line(lines) == (posted, posted, 0, "OK")
    assert distinct_rows(path) == (posted, posted)
    status, output = reconcile_command(url, path, "shared:")
    assert status == 0 and "OK" in output, output


def test_reconcile_command_finds_a_missing_row(redis_server, real_redis, tmp_path):
    """--reconcile exits 1 and names the counter when a counted event is nowhere."""
    path = tmp_path / "r.db"
    ReactionsTable(str(path)).close()
    real_redis.set("3_sad", 1)
    status, output = reconcile_command(redis_server.url, path)
    assert status == 1 and "MISMATCH" in output and "match 3 sad: counter 1" in output, output


def test_reconcile_command_leaves_another_apps_database_alone(redis_server, real_redis,
                                                             tmp_path):
    """--reconcile on a SQLite file without reactions_table: exit 2, nothing created in it."""
    path = tmp_path / "other_app.db"
    with sqlite3.connect(path) as connection:
        connection.execute("create table invoices (id integer)")
    status, output = reconcile_command(redis_server.url, path)
    assert status == 2 and "holds no reactions_table" in output, output
    with sqlite3.connect(path) as connection:
        tables = connection.execute("select name from sqlite_master").fetchall()
    assert tables == [("invoices",)]


@pytest.mark.parametrize("batch", ["1", "100"])
def test_redis_restart_loses_nothing_acknowledged(tmp_path, batch):
    """Server stopped and restarted mid-run: POSTs refused meanwhile, none acknowledged lost.

    The server keeps an append-only file with appendfsync always, so every write it answered
    is on disk before the client saw the reply; that is what "acknowledged" means here.
    """
    require_real_redis()
    server = RedisServer(durable=True).start()
    path = tmp_path / "r.db"
    try:
        process = start("--redis-url", server.url, "--db", str(path), "--rate", "2000",
                        "--backup-interval", "0.3", "--get-interval", "0.3",
                        "--ingest-batch", batch, "--ingest-flush", "0.1")
        lines = read_until(process, lambda line: " backup moved" in line)
        server.stop()
        lines += read_until(process, lambda line: "refused" in line)
        time.sleep(1)
        server.start()
        lines += read_until(process, lambda line: "works again" in line or
                            "accepted again" in line)
        lines += read_until(process, lambda line: " backup moved" in line)
        process.send_signal(signal.SIGINT)
        status, lines = finish(process, lines)
    finally:
        server.close()
    assert status == 0, "\n".join(lines)
    posted, refused = posted_and_refused(lines)
    counters, rows, pending, verdict = system_line(lines)
    assert verdict == "OK" and pending == 0 and refused > 0
    # Per POST, a write whose reply was lost with the server is counted refused, yet may be
    # stored; a batched flush in doubt is settled by its marker, so it is exact.
    if batch == "1":
        assert posted <= rows <= posted + refused
    else:
        assert rows == posted
    assert distinct_rows(path) == (rows, rows)


def test_get_process_without_a_database_claims_no_reconciliation(redis_server, real_redis):
    """--role get without --db: exit 0, the line says the check was not run (no MISMATCH)."""
    real_redis.set("3_sad", 5)  # counted events this process cannot see in any table
    status, lines = finish(start("--redis-url", redis_server.url, "--role", "get",
                                 "--duration", "0.5", "--get-interval", "0.2"), [])
    assert status == 0, "\n".join(lines)
    assert any("system-wide reconciliation: not run" in line for line in lines)
    assert not any("MISMATCH" in line for line in lines)


def test_file_with_rows_of_an_earlier_in_memory_run_reconciles_ok(redis_server, real_redis,
                                                                   tmp_path):
    """Rows an in-memory run left in the file are not this Redis's: the real-Redis run is OK."""
    path = str(tmp_path / "r.db")
    status, lines = finish(start("--db", path, "--duration", "0.5", "--rate", "200"), [])
    assert status == 0 and lines[-1].endswith(" OK"), "\n".join(lines)
    status, lines = finish(start("--redis-url", redis_server.url, "--db", path, "--duration",
                                 "0.5", "--rate", "200", "--backup-interval", "0.2"), [])
    assert status == 0, "\n".join(lines)
    posted, _ = posted_and_refused(lines)
    assert system_line(lines) == (posted, posted, 0, "OK")


def test_reconcile_and_a_poster_start_while_a_backup_holds_the_write_lock(
        redis_server, real_redis, tmp_path):
    """Processes that never write the database open it without taking its write lock."""
    path = tmp_path / "r.db"
    ReactionsTable(str(path)).close()
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("begin immediate")  # a backup in the middle of its transaction
    try:
        status, output = reconcile_command(redis_server.url, path)
        assert status == 0 and " OK" in output, output
        status, lines = finish(start("--redis-url", redis_server.url, "--db", str(path),
                                     "--role", "post", "--duration", "0.3", "--rate", "100"), [])
        assert status == 0 and any("role post" in line for line in lines), "\n".join(lines)
    finally:
        holder.rollback()
        holder.close()


def one_run(url, path, *flags):
    """One short all-in-one run on ``url`` and database ``path``; (exit status, lines)."""
    return finish(start("--redis-url", url, "--db", str(path), "--rate", "500", "--duration",
                        "0.6", "--backup-interval", "0.2", *flags), [])


EARLIER_COUNTERS = re.compile(
    r"WARNING: Redis \S+ already counts ([\d,]+) events under key prefix '' that earlier runs "
    r"backed up to another database \(none of their rows is in \S+\): the final reconciliation "
    r"will report MISMATCH unless you FLUSHDB that Redis db, run with the --db those runs used, "
    r"or choose another --key-prefix$")


def test_new_database_on_a_redis_with_earlier_counters_warns_at_start(redis_server, real_redis,
                                                                      tmp_path):
    """A second run with another --db warns at start-up, naming the events backed up elsewhere."""
    status, lines = one_run(redis_server.url, tmp_path / "first.db")
    assert status == 0, "\n".join(lines)
    first = posted_and_refused(lines)[0]
    status, lines = one_run(redis_server.url, tmp_path / "second.db")
    warnings = [found for found in map(EARLIER_COUNTERS.search, lines) if found]
    assert [int(found.group(1).replace(",", "")) for found in warnings] == [first], lines
    assert status == 1 and system_line(lines)[3] == "MISMATCH"


def test_same_database_on_a_redis_with_earlier_counters_does_not_warn(redis_server, real_redis,
                                                                      tmp_path):
    """A second run with the same --db: no warning, and the reconciliation is OK."""
    path = tmp_path / "same.db"
    assert one_run(redis_server.url, path)[0] == 0
    status, lines = one_run(redis_server.url, path)
    assert status == 0 and not any("already counts" in line for line in lines), lines


def test_get_process_runs_no_backup_at_shutdown(redis_server, real_redis):
    """--role get stops without "posting stopped" or a final backup: it never backs up."""
    status, lines = finish(start("--redis-url", redis_server.url, "--role", "get",
                                 "--duration", "0.5", "--get-interval", "0.2"), [])
    assert status == 0, "\n".join(lines)
    assert not any("final backup" in line or "posting stopped" in line or "backup moved" in line
                   for line in lines), lines
