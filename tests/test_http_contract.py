"""The HTTP API's contract over real sockets, under both servers: main.py's built-in asyncio
server, and uvicorn running the same app (live/http/asgi.py; skipped with the reason when
uvicorn is missing). Each server is a real process on a free loopback port, started once per
module; the poster is near silent (--rate 0.001), so counts change only by these requests."""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading

import pytest


from tests.program import ROOT
from tests.redis_server import free_port

TIMEOUT_SECONDS = 30  # any single wait of these tests: a safety net, not a performance bound
FLAGS = ["--rate", "0.001", "--get-interval", "0.2", "--backup-interval", "0.5", "--matches", "20"]


class Server:
    """A server process serving the API at ``host:port``; its output lines are collected."""

    def __init__(self, command, env=None, port=None, ready="Uvicorn running on"):
        self._ready_text = ready
        self.process = subprocess.Popen(command, cwd=ROOT, text=True, env=env,
                                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        self.lines: list[str] = []
        self._ready = threading.Event()
        self.port = port
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        if not self._ready.wait(TIMEOUT_SECONDS):
            self.process.kill()
            raise AssertionError("server not ready:\n" + "\n".join(self.lines))

    def _read(self):
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))
            found = re.search(r"HTTP API and live page: http://127\.0\.0\.1:(\d+)/", line)
            if found:
                self.port = int(found.group(1))
            if found or self._ready_text in line:
                self._ready.set()
        self._ready.set()

    def request(self, method, path, body=None, headers=None):
        """(status, headers, body bytes) of one request on a new connection."""
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=TIMEOUT_SECONDS)
        try:
            connection.request(method, path, body=body, headers=headers or {})
            response = connection.getresponse()
            return response.status, dict(response.getheaders()), response.read()
        finally:
            connection.close()

    def post(self, match_id, fields, content_type="application/json"):
        body = fields if isinstance(fields, bytes) else json.dumps(fields).encode()
        return self.request("POST", f"/matches/{match_id}/reactions", body,
                            {"content-type": content_type})

    def counts(self, match_id):
        status, _, body = self.request("GET", f"/matches/{match_id}")
        assert status == 200, body
        return json.loads(body)["counts"]

    def stop(self):
        """SIGINT, as a Ctrl-C; its exit status and every line."""
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            self.process.kill()
            raise
        self._reader.join(TIMEOUT_SECONDS)  # every line read, to the end of the pipe
        return self.process.returncode, self.lines


def builtin_server():
    return Server([sys.executable, "-B", "main.py", *FLAGS, "--http-port", "0"])


def uvicorn_server():
    pytest.importorskip("uvicorn", reason="uvicorn missing: python3 -m pip install uvicorn")
    port = free_port()
    env = dict(os.environ, LIVE_REACTIONS_FLAGS=" ".join(FLAGS))
    return Server([sys.executable, "-B", "-m", "uvicorn", "live.http.asgi:app", "--host",
                   "127.0.0.1", "--port", str(port), "--log-level", "info",
                   "--timeout-graceful-shutdown", "2"],  # uvicorn waits this long for streams
                  env=env, port=port)


@pytest.fixture(scope="module", params=["builtin", "uvicorn"])
def server(request):
    server = builtin_server() if request.param == "builtin" else uvicorn_server()
    yield server
    if server.process.poll() is None:
        server.stop()


def test_post_is_counted_and_get_shows_it(server):
    """POST a reaction: 201 and the record; GET /matches/7 shows the count one higher."""
    before = server.counts(7)
    status, headers, body = server.post(7, {"user_id": 6, "emoticon_type": "sad"})
    record = json.loads(body)
    assert status == 201 and headers["content-type"] == "application/json"
    assert (record["match_id"], record["user_id"], record["emoticon_type"]) == (7, 6, "sad")
    assert server.counts(7)["sad"] == before["sad"] + 1


