"""main.py: its flags, its console, and whole runs as a subprocess stopped the ways a user stops it."""

import os
import random
import re
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

import config
from live.console import banner_lines, format_get_table
from live.poster import Poster
from live.run import LiveRun
from live.ticks import every
from api_layer import POSTMethod
from redis_adapter import get_adapter
from tests.child import RUN_TIMEOUT_SECONDS, Child

ROOT = Path(__file__).resolve().parent.parent
RECONCILIATION = re.compile(r"reconciliation: posted=(\d+) redis_counters=(\d+) "
                            r"database_rows=(\d+) pending_in_redis=(\d+) refused=(\d+) "
                            r"failed=(\d+) dead_lettered=(\d+) spilled=(\d+) "
                            r"(?P<verdict>OK|MISMATCH|FAILED)$")


def start(*flags):
    """Start main.py with ``flags``; its stdout and stderr merged, read with deadlines."""
    return Child([sys.executable, "main.py", *flags], cwd=ROOT)


def read_until(process, predicate):
    """Read the child's lines until one satisfies ``predicate``; all lines read so far. Fails
    the test if main.py ends first, or prints no such line within RUN_TIMEOUT_SECONDS."""
    return process.read_until(predicate)


def finish(process, lines):
    """Wait for the child to end (at most RUN_TIMEOUT_SECONDS); (exit status, all its lines)."""
    status, rest = process.finish()
    return status, lines + rest


def reconciliation(lines):
    matches = [RECONCILIATION.search(line) for line in lines]
    matches = [match for match in matches if match]
    assert matches, "no reconciliation line in:\n" + "\n".join(lines)
    return matches[-1]


def test_sigint_stops_cleanly_with_ok_reconciliation():
    """Ctrl-C after a GET and a backup: final backup, exit 0, OK reconciliation, no traceback."""
    process = start("--get-interval", "0.2", "--backup-interval", "0.3", "--seed", "1")
    seen = {" GET weighted": False, " backup moved": False}

    def ticked(line):
        for words in seen:
            seen[words] |= words in line
        return all(seen.values())

    lines = read_until(process, ticked)
    process.send_signal(signal.SIGINT)
    status, lines = finish(process, lines)
    match = reconciliation(lines)
    assert status == 0, "\n".join(lines)
    assert match.group('verdict') == "OK"
    posted, counters, rows, pending = map(int, match.groups()[:4])
    assert posted == counters == rows > 0 and pending == 0
    assert not any("Traceback" in line for line in lines)


def test_sigterm_stops_cleanly():
    """SIGTERM stops the run like Ctrl-C does."""
    process = start("--get-interval", "0.2", "--backup-interval", "0.5")
    lines = read_until(process, lambda line: " GET weighted" in line)
    process.send_signal(signal.SIGTERM)
    status, lines = finish(process, lines)
    assert status == 0
    assert reconciliation(lines).group('verdict') == "OK"


def test_duration_with_file_database(tmp_path):
    """--rate 0 --duration with --db FILE: the file then holds exactly `posted` rows."""
    path = tmp_path / "reactions.db"
    process = start("--rate", "0", "--duration", "3", "--backup-interval", "0.5",
                    "--get-interval", "1", "--db", str(path))
    status, lines = finish(process, [])
    match = reconciliation(lines)
    assert status == 0 and match.group('verdict') == "OK", "\n".join(lines)
    posted = int(match.group(1))
    with sqlite3.connect(path) as connection:
        assert connection.execute("select count(*) from reactions_table").fetchone()[0] == posted
    assert sum(" backup moved" in line for line in lines) >= 2


def test_second_run_on_the_same_file_reconciles_its_own_rows(tmp_path):
    """Rows left by an earlier run are reported and not counted against this run."""
    path = str(tmp_path / "reactions.db")
    for _ in range(2):
        status, lines = finish(start("--duration", "1", "--db", path, "--get-interval", "0.5"), [])
        assert status == 0 and reconciliation(lines).group('verdict') == "OK", "\n".join(lines)
    assert any("already" in line and "rows" in line for line in lines)


