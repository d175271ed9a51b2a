"""What MAX_MATCHES costs: the figures behind the limits in settings.py (docs/configuration.md).

``python3 -m benchmarks.matches`` prints, for each number of matches N:
1. a GET tick: ``LiveRun._read_matches``, the read a GET tick does in its worker thread (one MGET
   per match), with every match holding counters; first idle, then while a live.poster.Poster posts at
   rate 0 under main.py's thread switch interval; the median of 3 ticks;
2. a backup of one list per match (one event each): ``BackupDataManager.run()``, on ``:memory:``
   and on a database file in a temporary directory (each list is its own transaction there, so
   each costs a commit on disk).
"""

from __future__ import annotations

import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

import benchmarks  # noqa: F401  (puts the app's modules on sys.path)
from benchmarks.common import config_values, flush_redis, quiet_logging

import main
from live.poster import Poster
from live.run import LiveRun
from api_layer import POSTMethod
from backup_data import BackupDataManager
from db import ReactionsTable
from redis_adapter import get_adapter

GET_MATCHES = (10_000, 100_000, 1_000_000)
BACKUP_MATCHES = {":memory:": (1_000, 10_000, 100_000), "file": (100, 1_000, 3_000)}
TICKS = 3


def tick_seconds(run: LiveRun) -> float:
    """The median, over TICKS ticks, of the seconds one GET tick's read takes."""
    times = []
    for _ in range(TICKS):
        started = time.perf_counter()
        run._read_matches(set())
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def post_one_each(matches: int) -> None:
    """One event in each of ``matches`` matches (so as many counters and lists)."""
    for match_id in range(1, matches + 1):
        POSTMethod(1, match_id, "heart")


def get_tick(matches: int) -> tuple[float, float]:
    """(idle, while posting at rate 0): seconds of one GET tick over ``matches`` matches."""
    flush_redis()
    with config_values(MAX_MATCHES=matches), quiet_logging():
        post_one_each(matches)
        run = LiveRun.__new__(LiveRun)  # the read needs no table, poster or loop
        idle = tick_seconds(run)
        poster = Poster(0, random.Random(1))
        previous = sys.getswitchinterval()
        sys.setswitchinterval(main.SWITCH_INTERVAL_SECONDS)
        poster.start()
        try:
            busy = tick_seconds(run)
        finally:
            poster.stop()
            poster.join()
            sys.setswitchinterval(previous)
    flush_redis()
    return idle, busy


def backup_seconds(matches: int, path: str) -> float:
    """Seconds one backup takes to move one list (of one event) per match into ``path``."""
    flush_redis()
    table = ReactionsTable(path)
    try:
        with config_values(MAX_MATCHES=matches), quiet_logging():
            post_one_each(matches)
            result = BackupDataManager(get_adapter(), table).run()
        assert result.events == matches == table.count()
        return result.seconds
    finally:
        table.close()
        flush_redis()


def main_() -> None:
    for matches in GET_MATCHES:
        idle, busy = get_tick(matches)
        print(f"{matches:>9,} matches: GET tick {idle:.3f} s idle ({idle / matches * 1e6:.1f} us "
              f"a match), {busy:.3f} s while posting at rate 0", flush=True)
    with tempfile.TemporaryDirectory() as directory:
        for where, sizes in BACKUP_MATCHES.items():
            for matches in sizes:
                path = where if where == ":memory:" else str(Path(directory) / f"{matches}.db")
                seconds = backup_seconds(matches, path)
                print(f"{matches:>9,} matches: backup of one list each to {where}: {seconds:.3f} s "
                      f"({seconds / matches * 1e3:.2f} ms a list)", flush=True)


if __name__ == "__main__":
    main_()
