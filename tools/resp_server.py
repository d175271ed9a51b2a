"""``python3 -m tools.resp_server [--port N]``: InMemoryRedis behind a RESP TCP socket.

Only for proving fidelity: redis-py's own test suite (tools/redis_py_tests.py) connects to it as
to a redis-server. The application never imports this. Each connection has its own MULTI queue
and WATCH state; the commands themselves run in the one InMemoryRedis, under its lock. Besides
the offered commands it answers the few a client sends on connecting (HELLO 2 or 3, CLIENT ...,
SELECT 0, INFO) and MULTI/EXEC/DISCARD; replies go out in RESP2, or RESP3 after HELLO 3.
"""

from __future__ import annotations

import argparse
import logging
import socketserver
import sys
import threading
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from foundation.in_memory_redis import (InMemoryRedis, OutOfMemoryError, ResponseError,  # noqa: E402
                             _Status, _Watch, _encode, _word)

logger = logging.getLogger(__name__)

INFO = ("# Server\r\nredis_version:7.0.15\r\nredis_mode:standalone\r\narch_bits:64\r\n"
        "# Cluster\r\ncluster_enabled:0\r\n")
NOT_OFFERED = object()  # a connection command's form this front-end does not answer
ERROR_CODES = ("WRONGTYPE", "EXECABORT", "NOSCRIPT", "BUSYKEY", "NOPROTO")


def encode_reply(reply: Any, resp: int = 2) -> bytes:
    """A reply of InMemoryRedis in RESP2 or RESP3 (``resp``): RESP3 differs in null and maps."""
    if isinstance(reply, ResponseError):
        text = str(reply)
        if isinstance(reply, OutOfMemoryError):
            text = "OOM " + text
        elif text.split(" ", 1)[0] not in ERROR_CODES:
            text = "ERR " + text
        return b"-" + text.replace("\r\n", " ").encode() + b"\r\n"
    if reply is None:
        return b"_\r\n" if resp == 3 else b"$-1\r\n"
    if isinstance(reply, dict):
        items = [part for pair in reply.items() for part in pair]
        if resp == 2:
            return encode_reply(items, resp)
        return b"%%%d\r\n" % len(reply) + b"".join(encode_reply(item, resp) for item in items)
    if type(reply) is _Status:
        return b"+" + reply.encode() + b"\r\n"
    if isinstance(reply, bool) or isinstance(reply, int):
        return b":%d\r\n" % reply
    if isinstance(reply, (str, bytes)):
        data = reply.encode() if isinstance(reply, str) else reply
        return b"$%d\r\n%s\r\n" % (len(data), data)
    if isinstance(reply, (list, tuple)):
        return b"*%d\r\n" % len(reply) + b"".join(encode_reply(item, resp) for item in reply)
    raise TypeError(f"no RESP form for {reply!r}")


class Session:
    """One client connection: its MULTI queue and its WATCH state."""

    def __init__(self, server: InMemoryRedis) -> None:
        self.server = server
        self.watch = _Watch()
        self.queue: list[list] | None = None  # the commands queued since MULTI
        self.aborted = False  # a command was refused while queuing: EXEC answers EXECABORT
        self.resp = 2  # the protocol version, 3 after HELLO 3

    def handle(self, command: list) -> Any:
        name = _word(command[0])
        if self.queue is not None and name not in ("EXEC", "DISCARD", "MULTI", "WATCH"):
            return self.enqueue(command)
        # What a client sends on connecting: CLIENT SETINFO, SELECT 0, a plain INFO (read by
        # redis-py's test harness for the server's version). Other forms are not offered.
        local = {"MULTI": self.multi, "EXEC": self.exec, "DISCARD": self.discard,
                 "CLIENT": lambda: _Status("OK") if _word(command[1:2] and command[1]) == "SETINFO"
                 else NOT_OFFERED,
                 "INFO": lambda: INFO if len(command) == 1 else NOT_OFFERED,
                 "SELECT": lambda: _Status("OK") if command[1:] == ["0"] else NOT_OFFERED,
                 "HELLO": lambda: self.hello(command[1:])}
        if name in local:
            reply = local[name]()
            if reply is NOT_OFFERED:
                return ResponseError(f"unknown command '{name} {' '.join(map(str, command[1:2]))}'"
                                     " (not offered by this front-end)")
            return reply
        return self.server._run_locked(command, self.watch)

    def hello(self, args: list) -> Any:
        """HELLO [protover ...]: switch to RESP2 or RESP3; the server's description."""
        if args:
            if args[0] not in ("2", "3"):
                return ResponseError("NOPROTO unsupported protocol version")
            self.resp = int(args[0])
        return {"server": "redis", "version": "7.0.15", "proto": self.resp, "id": 1,
                "mode": "standalone", "role": "master", "modules": []}

    def enqueue(self, command: list) -> Any:
        with self.server._lock:
            refusal = self.server._refusal(command, in_transaction=True)
        if refusal is not None:
            self.aborted = True
            return refusal
        self.queue.append(command)
        return _Status("QUEUED")

    def multi(self) -> Any:
        if self.queue is not None:
            return ResponseError("MULTI calls can not be nested")
        self.queue, self.aborted = [], False
        return _Status("OK")

    def discard(self) -> Any:
        if self.queue is None:
            return ResponseError("DISCARD without MULTI")
        self.queue = None
        self.server._run_locked(["UNWATCH"], self.watch)
        return _Status("OK")

    def exec(self) -> Any:
        if self.queue is None:
            return ResponseError("EXEC without MULTI")
        queue, self.queue = self.queue, None
        if self.aborted:
            self.server._run_locked(["UNWATCH"], self.watch)
            return ResponseError("EXECABORT Transaction discarded because of previous errors.")
        watching = self.watch if self.watch.keys else None
        try:
            return self.server._execute_pipeline(queue, True, watching)
        except ResponseError as error:  # refused whole at EXEC (e.g. over maxmemory)
            return ResponseError(str(error).rsplit("caused error: ", 1)[-1])


class Handler(socketserver.StreamRequestHandler):
    """Reads RESP2 commands from one connection and answers each."""

    def handle(self) -> None:
        session = Session(self.server.redis)
        while True:
            command = self.read_command()
            if command is None:
                return
            if not command:
                continue
            self.wfile.write(encode_reply(session.handle(command), session.resp))
            self.wfile.flush()

    def read_command(self) -> list | None:
        line = self.rfile.readline()
        if not line:
            return None
        if not line.startswith(b"*"):  # an inline command (redis-cli, telnet)
            return [_encode(word) for word in line.split()]
        args = []
        for _ in range(int(line[1:])):
            size = int(self.rfile.readline()[1:])
            args.append(_encode(self.rfile.read(size + 2)[:-2]))
        return args


class RespServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, port: int, redis: InMemoryRedis) -> None:
        super().__init__(("127.0.0.1", port), Handler)
        self.redis = redis


def start(port: int = 0) -> RespServer:
    """Serve a new InMemoryRedis on 127.0.0.1:``port`` (0: a free one) in a daemon thread."""
    server = RespServer(port, InMemoryRedis())
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=6380, help="TCP port on 127.0.0.1")
    port = parser.parse_args().port
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    server = RespServer(port, InMemoryRedis())
    logger.info("InMemoryRedis speaking RESP2 on 127.0.0.1:%d", port)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
