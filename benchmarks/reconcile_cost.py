"""Item 9: what one system-wide reconciliation costs with a big backlog pending in Redis.

a. On a local redis-server (started here on a free loopback port, no persistence, like item 7):
   ``Settings.reconcile_events`` events (1 M; 100,000 with --quick; add 8 M with
   ``--reconcile-8m``) are pushed onto 10 matches' lists, with their counters, and an empty
   database file is made. Then ``python3 main.py --reconcile --redis-url URL --db FILE`` runs as
   a subprocess, and the figures are:

   - its wall time, and its verdict (it must say OK: the backlog is all pending);
   - the client's peak memory: the largest VmHWM of /proc/PID/status, polled every 50 ms (not
     wait4's ru_maxrss, which on Linux carries over the forking parent's RSS);
   - the longest Redis stall: the longest command in Redis's SLOWLOG (Redis's own execution
     time, logged from 1 ms; the floor applies to it), and, as what a client sees, the longest
     wait for a PING that a thread of this process sends every 2 ms, beside the same figure for
     the second before the run. The PING's wait includes the machine's scheduling: on 2 cores
     the reconciling client, Redis and the PINGs (and anything else running) take turns;
   - Redis's memory: the most ``used_memory`` (INFO, sampled by that thread every 50 PINGs)
     above its value before the run (output buffers of big replies show there).

b. The in-memory Redis, in this process (the in-memory case has no ``--reconcile``: its
   server lives in one process, and the end of a run reconciles there): the same backlog in an
   InMemoryRedis, then reconcile() against a :memory: table; its wall time, the longest hold of
   the server's lock by one command (lock_hold.TimedLock: what a POST would wait), and the
   memory it allocated at its peak (tracemalloc, in a second run: tracing slows it down).

Floors: the issue's bounds -- a client's peak memory of a few hundred MB at most for any backlog
(<= 300 MB here) and no Redis call holding the server more than about 100 ms.
"""

from __future__ import annotations

import gc
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import tracemalloc
from typing import Any

import config
from db import ReactionsTable
from foundation.in_memory_redis import InMemoryRedis
from live.reconcile import reconcile
from redis_adapter import RedisAdapter, encode_event, make_event

from . import ROOT
from .common import Result, Row, Settings, progress, verdict
from .lock_hold import TimedLock
from .memory import POLL_EVERY_S, read_status_kb

MATCHES = 10
"""Matches the backlog is spread over (config.py's default)."""
PUSH_ITEMS = 1_000
"""Event records per RPUSH while the backlog is made."""
PING_EVERY_S = 0.002
IDLE_S = 1.0
"""Seconds the PINGs run before the reconciliation starts: their longest wait then is the
reference (scheduling noise of this machine, nothing to do with the reconciliation)."""
INFO_EVERY_PINGS = 50
SLOWLOG_MICROSECONDS = 1_000
"""Commands slower than this (Redis's own execution time) are logged in its SLOWLOG."""
MAX_PEAK_MB = 300
"""The client's peak memory for any backlog: 'a few hundred MB at most' (issue 13, item 6)."""
MAX_STALL_MS = 100
"""The longest a reconciliation may hold Redis up: 'about 100 ms' (issue 13, item 6)."""
MIB = 2 ** 20
LINE = re.compile(r"system-wide reconciliation: .*")


def backlog(redis: Any, events: int, seed: int = 9) -> None:
    """``events`` event records on MATCHES lists of ``redis``, with their counters, pushed
    PUSH_ITEMS at a time (as posts would have made them, in one pipeline per 100 pushes)."""
    rng = random.Random(seed)
    emoticons = config.EMOTICON_TYPES
    counts: dict[tuple[int, str], int] = {}
    pipe = redis.pipeline(transaction=False)
    made = 0
    while made < events:
        match_id = rng.randint(1, MATCHES)
        records = []
        for _ in range(min(PUSH_ITEMS, events - made)):
            emoticon = rng.choice(emoticons)
            counts[match_id, emoticon] = counts.get((match_id, emoticon), 0) + 1
            records.append(encode_event(make_event(rng.randint(1, 1000), match_id, emoticon,
                                                   1_700_000_000 + made / 1000)))
            made += 1
        pipe.rpush(f"match_data_{match_id}", *records)
        if len(pipe) >= 100:
            pipe.execute()
    for (match_id, emoticon), count in counts.items():
        pipe.incrby(f"{match_id}_{emoticon}", count)
    pipe.execute()