def test_show_db_logs_rows_and_the_aggregate():
    """--show-db adds the table's latest rows and the seed's aggregate query after a backup."""
    status, lines = finish(start("--duration", "1", "--show-db", "--matches", "2",
                                 "--get-interval", "0.5", "--backup-interval", "0.5"), [])
    assert status == 0
    assert any(re.search(r"db row id=\d+ user_id=\d+ match_id=[12] emoticon_type=\w+ "
                         r"timestamp=\d+\.\d+$", line) for line in lines)
    assert any("db aggregate query (seed's SQL), matches 1..2 of 2" in line for line in lines)
    assert any(re.search(r"db match +1: heart [\d,]+, sad [\d,]+, happy [\d,]+$", line)
               for line in lines)


def test_help_lists_every_flag():
    """--help explains each flag and exits 0."""
    result = subprocess.run([sys.executable, "main.py", "--help"], cwd=ROOT, text=True,
                            capture_output=True, timeout=RUN_TIMEOUT_SECONDS)
    assert result.returncode == 0
    for flag in ["--matches", "--users", "--rate", "--duration", "--seed", "--db", "--show-db",
                 "--get-interval", "--backup-interval"]:
        assert flag in result.stdout


@pytest.mark.parametrize("flags", [["--rate", "-1"], ["--matches", "0"], ["--users", "x"],
                                   ["--get-interval", "0"], ["--duration", "nan"],
                                   ["--backup-interval", "inf"]])
def test_bad_flags_are_refused(flags):
    """Out-of-range or malformed flags exit 2 with one line naming the flag, nothing started."""
    result = subprocess.run([sys.executable, "main.py", *flags], cwd=ROOT, text=True,
                            capture_output=True, timeout=RUN_TIMEOUT_SECONDS)
    lines = (result.stdout + result.stderr).splitlines()
    assert result.returncode == 2
    assert len(lines) == 1 and f" ERROR: {' '.join(flags)} (" in lines[0], lines


def test_unknown_flag_is_refused_by_argparse():
    """A flag main.py does not have exits 2 with argparse's usage message."""
    result = subprocess.run([sys.executable, "main.py", "--ratee", "5"], cwd=ROOT, text=True,
                            capture_output=True, timeout=RUN_TIMEOUT_SECONDS)
    assert result.returncode == 2
    assert "unrecognized arguments: --ratee" in result.stderr and "Traceback" not in result.stderr


def test_poster_is_repeatable_with_a_seed():
    """Two posters with the same seed post the same reactions."""
    runs = []
    for _ in range(2):
        get_adapter().redis.flushdb()
        poster = Poster(0, random.Random(42))
        for _ in range(50):
            poster.post_one()
        runs.append(get_adapter().snapshot())
        assert poster.posted == 50
    strip = lambda snap: {k: ([(e["user_id"], e["emoticon_type"]) for e in v]
                              if isinstance(v, list) else v) for k, v in snap.items()}
    assert strip(runs[0]) == strip(runs[1])


def test_get_table_shows_means_and_counts():
    """The GET table has a header of emoticons and per match 'mean (count)' cells."""
    lines = format_get_table([(3, {"heart": 1001, "sad": 0, "happy": 999})])
    assert lines[0].split() == ["match", "heart", "sad", "happy"]
    assert lines[1].split() == ["3", "2", "(1,001)", "0", "(0)", "1", "(999)"]
    assert [lines[0].index(e) for e in ("heart", "sad", "happy")] == [
        lines[1].index(cell) for cell in ("2 (", "0 (", "1 (")]


@pytest.mark.parametrize("make_path", [
    lambda tmp: str(tmp),                                   # a directory
    lambda tmp: str(tmp / "missing" / "dir" / "x.db"),      # a folder that does not exist
])
def test_unusable_database_path_is_refused(tmp_path, make_path):
    """A --db path SQLite cannot open exits 2 with one clear line, no traceback."""
    result = subprocess.run([sys.executable, "main.py", "--db", make_path(tmp_path),
                             "--duration", "1"], cwd=ROOT, text=True, capture_output=True,
                            timeout=RUN_TIMEOUT_SECONDS)
    assert result.returncode == 2
    assert "cannot use database" in result.stdout and "Traceback" not in result.stdout


