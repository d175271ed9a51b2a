"""A built-in ASGI 3 HTTP/1.1 server on asyncio alone, in the caller's event loop.

``HTTPServer(app).start()`` listens (loopback by default) and runs any ASGI 3 HTTP application:
keep-alive and pipelining (responses in order), HTTP/1.0 clients, HEAD, ``Expect: 100-continue``,
chunked request bodies. It faces the open network with bounded resources (``Limits``): every
byte read is bounded by the head and body limits, a slow or idle client meets a deadline, the
open connections are capped, and a client that stops reading is dropped once its write buffer
has stayed above the high-water mark for the stall timeout, so memory never grows with it.
docs/http-server.md is this server's behaviour page, with the numbers and their reasons.

Each connection is an ``asyncio.BufferedProtocol`` (no streams: bytes go straight from the
read buffer to the sans-IO parser in protocol.py); each request runs the app in its own
task, or with ``eager_start`` starts it at once and only gives it a task if it waits. Timeouts
are checked by one sweep per server, not a timer per request. The module imports the standard
library only and knows nothing about the application it serves.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from dataclasses import dataclass, fields
from email.utils import formatdate
from typing import Any, Awaitable, Callable, Optional

from live.http.protocol import (
    CHUNKED, CLOSE_DELIMITED, CONTINUE_RESPONSE, END_OF_MESSAGE, LAST_CHUNK, LENGTH,
    MAX_BODY_BYTES, MAX_HEAD_BYTES, MAX_HEADERS, MAX_REQUEST_LINE_BYTES, NEED_DATA, NO_BODY,
    ProtocolError, RequestParser, error_response, frame_chunk, frame_response_head,
    prepare_response_head,
)

__all__ = ["HTTPServer", "Limits", "ClientDisconnected", "REQUEST_TIMEOUT_SECONDS",
           "KEEP_ALIVE_TIMEOUT_SECONDS", "MAX_CONNECTIONS", "WRITE_HIGH_WATER_BYTES",
           "WRITE_STALL_TIMEOUT_SECONDS", "SHUTDOWN_TIMEOUT_SECONDS"]

logger = logging.getLogger(__name__)

SOCKET_SEND_BUFFER_BYTES = 65536
"""The kernel's send buffer of each connection (SO_SNDBUF; Linux doubles it). Bounded, so that a
reader that stops reading fills the server's own write buffer within a few events, and its
high-water mark and stall timeout drop that reader, rather than the kernel holding megabytes
for it for minutes (its autotuned buffer grows to 4 MiB)."""
REQUEST_TIMEOUT_SECONDS = 10.0
"""Seconds from a request's first byte until its head and body have arrived whole: then 408."""
KEEP_ALIVE_TIMEOUT_SECONDS = 5.0
"""Seconds an idle connection (new, or between requests) may send nothing: then it is closed."""
MAX_CONNECTIONS = 16384
"""Most open connections; one more is answered 503 with Retry-After and closed."""
WRITE_HIGH_WATER_BYTES = 65536
"""Bytes waiting in a connection's write buffer above which the app's send() waits to drain."""
WRITE_STALL_TIMEOUT_SECONDS = 10.0
"""Seconds a send() may wait for a full write buffer to drain: then the client is dropped."""
SHUTDOWN_TIMEOUT_SECONDS = 5.0
"""Seconds shutdown() lets requests in flight finish before it cancels them."""

READ_HIGH_WATER_BYTES = 65536
"""Bytes read and not yet taken (unparsed, or body the app has not received) above which the
server stops reading from that client until the app catches up."""
READ_BUFFER_BYTES = 65536
"""Most bytes taken from a connection's socket in one read."""
CLOSE_LINGER_SECONDS = 2.0
"""Seconds a refused connection (4xx, 5xx from the server itself) is read and dropped after its
answer before it is closed, so that its unread bytes do not turn the close into a reset."""
RETRY_AFTER_SECONDS = 5
"""The Retry-After of a 503 for too many connections, in seconds."""
BACKLOG = 2048
"""Connections the kernel may queue before they are accepted (capped by net.core.somaxconn)."""
RESERVED_FILE_DESCRIPTORS = 256
"""Open files kept free beside the connections (the database, Redis, logs, refused connections)."""
PUMP_EVENTS_MAX = 1024
"""Body events (chunks) decoded in one go before the other connections get a turn: a body of
one-byte chunks would otherwise hold the event loop for tens of milliseconds per read."""
CANCEL_WAIT_SECONDS = 1.0
"""Seconds shutdown() waits for the apps it cancelled to end."""
SERVER_HEADER = b"live-http"
"""The ``server`` header's value."""
ASGI_SPEC_VERSION = "2.4"
"""The ASGI HTTP spec version: 2.4, as send() raises ClientDisconnected on a closed connection."""

