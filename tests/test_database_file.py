"""One database file shared by several processes, and the operator's tools on it: a file in WAL
mode, a writer killed mid-transaction, the backup ledger after killed backups.

The processes are main.py subprocesses on a real redis-server the tests start themselves
(skipped with the reason when redis-server or redis-py is missing: tests/redis_server.py).
"""

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import pytest

from backup_data import BackupDataManager
from db import ReactionsTable
from foundation.redis_client import connect
from live.reconcile import reconcile
from live.summary import dead_letter_sink
from redis_adapter import RedisAdapter, encode_event, make_event

from tests.test_main import ROOT, RUN_TIMEOUT_SECONDS, finish, read_until, start

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


KILLED_WRITER = textwrap.dedent("""
    import sqlite3, sys, time
    connection = sqlite3.connect(sys.argv[1], isolation_level=None)
    connection.execute("pragma cache_size = 5")  # the pages spill: the file itself is written
    connection.execute("begin immediate")
    connection.execute("insert into reactions_table (user_id, match_id, emoticon_type, "
                       "timestamp) select user_id, match_id, emoticon_type, timestamp "
                       "from reactions_table")
    print("writing", flush=True)
    time.sleep(600)
""")


def backed_up(url, path, events=3000):
    """``events`` posted to the Redis at ``url`` and backed up to a new database at ``path``."""
    adapter = RedisAdapter(connect(url), "")
    for n in range(events):
        adapter.record_reaction(n + 1, 1 + n % 5, ("heart", "sad", "happy")[n % 3], float(n))
    table = ReactionsTable(str(path))
    assert BackupDataManager(adapter, table).run().events == events
    table.close()


def kill_a_writer_mid_transaction(path):
    """SIGKILL a process in the middle of a write transaction on ``path`` that has already
    written the file: the hot journal it leaves must be rolled back before anyone can read."""
    writer = subprocess.Popen([sys.executable, "-c", KILLED_WRITER, str(path)],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert writer.stdout.readline() == "writing\n"
    finally:
        writer.kill()
        writer.wait(timeout=RUN_TIMEOUT_SECONDS)
    assert os.path.exists(f"{path}-journal")


def run(*flags, user=()):
    """main.py with ``flags`` (as ``user``: a command prefix), to its end; (status, output)."""
    done = subprocess.run([*user, sys.executable, "-B", "main.py", *flags], cwd=ROOT, text=True,
                          capture_output=True, timeout=RUN_TIMEOUT_SECONDS)
    return done.returncode, done.stdout + done.stderr


@pytest.mark.parametrize("command", [["--reconcile"],
                                     ["--role", "get", "--duration", "0.3"],
                                     ["--role", "post", "--duration", "0.3", "--rate", "100"]])
def test_a_hot_journal_of_a_killed_writer_is_rolled_back_by_a_reader(redis_server, real_redis,
                                                                     tmp_path, command):
    """A backup killed mid-transaction leaves a hot journal, which a read-only open cannot read
    past: --reconcile and the final check of a get or post process roll it back (they may
    write the file here), and reconcile OK against the last committed rows."""
    path = tmp_path / "shared.db"
    backed_up(redis_server.url, path)
    kill_a_writer_mid_transaction(path)
    status, output = run("--redis-url", redis_server.url, "--db", str(path), *command)
    assert status == 0, output
    assert "system-wide reconciliation: redis_counters=" in output and output.rstrip().endswith(
        " OK"), output
    assert not os.path.exists(f"{path}-journal")
    with sqlite3.connect(path) as connection:
        assert connection.execute("select count(*) from reactions_table").fetchone() == (3000,)


@pytest.fixture
def public_dir():
    """A directory uid 65534 can reach but not write (pytest's tmp_path is root's, mode 700)."""
    directory = Path(tempfile.mkdtemp(prefix="live-reactions-"))
    directory.chmod(0o755)
    yield directory
    shutil.rmtree(directory)


def test_a_hot_journal_a_reader_may_not_roll_back_is_not_checked(redis_server, real_redis,
                                                                 public_dir):
    """As a user who may read the file but not write it or its directory, --reconcile cannot
    roll the hot journal back: NOT CHECKED, exit 5, with what to run; once that has run (as a
    user who may write the file), it reconciles OK."""
    from tests.test_failures import as_nobody
    user = as_nobody()
    if not user:
        pytest.skip("needs root, to run --reconcile as another user")
    path = public_dir / "shared.db"
    backed_up(redis_server.url, path)
    kill_a_writer_mid_transaction(path)
    status, output = run("--reconcile", "--redis-url", redis_server.url, "--db", str(path),
                         user=user)
    assert status == 5, output
    assert "NOT CHECKED" in output and "hot journal" in output, output
    assert f"sqlite3 {path} 'pragma integrity_check'" in output, output
    assert os.path.exists(f"{path}-journal")
    subprocess.run(["sqlite3", str(path), "pragma integrity_check"], check=True,
                   capture_output=True, timeout=RUN_TIMEOUT_SECONDS)
    assert not os.path.exists(f"{path}-journal")
    status, output = run("--reconcile", "--redis-url", redis_server.url, "--db", str(path))
    assert status == 0 and output.rstrip().endswith(" OK"), output


def ledger_rows(path):
    """The backup ledger's rows of staged lists (not spill files) in the file at ``path``."""
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5) as connection:
        return connection.execute("select count(*) from backup_batches "
                                  "where batch like 'match_data_%'").fetchone()[0]