def test_get_table_rows_are_the_busiest_matches(monkeypatch):
    """Over 10 matches, the GET tick keeps the 10 busiest, ties in match order."""
    monkeypatch.setattr(config, "MAX_MATCHES", 30)
    for match_id in (25, 3, 17):
        for _ in range(match_id):
            POSTMethod(1, match_id, "sad")
    rows = LiveRun.__new__(LiveRun)._read_matches(set())[0]
    assert [match_id for match_id, _ in rows] == [25, 17, 3, 1, 2, 4, 5, 6, 7, 8]
    assert rows[0][1] == {"heart": 0, "sad": 25, "happy": 0}


def test_get_table_rows_are_every_match_when_they_fit():
    """Up to 10 matches, the GET tick shows each one, in match order."""
    rows = LiveRun.__new__(LiveRun)._read_matches(set())[0]
    assert [match_id for match_id, _ in rows] == list(range(1, config.MAX_MATCHES + 1))


@pytest.mark.parametrize("role, shown, hidden", [
    ("get", ["GET every 0.2s"], ["posting", "backup every", "seed", "ingest", "write per POST"]),
    ("post", ["posting 100 events/s", "status every 0.2s", "one write per POST", "seed 3"],
     ["GET every", "backup every", "database"]),
    ("backup", ["backup every 0.5s to database"], ["posting", "GET every", "seed", "POST"]),
    ("all", ["posting 100 events/s", "GET every 0.2s", "backup every 0.5s"], []),
])
def test_banner_names_only_what_the_role_runs(role, shown, hidden, monkeypatch):
    """A get, post or backup process's banner states its own part and nothing else."""
    import config
    monkeypatch.setattr(config, "REDIS_URL", "redis://u:s3cret@127.0.0.1:1/0?password=s3cret")
    for name, value in [("POSTS_PER_SECOND", 100.0), ("GET_INTERVAL_SECONDS", 0.2),
                        ("BACKUP_INTERVAL_SECONDS", 0.5), ("RANDOM_SEED", 3)]:
        monkeypatch.setattr(config, name, value)
    text = "\n".join(banner_lines(role, 0))
    assert all(part in text for part in shown) and not any(part in text for part in hidden)
    assert f"role {role}" in text and "s3cret" not in text


def run_every(tick_seconds, interval, ticks, what="GET"):
    """Run live.ticks.every with a tick that sleeps ``tick_seconds``, until ``ticks`` ticks ended."""
    import asyncio

    async def scenario():
        done = asyncio.Event()
        count = 0

        async def tick():
            nonlocal count
            await asyncio.sleep(tick_seconds)
            count += 1
            if count >= ticks:
                done.set()
        task = asyncio.create_task(every(interval, tick, what))
        await asyncio.wait_for(done.wait(), timeout=RUN_TIMEOUT_SECONDS)
        await asyncio.sleep(0)  # the task notes the last tick's skips before it is cancelled
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    asyncio.run(scenario())


def test_a_tick_longer_than_its_interval_logs_the_skip_and_why(caplog):
    """A GET taking over three intervals logs one line: ticks skipped, how long it took."""
    caplog.set_level("INFO", logger="live")
    run_every(tick_seconds=0.07, interval=0.02, ticks=1)
    lines = [r.getMessage() for r in caplog.records if "skipped" in r.getMessage()]
    assert len(lines) == 1, lines
    assert re.match(r"GET: skipped \d+ ticks, as the previous GET (started [\d.]+s late and )?"
                    r"took [\d.]+s, past the 0.02s interval \(this line at most every 30s\)$",
                    lines[0]), lines[0]


def test_skipped_tick_lines_are_rate_limited(caplog):
    """Three long backups in a row: one skip line, not one per tick."""
    caplog.set_level("INFO", logger="live")
    run_every(tick_seconds=0.05, interval=0.02, ticks=3, what="backup")
    lines = [r.getMessage() for r in caplog.records if "skipped" in r.getMessage()]
    assert len(lines) == 1 and lines[0].startswith("backup: skipped "), lines


def test_punctual_ticks_log_no_skip(caplog):
    """Ticks that fit their interval log no skip line."""
    caplog.set_level("INFO", logger="live")
    run_every(tick_seconds=0, interval=0.05, ticks=3)
    assert not any("skipped" in r.getMessage() for r in caplog.records)


