"""The built-in HTTP server (live/http/server.py) and its sans-IO protocol (live/http/protocol.py).

The server tests run it in a thread of its own event loop on a free loopback port and talk to it
over real sockets with raw bytes, against a small ASGI app defined here (echo, streams, slow,
failing). Limits are made small so that deadlines pass in milliseconds; every socket has a
timeout, so no test can hang. The protocol tests feed bytes and read events, no sockets.
"""

from __future__ import annotations

import asyncio
import errno
import json
import logging
import socket
import threading
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from live.http import protocol
from live.http.protocol import (
    END_OF_MESSAGE, NEED_DATA, ProtocolError, Request, RequestParser, ResponseError,
    frame_response_head, prepare_response_head,
)
from live.http import server as server_module
from live.http.server import ClientDisconnected, HTTPServer, Limits

SOCKET_TIMEOUT_SECONDS = 5.0
"""The longest any socket operation of a test may wait."""
QUICK = Limits(request_timeout_seconds=0.3, keep_alive_timeout_seconds=0.3,
               write_stall_timeout_seconds=0.3)
"""Limits whose deadlines pass in a third of a second."""


# -- the app under test -------------------------------------------------------------------------

class App:
    """A small ASGI app; ``log`` records what happened to streams and failures."""

    def __init__(self) -> None:
        self.log: list = []
        self.server: HTTPServer | None = None
        self.max_write_buffer_bytes = 0

    async def __call__(self, scope, receive, send):
        assert scope["type"] == "http"
        route = getattr(self, "route_" + scope["path"].strip("/").replace("-", "_") or "x", None)
        if route is None:
            await respond(send, 404, b"not found")
            return
        await route(scope, receive, send)

    async def route_echo(self, scope, receive, send):
        body = await read_body(receive)
        await respond(send, 200, body)

    async def route_scope(self, scope, receive, send):
        await read_body(receive)
        shown = {key: scope[key] for key in ("type", "asgi", "http_version", "method", "scheme",
                                             "path", "root_path", "client", "server")}
        shown["raw_path"] = scope["raw_path"].decode("latin-1")
        shown["query_string"] = scope["query_string"].decode("latin-1")
        shown["headers"] = [[n.decode("latin-1"), v.decode("latin-1")] for n, v in scope["headers"]]
        await respond(send, 200, json.dumps(shown).encode())

    async def route_hello(self, scope, receive, send):
        """No content-length from the app, one body message: the server counts it."""
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": b"hello world"})

    async def route_empty(self, scope, receive, send):
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body"})

    async def route_stream(self, scope, receive, send):
        count = int(scope["query_string"].split(b"=")[1]) if scope["query_string"] else 3
        await send({"type": "http.response.start", "status": 200, "headers": []})
        for i in range(count):
            await send({"type": "http.response.body", "body": b"part %d\n" % i, "more_body": True})
            await asyncio.sleep(0)
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def route_events(self, scope, receive, send):
        """A stream that never ends by itself, like a viewer's Server-Sent Events."""
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/event-stream")]})
        try:
            while True:
                await send({"type": "http.response.body", "body": b"data: tick\n\n",
                            "more_body": True})
                await asyncio.sleep(0.01)
        except ClientDisconnected:
            self.log.append("events: send raised ClientDisconnected")
            message = await receive()
            self.log.append("events: receive gave " + message["type"])

    async def route_watch(self, scope, receive, send):
        """A stream whose end is learnt from receive(), awaited by two watchers at once."""
        await read_body(receive)

        async def watch(name):
            message = await receive()
            self.log.append(f"{name}: {message['type']}")

        watchers = [asyncio.ensure_future(watch("first")), asyncio.ensure_future(watch("second"))]
        await send({"type": "http.response.start", "status": 200, "headers": []})
        while not all(w.done() for w in watchers):
            try:
                await send({"type": "http.response.body", "body": b"tick\n", "more_body": True})
            except ClientDisconnected:
                pass
            await asyncio.sleep(0.01)

    async def route_after(self, scope, receive, send):
        """receive() after the response is complete."""
        await read_body(receive)
        await respond(send, 200, b"done")
        message = await receive()
        self.log.append("after: " + message["type"])

    async def route_flood(self, scope, receive, send):
        """Sends 16 KiB chunks as fast as send() lets it, noting the write buffer's peak."""
        await send({"type": "http.response.start", "status": 200, "headers": []})
        chunk = b"x" * 16384
        try:
            for _ in range(100_000):
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
                for connection in list(self.server._connections):
                    self.max_write_buffer_bytes = max(self.max_write_buffer_bytes,
                                                      connection.transport.get_write_buffer_size())
        except ClientDisconnected:
            self.log.append("flood: dropped")

    async def route_slow(self, scope, receive, send):
        seconds = float(scope["query_string"].split(b"=")[1])
        await read_body(receive)
        try:
            await asyncio.sleep(seconds)
        except asyncio.CancelledError:
            self.log.append("slow: cancelled")
            raise
        await respond(send, 200, b"slow done")

    async def route_held(self, scope, receive, send):
        """Starts its response, then waits for ``released`` (set by the test) to end it; with
        ``?later``, starts it only after a first wait."""
        self.released = asyncio.Event()
        if scope["query_string"] == b"later":
            await asyncio.sleep(0)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await self.released.wait()
        await send({"type": "http.response.body", "body": b"released"})

    async def route_raise_after_waiting(self, scope, receive, send):
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        raise ValueError("boom after waiting")

    async def route_task(self, scope, receive, send):
        """Whether the app's first step, and its step after a wait, run in a task."""
        first = asyncio.current_task() is not None
        await asyncio.sleep(0)
        later = asyncio.current_task() is not None
        await respond(send, 200, json.dumps({"first": first, "later": later}).encode())

    async def route_timeout(self, scope, receive, send):
        """asyncio.timeout() (Python 3.11+), which needs a task, from the first step."""
        async with asyncio.timeout(5):
            await respond(send, 200, b"in time")

    async def route_raise(self, scope, receive, send):
        raise ValueError("boom before the response")

    async def route_raise_after_start(self, scope, receive, send):
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"partial", "more_body": True})
        await asyncio.sleep(0.01)
        raise ValueError("boom after the response started")

    async def route_nothing(self, scope, receive, send):
        return

    async def route_close(self, scope, receive, send):
        await respond(send, 200, b"bye", [(b"connection", b"close")])

    async def route_ignore_body(self, scope, receive, send):
        await respond(send, 200, b"ignored")


async def read_body(receive) -> bytes:
    parts = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnected("gone")
        parts.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(parts)


async def respond(send, status: int, body: bytes, headers=()) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"text/plain"),
                            (b"content-length", str(len(body)).encode())] + list(headers)})
    await send({"type": "http.response.body", "body": body})


# -- running the server, and a raw client --------------------------------------------------------

class Running:
    """An HTTPServer on a free loopback port, in a thread running its own event loop."""

    def __init__(self, app, limits: Limits = Limits(), **kwargs) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.server = HTTPServer(app, port=kwargs.pop("port", 0), limits=limits, **kwargs)
        if isinstance(app, App):
            app.server = self.server
        self.call(self.server.start())
        self.port = self.server.port

    def call(self, coroutine, timeout: float = 10.0):
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    def stop(self) -> None:
        self.call(self.server.shutdown(1.0))
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(SOCKET_TIMEOUT_SECONDS)
        self.loop.close()