class Stalls(threading.Thread):
    """PINGs the server every PING_EVERY_S until stopped: the longest wait for a reply, and
    the most ``used_memory`` seen (INFO, every INFO_EVERY_PINGS PINGs)."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        import redis
        self.client = redis.Redis.from_url(url, socket_timeout=120)  # a stall is measured
        self.stop = threading.Event()
        self.longest_s = 0.0
        self.pings = 0
        self.used_memory = int(self.client.info("memory")["used_memory"])
        self.baseline = self.used_memory

    def run(self) -> None:
        while not self.stop.is_set():
            began = time.perf_counter()
            self.client.ping()
            self.longest_s = max(self.longest_s, time.perf_counter() - began)
            self.pings += 1
            if self.pings % INFO_EVERY_PINGS == 0:
                used = int(self.client.info("memory")["used_memory"])
                self.used_memory = max(self.used_memory, used)
            time.sleep(PING_EVERY_S)


def run_command(url: str, db_path: str, log_path: str) -> dict[str, Any]:
    """``python3 main.py --reconcile``: its wall time, peak memory, status and line."""
    command = [sys.executable, "main.py", "--reconcile", "--redis-url", url, "--db", db_path]
    with open(log_path, "w") as log:
        child = subprocess.Popen(command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    started = time.perf_counter()
    peak_kb = 0
    while True:
        pid, status = os.waitpid(child.pid, os.WNOHANG)
        if pid:
            break
        peak_kb = max(peak_kb, read_status_kb(child.pid, "VmHWM") or 0)
        time.sleep(POLL_EVERY_S)
    wall = time.perf_counter() - started
    child.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
    with open(log_path) as log:
        output = log.read()
    found = LINE.findall(output)
    return {"command": "python3 main.py --reconcile --redis-url URL --db FILE",
            "exit_code": child.returncode, "seconds": wall, "peak_rss_mb": peak_kb / 1024,
            "line": found[-1] if found else output.strip()[-300:]}


def on_redis_server(events: int) -> dict[str, Any]:
    """Part a for a backlog of ``events``."""
    from tests.redis_server import RedisServer
    server = RedisServer().start()
    directory = tempfile.mkdtemp(prefix="reconcile-bench-")
    try:
        import redis
        client = redis.Redis.from_url(server.url)
        made = time.perf_counter()
        backlog(client, events)
        made = time.perf_counter() - made
        db_path = os.path.join(directory, "reactions.db")
        ReactionsTable(db_path).close()
        client.config_set("slowlog-log-slower-than", SLOWLOG_MICROSECONDS)
        client.config_set("slowlog-max-len", 10_000)
        client.slowlog_reset()
        stalls = Stalls(server.url)
        stalls.start()
        time.sleep(IDLE_S)  # the same PINGs with nothing else running: this machine's noise
        idle_ms, stalls.longest_s = stalls.longest_s * 1000, 0.0
        try:
            figures = run_command(server.url, db_path, os.path.join(directory, "out.log"))
        finally:
            stalls.stop.set()
            stalls.join()
        slow = client.slowlog_get(10_000)
        longest = max(slow, key=lambda entry: entry["duration"], default=None)
        figures.update({
            "events": events, "backlog_made_s": made, "pings": stalls.pings,
            "longest_ping_ms": stalls.longest_s * 1000, "longest_ping_idle_ms": idle_ms,
            "slowlog_longest_ms": longest["duration"] / 1000 if longest else 0.0,
            "slowlog_longest_command": _command_name(longest),
            "redis_memory_growth_mb": (stalls.used_memory - stalls.baseline) / MIB,
            "redis_memory_before_mb": stalls.baseline / MIB,
            "ok": figures["exit_code"] == 0 and figures["line"].endswith(" OK")})
        client.close()
        stalls.client.close()
        return figures
    finally:
        server.close()
        shutil.rmtree(directory, ignore_errors=True)


def _command_name(entry: dict[str, Any] | None) -> str:
    if entry is None:
        return f"no command over {SLOWLOG_MICROSECONDS / 1000:g} ms"
    command = entry["command"]
    command = command.decode(errors="replace") if isinstance(command, bytes) else str(command)
    return command.split(" ")[0]


def in_memory(events: int) -> dict[str, Any]:
    """Part b for a backlog of ``events``."""
    server = InMemoryRedis()
    backlog(server, events)
    gc.collect()
    adapter = RedisAdapter(server, "")
    table = ReactionsTable(":memory:")
    try:
        lock, original = TimedLock(), server._lock
        server._lock = lock  # as item 8 times the lock's holds
        began = time.perf_counter()
        result = reconcile(adapter, table)
        seconds = time.perf_counter() - began
        cpu_ms, wall_ms = (hold * 1000 for hold in lock.longest())
        server._lock = original
        tracemalloc.start()
        try:
            reconcile(adapter, table)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    finally:
        table.close()
        server.flushdb()
    return {"events": events, "seconds": seconds, "ok": result.ok and result.pending == events,
            "line": result.line(), "longest_hold_ms": cpu_ms, "longest_hold_wall_ms": wall_ms,
            "peak_traced_mb": peak / MIB}


def _redis_missing() -> str | None:
    if shutil.which("redis-server") is None:
        return "redis-server is not installed"
    try:
        import redis  # noqa: F401 -- only to tell its absence apart
    except ImportError:
        return "redis-py is missing (python3 -m pip install redis)"
    return None


def run_reconcile_cost(settings: Settings) -> Result:
    """Item 9: the reconciliation's time, memory and longest stall, per backlog size."""
    sizes = settings.reconcile_events
    progress(f"9. reconciliation cost: {', '.join(f'{n:,}' for n in sizes)} events pending")
    figures: dict[str, Any] = {"matches": MATCHES, "redis_server": {}, "in_memory": {}}
    rows: list[Row] = []
    missing = _redis_missing()
    for events in sizes:
        name = f"{events:,} pending"
        if missing:
            figures["redis_server"][str(events)] = {"skipped": missing}
            rows.append(Row("9", f"redis-server, {name}: skipped, {missing}", ""))
        else:
            case = on_redis_server(events)
            figures["redis_server"][str(events)] = case
            state = "OK" if case["ok"] else f"NOT OK: {case['line']}"
            rows += [
                Row("9", f"--reconcile, redis-server, {name}: time", f"{case['seconds']:.1f} s",
                    state),
                Row("9", "  client peak memory (VmHWM)", f"{case['peak_rss_mb']:,.0f} MB", "",
                    "", f"<= {MAX_PEAK_MB} MB", verdict(case["peak_rss_mb"] <= MAX_PEAK_MB)),
                Row("9", "  longest Redis command (SLOWLOG: Redis's own time)",
                    f"{case['slowlog_longest_ms']:,.1f} ms" if case["slowlog_longest_ms"]
                    else f"< {SLOWLOG_MICROSECONDS / 1000:g} ms", case["slowlog_longest_command"],
                    "",
                    f"<= {MAX_STALL_MS} ms", verdict(case["slowlog_longest_ms"] <= MAX_STALL_MS)),
                Row("9", "  longest wait of a PING from another client",
                    f"{case['longest_ping_ms']:,.1f} ms",
                    f"idle before: {case['longest_ping_idle_ms']:,.1f} ms"),
                Row("9", "  Redis used_memory growth", f"{case['redis_memory_growth_mb']:,.1f} MB",
                    f"of {case['redis_memory_before_mb']:,.0f} MB before")]
        if events <= settings.reconcile_in_memory_max:
            case = in_memory(events)
            figures["in_memory"][str(events)] = case
            rows += [
                Row("9", f"reconcile(), in-memory Redis, {name}: time",
                    f"{case['seconds']:.1f} s", "OK" if case["ok"] else case["line"]),
                Row("9", "  peak memory allocated (tracemalloc)",
                    f"{case['peak_traced_mb']:,.0f} MB", "", "", f"<= {MAX_PEAK_MB} MB",
                    verdict(case["peak_traced_mb"] <= MAX_PEAK_MB)),
                Row("9", "  longest lock hold of one command (CPU)",
                    f"{case['longest_hold_ms']:,.1f} ms",
                    f"wall {case['longest_hold_wall_ms']:,.1f} ms", "", f"<= {MAX_STALL_MS} ms",
                    verdict(case["longest_hold_ms"] <= MAX_STALL_MS))]
    return Result(figures, rows)