def test_long_backup_logs_progress_lines(caplog, monkeypatch):
    """A backup past its progress interval logs lists and events moved so far, by name."""
    import backup_data
    caplog.set_level("INFO", logger="live")
    monkeypatch.setattr(config, "MAX_MATCHES", 3)
    run = LiveRun()
    run.backups.manager = backup_data.BackupDataManager(run.adapter, run.backups.table,
                                                        progress_seconds=0.0)
    for match_id in (1, 2, 3):
        POSTMethod(1, match_id, "sad")
    assert run.backups.run(final=True)
    lines = [r.getMessage() for r in caplog.records if "still running" in r.getMessage()]
    assert re.match(r"final backup still running after \d+s: 3 of 3 lists moved, 3 events so "
                    r"far$", lines[-1]), lines


@pytest.mark.parametrize("final, logged", [(False, False), (True, True)])
def test_a_backup_that_moved_nothing_logs_only_if_final(caplog, final, logged):
    """A periodic backup of an idle Redis logs no line (at a short interval it would flood
    the terminal); the final backup's line is always logged."""
    caplog.set_level("INFO", logger="live")
    run = LiveRun()
    assert run.backups.run(final=final)
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("backup moved")]
    assert len(lines) == (1 if logged else 0)
    assert all(line.startswith("backup moved 0 events (lists: 0) in ") for line in lines)


@pytest.mark.parametrize("role, database, line", [
    ("all", ":memory:", "posting stopped; final backup"),
    ("all", "file", "posting stopped; final backup; it waits up to 5s if another process "
                    "locks the database"),
    ("backup", "file", "stopping; final backup; it waits up to 5s if another process locks "
                       "the database"),
])
def test_shutdown_line_says_what_this_process_stops_and_waits_for(role, database, line,
                                                                  tmp_path, monkeypatch):
    """"posting stopped" only if it posts; the lock wait only with a database file."""
    import db
    if database == "file":
        monkeypatch.setattr(config, "DB_PATH", str(tmp_path / "r.db"))
    table = db.ReactionsTable(config.DB_PATH)
    monkeypatch.setattr(db, "_table", table)  # the process-wide table, for this test only
    try:
        assert LiveRun(role).backups.final_line(posted=role == "all") == line
    finally:
        table.close()


def test_get_stopped_mid_read_says_so(caplog, monkeypatch):
    """A GET cancelled by the stop while reading logs one line instead of a table."""
    import asyncio
    import threading
    caplog.set_level("INFO", logger="live")
    run = LiveRun()
    reading, release = threading.Event(), threading.Event()

    def slow_rows():
        reading.set()
        release.wait(RUN_TIMEOUT_SECONDS)
        return [], {}
    monkeypatch.setattr(run, "_read_matches", lambda wanted: slow_rows())

    async def scenario():
        task = asyncio.create_task(run.get_tick())
        await asyncio.to_thread(reading.wait, RUN_TIMEOUT_SECONDS)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        release.set()
    asyncio.run(scenario())
    lines = [r.getMessage() for r in caplog.records]
    assert any(re.match(r"stopping: the GET under way \([\d.]+s into its read\) ends without a "
                        r"table, as planned$",
                        line) for line in lines), lines
    assert not any(line.startswith("GET weighted") for line in lines)


@pytest.mark.parametrize("flags, needs", [
    (["--redis-url", "redis://127.0.0.1:1/0"],
     "--reconcile needs --db FILE (the database to reconcile against): "),
    (["--db", "x.db"], "--reconcile needs --redis-url URL (the Redis whose counters to check): "),
])
def test_reconcile_without_its_flags_names_what_it_needs(flags, needs, tmp_path):
    """--reconcile without --db or --redis-url says what reconciling needs, not what a run does."""
    result = subprocess.run([sys.executable, "main.py", "--reconcile", *flags], cwd=ROOT,
                            text=True, capture_output=True, timeout=RUN_TIMEOUT_SECONDS)
    assert result.returncode == 2
    assert needs in result.stdout and "--role" not in result.stdout, result.stdout


def test_a_table_locked_at_the_start_is_shown_as_unknown_not_a_traceback(monkeypatch):
    """The banner's table size is read with a short wait: a file another process holds locked
    just then is shown as unknown, and the run goes on."""
    import sqlite3
    run = LiveRun()
    def locked():
        raise sqlite3.OperationalError("database is locked")
    monkeypatch.setattr(run.backups.table, "count", locked)
    assert run.backups.rows_now() is None
    assert "to database :memory: (its size unknown for now)" in banner_lines("all", None)[1]
