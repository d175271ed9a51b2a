"""Many Server-Sent Events viewers in one process, on raw non-blocking sockets and epoll: the
client side of item 10's viewers figures (``python3 -m benchmarks.sse_viewers --help``).

It opens viewers of ``/matches/{id}/stream`` (ids 1..MATCHES in turn) level by level (e.g.
1,000 then 5,000 then 10,000 in all), keeping those it has. At each level, once every new viewer
has its response head, it records what arrives for a window of ticks, then prints one JSON line
and waits for a line on stdin before the next level (so the caller can read the server's RSS
with exactly that many viewers open). With ``--overview`` it also follows ``/stream``, whose
events carry the tick's ``time`` (the product's per-match events do not; the FastAPI peer's do).

Arrival times are taken when ``epoll.poll()`` returns (the data was in the socket by then), and
each socket is only read then; events are parsed after the window, so the client's own work
delays a timestamp by at most one pass over the ready sockets. Its busy time is reported.

Each tick's delivery time is (the last viewer's arrival) - (the tick's ``time``): how long the
tick took to reach the last viewer. A viewer that has not got a tick 2 s (GRACE_SECONDS) before
the window ends counts as missing it. Sockets close with SO_LINGER 0, leaving no TIME_WAIT.
"""

from __future__ import annotations

import argparse
import json
import re
import resource
import select
import socket
import struct
import sys
import time
from typing import Any

CONNECTING_AT_ONCE = 256
"""Viewers connecting or waiting for their response head at one time (the server's backlog)."""
HEAD_TIMEOUT_SECONDS = 30.0
"""Longest wait for a level's viewers to get their response heads."""
GRACE_SECONDS = 2.0
"""A tick counts only if its time is this long before the window's end."""
EVENT_ID = re.compile(rb"^id: (\d+)$", re.M)
EVENT_TIME = re.compile(rb'"time": ?([0-9.]+)')
LINGER_ZERO = struct.pack("ii", 1, 0)


class Viewer:
    """One stream: its socket, what it has read (arrival time, bytes), and its state."""

    __slots__ = ("sock", "path", "state", "reads", "head_ok")

    def __init__(self, sock: socket.socket, path: str) -> None:
        self.sock, self.path = sock, path
        self.state = "connecting"
        self.reads: list[tuple[float, bytes]] = []
        self.head_ok = False


