"""Signals as a terminal, a shell and an operator send them (docs/failures.md, "Stopping").

The first stop signal stops the run with its final backup; only a deliberate second Ctrl-C
exits at once, and then says how many acknowledged events it abandons; a signal inherited as
ignored stays ignored.
"""

from __future__ import annotations

import re
import signal

from live.cli import apply_settings, parse_args
from live.run import LiveRun
from live.signals import REPEAT_WINDOW_SECONDS, StopSignals
from test_failures import copy_program, finish, lock, posted_in, read_until, rows_in, start
from test_main import reconciliation


def test_sighup_repeated_by_the_shell_keeps_the_final_backup(tmp_path):
    """A terminal closing sends SIGHUP twice (the kernel, then the shell), and a service
    manager may repeat SIGTERM: the repeats during the final backup change nothing, every
    posted event reaches the file and the run ends OK."""
    program = copy_program(tmp_path / "program", DB_BUSY_TIMEOUT_SECONDS="600.0")
    path = tmp_path / "reactions.db"
    process = start("--db", str(path), "--get-interval", "0.2", "--backup-interval", "1000",
                    cwd=program)
    lines = read_until(process, lambda line: posted_in(line) > 0)
    holder = lock(path)  # the final backup waits here, so the repeats surely come during it
    process.send_signal(signal.SIGHUP)
    lines += read_until(process, lambda line: "final backup" in line)
    for signum, name in ((signal.SIGHUP, "SIGHUP"), (signal.SIGTERM, "SIGTERM")):
        process.send_signal(signum)  # one at a time: two pending SIGHUPs would be delivered as one
        lines += read_until(process, lambda line: f"{name} again" in line)
    process.send_signal(signal.SIGHUP)  # a third, told no more
    holder.rollback()
    holder.close()
    status, lines = finish(process, lines)
    match = reconciliation(lines)
    assert status == 0 and match.group("verdict") == "OK", "\n".join(lines)
    assert int(match.group(1)) == rows_in(path) > 0
    assert sum("SIGHUP again: already stopping" in line for line in lines) == 1


def test_sighup_inherited_as_ignored_stays_ignored(tmp_path):
    """``nohup python3 main.py &``: SIGHUP (the user logs out) does not stop the run; it says
    so at start, and a later SIGTERM stops it as usual."""
    path = tmp_path / "reactions.db"
    process = start("--db", str(path), "--get-interval", "0.2", "--backup-interval", "1000",
                    ignoring=[signal.SIGHUP])
    lines = read_until(process, lambda line: posted_in(line) > 0)
    process.send_signal(signal.SIGHUP)
    posted = max(map(posted_in, lines))
    lines += read_until(process, lambda line: posted_in(line) > posted)  # still posting
    process.send_signal(signal.SIGTERM)
    status, lines = finish(process, lines)
    assert status == 0 and reconciliation(lines).group("verdict") == "OK", "\n".join(lines)
    assert any(line.endswith("SIGHUP ignored, as this process inherited it (nohup, a "
                             "background job)") for line in lines), lines
    assert not any("SIGHUP: stopping" in line for line in lines)


def test_sigint_inherited_as_ignored_stays_ignored():
    """A background job of a script (``python3 main.py &`` in sh) ignores Ctrl-C by design:
    SIGINT changes nothing, SIGTERM stops the run."""
    process = start("--get-interval", "0.2", "--backup-interval", "1000",
                    ignoring=[signal.SIGINT])
    lines = read_until(process, lambda line: posted_in(line) > 0)
    process.send_signal(signal.SIGINT)
    posted = max(map(posted_in, lines))
    lines += read_until(process, lambda line: posted_in(line) > posted)
    process.send_signal(signal.SIGTERM)
    status, lines = finish(process, lines)
    assert status == 0 and reconciliation(lines).group("verdict") == "OK", "\n".join(lines)
    assert not any("SIGINT:" in line for line in lines)


def test_ctrl_c_after_a_sigterm_exits_at_once(tmp_path):
    """Ctrl-C is the deliberate way out whatever started the stop: after SIGTERM, during a
    final backup blocked by a lock, it exits 130 and names the events it abandons."""
    program = copy_program(tmp_path / "program", DB_BUSY_TIMEOUT_SECONDS="600.0")
    path = tmp_path / "reactions.db"
    process = start("--db", str(path), "--get-interval", "0.2", "--backup-interval", "1000",
                    cwd=program)
    lines = read_until(process, lambda line: posted_in(line) > 0)
    holder = lock(path)
    process.send_signal(signal.SIGTERM)
    lines += read_until(process, lambda line: "final backup" in line)
    process.send_signal(signal.SIGINT)  # not a repeat of SIGTERM: no window to wait out
    status, lines = finish(process, lines)
    holder.rollback()
    holder.close()
    assert status == 130, "\n".join(lines)
    [last] = [line for line in lines if "second SIGINT" in line]
    assert re.search(r"exiting now, without the final backup: [\d,]+ acknowledged events "
                     r"abandoned \([\d,]+ pending in the in-memory Redis\)$", last), last