_SERVER_LINE = b"server: " + SERVER_HEADER + b"\r\n"
_NO_DEADLINE, _IDLE, _REQUEST, _LINGER = range(4)


@dataclass(frozen=True)
class Limits:
    """What one client may make this server hold or wait for; each limit's status is in
    docs/http-server.md. Sizes are bytes, times seconds; every value must be above 0."""

    max_request_line_bytes: int = MAX_REQUEST_LINE_BYTES
    """Longest request line: longer is answered 414."""
    max_head_bytes: int = MAX_HEAD_BYTES
    """Longest request head (request line, headers, blank line): longer is 431."""
    max_headers: int = MAX_HEADERS
    """Most header lines in a request: more is 431."""
    max_body_bytes: int = MAX_BODY_BYTES
    """Largest request body (Content-Length, or decoded chunks): larger is 413."""
    request_timeout_seconds: float = REQUEST_TIMEOUT_SECONDS
    """From a request's first byte until its head and body are whole: then 408 and close."""
    keep_alive_timeout_seconds: float = KEEP_ALIVE_TIMEOUT_SECONDS
    """An idle connection (new, or between requests) is closed quietly after this."""
    max_connections: int = MAX_CONNECTIONS
    """Open connections; one more is answered 503 with Retry-After and closed."""
    write_high_water_bytes: int = WRITE_HIGH_WATER_BYTES
    """A send() waits while the connection's write buffer holds more than this."""
    write_stall_timeout_seconds: float = WRITE_STALL_TIMEOUT_SECONDS
    """A send() waiting this long for the buffer to drain drops the client (ClientDisconnected)."""

    def __post_init__(self) -> None:
        for field in fields(self):
            value = getattr(self, field.name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                raise ValueError(f"Limits.{field.name} = {value!r}: must be a number above 0")


class ClientDisconnected(OSError):
    """Raised by send() once the connection is closed: the client left, stopped reading for the
    write-stall timeout, or the server ended the response (a bad request body, a deadline,
    shutdown). The app should stop sending; the server does not log it as an error."""


ASGIApp = Callable[[dict, Callable[[], Awaitable[dict]], Callable[[dict], Awaitable[None]]],
                   Awaitable[None]]


class HTTPServer:
    """Serves an ASGI 3 HTTP application on ``host``:``port`` in the running event loop.

    ``port`` 0 takes any free port (read it back from ``.port`` after ``start()``).
    ``reuse_port`` sets SO_REUSEPORT where the OS has it, so several processes share one port.
    Each request's app runs in a task of its own, as every ASGI server runs it. With
    ``eager_start`` its first step runs at once instead, with the other requests that became
    ready in the same loop turn, and a task carries it on only if it waits: no task and no loop
    turn for an app that answers without waiting, but ``asyncio.current_task()`` is None until
    it first waits (as are ``asyncio.timeout()`` and anyio's cancel scopes, which need it), so
    it is for an app that needs no task before then (live/http/app.py).
    Counters for /metrics: ``open_connections``, ``requests_total``, ``rejected_by_status``
    (answers the server gave itself, by status), ``dropped_stalled_total``.
    """

    def __init__(self, app: ASGIApp, host: str = "127.0.0.1", port: int = 8000,
                 limits: Limits = Limits(), reuse_port: bool = False,
                 eager_start: bool = False) -> None:
        self.app = app
        self.eager_start = eager_start
        self.host = host
        self._requested_port = port
        self.limits = limits
        self.reuse_port = reuse_port
        self.max_connections = limits.max_connections
        """The cap in force: ``limits.max_connections``, lowered at start() if the open-files
        limit cannot hold that many."""
        self.requests_total = 0
        self.rejected_by_status: dict = {}
        self.dropped_stalled_total = 0
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._server: Optional[asyncio.base_events.Server] = None
        self._connections: set = set()
        self._running: set = set()
        self._ready: list = []             # exchanges whose app is to start (_start_ready)
        # Every connection reads into this, then the parser copies the bytes out at once.
        self._read_view = memoryview(bytearray(READ_BUFFER_BYTES))
        self._shutting_down = False
        self._sweep_handle: Optional[asyncio.TimerHandle] = None
        self._sweep_seconds = max(0.005, min(0.25, min(
            limits.request_timeout_seconds, limits.keep_alive_timeout_seconds,
            limits.write_stall_timeout_seconds, CLOSE_LINGER_SECONDS) / 4))
        self._date_second = -1
        self._date_line = b""

    async def start(self) -> None:
        """Bind and listen on the running loop. Raises OSError when the address cannot be bound
        (``errno.EADDRINUSE``: the port is busy; ``EADDRNOTAVAIL``: no such local address), and
        RuntimeError if already started. Raises the soft open-files limit toward the hard one
        when the connection cap needs it, and lowers the cap when it still cannot fit."""
        if self._server is not None:
            raise RuntimeError("HTTPServer.start(): already started")
        self._loop = loop = asyncio.get_running_loop()
        self.max_connections = _fit_open_files(self.limits.max_connections)
        reuse_port = bool(self.reuse_port) and hasattr(socket, "SO_REUSEPORT")
        if self.reuse_port and not reuse_port:
            logger.warning("SO_REUSEPORT is not available on this OS: port %s is not shared",
                           self._requested_port)
        self._server = await loop.create_server(
            lambda: _Connection(self), self.host, self._requested_port, backlog=BACKLOG,
            reuse_port=reuse_port or None)
        self._sweep_handle = loop.call_later(self._sweep_seconds, self._sweep)

    @property
    def port(self) -> int:
        """The bound port (the one asked for before start())."""
        if self._server is None or not self._server.sockets:
            return self._requested_port
        return self._server.sockets[0].getsockname()[1]

    @property
    def open_connections(self) -> int:
        """Connections open now, including those being refused or closed."""
        return len(self._connections)

    async def shutdown(self, timeout_seconds: float = SHUTDOWN_TIMEOUT_SECONDS) -> None:
        """Stop accepting (the listening sockets close), close idle connections, end streaming
        responses (a ``text/event-stream`` gets its last chunk, any other stream is cut; the
        app's receive() returns http.disconnect and its send() raises ClientDisconnected), and
        let the other requests in flight finish and be answered, for at most
        ``timeout_seconds``; then cancel the apps still running and close every connection.
        Safe to call twice."""
        if self._server is None or self._shutting_down:
            return
        self._shutting_down = True
        loop = self._loop
        self._server.close()
        for connection in list(self._connections):
            connection.shutdown()
        deadline = loop.time() + timeout_seconds
        while loop.time() < deadline and (self._running or any(
                not c.closing or c.transport.get_write_buffer_size()
                for c in self._connections)):
            await asyncio.sleep(0.01)
        if self._running:
            tasks = [exchange.task for exchange in self._running]
            logger.warning("HTTP shutdown: cancelling %d request(s) still running after %gs",
                           len(tasks), timeout_seconds)
            for task in tasks:
                task.cancel()
            await asyncio.wait(tasks, timeout=CANCEL_WAIT_SECONDS)
        for connection in list(self._connections):
            connection.transport.abort()
        for _ in range(3):
            await asyncio.sleep(0)   # let connection_lost run
        if self._sweep_handle is not None:
            self._sweep_handle.cancel()
            self._sweep_handle = None

    # -- for connections -----------------------------------------------------------------------

    def _date(self) -> bytes:
        now = int(time.time())
        if now != self._date_second:
            self._date_second = now
            self._date_line = b"date: %s\r\n" % formatdate(now, usegmt=True).encode("ascii")
        return self._date_line

    def _queue_start(self, exchange: _Exchange) -> None:
        """``eager_start``: start ``exchange``'s app with the others ready in this loop turn."""
        self._ready.append(exchange)
        if len(self._ready) == 1:
            self._loop.call_soon(self._start_ready)

    def _start_ready(self) -> None:
        """Start the apps queued since the last call, in turn. One callback starts them all,
        after every connection ready in the turn was read: the answers then go out together,
        as the clients' next requests come in together (a callback per request cost more)."""
        ready, self._ready = self._ready, []
        for exchange in ready:
            try:
                exchange.conn._start(exchange)
            except Exception as error:
                # That connection alone ends, as asyncio ends one whose protocol callback
                # failed (quietly for an OSError: the client is gone).
                if not isinstance(error, OSError):
                    self._loop.call_exception_handler({
                        "message": "HTTP: starting a request failed", "exception": error,
                        "protocol": exchange.conn})
                exchange.conn.transport.abort()

    def _count_rejected(self, status: int) -> None:
        self.rejected_by_status[status] = self.rejected_by_status.get(status, 0) + 1

    def _sweep(self) -> None:
        """Enforce every connection's deadlines (request, idle, linger, write stall)."""
        now = self._loop.time()
        for connection in list(self._connections):
            if connection.deadline and connection.deadline <= now:
                connection.deadline_passed()
            if connection.stall_deadline and connection.stall_deadline <= now:
                connection.stalled()
        self._sweep_handle = self._loop.call_at(now + self._sweep_seconds, self._sweep)


def _fit_open_files(max_connections: int) -> int:
    """The connection cap the open-files limit allows, after raising the soft limit toward the
    hard one if it is too low (Unix; elsewhere the cap is taken as given)."""
    try:
        import resource
    except ImportError:
        return max_connections
    want = max_connections + RESERVED_FILE_DESCRIPTORS
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < want and (
            hard == resource.RLIM_INFINITY or soft < hard):
        target = want if hard == resource.RLIM_INFINITY else hard
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            logger.debug("raised the open-files limit from %d to %d", soft, target)
            soft = target
        except (ValueError, OSError) as error:
            logger.debug("could not raise the open-files limit from %d: %s", soft, error)
    if soft == resource.RLIM_INFINITY or soft >= want:
        return max_connections
    allowed = max(1, soft - RESERVED_FILE_DESCRIPTORS)
    logger.warning("the open-files limit (%d, ulimit -n) allows %d HTTP connections, not %d",
                   soft, allowed, max_connections)
    return allowed


class _Connection(asyncio.BufferedProtocol):
    """One client connection: feeds the parser, runs one request at a time, enforces limits.

    A BufferedProtocol: the transport reads into the server's one read buffer, and the bytes go
    on to the parser at once. A plain Protocol's transport would allocate a 256 KiB bytes object
    for every read and shrink it to the few hundred bytes a request has: about 8 us a request on
    Linux, where an allocation that large is an mmap and a munmap."""

    __slots__ = ("server", "loop", "limits", "transport", "parser", "exchange", "client",
                 "sockname", "deadline", "deadline_kind", "stall_deadline", "write_paused",
                 "drain_waiter", "read_paused", "lost", "closing")

    def __init__(self, server: HTTPServer) -> None:
        limits = server.limits
        self.server = server
        self.loop = server._loop
        self.limits = limits
        self.transport: Any = None
        self.parser = RequestParser(limits.max_request_line_bytes, limits.max_head_bytes,
                                    limits.max_headers, limits.max_body_bytes)
        self.exchange: Optional[_Exchange] = None
        self.client = None
        self.sockname = None
        self.deadline = 0.0
        self.deadline_kind = _NO_DEADLINE
        self.stall_deadline = 0.0
        self.write_paused = False
        self.drain_waiter: Optional[asyncio.Future] = None
        self.read_paused = False
        self.lost = False
        self.closing = False

    # -- asyncio.Protocol ----------------------------------------------------------------------

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        server = self.server
        server._connections.add(self)
        if len(server._connections) > server.max_connections or server._shutting_down:
            server._count_rejected(503)
            transport.write(error_response(
                503, "the server has too many open connections; retry later",
                date=server._date(), server=_SERVER_LINE,
                extra=b"retry-after: %d\r\n" % RETRY_AFTER_SECONDS))
            self._close_gracefully(CLOSE_LINGER_SECONDS)
            return
        transport.set_write_buffer_limits(high=self.limits.write_high_water_bytes)
        sock = transport.get_extra_info("socket")
        if sock is not None:
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SOCKET_SEND_BUFFER_BYTES)
            except OSError:  # not a TCP socket of this kind: the kernel's default then
                pass
        peer = transport.get_extra_info("peername")
        local = transport.get_extra_info("sockname")
        self.client = (peer[0], peer[1]) if isinstance(peer, tuple) else None
        self.sockname = (local[0], local[1]) if isinstance(local, tuple) else None
        self._set_deadline(_IDLE, self.limits.keep_alive_timeout_seconds)

    def get_buffer(self, sizehint: int) -> memoryview:
        return self.server._read_view

    def buffer_updated(self, nbytes: int) -> None:
        self.data_received(self.server._read_view[:nbytes])

    def data_received(self, data: bytes | memoryview) -> None:
        if self.closing:
            return   # a connection being closed: read and drop
        self.parser.feed(data)
        exchange = self.exchange
        if exchange is None:
            self._next_request()
        elif not exchange.body_complete:
            self._pump_body(exchange)
        if self.parser.buffered > READ_HIGH_WATER_BYTES and not self.read_paused:
            self._update_reading()   # at most one more read (READ_BUFFER_BYTES) past the mark

    def eof_received(self) -> bool:
        """The client closed its side: it is gone. A FIN cannot be told from a full close without
        writing, and a response may write nothing for long (HEAD, a quiet stream), so the
        request in progress ends (http.disconnect) and the connection closes, as uvicorn,
        h11-based servers and nginx do; clients that half-close to await an answer lose it."""
        exchange = self.exchange
        if exchange is not None:
            exchange.gone = True
            exchange.wake()
        return False

    def connection_lost(self, exc: Optional[BaseException]) -> None:
        self.lost = True
        self.closing = True
        self.deadline = self.stall_deadline = 0.0
        self.server._connections.discard(self)
        waiter = self.drain_waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(ClientDisconnected("the client's connection is closed"))
        exchange = self.exchange
        if exchange is not None:
            exchange.gone = True
            exchange.wake()

    def pause_writing(self) -> None:
        self.write_paused = True

    def resume_writing(self) -> None:
        self.write_paused = False
        self.stall_deadline = 0.0
        waiter = self.drain_waiter
        self.drain_waiter = None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # -- requests ------------------------------------------------------------------------------

    def _next_request(self) -> None:
        """Parse the next request from what was read; once it can start, start its app: in a
        task of its own, or, with ``eager_start``, with the others ready in this loop turn."""
        exchange = self._parse_next()
        if exchange is None:
            return
        if self.server.eager_start:
            self.server._queue_start(exchange)
        else:
            self._carry_on(exchange, exchange.run(), _NOT_STARTED)

    def _parse_next(self) -> Optional[_Exchange]:
        """The next request as an exchange whose app can start, or None: more bytes are needed,
        or the request was refused (the connection then closes)."""
        parser = self.parser
        try:
            request = parser.next_event()
        except ProtocolError as error:
            self._refuse(error.status, error.reason)
            return None
        if request is NEED_DATA:
            if parser.buffered:
                if self.deadline_kind != _REQUEST:
                    self._set_deadline(_REQUEST, self.limits.request_timeout_seconds)
            elif self.deadline_kind != _IDLE:
                self._set_deadline(_IDLE, self.limits.keep_alive_timeout_seconds)
            self._update_reading()
            return None
        self.server.requests_total += 1
        exchange = _Exchange(self, request)
        self.exchange = exchange
        if not request.has_body:
            self.deadline = 0.0
            self.deadline_kind = _NO_DEADLINE
            return exchange
        if request.expect_continue:
            # The client waits for 100 Continue, sent when the app first asks for the body.
            self.deadline = 0.0
            self.deadline_kind = _NO_DEADLINE
        self._pump_body(exchange)   # a body all here ends the deadline
        if exchange.gone:
            return None   # refused (a bad body), or the client left
        if not (exchange.body_complete or request.expect_continue
                or self.deadline_kind == _REQUEST):
            self._set_deadline(_REQUEST, self.limits.request_timeout_seconds)
        return exchange

    def _start(self, exchange: _Exchange) -> None:
        """``eager_start``: run the app's first step now, in this callback. Most requests are
        answered in it (the body is here, the in-memory Redis answers at once), so they cost no
        task and no loop turn; an app that waits is carried on by a task from where it stopped."""
        run = exchange.run()
        try:
            awaited = run.send(None)
        except StopIteration:
            return
        exchange.waiting()
        self._carry_on(exchange, run, awaited)

    def _carry_on(self, exchange: _Exchange, run: Any, awaited: Any) -> None:
        """Run the rest of ``run`` (the exchange's app) in a task, from ``awaited``."""
        exchange.task = self.loop.create_task(_in_task(_Resumed(run, awaited, exchange)))
        self.server._running.add(exchange)

    def _pump_body(self, exchange: _Exchange) -> None:
        """Move body bytes from the parser to the exchange, up to the read high-water mark."""
        if self.closing:
            return
        parser = self.parser
        got = False
        events = 0
        try:
            # All the rest of a Content-Length body is mostly here (with its head): one step.
            body = parser.whole_body() if exchange.body_buffered < READ_HIGH_WATER_BYTES else None
            if body is not None:
                got = True
                exchange.body_chunks.append(body)
                exchange.body_buffered += len(body)
                self._body_ended(exchange)
            while not exchange.body_complete and exchange.body_buffered < READ_HIGH_WATER_BYTES:
                events += 1
                if events > PUMP_EVENTS_MAX:
                    # Many tiny chunks: let the other connections run, then go on.
                    if not exchange.pump_scheduled:
                        exchange.pump_scheduled = True
                        self.loop.call_soon(self._pump_more, exchange)
                    break
                event = parser.next_event()
                if event is NEED_DATA:
                    break
                got = True
                if event is END_OF_MESSAGE:
                    self._body_ended(exchange)
                    break
                exchange.body_chunks.append(event)
                exchange.body_buffered += len(event)
        except ProtocolError as error:
            self._end_exchange(exchange, error.status, error.reason)
            return
        if got:
            exchange.wake()
        self._update_reading()

    def _body_ended(self, exchange: _Exchange) -> None:
        """The whole body is read: no deadline runs while the app answers."""
        exchange.body_complete = True
        self.deadline = 0.0
        self.deadline_kind = _NO_DEADLINE

    def _pump_more(self, exchange: _Exchange) -> None:
        exchange.pump_scheduled = False
        if self.exchange is exchange and not exchange.body_complete:
            self._pump_body(exchange)

    def _update_reading(self) -> None:
        """Stop reading while more than READ_HIGH_WATER_BYTES wait to be taken; else read."""
        exchange = self.exchange
        full = self.parser.buffered > READ_HIGH_WATER_BYTES or (
            exchange is not None and exchange.body_buffered >= READ_HIGH_WATER_BYTES)
        if full != self.read_paused and not self.closing:
            self.read_paused = full
            if full:
                self.transport.pause_reading()
            else:
                self.transport.resume_reading()

    def _response_complete(self, exchange: _Exchange) -> None:
        """The app sent the last of its response: go on to the next request, or close."""
        exchange.wake()
        if self.closing:
            return
        self.exchange = None
        if not exchange.keep_alive or not exchange.body_complete or self.server._shutting_down:
            # An unread rest of the body cannot be skipped without reading it: close instead.
            self._close_gracefully(self.limits.write_stall_timeout_seconds)
        elif self.parser.buffered:
            self._next_request()
        else:
            self._set_deadline(_IDLE, self.limits.keep_alive_timeout_seconds)
            self._update_reading()

    def _refuse(self, status: int, reason: str) -> None:
        """Answer a request the server refuses itself, then close."""
        server = self.server
        server._count_rejected(status)
        logger.debug("HTTP %d to %s: %s", status, self.client, reason)
        self.transport.write(error_response(status, reason, date=server._date(),
                                            server=_SERVER_LINE))
        self._close_gracefully(CLOSE_LINGER_SECONDS)

    def _end_exchange(self, exchange: _Exchange, status: int, reason: str) -> None:
        """A request failed after its app started (a bad body, a deadline, an app error):
        answer ``status`` if no response has gone out yet, else cut the response; close."""
        exchange.gone = True
        exchange.wake()
        if self.closing:
            return
        if exchange.head_written:
            self._close_gracefully(CLOSE_LINGER_SECONDS)
        else:
            self._refuse(status, reason)

    # -- timeouts, flow control, closing -------------------------------------------------------

    def _set_deadline(self, kind: int, seconds: float) -> None:
        self.deadline_kind = kind
        self.deadline = self.loop.time() + seconds

    def deadline_passed(self) -> None:
        """Called by the server's sweep when ``deadline`` has passed."""
        kind = self.deadline_kind
        self.deadline = 0.0
        self.deadline_kind = _NO_DEADLINE
        if kind == _IDLE:
            self._close_gracefully(CLOSE_LINGER_SECONDS)
        elif kind == _REQUEST:
            reason = (f"the request did not arrive whole within "
                      f"{self.limits.request_timeout_seconds:g}s")
            if self.exchange is None:
                self._refuse(408, reason)
            else:
                self._end_exchange(self.exchange, 408, reason)
        elif kind == _LINGER:
            self.transport.abort()

    def stalled(self) -> None:
        """Called by the sweep when a send() waited for a drain past the write-stall timeout."""
        self.stall_deadline = 0.0
        self.server.dropped_stalled_total += 1
        logger.debug("dropped %s: it read nothing for %gs with %d bytes waiting", self.client,
                     self.limits.write_stall_timeout_seconds,
                     self.transport.get_write_buffer_size())
        self.transport.abort()

    async def drain(self) -> None:
        """Wait until the write buffer is below its low-water mark; ClientDisconnected if the
        connection is lost first (or dropped, after the write-stall timeout)."""
        if self.lost:
            raise ClientDisconnected("the client's connection is closed")
        waiter = self.drain_waiter
        if waiter is None or waiter.done():
            waiter = self.drain_waiter = self.loop.create_future()
            self.stall_deadline = self.loop.time() + self.limits.write_stall_timeout_seconds
        await waiter

    def _close_gracefully(self, linger_seconds: float) -> None:
        """Send what is buffered, half-close (FIN), read and drop until the client closes or
        ``linger_seconds`` pass, then close: a close with unread input would send a reset that
        can destroy the answer before the client reads it."""
        if self.closing:
            return
        self.closing = True
        exchange = self.exchange
        if exchange is not None:
            exchange.gone = True
            exchange.wake()
        transport = self.transport
        self._set_deadline(_LINGER, linger_seconds)
        if not transport.can_write_eof():
            transport.close()
            return
        try:
            transport.write_eof()
        except OSError:   # the client is gone already (reset): nothing to linger for
            transport.abort()
            return
        if self.read_paused:
            self.read_paused = False
            transport.resume_reading()

    def shutdown(self) -> None:
        """Server shutdown: close if idle, end a streaming response, else close after it."""
        if self.closing:
            return
        exchange = self.exchange
        if exchange is None:
            self._close_gracefully(CLOSE_LINGER_SECONDS)
            return
        exchange.keep_alive = False
        if exchange.head_written and exchange.framing in (CHUNKED, CLOSE_DELIMITED):
            if exchange.framing == CHUNKED and _is_event_stream(exchange.head.lines):
                # An event stream has no natural end: a clean one is no lie. Any other stream
                # is cut, so that its client sees that the body was not all sent.
                self.transport.write(LAST_CHUNK)
            exchange.complete = True
            self.exchange = None
            exchange.gone = True
            exchange.wake()
            self._close_gracefully(self.limits.write_stall_timeout_seconds)


