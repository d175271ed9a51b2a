"""Item 4: the write path -- POST through Redis against each event written straight to the table.

The seed's first claim: writing to Redis and backing up later is faster than storing each event
in the database. Both sides take the same generated events on this thread:

- POST: ``api_layer.POSTMethod`` (validation, counter + record in Redis, one MULTI/EXEC);
- direct: the same record ``{user_id, emoticon_type, timestamp, match_id}`` (``time.time()``)
  written with ``db.ReactionsTable.insert_many([record])``: one INSERT and one commit per event,
  through the app's own table class (its lock and explicit transaction), without the API layer's
  validation (the table's CHECK constraint still applies).

Once with a ``:memory:`` database and once with a file database in a temporary directory (SQLite
defaults: rollback journal, synchronous=FULL, so each commit waits for the disk). Figure:
events/s; ratio POST / direct.
"""

from __future__ import annotations

import os
import tempfile
import time

import db

from .common import (Event, Result, Row, Settings, fmt_rate, fmt_ratio, interleave, make_events,
                     median, progress, ratio)
from .post_path import post_loop_eps


def direct_insert_eps(events: list[Event], path: str) -> float:
    """Events/s writing each event to a fresh ReactionsTable at ``path``, one commit per event."""
    if path != ":memory:" and os.path.exists(path):
        os.remove(path)
    table = db.ReactionsTable(path)
    insert = table.insert_many
    now = time.time
    try:
        started = time.perf_counter()
        for user_id, match_id, emoticon in events:
            insert([{"user_id": user_id, "emoticon_type": emoticon, "timestamp": now(),
                     "match_id": match_id}])
        seconds = time.perf_counter() - started
        assert table.count() == len(events)
    finally:
        table.close()
    return len(events) / seconds


def compare(settings: Settings, events: list[Event], path: str) -> dict:
    """POST vs direct insert on ``path``, ``settings.repeats`` interleaved repeats."""
    post, direct = interleave(settings.repeats, lambda: post_loop_eps(events),
                              lambda: direct_insert_eps(events, path))
    return {"events": len(events), "post_eps": median(post), "insert_eps": median(direct),
            "ratio": ratio(median(post), median(direct)),
            "samples": {"post_eps": post, "insert_eps": direct}}


def run_write_path(settings: Settings) -> Result:
    """Item 4: the comparison on ``:memory:`` and on a file database."""
    progress(f"4. write path, :memory:: {settings.write_events_memory:,} events "
             f"x {settings.repeats} repeats")
    memory = compare(settings, make_events(settings.write_events_memory, seed=4), ":memory:")
    progress(f"4. write path, file: {settings.write_events_file:,} events "
             f"x {settings.repeats} repeats")
    with tempfile.TemporaryDirectory(prefix="bench-write-") as directory:
        file = compare(settings, make_events(settings.write_events_file, seed=5),
                       os.path.join(directory, "reactions.db"))
    figures = {"memory": memory, "file": file, "repeats": settings.repeats}
    rows = [Row("4", f"POST via Redis vs INSERT+commit/event, {name}",
                f"{fmt_rate(case['post_eps'])} ev/s",
                f"direct {fmt_rate(case['insert_eps'])} ev/s", fmt_ratio(case["ratio"]))
            for name, case in ((":memory:", memory), ("file db", file))]
    return Result(figures, rows)