@pytest.mark.parametrize("match_id, body, content_type, status", [
    (7, {"user_id": 0, "emoticon_type": "sad"}, "application/json", 400),
    (7, {"user_id": 6, "emoticon_type": "angry"}, "application/json", 400),
    (21, {"user_id": 6, "emoticon_type": "sad"}, "application/json", 400),
    (7, b"{not json", "application/json", 400),
    (7, {"user_id": 6, "emoticon_type": "sad"}, "text/plain", 400),
    (7, b" " * 2000, "application/json", 413),
])
def test_bad_posts_are_refused_and_change_nothing(server, match_id, body, content_type, status):
    """Invalid fields, malformed JSON, a wrong content type, a body over 1,024 bytes: the
    documented status, a JSON reason, and no count changed."""
    before = server.counts(7)
    got, headers, answer = server.post(match_id, body, content_type)
    assert got == status and "error" in json.loads(answer)
    assert server.counts(7) == before


@pytest.mark.parametrize("method, path, status, allow", [
    ("GET", "/no/such/path", 404, None), ("PUT", "/matches/3", 405, "GET, HEAD"),
    ("GET", "/matches/3/reactions", 405, "POST"),
])
def test_unknown_path_and_method(server, method, path, status, allow):
    """404 for an unknown path; 405 with Allow for a method the path does not take."""
    got, headers, body = server.request(method, path)
    assert got == status and "error" in json.loads(body)
    assert headers.get("allow") == allow


def test_head_has_the_headers_of_get_and_no_body(server):
    """HEAD /matches/3: GET's status and Content-Length, no body."""
    _, get_headers, get_body = server.request("GET", "/healthz")
    status, headers, body = server.request("HEAD", "/healthz")
    assert status == 200 and body == b""
    assert headers["content-length"] == get_headers["content-length"] == str(len(get_body))


def test_matches_lists_the_busiest_with_the_status(server):
    """GET /matches: at most 10 matches, each with counts and means, and the status."""
    server.post(9, {"user_id": 1, "emoticon_type": "heart"})
    status, _, body = server.request("GET", "/matches")
    overview = json.loads(body)
    assert status == 200 and len(overview["matches"]) == 10
    assert {"posted", "rate", "pending", "refused"} <= set(overview["status"])
    assert overview["emoticons"] == ["heart", "sad", "happy"]


def read_events(port, path, count):
    """The first ``count`` events of the stream at ``path``: [(event, data dict)]."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT_SECONDS)
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    events, buffer = [], b""
    with sock:
        while len(events) < count:
            chunk = sock.recv(65536)
            assert chunk, "the stream ended early: " + buffer.decode(errors="replace")
            buffer += chunk
            for kind, data in re.findall(rb"event: (\w+)\r?\ndata: (.*)\r?\n", buffer):
                events.append((kind.decode(), json.loads(data)))
            buffer = buffer[buffer.rfind(b"\n\n") + 2:] if events else buffer
            events = events[:count] if len(events) >= count else events
    assert buffer is not None
    return events


def test_match_stream_shows_a_posted_reaction(server):
    """/matches/4/stream: a tick event with match 4's counts; a POST shows in a later tick."""
    before = server.counts(4)["happy"]
    server.post(4, {"user_id": 2, "emoticon_type": "happy"})
    deadline_events = read_events(server.port, "/matches/4/stream", 3)
    ticks = [data for kind, data in deadline_events if kind == "tick"]
    assert ticks and ticks[-1]["match_id"] == 4
    assert ticks[-1]["counts"]["happy"] == before + 1
    assert ticks[-1]["weighted_means"]["happy"] == 1


def test_stream_carries_ticks_and_backups(server):
    """/stream: tick events with the busiest matches, and a backup event after a POST."""
    server.post(5, {"user_id": 3, "emoticon_type": "sad"})
    events = read_events(server.port, "/stream", 8)
    kinds = {kind for kind, _ in events}
    assert "tick" in kinds and "backup" in kinds, events
    backup = next(data for kind, data in events if kind == "backup")
    assert backup["events"] >= 1 and backup["rows"] >= 1


def test_metrics_count_http_posts(server):
    """/metrics names the HTTP posts and the requests by status, in Prometheus text."""
    server.post(6, {"user_id": 3, "emoticon_type": "sad"})
    status, headers, body = server.request("GET", "/metrics")
    text = body.decode()
    assert status == 200 and headers["content-type"].startswith("text/plain")
    assert re.search(r'live_reactions_posted_total\{source="http"\} [1-9]', text)
    assert re.search(r'live_reactions_http_requests_total\{status="201"\} [1-9]', text)


