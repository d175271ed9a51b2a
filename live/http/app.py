"""The seed's APIs over HTTP: an ASGI 3 application around POSTMethod and GETMethod.

Routes (docs/http-api.md has each with a curl example):

- ``POST /matches/{match_id}/reactions`` with ``{"user_id": 6, "emoticon_type": "sad"}``:
  POSTMethod; 201 and the stored record (202 with --ingest-batch above 1: accepted into the
  ingest buffer, in Redis within the flush interval).
- ``GET /matches/{match_id}``: GETMethod's weighted means and the raw counts of one read.
- ``GET /matches``: the busiest matches and the status figures, as the console's GET table.
- ``GET /stream`` and ``GET /matches/{match_id}/stream``: Server-Sent Events, one per GET tick
  and one per backup (live/http/feed.py: each tick is read once and fanned out).
- ``GET /metrics`` (Prometheus text), ``GET /healthz``, and ``GET /``: the live page.

Errors are JSON (``{"error": "..."}``) made in one place (``HTTPError``) and change nothing: 400
for an invalid field (the API layer's message), malformed JSON or a wrong content type; 404;
405 with ``Allow``; 413 for a body over MAX_BODY_BYTES; 503 with ``Retry-After`` when Redis
refuses. The app runs under the built-in server (live/http/server.py) or any ASGI server
(uvicorn: live/http/asgi.py).
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Awaitable, Callable

import config
from api_layer import (InvalidReactionError, POSTMethod, ReactionRefusedError, read_counts,
                       weighted_means)
from redis_adapter import encode_event
from live.http.feed import Feed, Subscription
from live.http.metrics import HTTPTally, exposition

__all__ = ["App", "Service", "HTTPTally", "HTTPError", "MAX_BODY_BYTES",
           "STREAM_KEEPALIVE_SECONDS", "STREAM_SEND_SECONDS", "STREAM_SWEEP_SECONDS",
           "StreamSends", "RETRY_AFTER_SECONDS"]

logger = logging.getLogger(__name__)

MAX_BODY_BYTES = 1024
"""The largest reaction body, in bytes: a reaction is about 40 bytes of JSON (413 above)."""
STREAM_KEEPALIVE_SECONDS = 15.0
"""An idle stream gets a comment line this often, so proxies keep it open (SSE convention)."""
STREAM_SEND_SECONDS = 10.0
"""How long one event may take to be handed to a viewer's connection before it is dropped."""
STREAM_SWEEP_SECONDS = 1.0
"""How often the streams' sends under way are checked against STREAM_SEND_SECONDS."""
RETRY_AFTER_SECONDS = 1
"""``Retry-After`` of a 503: Redis refused (over maxmemory, unreachable); a backup frees it."""
STREAM_RETRY_MS = 2000
"""``retry:`` of a stream: the browser reconnects this long after losing it (milliseconds)."""
PAGE = Path(__file__).with_name("page.html")

JSON_TYPE = b"application/json"
Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


class HTTPError(Exception):
    """An error answer: ``status``, the ``reason`` shown as ``{"error": reason}``, extra
    ``headers`` (405's Allow, 503's Retry-After)."""

    def __init__(self, status: int, reason: str, headers: list[tuple[bytes, bytes]] = ()) -> None:
        super().__init__(reason)
        self.status, self.reason, self.headers = status, reason, list(headers)


@dataclass
class Service:
    """What the API serves besides POSTMethod and GETMethod, from the process that runs it.

    ``overview()`` reads the busiest matches and the status now (blocking: run in a thread),
    for ``GET /matches`` before the first tick; ``figures()`` gives the run's figures for
    /metrics (live/http/metrics.py); ``connections()`` the open HTTP connections.
    """

    feed: Feed
    overview: Callable[[], dict[str, Any]]
    figures: Callable[[], dict[str, Any]]
    connections: Callable[[], int] = lambda: 0


class Route:
    """``path`` (``{match_id}`` stands for digits, the endpoint's argument), the methods it
    answers and the endpoint: ``await endpoint(app, request)`` answers the request.
    ``allowed`` adds HEAD wherever GET is (the server answers it without the body)."""

    __slots__ = ("path", "methods", "endpoint", "pattern", "allowed")

    def __init__(self, path: str, methods: tuple[str, ...],
                 endpoint: Callable[..., Awaitable[None]]) -> None:
        self.path, self.methods, self.endpoint = path, methods, endpoint
        self.pattern = (re.compile(re.escape(path).replace(r"\{match_id\}", "([0-9]+)") + r"\Z")
                        if "{" in path else None)
        self.allowed = methods + (("HEAD",) if "GET" in methods else ())


