"""main.py when things fail: an unwritable or locked database, a full Redis, a closed pipe, a
second Ctrl-C, two runs on one file. Each runs the program as a subprocess; settings without a
flag are set in a copy of the program's config.py."""

import os
import re
import shlex
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

import test_main
from tests import program
from live.signals import REPEAT_WINDOW_SECONDS
from tests.child import RUN_TIMEOUT_SECONDS, Child
from test_main import read_until, reconciliation

ROOT = Path(__file__).resolve().parent.parent
NOBODY = 65534


def copy_program(directory, **settings):
    """The program's modules copied to ``directory``, config.py with ``settings`` appended
    (each value is Python source text)."""
    program.copy_program(directory)
    with open(directory / "config.py", "a") as config:
        config.writelines(f"\n{name} = {value}\n" for name, value in settings.items())
    return directory


def start(*flags, cwd=ROOT, user=(), ignoring=()):
    """main.py with ``flags`` in ``cwd`` (as ``user``: a command prefix; with the signals
    ``ignoring`` inherited as ignored, as nohup leaves SIGHUP); stdout+stderr merged, read with
    deadlines."""
    def ignore():
        for signum in ignoring:
            signal.signal(signum, signal.SIG_IGN)
    return Child([*user, sys.executable, "-B", "main.py", *flags], cwd=cwd,
                  preexec_fn=ignore if ignoring else None)


def finish(process, lines=()):
    return test_main.finish(process, list(lines))


def rows_in(path, table="reactions_table"):
    with sqlite3.connect(path) as connection:
        return connection.execute(f"select count(*) from {table}").fetchone()[0]


def lock(path):
    """Another process's view of the file, holding it locked (``begin exclusive``)."""
    connection = sqlite3.connect(path, isolation_level=None)
    connection.execute("begin exclusive")
    return connection


def refused_in(line):
    """The refused count of a status line, -1 for another line."""
    match = re.search(r"refused ([\d,]+)", line)
    return int(match.group(1).replace(",", "")) if match else -1


def posted_in(line):
    match = re.search(r"posted ([\d,]+) at", line)
    return int(match.group(1).replace(",", "")) if match else -1


