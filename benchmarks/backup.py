"""Item 5: the write-behind backup -- throughput, and what it does to the GET tick.

a. Throughput: ``Settings.backup_events`` pending events (records encoded with
   ``redis_adapter.encode_event``, as POSTMethod stores them, pushed onto the ``match_data_*``
   lists untimed) moved by ``BackupDataManager(adapter, ReactionsTable(":memory:")).run()``, in
   rows/s, against the floor: a bare ``executemany(db.INSERT, rows)`` of the same rows (tuples
   ready-made) in one transaction on a fresh ``:memory:`` table with the same schema and index.
   Ratio backup / executemany (floor: >= 0.7x).
b. Lateness: in one asyncio event loop, a GET tick that should run every ``tick_interval_s``
   (same fixed schedule as live.ticks.every: anchored, missed slots skipped) calls GETMethod for every
   match, while the same backup runs in ``asyncio.to_thread`` and a ``live.poster.Poster`` thread posts at
   rate 0. A tick's lateness = the time its GETs finished minus its scheduled time (so it counts
   waiting for the GIL and the Redis lock as well as the GETs themselves). Figure: the worst
   lateness of the ticks scheduled while the backup ran, in ms (floor: <= 50 ms).
   The scenario runs with main.py's thread switch interval (main.SWITCH_INTERVAL_SECONDS), as
   the live run does. Should a rate-0 Poster still starve the backup of the GIL, the Poster is
   stopped after ``Settings.poster_cap_s`` seconds of backup; only ticks scheduled while both ran
   count, and the backup's total time is reported.
"""

from __future__ import annotations

import asyncio
import collections
import gc
import math
import random
import sqlite3
import sys
import time

import api_layer
import config
import db
import redis_adapter
from backup_data import BackupDataManager

from .common import (Result, Row, Settings, flush_redis, fmt_rate, fmt_ratio, interleave, median,
                     progress, ratio, verdict)
from .read_path import sql_table

BACKUP_MIN_RATIO = 0.7
"""The backup must reach at least this fraction of a bare executemany's rows/s."""
LATENESS_MAX_MS = 50.0
"""No GET tick may finish more than this many ms after its scheduled time during a backup."""

TableRow = tuple[int, int, str, float]
"""A table row: (user_id, match_id, emoticon_type, timestamp)."""


class PendingEvents:
    """``count`` generated events, encoded once, ready to be pushed into Redis again and again."""

    def __init__(self, count: int, seed: int) -> None:
        rng = random.Random(seed)
        stamp = time.time()
        self.rows: list[TableRow] = []
        self.encoded: dict[int, list[str]] = collections.defaultdict(list)
        for number in range(count):
            user_id = rng.randint(1, config.MAX_USERS)
            match_id = rng.randint(1, config.MAX_MATCHES)
            emoticon = rng.choice(config.EMOTICON_TYPES)
            timestamp = stamp + number * 1e-4
            self.rows.append((user_id, match_id, emoticon, timestamp))
            self.encoded[match_id].append(redis_adapter.encode_event(
                {"user_id": user_id, "emoticon_type": emoticon, "timestamp": timestamp,
                 "match_id": match_id}))

    def __len__(self) -> int:
        return len(self.rows)

    def push(self) -> None:
        """Flush Redis and put every event on its match's ``match_data_*`` list (untimed)."""
        flush_redis()
        redis = redis_adapter.get_redis()
        for match_id, texts in self.encoded.items():
            redis.rpush(redis_adapter.match_data_key(match_id), *texts)


def backup_rows_per_s(pending: PendingEvents) -> float:
    """Rows/s of one BackupDataManager.run() moving every pending event into a fresh table."""
    pending.push()
    table = db.ReactionsTable(":memory:")
    try:
        manager = BackupDataManager(redis_adapter.get_adapter(), table)
        started = time.perf_counter()
        result = manager.run()
        seconds = time.perf_counter() - started
        assert result.events == len(pending) == table.count(), (result, table.count())
    finally:
        table.close()
        flush_redis()
    return len(pending) / seconds


def executemany_rows_per_s(pending: PendingEvents) -> float:
    """Rows/s of a bare executemany of the same rows in one transaction on a fresh indexed table."""
    connection: sqlite3.Connection = sql_table(with_index=True)
    try:
        started = time.perf_counter()
        connection.execute("begin")
        connection.executemany(db.INSERT, pending.rows)
        connection.execute("commit")
        seconds = time.perf_counter() - started
    finally:
        connection.close()
    return len(pending) / seconds


# -- b. lateness of the GET tick -----------------------------------------------------------------

async def get_ticker(interval: float, ticks: list[tuple[float, float, float]]) -> None:
    """Forever: at each slot of a fixed ``interval`` schedule, GETMethod every match.

    Appends ``(scheduled, started, finished)`` loop times per tick to ``ticks``.
    """
    loop = asyncio.get_running_loop()
    get = api_layer.GETMethod
    next_at = loop.time() + interval
    while True:
        await asyncio.sleep(max(0.0, next_at - loop.time()))
        started = loop.time()
        for match_id in range(1, config.MAX_MATCHES + 1):
            get(match_id)
        finished = loop.time()
        ticks.append((next_at, started, finished))
        missed = max(0, math.floor((finished - next_at) / interval))
        next_at += (missed + 1) * interval