class Request:
    """One request as an endpoint sees it: the ASGI scope, receive and send, and the path's
    arguments (``match_id``)."""

    __slots__ = ("scope", "receive", "send", "args")

    def __init__(self, scope: Scope, receive: Receive, send: Send,
                 args: tuple[str, ...] = ()) -> None:
        self.scope, self.receive, self.send, self.args = scope, receive, send, args


class App:
    """The ASGI application: ``await app(scope, receive, send)`` answers one request."""

    def __init__(self, service: Service) -> None:
        self.service = service
        self.tally = HTTPTally()
        # POSTMethod and GETMethod block on Redis: a real one is waited for in a worker thread;
        # the in-memory one answers in microseconds, less than a thread hand-over costs.
        self._blocking = bool(config.REDIS_URL)
        self._page = PAGE.read_bytes()
        self._sends = StreamSends()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        request = Request(scope, receive, send, ())
        try:
            route, args = _route(scope["path"], scope["method"])
            request.args = args
            await route.endpoint(self, request)
        except HTTPError as error:
            await self._error(request, error)

    async def _error(self, request: Request, error: HTTPError) -> None:
        await self.respond(request, error.status, {"error": error.reason}, error.headers)

    async def respond(self, request: Request, status: int, body: Any,
                      headers: list[tuple[bytes, bytes]] = (),
                      content_type: bytes = JSON_TYPE) -> None:
        """Answer ``body`` (JSON unless it is bytes) with ``status``; count the status."""
        data = body if isinstance(body, bytes) else json.dumps(body).encode() + b"\n"
        self.tally.statuses[status] += 1
        await request.send({"type": "http.response.start", "status": status, "headers": [
            (b"content-type", content_type), (b"content-length", b"%d" % len(data)),
            (b"cache-control", b"no-store"), *headers]})
        await request.send({"type": "http.response.body", "body": data})

    # -- endpoints -------------------------------------------------------------------------

    async def post_reaction(self, request: Request) -> None:
        """POST /matches/{match_id}/reactions: POSTMethod; 201 and the record (202 batched)."""
        match_id = _match_id(request.args[0])
        fields = await _json_body(request)
        try:
            if self._blocking:
                record = await asyncio.to_thread(POSTMethod, fields["user_id"], match_id,
                                                 fields["emoticon_type"])
            else:  # the in-memory Redis: no call() coroutine on the hot path
                record = POSTMethod(fields["user_id"], match_id, fields["emoticon_type"])
        except InvalidReactionError as error:
            raise HTTPError(400, str(error)) from None
        except ReactionRefusedError as error:
            self.tally.refused += 1
            raise HTTPError(503, str(error), [
                (b"retry-after", str(RETRY_AFTER_SECONDS).encode())]) from None
        self.tally.posted += 1
        # The record as json.dumps writes it, by the writer POSTMethod's own records use (4x
        # faster); the same bytes.
        await self.respond(request, 202 if config.INGEST_BATCH_EVENTS > 1 else 201,
                           encode_event(record).encode() + b"\n")

    async def get_match(self, request: Request) -> None:
        """GET /matches/{match_id}: the weighted means and raw counts of one MGET."""
        match_id = _match_id(request.args[0])
        try:
            counts = (await asyncio.to_thread(read_counts, match_id) if self._blocking
                      else read_counts(match_id))
        except InvalidReactionError as error:
            raise HTTPError(400, str(error)) from None
        await self.respond(request, 200, match_view(match_id, counts))

    async def get_matches(self, request: Request) -> None:
        """GET /matches: the last GET tick's busiest matches and status (read now if none)."""
        overview = self.service.feed.latest
        if overview is None:
            overview = await asyncio.to_thread(self.service.overview)
        await self.respond(request, 200, overview)

    async def stream(self, request: Request) -> None:
        """GET /stream and /matches/{id}/stream: Server-Sent Events until either side ends."""
        match_id = _match_id(request.args[0]) if request.args else None
        if request.scope["method"] == "HEAD":  # the headers a stream would have, and no stream
            await self.respond(request, 200, b"", content_type=b"text/event-stream")
            return
        if match_id is not None and not 1 <= match_id <= config.MAX_MATCHES:
            raise HTTPError(400, f"invalid match_id {match_id}: match_id must be an int from 1 "
                                 f"to {config.MAX_MATCHES}")
        feed = self.service.feed
        subscription = feed.subscribe(match_id)
        self.tally.statuses[200] += 1
        try:
            await _stream_events(request, subscription, self._sends)
        finally:
            feed.unsubscribe(subscription)

    async def metrics(self, request: Request) -> None:
        """GET /metrics: the Prometheus text format (live/http/metrics.py)."""
        figures = await asyncio.to_thread(self.service.figures)
        text = exposition(figures, self.tally, self.service.feed, self.service.connections())
        await self.respond(request, 200, text.encode(),
                           content_type=b"text/plain; version=0.0.4; charset=utf-8")

    async def healthz(self, request: Request) -> None:
        """GET /healthz: 200 while the run is up, with the time of the last GET tick."""
        latest = self.service.feed.latest
        await self.respond(request, 200, {"status": "ok", "last_tick": latest and latest["time"]})

    async def page(self, request: Request) -> None:
        """GET /: the live page, one HTML file with its script and styles inline."""
        await self.respond(request, 200, self._page, content_type=b"text/html; charset=utf-8")