def test_ledger_rows_of_killed_backups_do_not_stay(redis_server, real_redis, tmp_path):
    """Backup processes killed (SIGKILL) while they move 1,500 lists leave ledger rows behind;
    the next backup drops them all, inserts nothing twice, and the reconciliation is OK."""
    path = tmp_path / "shared.db"
    ReactionsTable(str(path)).close()
    adapter = RedisAdapter(connect(redis_server.url), "")
    posted, left = 0, []
    for kill in range(3):
        pipe = adapter.redis.pipeline(transaction=False)
        for match_id in range(1, 1501):  # as 1,500 POSTs would: a counter and a list each
            pipe.incr(f"{match_id}_heart")
            pipe.rpush(f"match_data_{match_id}", encode_event(
                make_event(kill + 1, match_id, "heart", float(posted + match_id))))
        pipe.execute()
        posted += 1500
        backup = start("--redis-url", redis_server.url, "--db", str(path), "--role", "backup",
                       "--backup-interval", "0.1")
        try:
            while ledger_rows(path) < 20 * (kill + 1):  # the first run is under way
                time.sleep(0.01)
        finally:
            backup.kill()
            backup.wait(timeout=RUN_TIMEOUT_SECONDS)
        left.append(ledger_rows(path))
    assert left[-1] >= 20, left
    status, lines = finish(start("--redis-url", redis_server.url, "--db", str(path), "--role",
                                 "backup", "--duration", "0.5"), [])
    assert status == 0 and lines[-1].endswith(" OK"), "\n".join(lines)
    assert ledger_rows(path) == 0
    with sqlite3.connect(path) as connection:
        assert connection.execute(
            "select count(*), count(distinct timestamp) from reactions_table").fetchone() == (
                posted, posted)


def test_load_spill_refused_by_the_database_adds_nothing_and_exits_2(tmp_path):
    """A database that refuses the load part-way (here an operator's trigger; a lock held past
    the busy timeout or a full disk alike) adds nothing and exits 2, the status of a database
    it cannot use, not 1 (MISMATCH: an event unaccounted for)."""
    path = tmp_path / "reactions.db"
    ReactionsTable(str(path)).close()
    with sqlite3.connect(path) as connection:
        connection.execute("create trigger no_rows before insert on reactions_table "
                           "begin select raise(abort, 'no rows today'); end")
    spill = tmp_path / "s.jsonl"
    spill.write_text(encode_event(make_event(1, 1, "heart", 1.0)) + "\n")
    status, output = run("--load-spill", str(spill), "--db", str(path))
    assert status == 2, output
    assert "nothing added: no rows today" in output, output
    with sqlite3.connect(path) as connection:
        assert connection.execute("select count(*) from backup_batches").fetchone() == (0,)


def test_a_process_whose_database_cannot_be_read_at_its_end_is_not_checked(redis_server,
                                                                          real_redis, tmp_path):
    """A get process whose --db is another application's SQLite file: its run is fine, its
    final check cannot be read: NOT CHECKED, exit 5, not 1 (MISMATCH)."""
    path = tmp_path / "other_app.db"
    with sqlite3.connect(path) as connection:
        connection.execute("create table invoices (id integer)")
    status, output = run("--redis-url", redis_server.url, "--db", str(path), "--role", "get",
                         "--duration", "0.3")
    assert status == 5, output
    assert "system-wide reconciliation: NOT CHECKED, could not be read" in output, output
    assert "MISMATCH" not in output


def test_reconcile_of_a_database_locked_past_its_busy_timeout_is_not_checked(
        redis_server, real_redis, tmp_path):
    """--reconcile on a file another process holds locked (an exclusive lock, as a writer
    committing a huge transaction holds it) past DB_BUSY_TIMEOUT_SECONDS: NOT CHECKED,
    exit 5, not 2 (a bad flag)."""
    from tests.test_failures import copy_program
    program = copy_program(tmp_path / "program", DB_BUSY_TIMEOUT_SECONDS="0.2")
    path = tmp_path / "reactions.db"
    ReactionsTable(str(path)).close()
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("begin exclusive")
    try:
        done = subprocess.run([sys.executable, "-B", "main.py", "--reconcile", "--redis-url",
                               redis_server.url, "--db", str(path)], cwd=program, text=True,
                              capture_output=True, timeout=RUN_TIMEOUT_SECONDS)
    finally:
        holder.rollback()
        holder.close()
    output = done.stdout + done.stderr
    assert done.returncode == 5, output
    assert "NOT CHECKED, could not be read" in output and "database is locked" in output, output