def as_nobody():
    """The command prefix that runs a child as uid 65534 when we are root (root ignores file
    modes), or nothing when we are not root already."""
    if os.geteuid() != 0:
        return ()
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root without setpriv: cannot test file modes unprivileged")
    probe = subprocess.run([setpriv, f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups",
                            sys.executable, "-c", "import config"], cwd=ROOT,
                           capture_output=True, timeout=RUN_TIMEOUT_SECONDS)
    if probe.returncode != 0:
        pytest.skip(f"uid {NOBODY} cannot run this checkout's Python: {probe.stderr[-200:]!r}")
    return (setpriv, f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups")


@pytest.fixture
def public_dir():
    """A directory uid 65534 can reach (pytest's tmp_path is root's own, mode 700)."""
    directory = Path(tempfile.mkdtemp(prefix="live-reactions-"))
    directory.chmod(0o755)
    yield directory
    directory.chmod(0o755)
    shutil.rmtree(directory)


@pytest.mark.parametrize("mode", ["file 444", "directory 555"])
def test_unwritable_database_is_refused_at_start(public_dir, mode):
    """A database file the user cannot write (read-only file, or a directory that refuses the
    journal) exits 2 at start with one line, as an unprivileged user; nothing is posted."""
    user = as_nobody()
    path = public_dir / "reactions.db"
    status, lines = finish(start("--db", str(path), "--duration", "0.5"))
    assert status == 0 and rows_in(path) > 0
    if user:
        os.chown(public_dir, NOBODY, NOBODY)
        os.chown(path, NOBODY, NOBODY)
    (path if mode == "file 444" else public_dir).chmod(0o444 if mode == "file 444" else 0o555)
    status, lines = finish(start("--db", str(path), "--duration", "0.5", user=user))
    assert status == 2, "\n".join(lines)
    assert len(lines) == 1 and "cannot use database" in lines[0]
    assert "attempt to write a readonly database" in lines[0]


def test_locked_database_at_the_final_backup_spills_every_pending_event(tmp_path):
    """A file locked by another process during the final backup: the shutdown says how long it
    may wait, the pending events go to a spill file named in one line, exit 3; --load-spill then
    loads them once, twice adds nothing, and the table holds exactly what was posted."""
    program = copy_program(tmp_path / "program", DB_BUSY_TIMEOUT_SECONDS="0.5")
    path = tmp_path / "reactions.db"
    process = start("--db", str(path), "--get-interval", "0.2", "--backup-interval", "0.3",
                    cwd=program)
    lines = read_until(process, lambda line: " backup moved" in line)
    holder = lock(path)
    lines += read_until(process, lambda line: "not moved" in line)  # a backup hit the lock
    process.send_signal(signal.SIGINT)
    status, lines = finish(process, lines)
    holder.rollback()
    holder.close()
    match = reconciliation(lines)
    posted, rows, pending, spilled = (int(match.group(i)) for i in (1, 3, 4, 8))
    assert status == 3, "\n".join(lines)
    assert match.group("verdict") == "OK" and pending == 0 and spilled > 0
    assert posted == rows + spilled == rows_in(path) + spilled
    [spill_line] = [line for line in lines if "spilled" in line and "--load-spill" in line]
    spill_file = re.search(r"spilled [\d,]+ pending events to (\S+);", spill_line).group(1)
    assert Path(spill_file).parent == tmp_path
    assert len(Path(spill_file).read_text().splitlines()) == spilled
    assert not any("next run" in line or "Traceback" in line for line in lines)
    assert any("waits up to 0.5s if another process locks the database" in line for line in lines)
    for _ in range(2):
        result = subprocess.run([sys.executable, "-B", "main.py", "--load-spill", spill_file,
                                 "--db", str(path)], cwd=ROOT, text=True, capture_output=True,
                                timeout=RUN_TIMEOUT_SECONDS)
        assert result.returncode == 0, result.stdout + result.stderr
        assert rows_in(path) == posted
    assert "loaded" in result.stdout and "before: nothing added" in result.stdout


def test_second_sigint_during_a_blocked_final_backup_says_what_it_abandons(tmp_path):
    """A second Ctrl-C while the final backup waits for a locked file exits 130 at once and
    names the events abandoned: all posted, none in the table (no backup could run)."""
    program = copy_program(tmp_path / "program", DB_BUSY_TIMEOUT_SECONDS="600.0")
    path = tmp_path / "reactions.db"
    process = start("--db", str(path), "--get-interval", "0.2", "--backup-interval", "1000",
                    cwd=program)
    lines = read_until(process, lambda line: posted_in(line) > 0)
    holder = lock(path)
    lines += read_until(process, lambda line: posted_in(line) > 0)
    process.send_signal(signal.SIGINT)
    lines += read_until(process, lambda line: "final backup" in line)
    time.sleep(REPEAT_WINDOW_SECONDS)  # sooner, a SIGINT is taken as the first one repeated
    process.send_signal(signal.SIGINT)
    status, lines = finish(process, lines)
    holder.rollback()
    holder.close()
    assert status == 130, "\n".join(lines)
    [last] = [line for line in lines if "second SIGINT" in line]
    abandoned = int(re.search(r": ([\d,]+) acknowledged events abandoned \(([\d,]+) pending in "
                              r"the in-memory Redis\)$", last).group(1).replace(",", ""))
    assert abandoned >= max(map(posted_in, lines)) > 0
    assert rows_in(path) == 0
    assert not any("reconciliation" in line or "Traceback" in line for line in lines)


def test_full_redis_refuses_posts_counts_them_and_loses_nothing(tmp_path):
    """With a small maxmemory and the database locked, posts are refused (counted, one warning
    per spell), then taken again once backups free Redis; every accepted post ends in the
    table."""
    program = copy_program(tmp_path / "program", REDIS_MAXMEMORY_BYTES="1024 ** 2",
                           DB_BUSY_TIMEOUT_SECONDS="0.1")
    path = tmp_path / "reactions.db"
    process = start("--db", str(path), "--rate", "20000", "--get-interval", "0.2",
                    "--backup-interval", "0.2", cwd=program)
    lines = read_until(process, lambda line: " backup moved" in line)
    holder = lock(path)
    before = max(map(refused_in, lines))  # Redis may have filled before the first backup
    lines += read_until(process, lambda line: refused_in(line) > before)
    holder.rollback()
    holder.close()
    # At 20,000/s a 1 MiB Redis fills again between backups 0.2 s apart, so refusals may go on
    # as one spell (no "accepted again"): wait for backups moving events once more.
    lines += read_until(process, lambda line: re.search(r" backup moved [1-9]", line))
    process.send_signal(signal.SIGINT)
    status, lines = finish(process, lines)
    match = reconciliation(lines)
    posted, counters, rows, pending, refused = (int(match.group(i)) for i in range(1, 6))
    assert status == 0 and match.group("verdict") == "OK", "\n".join(lines)
    assert posted == counters == rows == rows_in(path) and pending == 0 and refused > 0
    warnings = [line for line in lines if "POST refused" in line]
    assert "used memory > 'maxmemory'" in warnings[0]
    assert 1 <= len(warnings) <= sum("POSTs accepted again" in line for line in lines) + 1


def test_closed_stdout_stops_the_run_with_a_final_backup(tmp_path):
    """`main.py | head -5`: once the reader is gone the run stops as after Ctrl-C (final
    backup) and exits quietly: status 0, nothing on stderr, the posted events in the file."""
    path = tmp_path / "reactions.db"
    process = Child([sys.executable, "-B", "main.py", "--db", str(path), "--get-interval", "0.2"],
                    cwd=ROOT, stderr=subprocess.PIPE)
    lines = read_until(process, lambda line: posted_in(line) > 0)
    process.stdout.close()  # as head does after its lines
    status = process.wait(timeout=RUN_TIMEOUT_SECONDS)
    errors = process.stderr.read()
    assert status == 0 and errors == ""
    assert rows_in(path) >= max(map(posted_in, lines)) > 0


def test_two_runs_on_one_file_at_once_both_reconcile(tmp_path):
    """Two runs sharing a --db file at once each count their own rows: both OK, and the file
    holds the sum of what they posted."""
    path = str(tmp_path / "reactions.db")
    finish(start("--db", path, "--duration", "0.1"))  # the file exists before both start
    before = rows_in(path)
    runs = [start("--db", path, "--duration", "2", "--backup-interval", "0.2",
                  "--get-interval", "1") for _ in range(2)]
    posted = 0
    for process in runs:
        status, lines = finish(process)
        match = reconciliation(lines)
        assert status == 0 and match.group("verdict") == "OK", "\n".join(lines)
        posted += int(match.group(1))
    assert rows_in(path) == before + posted


@pytest.mark.parametrize("setting, value", [("DB_BUSY_TIMEOUT_SECONDS", "-1"),
                                            ("DB_BUSY_TIMEOUT_SECONDS", "float('inf')"),
                                            ("DB_BUSY_TIMEOUT_SECONDS", "'5'"),
                                            ("REDIS_MAXMEMORY_BYTES", "True"),
                                            ("REDIS_MAXMEMORY_BYTES", "1.5"),
                                            ("REDIS_MAXMEMORY_BYTES", "1"),
                                            ("REDIS_MAXMEMORY_BYTES", "1024 ** 2 - 1")])
def test_bad_config_only_setting_is_refused(tmp_path, setting, value):
    """A config.py value outside what is allowed exits 2 with one line naming it; no run."""
    program = copy_program(tmp_path / "program", **{setting: value})
    status, lines = finish(start("--duration", "1", cwd=program))
    assert status == 2 and len(lines) == 1, lines
    assert f"config.py: {setting} = " in lines[0] and "is not allowed" in lines[0]


@pytest.mark.parametrize("flags, words", [
    (["--load-spill", "x.jsonl"], "--load-spill needs --db FILE"),
    (["--load-spill", "{dir}/missing.jsonl", "--db", "{dir}/typo.db"], "no spill file"),
    (["--load-spill", "{dir}/s.jsonl", "--db", "{dir}/typo.db"], "no database file"),
])
def test_load_spill_refuses_what_it_cannot_do(tmp_path, flags, words):
    """--load-spill into :memory:, of a missing file or into a missing database: exit 2, one
    line, and no database file created."""
    (tmp_path / "s.jsonl").write_text("")
    flags = [flag.format(dir=tmp_path) for flag in flags]
    status, lines = finish(start(*flags))
    assert status == 2 and len(lines) == 1 and words in lines[0], lines
    assert not (tmp_path / "typo.db").exists()


def test_load_spill_with_dead_letters_warns_and_exits_4(tmp_path):
    """A spill whose lines the table refuses (here: not JSON) is loaded with them as dead
    letters, a warning names how many, and the status is 4, not 0."""
    path = tmp_path / "reactions.db"
    finish(start("--db", str(path), "--duration", "0.1"))
    spill = tmp_path / "s.jsonl"
    spill.write_text("not json\nnor this\n")
    status, lines = finish(start("--load-spill", str(spill), "--db", str(path)))
    assert status == 4, lines
    assert any("WARNING: 2 lines of" in line and "dead_letters" in line for line in lines)
    assert rows_in(path, "dead_letters") == 2


def test_stdout_that_cannot_be_written_stops_the_run_with_one_line(tmp_path):
    """`main.py > /dev/full`: the first failed write (ENOSPC) is a stop request, as a closed
    stdout is: the run ends long before its --duration, with one line on stderr, no "Logging
    error" traces, status 0 (an OK reconciliation), the database made."""
    path = tmp_path / "reactions.db"
    with open("/dev/full", "w") as full:
        result = subprocess.run([sys.executable, "-B", "main.py", "--db", str(path),
                                 "--duration", "1000"], cwd=ROOT, text=True, stdout=full,
                                stderr=subprocess.PIPE, timeout=RUN_TIMEOUT_SECONDS)
    lines = result.stderr.splitlines()
    assert result.returncode == 0, lines
    assert len(lines) == 1 and lines[0].startswith("stdout cannot be written ("), lines
    assert "No space left on device" in lines[0]
    assert path.exists()


def test_sighup_stops_the_run_with_a_final_backup(tmp_path):
    """SIGHUP (the terminal closed) stops like Ctrl-C: final backup, OK, every posted event in
    the file, though no periodic backup ran."""
    path = tmp_path / "reactions.db"
    process = start("--db", str(path), "--get-interval", "0.2", "--backup-interval", "1000")
    lines = read_until(process, lambda line: posted_in(line) > 0)
    process.send_signal(signal.SIGHUP)
    status, lines = finish(process, lines)
    match = reconciliation(lines)
    assert status == 0 and match.group("verdict") == "OK", "\n".join(lines)
    assert int(match.group(1)) == rows_in(path) > 0


def test_spill_falls_back_to_the_working_directory_and_its_command_works_anywhere(public_dir):
    """As uid 65534, the database's directory made read-only mid-run: the final backup fails,
    the spill goes to the working directory instead (exit 3), and the printed command, run from
    another directory, loads it into that same database file."""
    user = as_nobody()
    program = copy_program(public_dir / "program")
    data = public_dir / "data"
    data.mkdir()
    if user:
        for directory in (program, data):
            os.chown(directory, NOBODY, NOBODY)
    path = data / "reactions.db"
    process = start("--db", str(path), "--get-interval", "0.2", "--backup-interval", "1000",
                    cwd=program, user=user)
    lines = read_until(process, lambda line: posted_in(line) > 0)
    data.chmod(0o555)  # no journal can be made beside the database any more
    process.send_signal(signal.SIGINT)
    status, lines = finish(process, lines)
    data.chmod(0o755)
    match = reconciliation(lines)
    assert status == 3 and match.group("verdict") == "OK", "\n".join(lines)
    [spill_line] = [line for line in lines if "--load-spill" in line]
    spill_file, command = re.search(r"spilled [\d,]+ pending events to (\S+); load them with: "
                                    r"(.+)$", spill_line).groups()
    assert Path(spill_file).parent == program
    assert shlex.split(command)[0] == sys.executable  # this run's interpreter: it exists
    result = subprocess.run(shlex.split(command), cwd=public_dir, text=True,
                            capture_output=True, timeout=RUN_TIMEOUT_SECONDS)
    assert result.returncode == 0, result.stdout + result.stderr
    assert rows_in(path) == int(match.group(1)) > 0
    assert not (public_dir / "reactions.db").exists()
