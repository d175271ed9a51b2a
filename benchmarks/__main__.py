"""``python3 -m benchmarks [--quick] [--json FILE]``: benchmark the Live Reactions pipeline.

Runs the ten items below in this process (items 6 and 10 also start ``python3 main.py``
and other server subprocesses) and prints ONE table: each figure's median, what it is compared with, the ratio, and
this project's floor for it with a pass/miss column (docs/performance.md).

1. POST path: POSTMethod in a tight loop vs a dict-counter + list-append floor (events/s).
2. live.poster.Poster at rate 0 (events/s, random generation included).
3. Read path: GETMethod vs the seed's SQL aggregate on 10k/100k/1M rows, with and without the
   index; vs a bare dict lookup; its cost over events and over 10/1,000/100,000 matches (us/call).
4. Write path: POST through Redis vs one INSERT + commit per event, :memory: and file (events/s).
5. Backup: BackupDataManager vs a bare executemany (rows/s); worst GET tick lateness while it
   runs in asyncio.to_thread next to a Poster thread (ms).
6. Memory: bytes per pending event (tracemalloc); peak RSS of 60 s main.py runs; RSS over time.
7. Batched ingest (--ingest-batch 1000 vs 1) on the in-memory server and a local redis-server:
   POSTMethod, the Poster at rate 0, vs the dict+list floor, vs raw redis-py pipelining.
8. Lock holds: the longest time one InMemoryRedis command holds the server lock, with 1 M keys
   present (100,000 with --quick); KEYS and FLUSHDB excepted.
9. Reconciliation cost: ``main.py --reconcile`` with 1 M events pending on a local redis-server
   (100,000 with --quick; --reconcile-8m adds 8 M): time, client peak memory, the longest Redis
   stall; and reconcile() on the in-memory Redis.
10. The HTTP API with real clients, each server its own process: requests/s and p99 of POST
    and GET with wrk (32 connections) on the built-in server, uvicorn on the same app and a
    FastAPI app on uvicorn; stream viewers held, tick delivery and RSS per viewer; GET p99
    during a backup of ~1 M events beside a poster at rate 0 (benchmarks/http_api.py). Its
    parts a, b, c run alone with ``--only 10a`` (and so on); ``--during-backup-runs N`` sets how
    many runs 10c makes (about 25 s each).

Each comparison runs both sides in this process on the same generated events, interleaved,
``repeats`` times (5; 3 with --quick), and reports the medians and their ratio. The full run takes
about 4 minutes on 2 cores for items 1-6 (1 core for the main.py runs) plus about 85 s for item 7
and 20 s for item 9 (about 70 s more with --reconcile-8m), about 9 minutes for item 10;
--quick about 20 s plus 15 s, and about 55 s for item 10. Between
cases the process-wide Redis is flushed and any config value changed is restored. The app's
logging is silenced. The exit status is 0 when every item ran, whatever the pass/miss column says.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import time
from typing import Any, Callable, Sequence

from . import ROOT
from .backup import run_backup
from .batched_ingest import run_batched_ingest
from .http_api import run_http_api
from .lock_hold import run_lock_hold
from .reconcile_cost import run_reconcile_cost
from .common import Result, Row, Settings, progress, quiet_logging
from .memory import run_memory
from .post_path import run_post_path, run_poster
from .read_path import run_read_path
from .report import format_table, write_json
from .write_path import run_write_path

ITEMS = {1: "post_path", 2: "poster", 3: "read_path", 4: "write_path", 5: "backup", 6: "memory",
         7: "batched_ingest", 8: "lock_hold", 9: "reconcile_cost", 10: "http_api"}
"""Item number -> its key in the JSON file."""


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command line: --quick, --json FILE, --repeats N, --only ITEMS,
    --during-backup-runs N."""
    parser = argparse.ArgumentParser(prog="python3 -m benchmarks",
                                     description="Benchmark the Live Reactions pipeline.")
    parser.add_argument("--quick", action="store_true",
                        help="small sizes, 3 repeats, 4 s main.py runs: about 40 s in all")
    parser.add_argument("--json", metavar="FILE", help="also write every figure to FILE (JSON)")
    parser.add_argument("--repeats", type=int, default=None,
                        help="override the repeats per comparison (default 5; 3 with --quick)")
    parser.add_argument("--only", default=None, metavar="ITEMS",
                        help="comma-separated item numbers to run, e.g. 1,3 (default: all); "
                             "10a, 10b or 10c runs that part of item 10 only")
    parser.add_argument("--during-backup-runs", type=int, default=None, metavar="N",
                        help="item 10c: runs of GET during a backup (default 2; the verdict "
                             "takes the worst)")
    parser.add_argument("--reconcile-8m", action="store_true",
                        help="item 9 also with 8,000,000 events pending (a few minutes more)")
    return parser.parse_args(argv)