async def lateness_scenario(pending: PendingEvents, interval: float, seed: int,
                            poster_cap_s: float) -> dict:
    """One run: Poster at rate 0 + GET ticker, then the backup in a worker thread; the figures.

    The Poster stops after ``poster_cap_s`` seconds of backup if the backup is still running
    (it can be starved for minutes; see the module docstring); only ticks scheduled while both
    ran are counted.
    """
    from live.poster import Poster

    loop = asyncio.get_running_loop()
    table = db.ReactionsTable(":memory:")
    manager = BackupDataManager(redis_adapter.get_adapter(), table)
    poster = Poster(0, random.Random(seed))
    ticks: list[tuple[float, float, float]] = []
    poster.start()
    ticker = asyncio.create_task(get_ticker(interval, ticks))
    try:
        await asyncio.sleep(3 * interval)  # the ticker and poster are in full swing
        began, posted_before = loop.time(), poster.posted
        backup = asyncio.ensure_future(asyncio.to_thread(manager.run))
        done, _ = await asyncio.wait({backup}, timeout=poster_cap_s)
        overlap_end, posted_during = loop.time(), poster.posted - posted_before
        poster.stop()
        result = await backup
        ended = loop.time()
    finally:
        ticker.cancel()
        await asyncio.gather(ticker, return_exceptions=True)
        poster.stop()
        await asyncio.to_thread(poster.join)
        table.close()
    during = [(finished - scheduled, started - scheduled) for scheduled, started, finished
              in ticks if began <= scheduled <= min(ended, overlap_end)]
    late = sorted(finish for finish, _ in during) or [0.0]
    return {"backup_events": result.events, "backup_s": ended - began,
            "overlap_s": min(ended, overlap_end) - began, "poster_capped": not done,
            "posted_during_backup": posted_during, "ticks": len(during),
            "worst_ms": late[-1] * 1000, "median_ms": median(late) * 1000,
            "worst_start_ms": max((start for _, start in during), default=0.0) * 1000}


def run_lateness(settings: Settings, pending: PendingEvents) -> dict:
    """``settings.lateness_repeats`` lateness scenarios; worst and median-of-worst lateness."""
    import main

    runs, switch_interval = [], sys.getswitchinterval()
    sys.setswitchinterval(main.SWITCH_INTERVAL_SECONDS)  # as in the live run
    # This process holds a million generated rows (pending.rows) that main.py never has; left
    # to the garbage collector they make each full collection a pause of ~80 ms on the ticks.
    gc.freeze()
    try:
        for repeat in range(settings.lateness_repeats):
            pending.push()
            runs.append(asyncio.run(lateness_scenario(pending, settings.tick_interval_s, repeat,
                                                      settings.poster_cap_s)))
            flush_redis()
    finally:
        gc.unfreeze()
        sys.setswitchinterval(switch_interval)
    worst = [run["worst_ms"] for run in runs]
    return {"interval_ms": settings.tick_interval_s * 1000, "matches": config.MAX_MATCHES,
            "worst_ms": max(worst), "median_worst_ms": median(worst),
            "worst_start_ms": max(run["worst_start_ms"] for run in runs),
            "median_backup_s": median([run["backup_s"] for run in runs]),
            "median_overlap_s": median([run["overlap_s"] for run in runs]),
            "poster_capped": any(run["poster_capped"] for run in runs),
            "max_ms": LATENESS_MAX_MS, "pass": max(worst) <= LATENESS_MAX_MS, "runs": runs}


def lateness_note(lateness: dict, poster_cap_s: float) -> str:
    """The reference cell of the lateness row: worst start, and how long the backup took."""
    note = (f"start {lateness['worst_start_ms']:.1f} ms; backup took "
            f"{lateness['median_backup_s']:.0f} s")
    if lateness["poster_capped"]:
        note += f", Poster stopped at {poster_cap_s:g} s"
    return note


def run_backup(settings: Settings) -> Result:
    """Item 5: the throughput comparison, then the lateness scenario."""
    progress(f"5. backup: encoding {settings.backup_events:,} pending events")
    pending = PendingEvents(settings.backup_events, seed=6)
    progress(f"5a. backup vs executemany: {settings.repeats} repeats")
    backup, bare = interleave(settings.repeats, lambda: backup_rows_per_s(pending),
                              lambda: executemany_rows_per_s(pending))
    share = ratio(median(backup), median(bare))
    throughput = {"events": len(pending), "backup_rows_per_s": median(backup),
                  "executemany_rows_per_s": median(bare), "ratio": share,
                  "min_ratio": BACKUP_MIN_RATIO, "pass": share >= BACKUP_MIN_RATIO,
                  "samples": {"backup_rows_per_s": backup, "executemany_rows_per_s": bare}}
    progress(f"5b. GET tick lateness during backup + Poster: {settings.lateness_repeats} repeats")
    lateness = run_lateness(settings, pending)
    figures = {"throughput": throughput, "lateness": lateness, "repeats": settings.repeats}
    rows = [
        Row("5", f"backup of {len(pending):,} pending events",
            f"{fmt_rate(throughput['backup_rows_per_s'])} rows/s",
            f"executemany {fmt_rate(throughput['executemany_rows_per_s'])} rows/s",
            fmt_ratio(share), f">= {BACKUP_MIN_RATIO}x", verdict(throughput["pass"])),
        Row("5", f"GET tick every {lateness['interval_ms']:g} ms during backup+Poster: "
                 "worst lateness",
            f"{lateness['worst_ms']:.1f} ms", lateness_note(lateness, settings.poster_cap_s), "",
            f"<= {LATENESS_MAX_MS:g} ms", verdict(lateness["pass"])),
    ]
    return Result(figures, rows)
