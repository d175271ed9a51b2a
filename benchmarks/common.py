"""Shared pieces of the benchmarks: settings, repeats, generated events, state resets, table rows.

Units are in the names: ``*_eps`` events per second, ``*_us`` microseconds per call, ``*_ms``
milliseconds, ``*_mb`` mebibytes (2**20 bytes), ``*_s`` seconds.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import random
import statistics
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Sequence

import config
import redis_adapter

from . import ROOT

__all__ = ["ROOT", "Event", "Settings", "Row", "Result", "median", "interleave", "ratio",
           "make_events", "flush_redis", "config_values", "quiet_logging", "progress",
           "fmt_rate", "fmt_ratio", "fmt_us", "verdict"]

Event = tuple[int, int, str]
"""A generated reaction: (user_id, match_id, emoticon_type)."""


@dataclass(frozen=True)
class Settings:
    """Sizes of one benchmark run; ``Settings.full_run()`` or ``Settings.quick_run()``."""

    quick: bool
    repeats: int
    """Times each comparison runs (both sides, interleaved); the median is reported."""
    post_events: int
    """Events per repeat of the POSTMethod loop and of its floor (item 1)."""
    poster_seconds: float
    """Seconds the Poster thread runs per repeat (item 2)."""
    read_sizes: tuple[int, ...]
    """Rows in the table for the GET vs SQL comparison (item 3)."""
    match_counts: tuple[int, ...]
    """config.MAX_MATCHES values for the GET scaling and the dict floor (item 3)."""
    call_budget_s: float
    """Seconds one repeat of a per-call timing loop aims to take (item 3)."""
    write_events_memory: int
    """Events per repeat, POST vs INSERT+commit on a :memory: database (item 4)."""
    write_events_file: int
    """Events per repeat, POST vs INSERT+commit on a file database (item 4)."""
    backup_events: int
    """Pending events moved per backup repeat and per lateness repeat (item 5)."""
    lateness_repeats: int
    """Repeats of the lateness scenario (backup + Poster + GET tick) (item 5)."""
    tick_interval_s: float
    """Period of the GET tick in the lateness scenario, seconds (item 5)."""
    poster_cap_s: float
    """Seconds of backup after which the lateness scenario's Poster stops (item 5)."""
    memory_events: int
    """Events posted under tracemalloc for the bytes-per-pending-event figure (item 6)."""
    run_seconds: float
    """Duration of each ``python3 main.py`` subprocess run (item 6)."""
    ingest_events: int = 200_000
    """Events per repeat of the batched ingest comparisons (item 7)."""
    ingest_events_redis: int = 20_000
    """Events per repeat of one-write-per-POST vs batched on redis-server (item 7)."""
    lock_keys: int = 1_000_000
    """Keys present in the server while its lock holds are timed (item 8)."""
    reconcile_events: tuple[int, ...] = (1_000_000,)
    """Backlogs pending in Redis while one reconciliation is measured (item 10); the flag
    --reconcile-8m adds 8,000,000 (a few minutes and about 3 GB of memory in all)."""
    reconcile_in_memory_max: int = 1_000_000
    """The largest of those backlogs also measured on the in-memory Redis (item 10)."""
    http_repeats: int = 5
    """Server starts per HTTP server for the wrk figures, interleaved across servers (item 10)."""
    http_wrk_seconds: int = 10
    """Seconds of each wrk run, POST and GET, after a 1 s warm-up (item 10)."""
    viewer_levels: tuple[int, ...] = (1_000, 5_000, 10_000, 15_000)
    """Open stream viewers at each step of the viewers figures, in all (item 10)."""
    viewer_window_s: float = 6.0
    """Seconds of GET ticks (one a second) recorded at each viewers level (item 10)."""
    backup_interval_s: int = 12
    """The backup interval of the GET-during-backup run: events pile up this long (item 10)."""
    backup_window_s: int = 4
    """Seconds of wrk GET before the backup (poster alone) and during it (item 10)."""
    backup_repeats: int = 2
    """Runs of the GET-during-backup scenario (item 10)."""
    http_parts: str = "abc"
    """The parts of item 10 to run: a. requests/s, b. viewers, c. GET during a backup."""

    @classmethod
    def full_run(cls) -> Settings:
        return cls(quick=False, repeats=5, post_events=200_000, poster_seconds=2.0,
                   read_sizes=(10_000, 100_000, 1_000_000), match_counts=(10, 1_000, 100_000),
                   call_budget_s=0.2, write_events_memory=100_000, write_events_file=3_000,
                   backup_events=1_000_000, lateness_repeats=2, tick_interval_s=0.05,
                   poster_cap_s=30.0, memory_events=100_000, run_seconds=60.0)

    @classmethod
    def quick_run(cls) -> Settings:
        return cls(quick=True, repeats=3, post_events=20_000, poster_seconds=0.5,
                   read_sizes=(10_000, 50_000), match_counts=(10, 1_000, 100_000),
                   call_budget_s=0.05, write_events_memory=20_000, write_events_file=200,
                   backup_events=30_000, lateness_repeats=1, tick_interval_s=0.05,
                   poster_cap_s=3.0, memory_events=20_000, run_seconds=4.0,
                   ingest_events=20_000, ingest_events_redis=3_000,
                   lock_keys=100_000, reconcile_events=(100_000,), http_repeats=1,
                   http_wrk_seconds=2, viewer_levels=(200, 1_000), viewer_window_s=3.5,
                   backup_interval_s=4, backup_window_s=1, backup_repeats=1)


