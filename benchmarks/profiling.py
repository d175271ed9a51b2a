"""``python3 -m benchmarks.profiling``: cProfile of the three hot paths, top entries by tottime.

- POST: POSTMethod over ``--events`` generated events on one thread;
- backup: BackupDataManager.run() moving ``--events`` pending events into a ``:memory:`` table;
- GET: GETMethod over ``--events`` random match ids.

cProfile's own per-call overhead inflates the cost of small functions, so read the shares between
entries (where the time goes), not the absolute times; the benchmarks give the real rates.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import random
import sys
from typing import Callable, Sequence

import api_layer
import config
import db
import redis_adapter
from backup_data import BackupDataManager

from .backup import PendingEvents
from .common import flush_redis, make_events, quiet_logging


def profile(label: str, work: Callable[[], object], top: int) -> str:
    """Run ``work`` under cProfile; the ``top`` entries by tottime as text under ``label``."""
    profiler = cProfile.Profile()
    profiler.enable()
    work()
    profiler.disable()
    text = io.StringIO()
    stats = pstats.Stats(profiler, stream=text)
    stats.sort_stats(pstats.SortKey.TIME).print_stats(top)
    body = text.getvalue()
    body = body[body.index("   Ordered by"):] if "   Ordered by" in body else body
    return f"== {label} ==\n{body.strip()}\n"


def post_work(count: int) -> Callable[[], None]:
    """POSTMethod over ``count`` generated events (Redis flushed first)."""
    events = make_events(count, seed=7)
    flush_redis()

    def work() -> None:
        post = api_layer.POSTMethod
        for user_id, match_id, emoticon in events:
            post(user_id, match_id, emoticon)
    return work


def backup_work(count: int) -> Callable[[], object]:
    """One BackupDataManager.run() moving ``count`` pending events into a fresh table."""
    pending = PendingEvents(count, seed=8)
    pending.push()
    manager = BackupDataManager(redis_adapter.get_adapter(), db.ReactionsTable(":memory:"))
    return manager.run


def get_work(count: int) -> Callable[[], None]:
    """GETMethod over ``count`` random match ids, counters populated."""
    rng = random.Random(9)
    ids = [rng.randint(1, config.MAX_MATCHES) for _ in range(count)]
    for user_id, match_id, emoticon in make_events(10_000, seed=10):
        api_layer.POSTMethod(user_id, match_id, emoticon)

    def work() -> None:
        get = api_layer.GETMethod
        for match_id in ids:
            get(match_id)
    return work


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m benchmarks.profiling",
                                     description="cProfile the POST, backup and GET hot paths.")
    parser.add_argument("--events", type=int, default=200_000,
                        help="events (or calls) per path (default %(default)s)")
    parser.add_argument("--top", type=int, default=15, help="entries shown per path")
    args = parser.parse_args(argv)
    with quiet_logging():
        for label, make in (("POSTMethod loop", post_work), ("backup run", backup_work),
                            ("GETMethod loop", get_work)):
            work = make(args.events)
            print(profile(f"{label}, {args.events:,} events", work, args.top))
            flush_redis()
    return 0


if __name__ == "__main__":
    sys.exit(main())
