"""Item 6: memory -- bytes per pending event in Redis, and the RSS of ``python3 main.py`` runs.

a. Bytes per pending event: with Redis flushed, ``tracemalloc`` traces ``Settings.memory_events``
   POSTMethod calls; the traced memory still held afterwards (counters, lists and the encoded
   records in Redis; nothing else survives the loop) divided by the events. Floor: <= 300 bytes.
b. RSS: ``python3 main.py --duration S --seed 1`` run as a subprocess, (1) at the default pace
   (alongside the others: it needs about 1% of a core), (2) at ``--rate 0``, both with the default
   ``:memory:`` database and backup interval, and (3) at ``--rate 0 --db FILE`` (a file in a
   temporary directory); (2) and (3) one after the other. Every second the benchmark reads VmRSS
   from /proc/PID/status; the peak is the largest VmHWM read there (polled every 50 ms; not
   wait4's ru_maxrss, which on Linux carries over the forking parent's RSS). For run (3) the mean
   RSS of the first and of the last window (10 s; a third of the run when shorter) of the posting
   time shows whether RSS is flat (the final backup after the duration is left out of those
   windows, not out of the series or the peak). Each run's own last line, ``reconciliation:
   posted=N ... OK``, is checked and reported, with the most events its GET ticks saw pending.
"""

from __future__ import annotations

import gc
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
import tracemalloc
from typing import Any

import api_layer

from . import ROOT
from .common import (Result, Row, Settings, flush_redis, fmt_rate, fmt_ratio, make_events,
                     median, progress, verdict)

BYTES_PER_EVENT_MAX = 300
"""A pending event may hold at most this many bytes in Redis."""
MIB = 2 ** 20
SAMPLE_EVERY_S = 1.0
POLL_EVERY_S = 0.05
WINDOW_S = 10.0
RECONCILIATION = re.compile(r"reconciliation: posted=(\d+) .*?(OK|MISMATCH)")
PENDING = re.compile(r"pending in Redis ([\d,]+)")


# -- a. bytes per pending event ------------------------------------------------------------------

def bytes_per_pending_event(count: int, seed: int) -> float:
    """Traced bytes held after POSTing ``count`` events (Redis flushed before), per event."""
    events = make_events(count, seed)
    post = api_layer.POSTMethod
    flush_redis()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for user_id, match_id, emoticon in events:
            post(user_id, match_id, emoticon)
        gc.collect()
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
        flush_redis()
    return held / count


# -- b. RSS of main.py subprocess runs -----------------------------------------------------------