async def _in_task(resumed: _Resumed) -> None:
    """What an exchange's task runs (a task takes a coroutine, not any awaitable)."""
    await resumed


_NOT_STARTED = object()


class _Resumed:
    """Awaiting this runs an exchange's app (``run``, its coroutine) in the awaiting task, from
    its start (``awaited`` is _NOT_STARTED) or from the awaitable its first step, run by hand,
    stopped at: what it waits for goes up to the task, what the task sends or throws (a result,
    a cancellation) goes down to it. Each time it waits, the exchange's head goes out if the
    app has started one (_Exchange.waiting)."""

    __slots__ = ("run", "awaited", "exchange")

    def __init__(self, run: Any, awaited: Any, exchange: _Exchange) -> None:
        self.run, self.awaited, self.exchange = run, awaited, exchange

    def __await__(self) -> Any:
        run, awaited = self.run, self.awaited
        if awaited is _NOT_STARTED:
            try:
                awaited = run.send(None)
            except StopIteration:
                return
            self.exchange.waiting()
        while True:
            try:
                sent = yield awaited
            except BaseException as error:   # a cancellation, thrown into the Task
                try:
                    awaited = run.throw(error)
                except StopIteration:
                    return
            else:
                try:
                    awaited = run.send(sent)
                except StopIteration:
                    return
            self.exchange.waiting()


