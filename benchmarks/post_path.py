"""Items 1 and 2: the POST path on one thread, and main.py's posting thread at rate 0.

1. ``POSTMethod`` called in a tight loop over pre-generated events, against the floor: the same
   loop doing only a plain dict counter increment (the same ``{match_id}_{emoticon_type}`` key) and
   a plain list append of the same record (the same four-field dict with ``time.time()``); no lock,
   no validation, no encoding. Figure: events/s; ratio POSTMethod / floor (floor: >= 0.5x).
2. ``Poster(0, random.Random(seed))`` running for a fixed time: events/s including its
   random generation, against item 1's POSTMethod loop.
"""

from __future__ import annotations

import random
import time
from typing import Any

import api_layer
import config

from .common import (Event, Result, Row, Settings, flush_redis, fmt_rate, fmt_ratio, interleave,
                     make_events, median, progress, ratio, verdict)

POST_FLOOR_MIN_RATIO = 0.5
"""POSTMethod events/s must be at least this fraction of the dict+list floor's."""


def post_loop_eps(events: list[Event]) -> float:
    """Events/s of POSTMethod over ``events`` on this thread (Redis flushed before, untimed)."""
    flush_redis()
    post = api_layer.POSTMethod
    started = time.perf_counter()
    for user_id, match_id, emoticon in events:
        post(user_id, match_id, emoticon)
    seconds = time.perf_counter() - started
    flush_redis()
    return len(events) / seconds


def floor_loop_eps(events: list[Event]) -> float:
    """Events/s of the floor: a dict counter increment and a list append of the record, inline."""
    counters: dict[str, int] = {}
    records: list[dict] = []
    now = time.time
    started = time.perf_counter()
    for user_id, match_id, emoticon in events:
        key = f"{match_id}_{emoticon}"
        counters[key] = counters.get(key, 0) + 1
        records.append({"user_id": user_id, "emoticon_type": emoticon,
                        "timestamp": now(), "match_id": match_id})
    seconds = time.perf_counter() - started
    assert len(records) == len(events) == sum(counters.values())
    return len(events) / seconds


def run_post_path(settings: Settings) -> Result:
    """Item 1: POSTMethod loop vs the dict+list floor, ``settings.repeats`` times each."""
    progress(f"1. POST path: {settings.post_events:,} events x {settings.repeats} repeats")
    events = make_events(settings.post_events, seed=1)
    post, floor = interleave(settings.repeats, lambda: post_loop_eps(events),
                             lambda: floor_loop_eps(events))
    post_eps, floor_eps = median(post), median(floor)
    share = ratio(post_eps, floor_eps)
    passed = share >= POST_FLOOR_MIN_RATIO
    figures = {"events": len(events), "repeats": settings.repeats,
               "post_eps": post_eps, "floor_eps": floor_eps, "ratio": share,
               "min_ratio": POST_FLOOR_MIN_RATIO, "pass": passed,
               "samples": {"post_eps": post, "floor_eps": floor}}
    row = Row("1", "POSTMethod loop, 1 thread", f"{fmt_rate(post_eps)} ev/s",
              f"dict+list floor {fmt_rate(floor_eps)} ev/s", fmt_ratio(share),
              f">= {POST_FLOOR_MIN_RATIO}x", verdict(passed))
    return Result(figures, [row])


def poster_eps(seconds: float, seed: int) -> float:
    """Events/s that one live.poster.Poster at rate 0 posts in ``seconds`` (random generation included)."""
    flush_redis()
    _, eps = run_poster_for(seconds, seed)
    flush_redis()
    return eps


def run_poster_for(seconds: float, seed: int) -> tuple[Any, float]:
    """Run one live.poster.Poster at rate 0 for ``seconds``; (the stopped poster, its events/s)."""
    from live.poster import Poster  # imported late: heavy to load, and needed here only

    poster = Poster(0, random.Random(seed))
    started = time.perf_counter()
    poster.start()
    time.sleep(seconds)
    posted, elapsed = poster.posted, time.perf_counter() - started
    poster.stop()
    poster.join()
    return poster, posted / elapsed


def run_poster(settings: Settings, post_loop: float | None = None) -> Result:
    """Item 2: live.poster.Poster at rate 0; ``post_loop`` is item 1's POSTMethod events/s, if known."""
    progress(f"2. Poster thread: {settings.poster_seconds:g} s x {settings.repeats} repeats")
    samples = [poster_eps(settings.poster_seconds, seed=repeat)
               for repeat in range(settings.repeats)]
    eps = median(samples)
    figures = {"eps": eps, "seconds_per_repeat": settings.poster_seconds,
               "repeats": settings.repeats, "matches": config.MAX_MATCHES,
               "users": config.MAX_USERS, "samples": samples}
    reference = share = ""
    if post_loop:
        figures["ratio_to_post_loop"] = ratio(eps, post_loop)
        reference = f"POSTMethod loop {fmt_rate(post_loop)} ev/s"
        share = fmt_ratio(figures["ratio_to_post_loop"])
    row = Row("2", "live.poster.Poster thread, rate 0", f"{fmt_rate(eps)} ev/s", reference, share)
    return Result(figures, [row])