def match_view(match_id: int, counts: dict[str, int]) -> dict[str, Any]:
    """One match as the API shows it: its raw counts and their weighted means (seed:
    ceil(count/1000)), from the same read so that they agree."""
    return {"match_id": match_id, "counts": counts, "weighted_means": weighted_means(counts)}


async def _stream_events(request: Request, subscription: Subscription,
                         sends: StreamSends) -> None:
    """Send ``subscription``'s events as they come, a comment when idle; end when the feed ends
    it, the client goes, or the client's connection does not take an event in
    STREAM_SEND_SECONDS (a stalled reader is dropped, not buffered for: ``sends``)."""
    # A server may run an app's first step outside a task (the built-in one's eager_start):
    # a stream lasts, so it goes on in a task, which a stalled send can be cancelled in.
    await asyncio.sleep(0)
    send = request.send
    gone = asyncio.ensure_future(_disconnected(request.receive))
    await send({"type": "http.response.start", "status": 200, "headers": [
        (b"content-type", b"text/event-stream; charset=utf-8"), (b"cache-control", b"no-store"),
        (b"x-accel-buffering", b"no")]})
    try:
        await send({"type": "http.response.body", "body": f"retry: {STREAM_RETRY_MS}\n\n".encode(),
                    "more_body": True})
        while not gone.done():
            data = await subscription.next(STREAM_KEEPALIVE_SECONDS)
            if data is None:
                break
            await sends.send(send, {"type": "http.response.body",
                                    "body": data or b": keep-alive\n\n", "more_body": True})
        else:
            return  # the client went: nothing more to send
        await send({"type": "http.response.body", "body": b"", "more_body": False})
    except (asyncio.TimeoutError, OSError):
        return  # a stalled or closed connection: the server closes it
    finally:
        gone.cancel()


class StreamSends:
    """The streams' sends under way, checked by one sweep every STREAM_SWEEP_SECONDS: a send
    that has waited STREAM_SEND_SECONDS for its connection to take it is cancelled, and
    ``send()`` raises asyncio.TimeoutError. Every viewer sends once per tick, so a deadline per
    send (``asyncio.wait_for``: a task and a timer; ``asyncio.timeout``: a timer) cost 10,000
    viewers 10,000 timers a tick (docs/performance.md, item 9). Event loop thread only."""

    def __init__(self) -> None:
        self._since: dict[asyncio.Task, float] = {}  # a stream's task -> when its send began
        self._stalled: set[asyncio.Task] = set()
        self._sweep_timer: asyncio.TimerHandle | None = None

    async def send(self, send: Send, message: dict[str, Any]) -> None:
        """``await send(message)``; asyncio.TimeoutError once it has waited past
        STREAM_SEND_SECONDS (and up to STREAM_SWEEP_SECONDS more). Raises RuntimeError outside
        a task (there would be nothing to cancel)."""
        task = asyncio.current_task()
        if task is None:
            raise RuntimeError("StreamSends.send() runs in a task: it cancels a stalled send")
        loop = asyncio.get_running_loop()
        self._since[task] = loop.time()
        if self._sweep_timer is None:
            self._sweep_timer = loop.call_later(STREAM_SWEEP_SECONDS, self._sweep, loop)
        try:
            await send(message)
        except asyncio.CancelledError:
            if task not in self._stalled:
                raise
            self._stalled.discard(task)
            if hasattr(task, "uncancel"):  # Python 3.11+: this cancellation is handled here
                task.uncancel()
            raise asyncio.TimeoutError(f"the connection took no event in "
                                       f"{STREAM_SEND_SECONDS:g}s") from None
        finally:
            del self._since[task]

    def _sweep(self, loop: asyncio.AbstractEventLoop) -> None:
        now = loop.time()
        for task, since in list(self._since.items()):
            if now - since >= STREAM_SEND_SECONDS and task not in self._stalled:
                self._stalled.add(task)
                task.cancel()
        self._sweep_timer = (loop.call_later(STREAM_SWEEP_SECONDS, self._sweep, loop)
                             if self._since else None)


async def _disconnected(receive: Receive) -> None:
    """Returns once the client has gone (http.disconnect)."""
    while (await receive())["type"] != "http.disconnect":
        pass


async def _lifespan(receive: Receive, send: Send) -> None:
    """The lifespan protocol for an ASGI server that sends it: nothing to start or stop here
    (the live run owns the ticks; live/http/asgi.py wraps this app when run standalone)."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


MATCH_ID_MAX_DIGITS = 20
"""A path's match id longer than this is refused with 400 before it is read as a number."""