def choose_settings(args: argparse.Namespace) -> Settings:
    """The full or quick sizes, with --repeats, --during-backup-runs and the parts of item 10
    in --only applied."""
    settings = Settings.quick_run() if args.quick else Settings.full_run()
    if args.repeats:
        settings = Settings(**{**vars(settings), "repeats": args.repeats})
    if args.during_backup_runs:
        settings = Settings(**{**vars(settings), "backup_repeats": args.during_backup_runs})
    settings = Settings(**{**vars(settings), "http_parts": chosen_parts(args.only)})
    if args.reconcile_8m:
        settings = Settings(**{**vars(settings), "reconcile_events":
                               (*settings.reconcile_events, 8_000_000)})
    return settings


HTTP_PARTS = "abc"
"""Item 10's parts: a. requests/s and p99, b. stream viewers, c. GET during a backup."""


def _choices(text: str) -> list[tuple[int, str]]:
    """--only's choices as (item, part letters): "1,10c" is [(1, ""), (10, "c")]."""
    choices = []
    for choice in (part.strip() for part in text.split(",")):
        if not choice:
            continue
        number = choice.rstrip(HTTP_PARTS)
        letters = choice[len(number):]
        if not number.isdigit() or (letters and int(number) != 10):
            raise SystemExit(f"unknown item {choice!r}; items are 1..{len(ITEMS)}, and 10a, "
                             "10b, 10c for a part of item 10")
        choices.append((int(number), letters))
    return choices


def chosen_items(text: str | None) -> list[int]:
    """The item numbers of --only ("1,3", "10c"), or all of them."""
    if not text:
        return list(ITEMS)
    items = sorted({item for item, _ in _choices(text)})
    unknown = [item for item in items if item not in ITEMS]
    if unknown:
        raise SystemExit(f"unknown item(s) {unknown}; items are 1..{len(ITEMS)}")
    return items


def chosen_parts(text: str | None) -> str:
    """The parts of item 10 that --only asks for ("10c": "c"); all of them for a bare 10."""
    wanted = "".join(letters or HTTP_PARTS for item, letters in _choices(text or "")
                     if item == 10)
    return "".join(part for part in HTTP_PARTS if part in wanted) or HTTP_PARTS


def run_items(settings: Settings, items: list[int]) -> tuple[dict[str, Any], list[Row]]:
    """Run the chosen items in order; their figures by JSON key, and all their table rows."""
    figures: dict[str, Any] = {}
    rows: list[Row] = []
    seconds: dict[str, float] = {}
    runners: dict[int, Callable[[], Result]] = {
        1: lambda: run_post_path(settings),
        2: lambda: run_poster(settings, figures.get("post_path", {}).get("post_eps")),
        3: lambda: run_read_path(settings),
        4: lambda: run_write_path(settings),
        5: lambda: run_backup(settings),
        6: lambda: run_memory(settings),
        7: lambda: run_batched_ingest(settings),
        8: lambda: run_lock_hold(settings),
        9: lambda: run_reconcile_cost(settings),
        10: lambda: run_http_api(settings),
    }
    for item in items:
        started = time.perf_counter()
        result = runners[item]()
        seconds[ITEMS[item]] = time.perf_counter() - started
        figures[ITEMS[item]] = result.figures
        rows.extend(result.rows)
    figures["seconds_per_item"] = seconds
    return figures, rows


def git_state() -> str:
    """``git describe --always --dirty`` of the project, or "unknown" (figures depend on it)."""
    try:
        return subprocess.run(["git", "describe", "--always", "--dirty"], cwd=ROOT,
                              capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmarks, print the table, write the JSON; 0."""
    args = parse_args(argv)
    settings = choose_settings(args)
    items = chosen_items(args.only)
    started = time.perf_counter()
    mode = "quick" if settings.quick else "full"
    progress(f"{mode} run, {settings.repeats} repeats, items {items}")
    with quiet_logging():
        figures, rows = run_items(settings, items)
    seconds = time.perf_counter() - started
    meta = {"mode": mode, "repeats": settings.repeats, "items": items, "seconds": seconds,
            "git": git_state(),
            "python": platform.python_version(), "platform": platform.platform(),
            "cpus": os.cpu_count(), "started": time.strftime("%Y-%m-%d %H:%M:%S",
                                                             time.localtime(time.time() - seconds)),
            "settings": vars(settings)}
    title = (f"Live Reactions benchmarks -- {mode} run, {settings.repeats} repeats, medians; "
             f"Python {meta['python']}, {meta['cpus']} CPUs; took {seconds:.0f} s")
    print(format_table(title, rows))
    if args.json:
        write_json(args.json, {"meta": meta, **figures})
        progress(f"figures written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