@pytest.fixture(params=[False, True], ids=["task", "eager_start"])
def serve(request):
    """serve(app=None, limits=..., **kwargs) -> Running; stopped after the test. Every test
    that serves runs twice: each app in a task of its own, and with eager_start."""
    started = []

    def start(app=None, limits: Limits = Limits(), **kwargs) -> Running:
        kwargs.setdefault("eager_start", request.param)
        running = Running(app or App(), limits, **kwargs)
        started.append(running)
        return running

    yield start
    for running in started:
        running.stop()


class Response:
    def __init__(self, status: int, headers: list, body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body

    def header(self, name: str):
        values = [v for n, v in self.headers if n == name]
        assert len(values) <= 1, f"{name} sent {len(values)} times"
        return values[0] if values else None


class Client:
    """A raw HTTP/1.x client on one socket: sends bytes, parses responses (for the tests only)."""

    def __init__(self, port: int, rcvbuf: int | None = None) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(SOCKET_TIMEOUT_SECONDS)
        self.sock.connect(("127.0.0.1", port))
        self.file = self.sock.makefile("rb")

    def close(self) -> None:
        self.file.close()
        self.sock.close()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def get(self, path: str = "/echo", headers: str = "", method: str = "GET") -> Response:
        self.send(f"{method} {path} HTTP/1.1\r\nHost: test\r\n{headers}\r\n".encode())
        return self.read_response(method)

    def read_response(self, method: str = "GET") -> Response:
        line = self.file.readline()
        if not line:
            raise ConnectionError("the server closed the connection before a response")
        version, status, _ = line.split(b" ", 2)
        assert version == b"HTTP/1.1", line
        headers = []
        while True:
            line = self.file.readline()
            assert line.endswith(b"\r\n"), line
            if line == b"\r\n":
                break
            name, value = line.split(b":", 1)
            assert name == name.lower() and name == name.strip(), name
            headers.append((name.decode(), value.strip().decode()))
        response = Response(int(status), headers, b"")
        if response.status < 200 or method == "HEAD" or response.status in (204, 304):
            return response
        if response.header("content-length") is not None:
            response.body = self._read_exactly(int(response.header("content-length")))
        elif response.header("transfer-encoding") == "chunked":
            response.body = self._read_chunked()
        else:
            response.body = self.file.read()
        return response

    def _read_exactly(self, size: int) -> bytes:
        data = self.file.read(size)
        assert len(data) == size, f"{len(data)} of {size} body bytes"
        return data

    def _read_chunked(self) -> bytes:
        body = b""
        while True:
            size = int(self.file.readline().split(b";")[0], 16)
            if size == 0:
                assert self.file.readline() == b"\r\n"
                return body
            body += self._read_exactly(size)
            assert self.file.readline() == b"\r\n"

    def at_eof(self) -> bool:
        """True when the server has closed the connection (EOF or reset) with nothing unread."""
        try:
            return self.file.read(1) == b""
        except ConnectionResetError:
            return True


def raw_exchange(port: int, data: bytes) -> tuple:
    """Send raw bytes on a new connection; (the response, whether the server then closed)."""
    client = Client(port)
    try:
        client.send(data)
        response = client.read_response()
        return response, client.at_eof()
    finally:
        client.close()


def assert_still_serving(port: int) -> None:
    """Another client gets a 200: one bad client did not stop the server."""
    client = Client(port)
    try:
        response = client.get("/hello")
        assert response.status == 200 and response.body == b"hello world"
    finally:
        client.close()


# -- HTTP/1.1 features -------------------------------------------------------------------------

def test_keep_alive_serves_requests_on_one_connection(serve):
    """Two requests on one connection both get answered; the connection stays open."""
    running = serve()
    client = Client(running.port)
    first = client.get("/hello")
    second = client.get("/hello")
    assert (first.status, second.status) == (200, 200)
    assert first.header("connection") is None and second.body == b"hello world"
    assert running.server.open_connections == 1
    client.close()


def test_response_headers_include_date_server_and_length(serve):
    """The server adds date and server; a whole body gets its content-length."""
    running = serve()
    client = Client(running.port)
    response = client.get("/hello")
    assert response.header("server") == "live-http"
    assert response.header("date").endswith(" GMT")
    assert response.header("content-length") == "11"
    assert response.header("transfer-encoding") is None
    client.close()


def test_pipelined_requests_are_answered_in_order(serve):
    """Requests sent together are answered one by one, in the order sent, a slow one first."""
    running = serve()
    client = Client(running.port)
    client.send(b"GET /slow?seconds=0.05 HTTP/1.1\r\nHost: t\r\n\r\n"
                b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\none"
                b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n3\r\ntwo\r\n0\r\n\r\n"
                b"GET /hello HTTP/1.1\r\nHost: t\r\n\r\n")
    bodies = [client.read_response().body for _ in range(4)]
    assert bodies == [b"slow done", b"one", b"two", b"hello world"]
    client.close()


def test_connection_close_from_the_client(serve):
    """Connection: close from the client is echoed, and the server closes after the response."""
    running = serve()
    client = Client(running.port)
    response = client.get("/hello", "Connection: close\r\n")
    assert response.status == 200 and response.header("connection") == "close"
    assert client.at_eof()
    client.close()


def test_connection_close_from_the_app(serve):
    """An app's connection: close is sent once, and the connection is closed after it."""
    running = serve()
    client = Client(running.port)
    response = client.get("/close")
    assert response.body == b"bye" and response.header("connection") == "close"
    assert client.at_eof()
    client.close()


def test_http_1_0_closes_after_the_response(serve):
    """An HTTP/1.0 request without keep-alive gets its answer, then the connection closes."""
    running = serve()
    response, closed = raw_exchange(running.port, b"GET /hello HTTP/1.0\r\n\r\n")
    assert response.status == 200 and response.body == b"hello world"
    assert response.header("connection") == "close" and closed


def test_http_1_0_keep_alive_is_honoured(serve):
    """HTTP/1.0 with Connection: keep-alive keeps the connection and says so."""
    running = serve()
    client = Client(running.port)
    client.send(b"GET /hello HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
    response = client.read_response()
    assert response.header("connection") == "keep-alive"
    client.send(b"GET /hello HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
    assert client.read_response().status == 200
    client.close()


def test_http_1_0_stream_is_close_delimited(serve):
    """A stream to an HTTP/1.0 client is not chunked: the body ends when the connection does."""
    running = serve()
    response, closed = raw_exchange(running.port,
                                    b"GET /stream?n=3 HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
    assert response.header("transfer-encoding") is None
    assert response.header("content-length") is None
    assert response.body == b"part 0\npart 1\npart 2\n" and closed


def test_http_1_1_stream_is_chunked(serve):
    """A response of several body messages without content-length is chunked on HTTP/1.1."""
    running = serve()
    client = Client(running.port)
    response = client.get("/stream?n=3")
    assert response.header("transfer-encoding") == "chunked"
    assert response.body == b"part 0\npart 1\npart 2\n"
    assert client.get("/hello").status == 200
    client.close()


def test_head_has_get_headers_and_no_body(serve):
    """HEAD gets the headers GET would, content-length included, and no body bytes."""
    running = serve()
    client = Client(running.port)
    head = client.get("/hello", method="HEAD")
    assert head.status == 200 and head.header("content-length") == "11"
    following = client.get("/hello")      # a stray body byte would spoil this response
    assert following.status == 200 and following.body == b"hello world"
    client.close()


def test_response_without_body_gets_content_length_zero(serve):
    """A response with no body and no length says content-length: 0."""
    running = serve()
    client = Client(running.port)
    response = client.get("/empty")
    assert response.header("content-length") == "0" and response.body == b""
    client.close()


def test_expect_100_continue_when_the_app_reads(serve):
    """Expect: 100-continue gets 100 Continue when the app asks for the body, then the answer."""
    running = serve()
    client = Client(running.port)
    client.send(b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
    interim = client.read_response()
    assert interim.status == 100
    client.send(b"hello")
    assert client.read_response().body == b"hello"
    client.close()


def test_expect_100_continue_over_the_body_limit_is_413_at_once(serve):
    """A body announced over the limit is refused with 413 before any of it is sent."""
    running = serve(limits=Limits(max_body_bytes=1000))
    response, closed = raw_exchange(
        running.port,
        b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 1001\r\nExpect: 100-continue\r\n\r\n")
    assert response.status == 413 and closed
    assert_still_serving(running.port)


def test_chunked_request_body_is_decoded(serve):
    """A chunked body reaches the app decoded; extensions and trailers are dropped."""
    running = serve()
    client = Client(running.port)
    client.send(b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
                b"5;name=value\r\nhello\r\n1\r\n \r\n5\r\nworld\r\n0\r\nTrailer: x\r\n\r\n")
    assert client.read_response().body == b"hello world"
    client.close()


def test_body_of_many_tiny_chunks_is_decoded_whole(serve):
    """A body of thousands of one-byte chunks (decoded in turns, so that other connections are
    not held up) reaches the app whole."""
    running = serve()
    client = Client(running.port)
    body = bytes(range(256)) * 40
    client.send(b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
                + b"".join(b"1\r\n%s\r\n" % body[i:i + 1] for i in range(len(body)))
                + b"0\r\n\r\n")
    assert client.read_response().body == body
    client.close()


def test_body_sent_in_pieces_is_streamed_to_the_app(serve):
    """A body arriving slowly is handed over as it comes, then whole."""
    running = serve()
    client = Client(running.port)
    client.send(b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 6\r\n\r\nab")
    time.sleep(0.05)
    client.send(b"cd")
    time.sleep(0.05)
    client.send(b"ef")
    assert client.read_response().body == b"abcdef"
    client.close()


@pytest.mark.parametrize("target", ["/held", "/held?later"])
def test_a_started_head_goes_out_when_the_app_waits(serve, target):
    """An app that starts its response and then waits (for a tick, a drain) has its head on the
    wire before its first body message: the client need not wait for the body to see it. So
    with a head started in the app's first step, and in a later one."""
    app = App()
    running = serve(app)
    client = Client(running.port)
    client.send(b"GET %s HTTP/1.1\r\nHost: t\r\n\r\n" % target.encode())
    head = b""
    while not head.endswith(b"\r\n\r\n"):
        head += client.sock.recv(1)   # nothing released yet: only the head can come
    assert head.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"transfer-encoding: chunked" in head
    running.loop.call_soon_threadsafe(app.released.set)
    assert client._read_chunked() == b"released"
    client.close()


def test_an_app_failing_after_it_waited_is_500_and_the_server_goes_on(serve, caplog):
    """An app carried on past its first step (it waited) fails: 500, logged, others served."""
    running = serve()
    with caplog.at_level(logging.ERROR, logger="live.http.server"):
        response, closed = raw_exchange(running.port,
                                        b"GET /raise-after-waiting HTTP/1.1\r\nHost: t\r\n\r\n")
    assert response.status == 500 and closed
    assert sum("boom after waiting" in r.getMessage() + str(r.exc_info) for r in caplog.records) == 1
    assert_still_serving(running.port)


def test_each_app_runs_in_a_task_unless_eager_start(serve):
    """By default an app runs in a task from its first step, as under any ASGI server, so
    asyncio.timeout() and anyio work; with eager_start its first step runs with no task, and
    what follows a wait runs in one."""
    for eager_start in (False, True):
        running = serve(eager_start=eager_start)
        response, _ = raw_exchange(
            running.port, b"GET /task HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        assert json.loads(response.body) == {"first": not eager_start, "later": True}


@pytest.mark.skipif(not hasattr(asyncio, "timeout"), reason="asyncio.timeout is Python 3.11+")
def test_asyncio_timeout_works_in_an_apps_first_step_by_default(serve):
    running = serve(eager_start=False)
    response, _ = raw_exchange(
        running.port, b"GET /timeout HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
    assert (response.status, response.body) == (200, b"in time")


def test_bodies_larger_than_one_read_arrive_whole_and_unmixed(serve):
    """Every connection reads through the server's one read buffer: two clients sending bodies
    of several reads each, interleaved, each get their own bytes back."""
    running = serve()
    size = 5 * server_module.READ_BUFFER_BYTES + 123
    clients = [Client(running.port) for _ in range(2)]
    bodies = [bytes([65 + n]) * size for n in range(2)]
    head = b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n" % size
    for client in clients:
        client.send(head)
    step = server_module.READ_BUFFER_BYTES // 2
    for start in range(0, size, step):
        for client, body in zip(clients, bodies):
            client.send(body[start:start + step])
    for client, body in zip(clients, bodies):
        assert client.read_response().body == body
        client.close()


def test_scope_is_asgi_3(serve):
    """The scope has ASGI 3's keys: a percent-decoded path, the raw path, lower-cased headers."""
    running = serve()
    client = Client(running.port)
    scope = json.loads(client.get("/sc%6Fpe?a=1&b=%20", "X-Custom: Value\r\n").body)
    assert scope["asgi"] == {"version": "3.0", "spec_version": "2.4"}
    assert (scope["type"], scope["method"], scope["http_version"]) == ("http", "GET", "1.1")
    assert (scope["path"], scope["raw_path"]) == ("/scope", "/sc%6Fpe")
    assert scope["query_string"] == "a=1&b=%20" and scope["root_path"] == ""
    assert ["x-custom", "Value"] in scope["headers"] and ["host", "test"] in scope["headers"]
    assert scope["scheme"] == "http" and scope["client"][0] == "127.0.0.1"
    assert scope["server"] == ["127.0.0.1", running.port]
    client.close()


def test_absolute_form_target_gives_its_path(serve):
    """A request target in absolute form (as to a proxy) gives the app its path and query."""
    running = serve()
    client = Client(running.port)
    scope = json.loads(client.get("http://example.com/scope?q=1").body)
    assert (scope["path"], scope["query_string"]) == ("/scope", "q=1")
    client.close()


def test_equal_repeated_content_length_is_accepted(serve):
    """Content-Length repeated with the same value is taken as one (RFC 9110 §8.6)."""
    running = serve()
    client = Client(running.port)
    client.send(b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\nContent-Length: 3, 3\r\n\r\nabc")
    assert client.read_response().body == b"abc"
    client.close()


def test_client_closing_its_side_is_gone(serve):
    """A client that shuts down its side while its request runs is taken to have left: the app's
    receive() gives http.disconnect, and the connection closes with no answer."""
    app = App()
    running = serve(app)
    client = Client(running.port)
    client.send(b"GET /watch HTTP/1.1\r\nHost: t\r\n\r\n")
    assert client.file.readline() == b"HTTP/1.1 200 OK\r\n"
    client.sock.shutdown(socket.SHUT_WR)
    deadline = time.monotonic() + SOCKET_TIMEOUT_SECONDS
    while len(app.log) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert sorted(app.log) == ["first: http.disconnect", "second: http.disconnect"]
    assert not client.file.read().endswith(b"0\r\n\r\n")   # cut, then closed
    client.close()
    assert_still_serving(running.port)


def test_head_of_an_endless_stream_does_not_hold_the_connection(serve):
    """HEAD on a stream that never ends: the head is the whole response, the next request on
    the connection is answered, and the app's next send() raises ClientDisconnected."""
    app = App()
    running = serve(app)
    client = Client(running.port)
    head = client.get("/events", method="HEAD")
    assert head.status == 200 and head.header("transfer-encoding") == "chunked"
    assert client.get("/hello").body == b"hello world"
    deadline = time.monotonic() + SOCKET_TIMEOUT_SECONDS
    while len(app.log) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert app.log == ["events: send raised ClientDisconnected",
                       "events: receive gave http.disconnect"]
    client.close()


def test_response_ignoring_an_unread_body_closes_the_connection(serve):
    """An app that answers before a body has arrived whole: the answer, then the close."""
    running = serve()
    client = Client(running.port)
    client.send(b"POST /ignore-body HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\nabc")
    response = client.read_response()
    assert response.body == b"ignored" and response.header("connection") == "close"
    assert client.at_eof()
    client.close()


def test_an_answer_before_a_long_body_says_the_connection_closes(serve):
    """A body of more than one read, unread when the app answers: the answer says
    ``connection: close`` (the server will close), so a client pipelining behind it knows."""
    running = serve()
    client = Client(running.port)
    size = 2 * server_module.READ_HIGH_WATER_BYTES
    client.send(b"POST /ignore-body HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n" % size
                + b"x" * size + b"GET /hello HTTP/1.1\r\nHost: t\r\n\r\n")
    response = client.read_response()
    assert (response.body, response.header("connection")) == (b"ignored", "close")
    assert client.at_eof()
    client.close()


def test_client_leaving_a_stream_is_seen_by_every_receive(serve):
    """When a client closes during a stream, every receive() waiting gives http.disconnect."""
    app = App()
    running = serve(app)
    client = Client(running.port)
    client.send(b"GET /watch HTTP/1.1\r\nHost: t\r\n\r\n")
    assert client.file.readline() == b"HTTP/1.1 200 OK\r\n"
    client.close()
    deadline = time.monotonic() + SOCKET_TIMEOUT_SECONDS
    while len(app.log) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert sorted(app.log) == ["first: http.disconnect", "second: http.disconnect"]


def test_receive_after_the_response_gives_disconnect(serve):
    """Once the response is complete, receive() gives http.disconnect at once."""
    app = App()
    running = serve(app)
    client = Client(running.port)
    assert client.get("/after").body == b"done"
    assert client.get("/hello").status == 200
    assert app.log == ["after: http.disconnect"]
    client.close()


# -- the app failing ---------------------------------------------------------------------------

def test_app_raising_before_the_response_is_500_logged_once(serve, caplog):
    """An app that raises before responding: 500 with a small body, one log record with the
    traceback; the server goes on."""
    running = serve()
    with caplog.at_level(logging.ERROR, logger="live.http.server"):
        response, closed = raw_exchange(running.port, b"GET /raise HTTP/1.1\r\nHost: t\r\n\r\n")
    assert response.status == 500 and b"application" in response.body and closed
    records = [r for r in caplog.records if r.name == "live.http.server"]
    assert len(records) == 1 and records[0].exc_info[0] is ValueError
    assert_still_serving(running.port)


def test_app_raising_after_the_response_started_closes_the_connection(serve, caplog):
    """Once the status went out, a failing app's response is cut by closing the connection."""
    running = serve()
    client = Client(running.port)
    with caplog.at_level(logging.CRITICAL, logger="live.http.server"):
        client.send(b"GET /raise-after-start HTTP/1.1\r\nHost: t\r\n\r\n")
        assert client.file.readline() == b"HTTP/1.1 200 OK\r\n"
        rest = client.file.read()       # until the server closes
    assert b"partial" in rest and not rest.endswith(b"0\r\n\r\n")
    client.close()
    assert_still_serving(running.port)


def test_app_returning_without_a_response_is_500(serve, caplog):
    """An app that returns without sending anything gets a 500 for it."""
    running = serve()
    with caplog.at_level(logging.CRITICAL, logger="live.http.server"):
        response, closed = raw_exchange(running.port, b"GET /nothing HTTP/1.1\r\nHost: t\r\n\r\n")
    assert response.status == 500 and closed


# -- bad requests, as raw bytes ----------------------------------------------------------------

BAD_REQUESTS = {
    "both content-length and transfer-encoding":
        (b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n", 400),
    "content-length not digits": (b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: abc\r\n\r\n", 400),
    "content-length with a sign": (b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: +3\r\n\r\nabc", 400),
    "content-length negative": (b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: -1\r\n\r\n", 400),
    "content-length with a space inside": (b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 1 0\r\n\r\n", 400),
    "content-length too long": (b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 0000000000000000003\r\n\r\nabc", 400),
    "content-length repeated, different": (b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd", 400),
    "content-length list, different": (b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 3, 4\r\n\r\nabcd", 400),
    "transfer-encoding gzip": (b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", 501),
    "transfer-encoding unknown": (b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: foo\r\n\r\n", 400),
    "transfer-encoding chunked not last": (b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", 400),
    "transfer-encoding chunked twice": (b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
    "transfer-encoding in HTTP/1.0": (b"POST /echo HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
    "request line of two parts": (b"GET /echo\r\nHost: t\r\n\r\n", 400),
    "request line with a double space": (b"GET  /echo HTTP/1.1\r\nHost: t\r\n\r\n", 400),
    "request target not a path": (b"GET echo HTTP/1.1\r\nHost: t\r\n\r\n", 400),
    "request target not ASCII": ("GET /\u00e9 HTTP/1.1\r\nHost: t\r\n\r\n".encode(), 400),
    "method not a token": (b"G@T /echo HTTP/1.1\r\nHost: t\r\n\r\n", 400),
    "version malformed": (b"GET /echo HTTP/1.x\r\nHost: t\r\n\r\n", 400),
    "header without colon": (b"GET /echo HTTP/1.1\r\nHost: t\r\nNoColonHere\r\n\r\n", 400),
    "whitespace before colon": (b"GET /echo HTTP/1.1\r\nHost: t\r\nX-A : b\r\n\r\n", 400),
    "obs-fold": (b"GET /echo HTTP/1.1\r\nHost: t\r\nX-A: b\r\n  folded\r\n\r\n", 400),
    "header name not a token": (b"GET /echo HTTP/1.1\r\nHost: t\r\nX(A): b\r\n\r\n", 400),
    "NUL in a header value": (b"GET /echo HTTP/1.1\r\nHost: t\r\nX-A: b\x00c\r\n\r\n", 400),
    "CR in a header value": (b"GET /echo HTTP/1.1\r\nHost: t\r\nX-A: b\rc\r\n\r\n", 400),
    "bare LF in a header value": (b"GET /echo HTTP/1.1\r\nHost: t\r\nX-A: b\nX-B: c\r\n\r\n", 400),
    "NUL in a header name": (b"GET /echo HTTP/1.1\r\nHost: t\r\nX\x00A: b\r\n\r\n", 400),
    "no Host in HTTP/1.1": (b"GET /echo HTTP/1.1\r\n\r\n", 400),
    "two Host headers": (b"GET /echo HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
    "chunk size not hex": (b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 400),
    "chunk size with 0x": (b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n0x3\r\nabc\r\n0\r\n\r\n", 400),
    "chunk size negative": (b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n-3\r\nabc\r\n0\r\n\r\n", 400),
    "chunk size too long": (b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n" + b"0" * 17 + b"1\r\nx\r\n0\r\n\r\n", 400),
    "chunk data without CRLF": (b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcX\r\n0\r\n\r\n", 400),
    "HTTP/2.0": (b"GET /echo HTTP/2.0\r\nHost: t\r\n\r\n", 505),
    "HTTP/0.9 style version": (b"GET /echo HTTP/0.9\r\nHost: t\r\n\r\n", 505),
    "unknown expectation": (b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\nExpect: magic\r\n\r\nx", 417),
}


@pytest.mark.parametrize("name", sorted(BAD_REQUESTS))
def test_bad_request_is_refused_and_closed(serve, name):
    """Each malformed request gets its status, the connection is closed, and others are served."""
    data, status = BAD_REQUESTS[name]
    running = serve()
    response, closed = raw_exchange(running.port, data)
    assert response.status == status, response.body
    assert response.header("connection") == "close" and closed
    assert running.server.rejected_by_status[status] == 1
    assert_still_serving(running.port)


def test_mangled_requests_never_break_a_callback(serve):
    """Requests mangled at random (cut, spliced, with stray bytes, closed early), to every route:
    no protocol callback or task fails with an unexpected error, and the server goes on."""
    import random
    app = App()
    running = serve(app, limits=QUICK)
    errors = []
    running.loop.call_soon_threadsafe(running.loop.set_exception_handler,
                                      lambda loop, context: errors.append(context))
    rng = random.Random(14)
    routes = [n[len("route_"):].replace("_", "-").encode() for n in dir(App) if n.startswith("route_")]
    routes = [r for r in routes if r not in (b"flood", b"slow")]

    def mangled_client() -> None:
        data = b"".join(
            b"%s /%s HTTP/1.1\r\nHost: x\r\n" % (rng.choice([b"GET", b"POST", b"HEAD"]),
                                                  rng.choice(routes))
            + b"".join(rng.choice(FRAGMENTS) for _ in range(rng.randint(0, 12)))
            + rng.choice([b"\r\n", b"\r\n\r\n", b""])
            for _ in range(rng.randint(1, 3)))
        sock = socket.create_connection(("127.0.0.1", running.port), timeout=SOCKET_TIMEOUT_SECONDS)
        try:
            sock.sendall(data)
            sock.settimeout(0.02)
            try:
                sock.recv(65536)
            except OSError:
                pass
        finally:
            sock.close()

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(logging.getLogger("live.http.server"), "disabled", True)
        for _ in range(80):
            mangled_client()
        time.sleep(0.5)
    assert errors == []
    assert_still_serving(running.port)


def test_request_line_over_the_limit_is_414(serve):
    """A request line longer than the limit is 414, even before its end arrives."""
    running = serve(limits=Limits(max_request_line_bytes=100))
    response, closed = raw_exchange(running.port, b"GET /" + b"a" * 200)
    assert response.status == 414 and closed
    assert_still_serving(running.port)


def test_head_over_the_limit_is_431(serve):
    """A request head longer than the limit is 431, without waiting for its end."""
    running = serve(limits=Limits(max_head_bytes=1024))
    response, closed = raw_exchange(running.port,
                                    b"GET /echo HTTP/1.1\r\nHost: t\r\nX-Big: " + b"a" * 2000)
    assert response.status == 431 and closed
    assert_still_serving(running.port)


def test_too_many_headers_is_431(serve):
    """More header lines than the limit is 431."""
    running = serve(limits=Limits(max_headers=10))
    headers = b"".join(b"X-%d: v\r\n" % i for i in range(10))
    response, closed = raw_exchange(running.port,
                                    b"GET /echo HTTP/1.1\r\nHost: t\r\n" + headers + b"\r\n")
    assert response.status == 431 and closed
    assert_still_serving(running.port)


def test_content_length_over_the_limit_is_413(serve):
    """A Content-Length over the body limit is 413 before the body is read."""
    running = serve(limits=Limits(max_body_bytes=10))
    response, closed = raw_exchange(running.port,
                                    b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 11\r\n\r\n")
    assert response.status == 413 and closed
    assert_still_serving(running.port)


def test_chunked_body_over_the_limit_is_413(serve):
    """Chunks adding up to more than the body limit are 413 when the chunk that passes it is
    announced."""
    running = serve(limits=Limits(max_body_bytes=10))
    response, closed = raw_exchange(
        running.port, b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
                      b"6\r\nabcdef\r\n6\r\nghijkl\r\n0\r\n\r\n")
    assert response.status == 413 and closed
    assert_still_serving(running.port)


# -- deadlines, caps, back-pressure ------------------------------------------------------------

def test_slow_request_head_gets_408_and_close(serve):
    """A head that does not arrive whole within the request deadline gets 408, then the close."""
    running = serve(limits=QUICK)
    client = Client(running.port)
    started = time.monotonic()
    client.send(b"GET /echo HTTP/1.1\r\nHost: t\r\n")
    response = client.read_response()
    assert response.status == 408 and client.at_eof()
    assert 0.25 <= time.monotonic() - started < 2.0
    client.close()
    assert_still_serving(running.port)


def test_slow_request_body_gets_408_and_close(serve):
    """A body that does not arrive whole within the request deadline gets 408, then the close."""
    running = serve(limits=QUICK)
    client = Client(running.port)
    client.send(b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nabc")
    response = client.read_response()
    assert response.status == 408 and client.at_eof()
    client.close()


def test_idle_keep_alive_connection_is_closed_quietly(serve):
    """After a response, a connection that sends nothing is closed after the keep-alive timeout,
    with no bytes sent."""
    running = serve(limits=QUICK)
    client = Client(running.port)
    assert client.get("/hello").status == 200
    started = time.monotonic()
    assert client.at_eof()
    assert 0.25 <= time.monotonic() - started < 2.0
    client.close()


def test_new_connection_sending_nothing_is_closed(serve):
    """A connection that never sends a byte is closed after the keep-alive timeout."""
    running = serve(limits=QUICK)
    client = Client(running.port)
    assert client.at_eof()
    client.close()


def test_connection_cap_answers_503_with_retry_after(serve):
    """Past the connection cap a new connection gets 503 with Retry-After and is closed; once
    one closes, a new connection is served again."""
    running = serve(limits=Limits(max_connections=3))
    held = [Client(running.port) for _ in range(3)]
    assert held[0].get("/hello").status == 200
    response, closed = raw_exchange(running.port, b"GET /hello HTTP/1.1\r\nHost: t\r\n\r\n")
    assert response.status == 503 and response.header("retry-after") == "5" and closed
    held.pop().close()
    deadline = time.monotonic() + SOCKET_TIMEOUT_SECONDS
    while running.server.open_connections > 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert_still_serving(running.port)
    for client in held:
        client.close()


def test_stalled_stream_reader_is_dropped_with_bounded_buffer(serve):
    """A client that stops reading a stream: send() waits at the high-water mark, the buffer
    never grows past it plus one message, and after the stall timeout the client is dropped
    and the app's send() raises ClientDisconnected."""
    app = App()
    limits = Limits(write_high_water_bytes=65536, write_stall_timeout_seconds=0.3)
    running = serve(app, limits=limits)
    client = Client(running.port, rcvbuf=4096)
    client.send(b"GET /flood HTTP/1.1\r\nHost: t\r\n\r\n")
    deadline = time.monotonic() + SOCKET_TIMEOUT_SECONDS
    while "flood: dropped" not in app.log and time.monotonic() < deadline:
        time.sleep(0.02)
    assert app.log == ["flood: dropped"]
    assert 0 < app.max_write_buffer_bytes <= 65536 + 16384
    assert running.server.dropped_stalled_total == 1
    client.close()
    assert_still_serving(running.port)


def test_a_slow_client_does_not_stall_the_others(serve):
    """While one client's head is still incomplete, another is answered; then the slow one
    is answered too when its head is whole."""
    running = serve()
    slow = Client(running.port)
    slow.send(b"GET /echo HT")
    assert_still_serving(running.port)  # answered while the slow head is half sent
    slow.send(b"TP/1.1\r\nHost: t\r\n\r\n")
    assert slow.read_response().status == 200
    slow.close()


def test_pipelined_flood_is_read_with_bounded_buffering(serve):
    """A client sending many pipelined requests without reading is not read past the high-water
    mark: what the server holds for it stays bounded."""
    running = serve()
    client = Client(running.port, rcvbuf=4096)
    request = b"GET /hello HTTP/1.1\r\nHost: t\r\n\r\n"
    client.sock.setblocking(False)
    sent = 0
    try:
        for _ in range(20000):
            sent += client.sock.send(request * 64)
    except BlockingIOError:
        pass
    client.sock.settimeout(SOCKET_TIMEOUT_SECONDS)
    time.sleep(0.2)
    held = [c.parser.buffered for c in list(running.server._connections)]
    assert sent > 65536 + 262144 and max(held) <= 65536 + 262144
    client.close()
    assert_still_serving(running.port)


def test_limits_must_be_above_zero():
    """A limit of 0, below 0 or not a number is refused when Limits is made, naming the field."""
    for bad in ({"max_body_bytes": 0}, {"keep_alive_timeout_seconds": -1},
                {"max_connections": "many"}, {"max_headers": True}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            Limits(**bad)


def test_open_files_limit_is_raised_then_the_cap_fitted(monkeypatch):
    """A soft open-files limit below the cap is raised to the hard one; a cap that still does not
    fit is lowered, leaving the reserved descriptors free."""
    import resource
    from live.http import server as server_module
    limits = {"soft": 1024, "hard": 4096}
    monkeypatch.setattr(resource, "getrlimit", lambda kind: (limits["soft"], limits["hard"]))
    monkeypatch.setattr(resource, "setrlimit",
                        lambda kind, pair: limits.update(soft=pair[0], hard=pair[1]))
    allowed = server_module._fit_open_files(16384)
    assert limits["soft"] == 4096
    assert allowed == 4096 - server_module.RESERVED_FILE_DESCRIPTORS
    limits.update(soft=1024, hard=1_000_000)
    assert server_module._fit_open_files(16384) == 16384 and limits["soft"] == 1_000_000


# -- binding, ports, shutdown ------------------------------------------------------------------

def test_port_zero_takes_a_free_port(serve):
    """Port 0 binds any free port, and .port tells which."""
    running = serve()
    assert running.port > 0 and running.server.host == "127.0.0.1"


def test_busy_port_raises_eaddrinuse(serve):
    """start() on a port already bound raises OSError with EADDRINUSE."""
    running = serve()
    second = HTTPServer(App(), port=running.port)
    with pytest.raises(OSError) as raised:
        running.call(second.start())
    assert raised.value.errno == errno.EADDRINUSE


@pytest.mark.skipif(not hasattr(socket, "SO_REUSEPORT"), reason="no SO_REUSEPORT on this OS")
def test_reuse_port_lets_two_servers_share_a_port(serve):
    """With reuse_port=True two servers bind the same port, and each serves."""
    first = serve(reuse_port=True)
    second = serve(port=first.port, reuse_port=True)
    assert second.port == first.port
    assert_still_serving(first.port)


def test_open_connections_counts_clients(serve):
    """open_connections counts the connections open now."""
    running = serve()
    clients = [Client(running.port) for _ in range(3)]
    for client in clients:
        assert client.get("/hello").status == 200
    assert running.server.open_connections == 3
    for client in clients:
        client.close()


def test_shutdown_answers_the_request_in_flight(serve):
    """shutdown() lets a request in flight finish and be answered (with connection: close),
    closes the listening socket, and returns."""
    running = serve()
    client = Client(running.port)
    client.send(b"GET /slow?seconds=0.3 HTTP/1.1\r\nHost: t\r\n\r\n")
    time.sleep(0.1)
    running.call(running.server.shutdown(5.0))
    response = client.read_response()
    assert response.body == b"slow done" and response.header("connection") == "close"
    assert client.at_eof()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", running.port), timeout=1.0)
    client.close()


def test_shutdown_closes_idle_connections(serve):
    """shutdown() closes keep-alive connections that wait between requests."""
    running = serve()
    client = Client(running.port)
    assert client.get("/hello").status == 200
    running.call(running.server.shutdown(5.0))
    assert client.at_eof()
    assert running.server.open_connections == 0
    client.close()


def test_shutdown_ends_event_streams(serve):
    """shutdown() ends an event stream: the client gets the last chunk and the close; the app's
    send() raises ClientDisconnected and its receive() gives http.disconnect."""
    app = App()
    running = serve(app)
    client = Client(running.port)
    client.send(b"GET /events HTTP/1.1\r\nHost: t\r\n\r\n")
    assert client.file.readline() == b"HTTP/1.1 200 OK\r\n"
    time.sleep(0.05)
    started = time.monotonic()
    running.call(running.server.shutdown(5.0))
    assert time.monotonic() - started < 1.0
    rest = client.file.read()
    assert b"data: tick" in rest and rest.endswith(b"\r\n0\r\n\r\n")
    assert app.log == ["events: send raised ClientDisconnected", "events: receive gave http.disconnect"]
    client.close()


def test_shutdown_cuts_other_streams(serve):
    """A stream that is not an event stream is cut at shutdown, not ended with a last chunk
    that would pass it off as whole; its app's receive() gives http.disconnect."""
    app = App()
    running = serve(app)
    client = Client(running.port)
    client.send(b"GET /watch HTTP/1.1\r\nHost: t\r\n\r\n")
    assert client.file.readline() == b"HTTP/1.1 200 OK\r\n"
    time.sleep(0.05)
    running.call(running.server.shutdown(5.0))
    rest = client.file.read()
    assert b"tick" in rest and not rest.endswith(b"0\r\n\r\n")
    assert sorted(app.log) == ["first: http.disconnect", "second: http.disconnect"]
    client.close()


def test_shutdown_cancels_what_outlives_the_timeout(serve, caplog):
    """A request still running when the shutdown timeout passes is cancelled and its connection
    closed; shutdown() returns soon after the timeout."""
    app = App()
    running = serve(app)
    client = Client(running.port)
    client.send(b"GET /slow?seconds=30 HTTP/1.1\r\nHost: t\r\n\r\n")
    time.sleep(0.1)
    started = time.monotonic()
    with caplog.at_level(logging.CRITICAL, logger="live.http.server"):
        running.call(running.server.shutdown(0.2))
    assert time.monotonic() - started < 2.0
    assert app.log == ["slow: cancelled"]
    assert running.server.open_connections == 0
    client.close()


# -- protocol.py: bytes in, events out ---------------------------------------------------------

def parse_all(data: bytes, **limits) -> list:
    parser = RequestParser(**limits)
    parser.feed(data)
    events = []
    while True:
        event = parser.next_event()
        if event is NEED_DATA:
            return events
        events.append(event)


def test_parser_reads_a_head_fed_one_byte_at_a_time():
    """A head arriving byte by byte parses as it would in one piece."""
    data = b"GET /a%2Fb?x=%20 HTTP/1.1\r\nHost: h\r\nX-Two: a\r\nX-Two: b\r\n\r\n"
    parser = RequestParser()
    for i in range(len(data) - 1):
        parser.feed(data[i:i + 1])
        assert parser.next_event() is NEED_DATA
    parser.feed(data[-1:])
    request = parser.next_event()
    assert isinstance(request, Request)
    assert (request.method, request.path, request.raw_path) == ("GET", "/a/b", b"/a%2Fb")
    assert request.query_string == b"x=%20" and not request.has_body
    assert request.headers == [(b"host", b"h"), (b"x-two", b"a"), (b"x-two", b"b")]


def test_parser_splits_pipelined_requests():
    """Two requests in one read come out as two heads with their bodies."""
    events = parse_all(b"POST /a HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n\r\nhi"
                       b"GET /b HTTP/1.0\r\n\r\n")
    assert [type(e).__name__ for e in events] == ["Request", "bytes", "_Sentinel", "Request"]
    assert events[1] == b"hi" and events[2] is END_OF_MESSAGE
    assert events[3].http_version == "1.0" and not events[3].keep_alive


def test_a_head_with_bare_lf_line_ends_is_400_at_once(serve):
    """Lines ending in LF alone never end the head in CRLF CRLF: refused with 400 as soon as a
    bare LF is read, not after the request deadline (408)."""
    running = serve()
    for data in (b"GET /hello HTTP/1.1\nHost: t\n\n", b"GET /hello HTTP/1.1\r\nHost: t\n\n"):
        response, closed = raw_exchange(running.port, data)
        assert response.status == 400 and closed
    assert_still_serving(running.port)


def test_parser_gives_a_body_fed_whole_in_one_step():
    """whole_body(): a Content-Length body all fed comes out at once, its end passed; one not
    all fed yet, or a chunked one, comes as events."""
    parser = RequestParser()
    parser.feed(b"POST /a HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhelloGET /b HTT")
    assert isinstance(parser.next_event(), Request)
    assert parser.whole_body() == b"hello"
    assert parser.next_event() is NEED_DATA and parser.buffered == len(b"GET /b HTT")
    parser.feed(b"P/1.1\r\nHost: h\r\n\r\nPOST /c HTTP/1.1\r\nHost: h\r\nContent-Length: 4\r\n\r\nab")
    assert parser.next_event().path == "/b"
    assert parser.whole_body() is None   # no body
    assert parser.next_event().path == "/c"
    assert parser.whole_body() is None   # half of it
    assert parser.next_event() == b"ab"
    parser.feed(b"cd")
    assert parser.whole_body() == b"cd"  # the rest, whole
    parser.feed(b"POST /d HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n")
    assert parser.next_event().path == "/d"
    assert parser.whole_body() is None
    assert parser.next_event() == b"hi" and parser.next_event() is END_OF_MESSAGE


def test_parser_decodes_chunks_with_extensions_and_trailers():
    """Chunk extensions and trailers are dropped; the data comes out in order."""
    events = parse_all(b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: Chunked\r\n\r\n"
                       b"3;ext=1\r\nabc\r\nA \r\n0123456789\r\n0\r\nX: y\r\n\r\n")
    assert b"".join(e for e in events if isinstance(e, bytes)) == b"abc0123456789"
    assert events[-1] is END_OF_MESSAGE


def test_parser_skips_empty_lines_before_a_request():
    """CRLFs before a request line are ignored (RFC 9112 §2.2)."""
    events = parse_all(b"\r\n\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n")
    assert len(events) == 1 and events[0].path == "/"


def test_parser_keep_alive_and_expect():
    """Connection tokens and Expect: 100-continue are read from the head."""
    [request] = parse_all(b"GET / HTTP/1.1\r\nHost: h\r\nConnection: Upgrade, CLOSE\r\n\r\n")
    assert not request.keep_alive
    request = parse_all(b"PUT / HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\n"
                        b"Expect: 100-Continue\r\n\r\n")[0]
    assert request.expect_continue and request.content_length == 1


def test_parser_minor_version_above_1_1_is_served_as_1_1():
    """HTTP/1.2 is answered as HTTP/1.1 (RFC 9110 §2.5)."""
    [request] = parse_all(b"GET / HTTP/1.2\r\nHost: h\r\n\r\n")
    assert request.http_version == "1.1"


@pytest.mark.parametrize("data, status", [
    (b"GET /" + b"a" * 101, 414),
    (b"GET / HTTP/1.1\r\nHost: h\r\nX: " + b"a" * 300, 431),
    (b"GET / HTTP/1.1\r\n" + b"X: y\r\n" * 6 + b"\r\n", 431),
    (b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 51\r\n\r\n", 413),
    (b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n33\r\n", 413),
    (b"GET / HTTP/3.0\r\nHost: h\r\n\r\n", 505),
    (b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: br\r\n\r\n", 400),
    (b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: br, chunked\r\n\r\n", 501),
])
def test_parser_error_status_hints(data, status):
    """Each refused request carries its status, as h11's error_status_hint."""
    with pytest.raises(ProtocolError) as raised:
        parse_all(data, max_request_line_bytes=100, max_head_bytes=200, max_headers=5,
                  max_body_bytes=50)
    assert raised.value.status == raised.value.error_status_hint == status


def test_parser_holds_no_more_than_the_head_limit_while_reading_a_head():
    """Bytes without the end of a head are refused once they pass the head limit."""
    parser = RequestParser(max_head_bytes=1000)
    parser.feed(b"GET / HTTP/1.1\r\nHost: h\r\n")
    with pytest.raises(ProtocolError) as raised:
        for _ in range(100):
            parser.feed(b"X: " + b"a" * 30 + b"\r\n")
            assert parser.next_event() is NEED_DATA
            assert parser.buffered <= 1000
    assert raised.value.status == 431


def frame(headers, body_length, http_version="1.1", is_head=False, keep_alive=True, status=200):
    head = prepare_response_head(status, headers)
    return frame_response_head(head, http_version=http_version, is_head=is_head,
                               keep_alive=keep_alive, body_length=body_length,
                               date=b"date: D\r\n", server=b"server: S\r\n")


def test_framing_a_whole_body_adds_its_length():
    """A body known whole gets content-length, date and server."""
    data, framing, length, keep_alive = frame([(b"Content-Type", b"text/plain")], 5)
    assert data == (b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 5\r\n"
                    b"date: D\r\nserver: S\r\n\r\n")
    assert (framing, length, keep_alive) == (protocol.LENGTH, 5, True)


def test_framing_a_stream_is_chunked_on_1_1_and_close_delimited_on_1_0():
    """A stream is chunked to HTTP/1.1 clients; to HTTP/1.0 ones it ends with the connection."""
    data, framing, _, keep_alive = frame([], None)
    assert b"transfer-encoding: chunked\r\n" in data and framing == protocol.CHUNKED
    data, framing, _, keep_alive = frame([], None, http_version="1.0")
    assert b"transfer-encoding" not in data and b"connection: close\r\n" in data
    assert framing == protocol.CLOSE_DELIMITED and not keep_alive


def test_framing_head_and_204_have_no_body():
    """HEAD keeps GET's content-length without a body; 204 gets no length at all."""
    data, framing, _, _ = frame([], 11, is_head=True)
    assert b"content-length: 11\r\n" in data and framing == protocol.NO_BODY
    data, framing, _, _ = frame([], 0, status=204)
    assert b"content-length" not in data and framing == protocol.NO_BODY


def test_framing_drops_the_apps_transfer_encoding_and_keeps_its_date():
    """The server frames the body itself; an app's own date or server header is not doubled."""
    data, framing, _, _ = frame([(b"transfer-encoding", b"chunked"), (b"date", b"X"),
                                 (b"content-length", b"3")], None)
    assert data.count(b"date:") == 1 and b"transfer-encoding" not in data
    assert framing == protocol.LENGTH


@pytest.mark.parametrize("status, headers", [
    (200, [(b"x-a", b"b\r\nx-injected: 1")]),
    (200, [(b"x a", b"b")]),
    (200, [("x-a", "str")]),
    (200, [(b"content-length", b"-1")]),
    (99, []),
    ("200", []),
])
def test_invalid_response_heads_are_refused(status, headers):
    """A header that would break HTTP framing, or a bad status, raises ResponseError."""
    with pytest.raises(ResponseError):
        prepare_response_head(status, headers)


def test_a_checked_head_is_kept_and_found_again():
    """The same status and headers give the same head, checked once; headers given as any
    iterable give the same head as a list of them."""
    headers = [(b"content-type", b"text/plain"), (b"content-length", b"5")]
    head = prepare_response_head(201, headers)
    assert prepare_response_head(201, list(headers)) is head
    assert prepare_response_head(201, iter(headers)) is head
    assert prepare_response_head(201, tuple(headers)) is head
    assert (head.status, head.lines, head.content_length) == (
        201, b"content-type: text/plain\r\ncontent-length: 5\r\n", 5)
    other = prepare_response_head(200, headers)
    assert other is not head and other.status == 200


def test_bytes_like_headers_are_taken_as_bytes_kept_head_or_not():
    """A header given as a bytearray or memoryview is checked as the same bytes: the answer
    never depends on whether an equal head was kept before."""
    lines = b"content-type: application/json\r\n"
    for value in (memoryview(b"application/json"), bytearray(b"application/json"),
                  memoryview(bytearray(b"application/json"))):
        protocol._RESPONSE_HEADS.clear()
        assert prepare_response_head(200, [(b"content-type", value)]).lines == lines
        assert prepare_response_head(200, [(b"content-type", b"application/json")]).lines == lines
        assert prepare_response_head(200, [(b"content-type", value)]).lines == lines
        with pytest.raises(ResponseError):
            prepare_response_head(200, [(b"content-type", type(value)(b"a\r\nb: c"))])
    with pytest.raises(ResponseError):
        prepare_response_head(200, [(memoryview(b"x a"), b"1")])


def test_a_kept_head_does_not_let_an_invalid_one_through():
    """A status or header equal to a kept head's but of another type is still checked and
    refused: a float status, a bool status, a header that is not bytes."""
    prepare_response_head(200, [(b"x-a", b"1")])
    prepare_response_head(1 + 199, [])
    for status, headers in [(200.0, [(b"x-a", b"1")]), (True, []), (200, [("x-a", "1")])]:
        with pytest.raises(ResponseError):
            prepare_response_head(status, headers)


def test_headers_as_lists_are_checked_every_time():
    """[name, value] lists (unhashable) are checked as pairs every time, and never kept."""
    head = prepare_response_head(200, [[b"x-a", b"1"]])
    assert head.lines == b"x-a: 1\r\n"
    with pytest.raises(ResponseError):
        prepare_response_head(200, [[b"x-a", b"1\r\nx-b: 2"]])


def test_kept_heads_are_bounded():
    """Many different heads (a content-length each) never keep more than the bound."""
    for length in range(protocol._RESPONSE_HEADS_KEPT + 10):
        prepare_response_head(200, [(b"content-length", b"%d" % length)])
    assert 0 < len(protocol._RESPONSE_HEADS) <= protocol._RESPONSE_HEADS_KEPT


FRAGMENTS = [b"GET", b"POST", b"HEAD", b" ", b"/", b"/a?b=%20", b"*", b"http://h/x", b"HTTP/1.1",
             b"HTTP/1.0", b"HTTP/2.0", b"\r\n", b"\r\n\r\n", b"Host: x", b"Content-Length: 3",
             b"Content-Length: 3, 4", b"Transfer-Encoding: chunked", b"Expect: 100-continue",
             b"Connection: close", b":", b"\x00", b"\n", b"\r", b"\t", b"0", b"3", b"f", b";x=y",
             b"abc", b"%", b"\xff", b"\xc3\xa9", b"-", b"+"]


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from(FRAGMENTS), max_size=40), st.integers(min_value=1, max_value=16))
def test_parser_raises_only_protocol_errors(pieces, step):
    """Whatever bytes arrive, in whatever pieces, the parser gives events or a ProtocolError,
    and never holds more than its limits allow."""
    data = b"".join(pieces)
    parser = RequestParser(max_request_line_bytes=64, max_head_bytes=128, max_headers=8,
                           max_body_bytes=64)
    try:
        for start in range(0, len(data), step):
            parser.feed(data[start:start + step])
            while True:
                event = parser.next_event()
                if event is NEED_DATA:
                    break
                if isinstance(event, Request):
                    assert event.http_version in ("1.0", "1.1")
            assert parser.in_body or parser.buffered <= 128
    except ProtocolError as error:
        assert error.status in (400, 413, 414, 417, 431, 501, 505)


def test_the_kernel_send_buffer_of_a_connection_is_bounded(serve):
    """SO_SNDBUF is set on each connection: a reader that stops reading fills the server's
    own buffer (and is dropped) instead of megabytes of the kernel's autotuned one."""
    import socket as sockets
    from live.http.server import SOCKET_SEND_BUFFER_BYTES
    running = serve()
    client = Client(running.port)
    assert_still_serving(running.port)
    sizes = [c.transport.get_extra_info("socket").getsockopt(sockets.SOL_SOCKET,
                                                              sockets.SO_SNDBUF)
             for c in list(running.server._connections)]
    client.close()
    assert sizes and max(sizes) <= 2 * SOCKET_SEND_BUFFER_BYTES  # Linux doubles what is set
