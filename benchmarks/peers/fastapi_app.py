"""A benchmark peer: the live run behind a FastAPI app on uvicorn, as most Python developers
would write it (``@app.post`` with a pydantic model; SSE with an ``asyncio.Queue`` per viewer).

``LIVE_REACTIONS_FLAGS="--rate 0.001" python3 -m uvicorn benchmarks.peers.fastapi_app:app``

Behind it is the same backend as ``python3 main.py``: the lifespan starts a LiveRun (the poster,
the GET ticks, the backups) from main.py's flags in LIVE_REACTIONS_FLAGS, as live/http/asgi.py
does, but without the product's HTTP side. The routes call the same functions the product's
app calls (live/http/app.py): POSTMethod; read_counts and weighted_means (GETMethod's two
steps). The endpoints are ``async def``, so POSTMethod runs in the event loop, as the product's
app runs it with the in-memory Redis (a plain ``def`` endpoint would go through a thread pool).

Streams: each viewer of ``/matches/{id}/stream`` gets its own bounded queue; a ticker reads each
followed match's counts every GET_INTERVAL_SECONDS, encodes the event once, and puts it in every
queue of that match (a full queue drops its viewer). Each event carries its ``time`` (Unix
seconds, just before the fan-out), so the benchmark can time its delivery.

Never imported by the product (tests/test_layout.py checks the product's imports).
"""

from __future__ import annotations

import asyncio
import json
import os
import shlex
import sys
import time
from contextlib import asynccontextmanager
from typing import AsyncIterator

from fastapi import FastAPI, HTTPException
from fastapi.responses import StreamingResponse
from pydantic import BaseModel

import config
from api_layer import (InvalidReactionError, POSTMethod, ReactionRefusedError, read_counts,
                       weighted_means)

__all__ = ["app", "Reaction", "VIEWER_QUEUE_EVENTS"]

FLAGS_VARIABLE = "LIVE_REACTIONS_FLAGS"
"""main.py's flags for the live run behind this app (as live/http/asgi.py reads them)."""
VIEWER_QUEUE_EVENTS = 16
"""Events a viewer's queue holds; one more drops that viewer (as the product's feed)."""

viewers: dict[int, set[asyncio.Queue]] = {}
"""The queues of each followed match's viewers."""
tally = None
"""The run's HTTP tally (live/http/metrics.py): POSTs acknowledged here count in its
reconciliation and summary, as the product app's do."""


class Reaction(BaseModel):
    """The body of a POST: ``{"user_id": 6, "emoticon_type": "sad"}``."""

    user_id: int
    emoticon_type: str


@asynccontextmanager
async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
    """Start the live run and the viewers' ticker; stop both at shutdown."""
    from live.cli import apply_settings, parse_args, use_redis
    from live.console import configure_logging
    from live.run import SWITCH_INTERVAL_SECONDS, LiveRun

    configure_logging()
    args = parse_args(shlex.split(os.environ.get(FLAGS_VARIABLE, "")))
    apply_settings(args)
    config.HTTP_PORT = 0  # an HTTP side that serves nothing (serve=False): its tally counts
    sys.setswitchinterval(SWITCH_INTERVAL_SECONDS)  # as main.py and live/http/asgi.py
    use_redis()
    global tally
    run = LiveRun(args.role)
    tally = run.http.app.tally
    task = asyncio.create_task(run.main(serve=False, handle_signals=False))
    ticker = asyncio.create_task(tick_viewers())
    try:
        yield
    finally:
        ticker.cancel()
        run.stop()
        await task


app = FastAPI(lifespan=lifespan)


@app.post("/matches/{match_id}/reactions", status_code=201)
async def post_reaction(match_id: int, reaction: Reaction) -> dict:
    """POSTMethod; 201 and the stored record."""
    try:
        record = POSTMethod(reaction.user_id, match_id, reaction.emoticon_type)
        tally.posted += 1
        return record
    except InvalidReactionError as error:
        raise HTTPException(400, str(error)) from None
    except ReactionRefusedError as error:
        tally.refused += 1
        raise HTTPException(503, str(error), headers={"Retry-After": "1"}) from None


@app.get("/matches/{match_id}")
async def get_match(match_id: int) -> dict:
    """GETMethod's read: the raw counts of one MGET and their weighted means."""
    try:
        counts = read_counts(match_id)
    except InvalidReactionError as error:
        raise HTTPException(400, str(error)) from None
    return {"match_id": match_id, "counts": counts, "weighted_means": weighted_means(counts)}


@app.get("/matches/{match_id}/stream")
async def stream(match_id: int) -> StreamingResponse:
    """Server-Sent Events: one per tick of the followed match, from this viewer's queue."""
    if not 1 <= match_id <= config.MAX_MATCHES:
        raise HTTPException(400, f"match_id must be an int from 1 to {config.MAX_MATCHES}")
    queue: asyncio.Queue = asyncio.Queue(maxsize=VIEWER_QUEUE_EVENTS)
    viewers.setdefault(match_id, set()).add(queue)

    async def events() -> AsyncIterator[bytes]:
        try:
            yield b"retry: 2000\n\n"
            while True:
                yield await queue.get()
        finally:
            viewers.get(match_id, set()).discard(queue)

    return StreamingResponse(events(), media_type="text/event-stream")


async def tick_viewers() -> None:
    """Every GET_INTERVAL_SECONDS: each followed match's counts, encoded once, to its queues."""
    event_id = 0
    while True:
        await asyncio.sleep(config.GET_INTERVAL_SECONDS)
        event_id += 1
        for match_id, queues in list(viewers.items()):
            counts = read_counts(match_id)
            data = {"match_id": match_id, "counts": counts,
                    "weighted_means": weighted_means(counts), "time": time.time()}
            event = f"id: {event_id}\nevent: tick\ndata: {json.dumps(data)}\n\n".encode()
            for queue in list(queues):
                try:
                    queue.put_nowait(event)
                except asyncio.QueueFull:  # a viewer too far behind: dropped
                    queues.discard(queue)