def test_an_exit_at_once_counts_the_ingest_buffer_too():
    """Events acknowledged into the ingest buffer and not yet in Redis are abandoned too: the
    exit line counts them with those pending in the in-memory Redis."""
    apply_settings(parse_args(["--ingest-batch", "1000", "--ingest-flush", "600"]))
    run = LiveRun()
    for _ in range(7):
        run.poster.post_one()
    assert run._left_behind() == ("7 acknowledged events abandoned (0 pending in the "
                                  "in-memory Redis, 7 held in the ingest buffer)")


def test_a_sigint_delivered_twice_at_once_is_one_ctrl_c():
    """``timeout -s INT`` signals the process and then its group: a SIGINT within the repeat
    window of the first is the same one; a later one is a deliberate second Ctrl-C."""
    now, stops, exits = [0.0], [], []
    signals = StopSignals(lambda: stops.append(1), exits.append, clock=lambda: now[0])
    signals._on_signal(signal.SIGINT)
    now[0] = 0.01
    signals._on_signal(signal.SIGINT)
    assert (stops, exits) == ([1], [])
    now[0] = REPEAT_WINDOW_SECONDS
    signals._on_signal(signal.SIGINT)
    assert exits == [signal.SIGINT]


def test_two_sigints_back_to_back_keep_the_final_backup(tmp_path):
    """Two SIGINTs sent together (as by timeout -s INT): the run still ends with its final
    backup and an OK reconciliation."""
    path = tmp_path / "reactions.db"
    process = start("--db", str(path), "--get-interval", "0.2", "--backup-interval", "1000")
    lines = read_until(process, lambda line: posted_in(line) > 0)
    process.send_signal(signal.SIGINT)
    process.send_signal(signal.SIGINT)
    status, lines = finish(process, lines)
    match = reconciliation(lines)
    assert status == 0 and match.group("verdict") == "OK", "\n".join(lines)
    assert int(match.group(1)) == rows_in(path) > 0


def test_closing_the_terminal_keeps_every_event(tmp_path):
    """The run's terminal closes (its pty master): the kernel sends SIGHUP, and stdout and
    stderr are both the dead terminal. The run still stops the orderly way: the final backup
    puts every event in the file and the reconciliation is OK (exit 0), though no line can be
    shown any more."""
    import os
    import pty
    import select
    import sqlite3
    import sys
    import time
    from tests.program import ROOT
    path = tmp_path / "reactions.db"
    pid, master = pty.fork()
    if pid == 0:  # the child: main.py on the pty, as a terminal runs it
        os.chdir(ROOT)
        os.execv(sys.executable, [sys.executable, "-B", "main.py", "--db", str(path),
                                  "--http-port", "0", "--get-interval", "0.2",
                                  "--backup-interval", "1000", "--duration", "120"])
    seen, deadline = b"", time.monotonic() + 60
    while b"posted" not in seen and time.monotonic() < deadline:  # a status line: posting
        if select.select([master], [], [], 1)[0]:
            seen += os.read(master, 65536)
    os.close(master)  # the terminal closes
    for _ in range(600):  # at most 60 s: a safety net, not a time limit
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        time.sleep(0.1)
    else:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        raise AssertionError("main.py did not end after its terminal closed")
    assert b"posted" in seen, seen
    assert os.waitstatus_to_exitcode(status) == 0  # reconciliation OK: every event in the table
    with sqlite3.connect(path) as connection:
        assert connection.execute("select count(*) from reactions_table").fetchone()[0] > 0


def test_stdout_and_stderr_both_unwritable_still_stop_in_order(tmp_path):
    """``> /dev/full 2> /dev/full``: the first line that cannot be written is a stop request,
    as for a closed stdout; with stderr unwritable too nothing can be shown, and still no
    error escapes: the run ends with its final backup and an OK reconciliation (exit 0)."""
    import subprocess
    import sys
    from tests.program import ROOT
    path = tmp_path / "reactions.db"
    with open("/dev/full", "w") as full:
        done = subprocess.run([sys.executable, "-B", "main.py", "--db", str(path), "--duration",
                               "600", "--http-port", "0"], cwd=ROOT, stdout=full, stderr=full,
                              timeout=120)
    assert done.returncode == 0 and path.exists()