def _match_id(text: str) -> int:
    """The path's match id: digits only (the route's pattern), the range the API layer's."""
    if len(text) > MATCH_ID_MAX_DIGITS:
        raise HTTPError(400, f"invalid match_id {text[:20]}... ({len(text):,} digits): match_id "
                             f"must be an int from 1 to {config.MAX_MATCHES}")
    return int(text)


async def _json_body(request: Request) -> dict[str, Any]:
    """The reaction's fields from a JSON object body of at most MAX_BODY_BYTES bytes:
    ``user_id`` and ``emoticon_type`` (what they hold is the API layer's to check)."""
    content_type = b""
    for name, value in request.scope["headers"]:
        if name == b"content-type":
            content_type = value
    if content_type != JSON_TYPE and content_type.split(b";")[0].strip().lower() != JSON_TYPE:
        raise HTTPError(400, f"content-type must be application/json, not "
                             f"{content_type.decode('latin-1')[:60]!r}")
    body = await _read_body(request.receive)
    try:  # UTF-8 only (RFC 8259), and a field given twice is ambiguous: both refused
        fields = _FIELDS_DECODER.decode(body.decode("utf-8"))
    except _RepeatedField as error:
        raise HTTPError(400, f"field {str(error)[:60]!r} given twice: each field once") from None
    except (ValueError, RecursionError) as error:  # UnicodeDecodeError is a ValueError
        raise HTTPError(400, f"malformed JSON: {error}"[:200]) from None
    if type(fields) is not dict:
        raise HTTPError(400, "the body must be a JSON object: "
                             '{"user_id": 6, "emoticon_type": "sad"}')
    if len(fields) == 2 and "user_id" in fields and "emoticon_type" in fields:
        return fields
    unknown = sorted(set(fields) - {"user_id", "emoticon_type"})
    missing = [name for name in ("user_id", "emoticon_type") if name not in fields]
    if unknown or missing:
        problem = (f"unknown field {unknown[0][:60]!r}" if unknown else
                   f"missing field {missing[0]!r}")
        raise HTTPError(400, f"{problem}: the body holds user_id and emoticon_type, e.g. "
                             '{"user_id": 6, "emoticon_type": "sad"}')
    return fields


class _RepeatedField(ValueError):
    """A JSON object names a field twice (json.loads would keep the last one silently)."""


def _unique_fields(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    fields = dict(pairs)
    if len(fields) != len(pairs):
        seen = set()
        for name, _ in pairs:
            if name in seen:
                raise _RepeatedField(name)
            seen.add(name)
    return fields


# Made once: json.loads with a hook would make a decoder per call.
_FIELDS_DECODER = json.JSONDecoder(object_pairs_hook=_unique_fields)


async def _read_body(receive: Receive) -> bytes:
    """The request body, refused with 413 past MAX_BODY_BYTES (the rest is not kept)."""
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise HTTPError(400, "the client went before its body arrived")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise HTTPError(413, f"the body is over {MAX_BODY_BYTES} bytes; a reaction is "
                                 'about 40: {"user_id": 6, "emoticon_type": "sad"}')
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


ROUTES = [
    Route("/", ("GET",), App.page),
    Route("/matches", ("GET",), App.get_matches),
    Route("/matches/{match_id}", ("GET",), App.get_match),
    Route("/matches/{match_id}/reactions", ("POST",), App.post_reaction),
    Route("/matches/{match_id}/stream", ("GET",), App.stream),
    Route("/stream", ("GET",), App.stream),
    Route("/metrics", ("GET",), App.metrics),
    Route("/healthz", ("GET",), App.healthz),
]
"""Every route, in one list: the path (``{match_id}`` is digits), its methods, its endpoint."""
_FIXED = {route.path: route for route in ROUTES if route.pattern is None}
_PATTERNED = [route for route in ROUTES if route.pattern is not None]


def _route(path: str, method: str) -> tuple[Route, tuple[str, ...]]:
    """The route of ``path`` and its arguments; HTTPError 404 (no route) or 405 (with Allow:
    the route's methods; HEAD wherever GET is, as the server answers it without the body)."""
    route, args = _FIXED.get(path), ()
    if route is None:
        for candidate in _PATTERNED:
            found = candidate.pattern.match(path)
            if found:
                route, args = candidate, found.groups()
                break
        else:
            raise HTTPError(404, f"no such resource: {path[:60]}")
    if method not in route.allowed:
        raise HTTPError(405, f"{method[:20]} is not allowed on {path[:60]}; allowed: "
                             f"{', '.join(route.allowed)}",
                        [(b"allow", ", ".join(route.allowed).encode())])
    return route, args