def read_status_kb(pid: int, field: str) -> int | None:
    """A ``field:  N kB`` line of /proc/PID/status in kB, or None (gone, or a zombie)."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError):
        pass
    return None


def run_main(arguments: list[str], seconds: float, log_path: str) -> dict[str, Any]:
    """Run ``python3 main.py ARGUMENTS --duration SECONDS``; RSS samples, peak and its summary.

    The child's output goes to ``log_path``. It is killed (by its pid) if it overruns by 120 s.
    """
    # GET every second, so that its status line samples the events pending in Redis.
    command = [sys.executable, "main.py", *arguments, "--duration", f"{seconds:g}",
               "--get-interval", "1"]
    with open(log_path, "w") as log:
        child = subprocess.Popen(command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    started = time.perf_counter()
    next_sample = started + SAMPLE_EVERY_S
    samples: list[tuple[float, float]] = []
    peak_kb = 0
    while True:
        pid, status = os.waitpid(child.pid, os.WNOHANG)
        if pid:
            break
        peak_kb = max(peak_kb, read_status_kb(child.pid, "VmHWM") or 0)
        now = time.perf_counter()
        if now >= next_sample:
            rss = read_status_kb(child.pid, "VmRSS")
            if rss is not None:
                samples.append((now - started, rss / 1024))
            next_sample += SAMPLE_EVERY_S
        if now - started > seconds + 120:
            child.kill()
        time.sleep(POLL_EVERY_S)
    wall = time.perf_counter() - started
    child.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
    with open(log_path) as log:
        output = log.read()
    found = RECONCILIATION.findall(output)
    posted, state = (int(found[-1][0]), found[-1][1]) if found else (0, "MISSING")
    pending = [int(text.replace(",", "")) for text in PENDING.findall(output)]
    return {"command": " ".join(["python3", *command[1:]]), "exit_code": child.returncode,
            "wall_s": wall, "posted": posted, "posted_eps": posted / seconds,
            "reconciliation": state, "peak_rss_mb": peak_kb / 1024,
            "max_pending_in_redis": max(pending, default=0),
            "rss_series_mb": [round(rss, 1) for _, rss in samples],
            "rss_series_s": [round(at, 2) for at, _ in samples],
            "tail": output.strip().splitlines()[-3:]}


def first_last(run: dict[str, Any], seconds: float) -> dict[str, float]:
    """Mean RSS of the first and the last window of the run's ``seconds`` of posting.

    The window is 10 s, or a third of the run when shorter. The shutdown after ``seconds`` (the
    final backup) is left out: the question is whether RSS stays flat while the pipeline runs.
    """
    window = round(min(WINDOW_S, seconds / 3), 1)
    pairs = list(zip(run["rss_series_s"], run["rss_series_mb"]))
    first = [rss for at, rss in pairs if at <= window] or [0.0]
    last = [rss for at, rss in pairs if seconds - window <= at <= seconds] or [0.0]
    first_mb, last_mb = sum(first) / len(first), sum(last) / len(last)
    return {"window_s": window, "first_mb": first_mb, "last_mb": last_mb,
            "growth_mb": last_mb - first_mb, "ratio": last_mb / first_mb if first_mb else 0.0}


def run_processes(settings: Settings) -> dict[str, dict[str, Any]]:
    """The three main.py runs: the two at rate 0 one after the other (each wants a core and a
    half), the default-pace one alongside them (it needs about 1% of a core)."""
    seconds = settings.run_seconds
    runs: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-main-") as directory:
        plans = {"default_pace": ["--seed", "1"],
                 "rate0": ["--rate", "0", "--seed", "1"],
                 "rate0_file": ["--rate", "0", "--seed", "1",
                                "--db", os.path.join(directory, "reactions.db")]}

        def describe(name: str) -> str:
            arguments = plans[name]
            return (f"6b. python3 main.py {' '.join(arguments[:2])} "
                    f"{'--db FILE ' if 'file' in name else ''}for {seconds:g} s")

        def run(name: str) -> None:
            runs[name] = run_main(plans[name], seconds, os.path.join(directory, f"{name}.log"))

        # Announced here, not by its thread: two progress lines written at once would interleave.
        progress(describe("default_pace") + ", alongside the two runs below")
        background = threading.Thread(target=run, args=("default_pace",), name="main-default")
        background.start()
        try:
            for name in ("rate0", "rate0_file"):
                progress(describe(name))
                run(name)
        finally:
            background.join()
    runs = {name: runs[name] for name in plans}  # in the plans' order
    runs["rate0_file"]["first_last"] = first_last(runs["rate0_file"], seconds)
    return runs


def run_memory(settings: Settings) -> Result:
    """Item 6: bytes per pending event (median of repeats), then the three main.py runs."""
    progress(f"6a. bytes per pending event: {settings.memory_events:,} events x "
             f"{settings.repeats} repeats under tracemalloc")
    per_event = [bytes_per_pending_event(settings.memory_events, seed=repeat)
                 for repeat in range(settings.repeats)]
    runs = run_processes(settings)
    bytes_per_event = median(per_event)
    figures = {"bytes_per_pending_event": bytes_per_event, "events": settings.memory_events,
               "max_bytes": BYTES_PER_EVENT_MAX, "pass": bytes_per_event <= BYTES_PER_EVENT_MAX,
               "samples": per_event, "run_seconds": settings.run_seconds, "runs": runs}
    return Result(figures, table_rows(figures))


def series_text(run: dict[str, Any], points: int = 12) -> tuple[int, str]:
    """About ``points`` RSS samples of ``run``, evenly spaced: (step in samples, ``"12 34 56"``)."""
    series = run["rss_series_mb"]
    step = max(1, round(len(series) / points))
    return step, " ".join(f"{rss:.0f}" for rss in series[::step])


def table_rows(figures: dict[str, Any]) -> list[Row]:
    """The table lines of item 6."""
    runs, seconds = figures["runs"], figures["run_seconds"]
    rows = [Row("6", f"Redis bytes per pending event ({figures['events']:,} POSTs)",
                f"{figures['bytes_per_pending_event']:.0f} B", "", "",
                f"<= {BYTES_PER_EVENT_MAX} B", verdict(figures["pass"]))]
    names = {"default_pace": "default pace", "rate0": "--rate 0",
             "rate0_file": "--rate 0 --db FILE"}
    for key, name in names.items():
        run = runs[key]
        ok = run["exit_code"] == 0 and run["reconciliation"] == "OK"
        rows.append(Row("6", f"main.py {seconds:g} s {name}: peak RSS",
                        f"{run['peak_rss_mb']:.0f} MB",
                        f"posted {run['posted']:,} ({fmt_rate(run['posted_eps'])}/s), max "
                        f"{run['max_pending_in_redis']:,} pending, {run['reconciliation']}", "",
                        "exit 0, OK", verdict(ok)))
    flat = runs["rate0_file"]["first_last"]
    window = f"{flat['window_s']:g}"
    rows.append(Row("6", f"--rate 0 --db FILE: RSS first {window} s vs last {window} s",
                    f"{flat['first_mb']:.0f} -> {flat['last_mb']:.0f} MB",
                    f"growth {flat['growth_mb']:+.0f} MB", fmt_ratio(flat["ratio"])))
    step, series = series_text(runs["rate0_file"])
    rows.append(Row("6", "--rate 0 --db FILE: RSS series", f"every {step * SAMPLE_EVERY_S:g} s",
                    f"{series} MB"))
    return rows
