"""Item 7: batched ingest (``--ingest-batch``) against one write per POST, on the in-memory
server and on a local redis-server.

Every comparison runs both sides on the same pre-generated events, interleaved:

a. ``POSTMethod`` over the events with INGEST_BATCH_EVENTS = 1,000 vs 1 (the seed's one
   MULTI/EXEC per POST), the last flush included; on the in-memory server and on redis-server
   (floor there: 4x);
b. the in-memory batched ingest against item 1's dict+list floor (one thread; validation, the
   record and its JSON text included on our side) (floor: 0.35x);
c. ``live.poster.Poster`` at rate 0 with --ingest-batch 1000 vs 1, on both servers (events/s);
d. the product's batched ingest on redis-server against raw redis-py pipelining of the same
   INCRBY/RPUSH commands (one MULTI/EXEC per 1,000 events, records json.dumps'ed) (floor: 0.8x);
e. the ceiling of b.: the events/s of the work b. requires of any POST, alone -- validation
   (validate_reaction), the record with its time.time() (make_event) and its JSON text
   (encode_event) -- each timed over the same events; their per-event times added give the
   most any batched ingest could reach, against the same dict+list floor.

The redis-server is started here on a free loopback port without persistence and stopped after;
when redis-server or redis-py is missing, those rows say so and are skipped.
"""

from __future__ import annotations

import json
import shutil
import time
from typing import Any, Callable

import api_layer
import redis_adapter

from .common import (Event, Result, Row, Settings, config_values, fmt_rate, fmt_ratio,
                     interleave, make_events, median, progress, ratio, verdict)
from .post_path import floor_loop_eps, run_poster_for

BATCH = 1_000
"""Events per flush of the batched side (--ingest-batch 1000)."""
REDIS_MIN_RATIO = 4.0
"""Batched ingest on redis-server must reach this multiple of one write per POST."""
FLOOR_MIN_RATIO = 0.35
"""In-memory batched ingest must reach this fraction of the dict+list floor."""
RAW_MIN_RATIO = 0.8
"""Batched ingest on redis-server must reach this fraction of raw redis-py pipelining."""


def _use(client: Any | None) -> None:
    """Make ``client`` (None: the in-memory server) the process-wide Redis, emptied."""
    redis_adapter.close_ingest_buffer()
    redis_adapter.set_adapter(None if client is None else redis_adapter.RedisAdapter(client, ""))
    redis_adapter.get_adapter().redis.flushdb()


def post_eps(events: list[Event], batch: int) -> float:
    """Events/s of POSTMethod over ``events`` with --ingest-batch ``batch``, last flush included."""
    adapter = redis_adapter.get_adapter()
    adapter.redis.flushdb()
    post = api_layer.POSTMethod
    with config_values(INGEST_BATCH_EVENTS=batch):
        started = time.perf_counter()
        for user_id, match_id, emoticon in events:
            post(user_id, match_id, emoticon)
        redis_adapter.close_ingest_buffer()
        seconds = time.perf_counter() - started
    assert adapter.counter_total() == len(events)
    adapter.redis.flushdb()
    return len(events) / seconds


def poster_eps(seconds: float, batch: int, seed: int) -> float:
    """Events/s one live.poster.Poster at rate 0 posts in ``seconds`` with --ingest-batch ``batch``."""
    adapter = redis_adapter.get_adapter()
    adapter.redis.flushdb()
    with config_values(INGEST_BATCH_EVENTS=batch):
        poster, eps = run_poster_for(seconds, seed)
        redis_adapter.close_ingest_buffer()
    assert poster.refused == 0 and adapter.counter_total() == poster.posted
    adapter.redis.flushdb()
    return eps


def raw_pipeline_eps(events: list[Event], client: Any) -> float:
    """Events/s of bare redis-py: per 1,000 events one MULTI/EXEC of an INCRBY per counter and
    an RPUSH per match of the json.dumps'ed records -- the same commands a flush sends."""
    client.flushdb()
    now = time.time
    started = time.perf_counter()
    for start in range(0, len(events), BATCH):
        counts: dict[str, int] = {}
        texts: dict[str, list[str]] = {}
        for user_id, match_id, emoticon in events[start:start + BATCH]:
            key = f"{match_id}_{emoticon}"
            counts[key] = counts.get(key, 0) + 1
            texts.setdefault(f"match_data_{match_id}", []).append(json.dumps(
                {"user_id": user_id, "emoticon_type": emoticon, "timestamp": now(),
                 "match_id": match_id}))
        pipe = client.pipeline(transaction=True)
        for key, count in counts.items():
            pipe.incrby(key, count)
        for key, records in texts.items():
            pipe.rpush(key, *records)
        pipe.execute()
    seconds = time.perf_counter() - started
    client.flushdb()
    return len(events) / seconds