@dataclass
class Row:
    """One line of the printed table. Empty strings print as blanks."""

    item: str
    figure: str
    value: str
    reference: str = ""
    ratio: str = ""
    floor: str = ""
    verdict: str = ""


@dataclass
class Result:
    """What one benchmark item returns: its figures (JSON-ready) and its table rows."""

    figures: dict[str, Any]
    rows: list[Row] = field(default_factory=list)


# -- repeats and medians -------------------------------------------------------------------------

def median(samples: Sequence[float]) -> float:
    """The median of ``samples`` (same unit as they are)."""
    return statistics.median(samples)


def interleave(repeats: int, *sides: Callable[[], float]) -> list[list[float]]:
    """Run each side ``repeats`` times, alternating their order each round; samples per side.

    Each side does its own (untimed) setup and returns its own measurement. Alternating the order
    spreads any drift (caches, heap growth, CPU frequency) over both sides.
    """
    samples: list[list[float]] = [[] for _ in sides]
    for round_number in range(repeats):
        order = list(enumerate(sides))
        if round_number % 2:
            order.reverse()
        for index, side in order:
            gc.collect()
            samples[index].append(side())
    return samples


def ratio(app: float, reference: float) -> float:
    """``app / reference``, or 0.0 when the reference is 0 (never raises)."""
    return app / reference if reference else 0.0


# -- generated events and shared state ----------------------------------------------------------

def make_events(count: int, seed: int, matches: int | None = None,
                users: int | None = None) -> list[Event]:
    """``count`` random reactions drawn like live.poster.Poster draws them (randint, choice)."""
    rng = random.Random(seed)
    matches = config.MAX_MATCHES if matches is None else matches
    users = config.MAX_USERS if users is None else users
    emoticons = config.EMOTICON_TYPES
    return [(rng.randint(1, users), rng.randint(1, matches), rng.choice(emoticons))
            for _ in range(count)]


def flush_redis() -> None:
    """Empty the process-wide Redis (as the tests do) and collect garbage."""
    redis_adapter.get_redis().flushdb()
    gc.collect()


@contextlib.contextmanager
def config_values(**values: Any) -> Iterator[None]:
    """Set config.NAME = value for the block; restore the old values afterwards."""
    saved = {name: getattr(config, name) for name in values}
    try:
        for name, value in values.items():
            setattr(config, name, value)
        yield
    finally:
        for name, value in saved.items():
            setattr(config, name, value)


@contextlib.contextmanager
def quiet_logging() -> Iterator[None]:
    """Silence every logger (the app's included) for the block."""
    previous = logging.root.manager.disable
    logging.disable(logging.CRITICAL)
    try:
        yield
    finally:
        logging.disable(previous)


def progress(message: str) -> None:
    """One progress line on stderr (stdout carries only the table)."""
    print(f"[benchmarks {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# -- formatting ----------------------------------------------------------------------------------

def fmt_rate(events_per_s: float) -> str:
    """An events/s figure with thousands separators."""
    return f"{events_per_s:,.0f}"


def fmt_ratio(value: float) -> str:
    """A ratio as ``0.123x`` / ``12.3x`` / ``1,234x`` (3 significant digits or so)."""
    if value >= 100:
        return f"{value:,.0f}x"
    if value >= 10:
        return f"{value:.1f}x"
    if value >= 0.1:
        return f"{value:.2f}x"
    return f"{value:.2g}x"


def fmt_us(microseconds: float) -> str:
    """A per-call time in microseconds, or milliseconds when large."""
    if microseconds >= 10_000:
        return f"{microseconds / 1000:,.1f} ms"
    if microseconds >= 100:
        return f"{microseconds:,.0f} us"
    return f"{microseconds:.2f} us"


def verdict(passed: bool) -> str:
    """The pass/miss column."""
    return "pass" if passed else "MISS"