def _is_event_stream(header_lines: bytes) -> bool:
    """True if a response's header lines say ``content-type: text/event-stream``."""
    return b"\r\ncontent-type: text/event-stream" in b"\r\n" + header_lines.lower()


class _Exchange:
    """One request and its response: the ASGI receive() and send() the app is given."""

    __slots__ = ("conn", "request", "task", "is_head", "keep_alive", "body_chunks",
                 "body_buffered", "body_complete", "body_delivered", "continue_pending",
                 "waiters", "pump_scheduled", "head", "head_written", "framing", "remaining",
                 "complete", "gone")

    def __init__(self, conn: _Connection, request: Any) -> None:
        self.conn = conn
        self.request = request
        self.task: Optional[asyncio.Task] = None
        self.is_head = request.method == "HEAD"
        self.keep_alive = request.keep_alive and not conn.server._shutting_down
        self.body_chunks: list = []
        self.body_buffered = 0
        self.body_complete = not request.has_body
        self.body_delivered = False
        self.continue_pending = request.expect_continue
        self.waiters: list = []            # receive() calls waiting for body or disconnect
        self.pump_scheduled = False        # a _pump_more is due: the body had many chunks
        self.head: Any = None              # the app's checked http.response.start
        self.head_written = False
        self.framing = NO_BODY
        self.remaining: Optional[int] = None
        self.complete = False              # the app sent its last body message
        self.gone = False                  # closed, or ended by the server: no more sends

    async def run(self) -> None:
        """Run the app for this request; answer 500 if it fails before its response is out."""
        conn = self.conn
        request = self.request
        scope = {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": ASGI_SPEC_VERSION},
            "http_version": request.http_version,
            "server": conn.sockname,
            "client": conn.client,
            "scheme": "http",
            "method": request.method,
            "root_path": "",
            "path": request.path,
            "raw_path": request.raw_path,
            "query_string": request.query_string,
            "headers": request.headers,
        }
        try:
            await conn.server.app(scope, self.receive, self.send)
        except ClientDisconnected:
            pass
        except Exception:
            logger.exception("the ASGI app failed on %s %s", request.method, request.path)
            self._fail()
        except BaseException:
            self._fail()
            raise
        else:
            if not self.complete and not self.gone:
                logger.error("the ASGI app returned without %s its response to %s %s",
                             "completing" if self.head is not None else "starting",
                             request.method, request.path)
                self._fail()
        finally:
            conn.server._running.discard(self)

    def _fail(self) -> None:
        if not self.complete and not self.gone:
            self.conn._end_exchange(self, 500, "the application failed")

    def wake(self) -> None:
        """Wake every receive() waiting: there is body, or the exchange is over."""
        if self.waiters:
            for waiter in self.waiters:
                if not waiter.done():
                    waiter.set_result(None)
            self.waiters = []

    async def receive(self) -> dict:
        """ASGI receive(): the body as http.request messages, then http.disconnect once the
        response is complete or the connection is closed."""
        conn = self.conn
        if self.continue_pending:
            self.continue_pending = False
            if not self.gone and not self.body_complete:
                if not self.body_buffered and not conn.parser.buffered and self.head is None:
                    conn.transport.write(CONTINUE_RESPONSE)
                conn._set_deadline(_REQUEST, conn.limits.request_timeout_seconds)
        while True:
            if self.gone or self.complete:
                return {"type": "http.disconnect"}
            if self.body_chunks or (self.body_complete and not self.body_delivered):
                chunks = self.body_chunks
                body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
                more = not self.body_complete
                if chunks:
                    self.body_chunks = []
                    self.body_buffered = 0
                if not more:
                    self.body_delivered = True
                elif not self.pump_scheduled:
                    conn._pump_body(self)
                return {"type": "http.request", "body": body, "more_body": more}
            waiter = conn.loop.create_future()
            self.waiters.append(waiter)
            try:
                await waiter
            finally:
                if waiter in self.waiters:
                    self.waiters.remove(waiter)

    async def send(self, message: dict) -> None:
        """ASGI send(): http.response.start, then http.response.body messages. Waits while the
        write buffer is above the high-water mark; raises ClientDisconnected once the connection
        is closed, RuntimeError for messages out of order or a body longer or shorter than its
        content-length, ResponseError (a ValueError) for a status or header HTTP cannot carry."""
        conn = self.conn
        if conn.write_paused and not self.gone:
            await conn.drain()
        if self.gone:
            raise ClientDisconnected("the connection is closed")
        kind = message["type"]
        if kind == "http.response.body":
            if self.head is None:
                raise RuntimeError("ASGI: http.response.body before http.response.start")
            if self.complete:
                if self.framing == NO_BODY and self.head_written:
                    # A bodiless response (HEAD, 204, 304) ended when its head went out.
                    if message.get("more_body", False):
                        raise ClientDisconnected("the response has no body: it is complete")
                    return
                raise RuntimeError("ASGI: http.response.body after the response was complete")
            body = message.get("body", b"")
            more = message.get("more_body", False)
            if not self.head_written:
                self._write_head(None if more else len(body), body, more)
            elif body or not more:
                self._write_body(body, more)
            if not more and not self.complete:
                self.complete = True
                conn._response_complete(self)
        elif kind == "http.response.start":
            if self.head is not None:
                raise RuntimeError("ASGI: http.response.start sent twice")
            # Written with the first body message, or as soon as the app waits (waiting()).
            self.head = prepare_response_head(message["status"], message.get("headers", ()))
        else:
            raise RuntimeError(f"ASGI: unexpected message {kind!r} (this server takes "
                               f"http.response.start, then http.response.body)")

    def waiting(self) -> None:
        """The app waits (for its body, a drain, a stream's next event): a head it has started
        goes out now, so that the client is not kept waiting for the first body message."""
        if self.head is not None and not self.head_written and not self.gone:
            self._write_head(None, b"", True)

    def _write_head(self, body_length: Optional[int], body: bytes, more: bool) -> None:
        conn = self.conn
        server = conn.server
        request = self.request
        if not more and not self.body_complete:
            # The response is whole and the body is not all read: the connection closes after
            # it (_response_complete), so the head says so.
            self.keep_alive = False
        head, framing, length, keep_alive = frame_response_head(
            self.head, http_version=request.http_version, is_head=self.is_head,
            keep_alive=self.keep_alive, body_length=body_length, date=server._date(),
            server=_SERVER_LINE)
        self.framing = framing
        self.remaining = length
        if framing == LENGTH:
            self._check_length(len(body), more)   # before the head goes: a 500 can still go
        self.head_written = True
        self.keep_alive = keep_alive
        if framing == LENGTH:
            conn.transport.write(head + body if body else head)
        elif framing == CHUNKED:
            conn.transport.write(b"".join((head, frame_chunk(body), b"" if more else LAST_CHUNK)))
        elif framing == CLOSE_DELIMITED:
            conn.transport.write(head + body if body else head)
        else:
            conn.transport.write(head)
            if more and not self.gone:
                # No body will follow (HEAD, 204, 304): the response is complete on the wire, so
                # the next request need not wait for an app that streams what nobody reads.
                self.complete = True
                conn._response_complete(self)

    def _write_body(self, body: bytes, more: bool) -> None:
        framing = self.framing
        if framing == LENGTH:
            self._check_length(len(body), more)
            self.conn.transport.write(body)
        elif framing == CHUNKED:
            if more:
                self.conn.transport.write(frame_chunk(body))
            else:
                self.conn.transport.write(frame_chunk(body) + LAST_CHUNK)
        elif framing == CLOSE_DELIMITED:
            if body:
                self.conn.transport.write(body)

    def _check_length(self, size: int, more: bool) -> None:
        remaining = self.remaining - size
        if remaining < 0:
            raise RuntimeError(f"ASGI: the response body is longer than its content-length "
                               f"by {-remaining} bytes")
        self.remaining = remaining
        if not more and remaining:
            raise RuntimeError(f"ASGI: the response body ended {remaining} bytes short of its "
                               f"content-length")