def test_stop_answers_ends_streams_and_reconciles_http_posts(server):
    """Ctrl-C: the streams end, the final backup runs, and the reconciliation counts the
    reactions posted over HTTP: OK. (Last in the module: it stops the server.)"""
    for match_id in range(1, 21):
        assert server.post(match_id, {"user_id": 5, "emoticon_type": "heart"})[0] == 201
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=TIMEOUT_SECONDS)
    sock.sendall(b"GET /stream HTTP/1.1\r\nHost: x\r\n\r\n")
    assert sock.recv(65536).startswith(b"HTTP/1.1 200")
    status, lines = server.stop()
    rest = b""
    while True:  # the stream ends: the server closes it, or ends the chunked body
        chunk = sock.recv(65536)
        rest += chunk
        if not chunk or rest.endswith(b"0\r\n\r\n"):
            break
    sock.close()
    text = "\n".join(lines)
    found = re.search(r"reconciliation: posted=(\d+) redis_counters=(\d+) database_rows=(\d+) "
                      r"pending_in_redis=0 .* OK$", text, re.M)
    assert status == 0 and found, text
    assert found.group(1) == found.group(2) == found.group(3)
    assert re.search(r"posted [\d,]+ events in [\d.]+s \([\d,]+/s\) and [1-9][\d,]* over HTTP", text), text


def test_two_api_processes_share_one_port_and_one_redis(redis_server, real_redis, tmp_path):
    """``--role api`` twice on one port (SO_REUSEPORT) beside a ``--role backup``: every
    reaction posted over HTTP, whichever process took it, is in the table once, and the
    system-wide reconciliation is OK."""
    port, path = free_port(), tmp_path / "reactions.db"
    common = ["--redis-url", redis_server.url, "--get-interval", "0.3"]
    apis = [Server([sys.executable, "-B", "main.py", *common, "--role", "api", "--http-port",
                    str(port)]) for _ in range(2)]
    backup = Server([sys.executable, "-B", "main.py", *common, "--role", "backup", "--db",
                     str(path), "--backup-interval", "0.3"], ready="backup every")
    try:
        for number in range(60):
            status, _, body = apis[0].post(number % 10 + 1, {"user_id": 1, "emoticon_type": "sad"})
            assert status == 201, body
    finally:
        results = [api.stop() for api in apis]
        backup_status, backup_lines = backup.stop()
        backup_lines = "\n".join(backup_lines)
    served = [int(re.search(r"posted ([\d,]+) events over HTTP", "\n".join(lines)).group(1))
              for _, lines in results]
    assert sum(served) == 60 and all(served), served  # the kernel spread the connections
    assert all(status == 0 for status, _ in results) and backup_status == 0, backup_lines
    assert re.search(r"system-wide reconciliation: redis_counters=60 database_rows=60 "
                     r"pending_in_redis=0 OK", backup_lines), backup_lines


def test_a_busy_port_asked_for_stops_the_run_in_one_line():
    """--http-port P with P taken: one line naming the port, exit status 2, nothing run."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run([sys.executable, "-B", "main.py", "--http-port", str(port),
                               "--duration", "5"], cwd=ROOT, text=True, capture_output=True,
                              timeout=TIMEOUT_SECONDS)
    output = (done.stdout + done.stderr).strip()
    assert done.returncode == 2 and len(output.splitlines()) == 1, output
    assert f"HTTP port {port} is busy" in output and "--http-port" in output


def test_the_default_port_busy_takes_a_free_one_and_says_so():
    """config.py's 8000 taken (by this test, or by anything else): the run says so in one
    line and serves on a free port, whose address the banner gives."""
    taken = socket.socket()
    try:
        taken.bind(("127.0.0.1", 8000))
        taken.listen()
    except OSError:  # something else holds 8000 already: the same case
        pass
    try:
        server = Server([sys.executable, "-B", "main.py", *FLAGS], ready="HTTP API and live page")
        status, lines = server.stop()
    finally:
        taken.close()
    assert status == 0 and server.port != 8000
    assert any(re.search(r"WARNING: HTTP port 8000 is busy; serving on free port \d+ instead",
                         line) for line in lines), lines