def required_work_eps(events: list[Event]) -> float:
    """Events/s of the work every POST of the batched ingest must do, with nothing else:
    validation, the record (with its timestamp) and its JSON text, each timed in its own loop
    over ``events``; 1 / (sum of the three per-event times)."""
    validate, now = api_layer.validate_reaction, time.time
    started = time.perf_counter()
    for user_id, match_id, emoticon in events:
        validate(user_id, match_id, emoticon)
    validating = time.perf_counter() - started
    started = time.perf_counter()
    records = [redis_adapter.make_event(user_id, match_id, emoticon, now())
               for user_id, match_id, emoticon in events]
    recording = time.perf_counter() - started
    started = time.perf_counter()
    texts = redis_adapter.encode_events(records)
    encoding = time.perf_counter() - started
    assert len(texts) == len(events)
    return len(events) / (validating + recording + encoding)


def _pair(repeats: int, side_a: Callable[[], float], side_b: Callable[[], float]
          ) -> dict[str, Any]:
    a, b = interleave(repeats, side_a, side_b)
    return {"a_eps": median(a), "b_eps": median(b), "ratio": ratio(median(a), median(b)),
            "samples": {"a_eps": a, "b_eps": b}}


def _row(figure: str, pair: dict, reference: str, floor: float | None = None) -> Row:
    floor_text = verdict_text = ""
    if floor is not None:
        pair["min_ratio"], pair["pass"] = floor, pair["ratio"] >= floor
        floor_text, verdict_text = f">= {floor:g}x", verdict(pair["pass"])
    return Row("7", figure, f"{fmt_rate(pair['a_eps'])} ev/s",
               f"{reference} {fmt_rate(pair['b_eps'])} ev/s", fmt_ratio(pair["ratio"]),
               floor_text, verdict_text)


def _server_cases(settings: Settings, name: str, events: list[Event],
                  redis_events: list[Event], client: Any) -> tuple[dict, list[Row]]:
    """Batched vs per-POST ingest and the Poster both ways, on one server."""
    reps = settings.repeats
    on_redis = client is not None
    cases = {"ingest": _pair(reps, lambda: post_eps(redis_events if on_redis else events, BATCH),
                             lambda: post_eps(redis_events if on_redis else events, 1)),
             "poster": _pair(reps, lambda: poster_eps(settings.poster_seconds, BATCH, 1),
                             lambda: poster_eps(settings.poster_seconds, 1, 1))}
    rows = [_row(f"{name}: POSTMethod, --ingest-batch {BATCH:,}", cases["ingest"],
                 "1 write per POST", REDIS_MIN_RATIO if on_redis else None),
            _row(f"{name}: Poster rate 0, --ingest-batch {BATCH:,}", cases["poster"],
                 "--ingest-batch 1")]
    if on_redis:
        cases["raw"] = _pair(reps, lambda: post_eps(events, BATCH),
                             lambda: raw_pipeline_eps(events, client))
        rows.append(_row(f"{name}: POSTMethod, --ingest-batch {BATCH:,}", cases["raw"],
                         "raw redis-py pipeline", RAW_MIN_RATIO))
    else:
        cases["floor"] = _pair(reps, lambda: post_eps(events, BATCH),
                               lambda: floor_loop_eps(events))
        rows.append(_row(f"{name}: POSTMethod, --ingest-batch {BATCH:,}", cases["floor"],
                         "dict+list floor", FLOOR_MIN_RATIO))
        cases["ceiling"] = _pair(reps, lambda: required_work_eps(events),
                                 lambda: floor_loop_eps(events))
        rows.append(_row(f"{name}: ceiling, validation + record + JSON text alone",
                         cases["ceiling"], "dict+list floor"))
    return cases, rows


def _start_redis() -> tuple[Any, Any] | str:
    """(server, client) of a fresh local redis-server, or why there is none."""
    if shutil.which("redis-server") is None:
        return "redis-server is not installed"
    try:
        import redis  # noqa: F401 -- only to tell its absence apart
    except ImportError:
        return "redis-py is missing (python3 -m pip install redis)"
    from foundation.redis_client import connect
    from tests.redis_server import RedisServer
    server = RedisServer().start()
    return server, connect(server.url)


def run_batched_ingest(settings: Settings) -> Result:
    """Item 7 on the in-memory server, then on a local redis-server when one can be started."""
    events = make_events(settings.ingest_events, seed=7)
    redis_events = events[:settings.ingest_events_redis]
    progress(f"7. batched ingest: {len(events):,} events (per-POST on redis-server: "
             f"{len(redis_events):,}) x {settings.repeats} repeats, both servers")
    figures: dict[str, Any] = {"batch": BATCH, "events": len(events),
                               "redis_per_post_events": len(redis_events)}
    try:
        _use(None)
        figures["in_memory"], rows = _server_cases(settings, "in-memory", events, events, None)
        started = _start_redis()
        if isinstance(started, str):
            figures["redis_server"] = {"skipped": started}
            rows.append(Row("7", f"redis-server: skipped, {started}", ""))
            return Result(figures, rows)
        server, client = started
        try:
            _use(client)
            figures["redis_server"], more = _server_cases(settings, "redis-server", events,
                                                          redis_events, client)
            rows += more
        finally:
            _use(None)
            client.close()
            server.close()
    finally:
        _use(None)
    return Result(figures, rows)