class Client:
    """The viewers of one server, opened level by level over one epoll."""

    def __init__(self, host: str, port: int, matches: int) -> None:
        self.address = (host, port)
        self.matches = matches
        self.epoll = select.epoll()
        self.viewers: dict[int, Viewer] = {}
        self.failed = 0
        self.closed_by_server = 0
        self.busy_seconds = 0.0

    def open(self, path: str) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER_ZERO)
        sock.setblocking(False)
        sock.connect_ex(self.address)
        viewer = Viewer(sock, path)
        self.viewers[sock.fileno()] = viewer
        self.epoll.register(sock.fileno(), select.EPOLLOUT)

    def grow_to(self, count: int, with_overview: bool) -> float:
        """Open viewers until ``count`` match viewers (and the overview) have their heads;
        the seconds it took."""
        started = time.monotonic()
        if with_overview and not self.viewers:
            self.open("/stream")
        opened = sum(1 for v in self.viewers.values() if v.path != "/stream") + self.failed
        deadline = started + HEAD_TIMEOUT_SECONDS + count / 500
        while True:
            pending = sum(1 for v in self.viewers.values() if v.state != "streaming")
            while opened < count and pending < CONNECTING_AT_ONCE:
                self.open(f"/matches/{opened % self.matches + 1}/stream")
                opened += 1
                pending += 1
            if opened >= count and pending == 0:
                return time.monotonic() - started
            if time.monotonic() > deadline:
                raise SystemExit(f"viewers: {pending} still without a response head after "
                                 f"{HEAD_TIMEOUT_SECONDS:g}s")
            self.poll(0.05)

    def poll(self, timeout: float) -> None:
        """One epoll pass: connect, send the request, read (timestamped by the poll's return)."""
        ready = self.epoll.poll(timeout)
        now = time.time()
        began = time.perf_counter()
        for fd, mask in ready:
            viewer = self.viewers.get(fd)
            if viewer is None:
                continue
            if viewer.state == "connecting":
                self._send_request(fd, viewer)
                continue
            try:
                data = viewer.sock.recv(65536)
            except (BlockingIOError, InterruptedError):
                continue
            except OSError:
                data = b""
            if not data:
                self._lost(fd, viewer)
                continue
            viewer.reads.append((now, data))
            if viewer.state == "head":
                self._check_head(fd, viewer)
        self.busy_seconds += time.perf_counter() - began

    def _send_request(self, fd: int, viewer: Viewer) -> None:
        error = viewer.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if error:
            self._lost(fd, viewer, failed=True)
            return
        request = (f"GET {viewer.path} HTTP/1.1\r\nHost: {self.address[0]}\r\n"
                   f"Accept: text/event-stream\r\n\r\n").encode()
        try:
            viewer.sock.send(request)
        except OSError:
            self._lost(fd, viewer, failed=True)
            return
        viewer.state = "head"
        self.epoll.modify(fd, select.EPOLLIN)

    def _check_head(self, fd: int, viewer: Viewer) -> None:
        data = b"".join(chunk for _, chunk in viewer.reads)
        end = data.find(b"\r\n\r\n")
        if end < 0:
            return
        if not data.startswith((b"HTTP/1.1 200", b"HTTP/1.0 200")):
            self._lost(fd, viewer, failed=True)
            return
        viewer.state = "streaming"
        viewer.reads = [(viewer.reads[-1][0], data[end + 4:])]

    def _lost(self, fd: int, viewer: Viewer, failed: bool = False) -> None:
        self.epoll.unregister(fd)
        viewer.sock.close()
        del self.viewers[fd]
        if failed or viewer.state != "streaming":
            self.failed += 1
        else:
            self.closed_by_server += 1

    def record(self, seconds: float) -> dict[str, Any]:
        """Read for ``seconds`` from now (earlier reads dropped); the ticks that every match
        viewer should have got, and how long each took to reach the last of them."""
        for viewer in self.viewers.values():
            viewer.reads = [(0.0, b"".join(chunk for _, chunk in viewer.reads))]
        self.busy_seconds = 0.0
        started = time.time()
        end = started + seconds
        while time.time() < end:
            self.poll(0.05)
        return self._ticks(started, end)

    def _ticks(self, started: float, end: float) -> dict[str, Any]:
        tick_time: dict[int, float] = {}
        arrivals: dict[int, list[float]] = {}
        match_viewers = 0
        for viewer in self.viewers.values():
            is_match = viewer.path != "/stream"
            match_viewers += is_match
            carried = b""
            for arrived, chunk in viewer.reads:
                events = (carried + chunk).split(b"\n\n")
                carried = events.pop()
                for event in events:
                    found = EVENT_ID.search(event)
                    if found is None or b"event: tick" not in event:
                        continue
                    event_id = int(found.group(1))
                    stamp = EVENT_TIME.search(event)
                    if stamp is not None:
                        tick_time[event_id] = min(float(stamp.group(1)),
                                                  tick_time.get(event_id, float("inf")))
                    if is_match and arrived:  # arrived 0.0: read before the window
                        arrivals.setdefault(event_id, []).append(arrived)
        ticks = []
        for event_id in sorted(tick_time):
            sent = tick_time[event_id]
            if not started <= sent <= end - GRACE_SECONDS:
                continue
            got = arrivals.get(event_id, [])
            ticks.append({"id": event_id, "viewers": len(got),
                          "missing": match_viewers - len(got),
                          "last_s": (max(got) - sent) if got else None,
                          "first_s": (min(got) - sent) if got else None})
        return {"viewers": match_viewers, "failed": self.failed,
                "closed_by_server": self.closed_by_server, "ticks": ticks,
                "client_busy_s": self.busy_seconds, "window_s": end - started}

    def close(self) -> None:
        for viewer in self.viewers.values():
            viewer.sock.close()
        self.epoll.close()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python3 -m benchmarks.sse_viewers",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--levels", required=True,
                        help="viewers in all at each level, comma-separated: 1000,5000,10000")
    parser.add_argument("--matches", type=int, default=10, help="viewers follow matches 1..N")
    parser.add_argument("--window", type=float, required=True,
                        help="seconds of ticks recorded at each level")
    parser.add_argument("--overview", action="store_true",
                        help="also follow /stream for each tick's time (the product's server)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    levels = [int(text) for text in args.levels.split(",")]
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    client = Client(args.host, args.port, args.matches)
    try:
        for level in levels:
            connect_s = client.grow_to(level, args.overview)
            result = client.record(args.window)
            print(json.dumps({"level": level, "connect_s": connect_s, **result}), flush=True)
            if not sys.stdin.readline():
                break
    finally:
        client.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
