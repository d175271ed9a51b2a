"""A benchmark peer: a trivial ASGI app, to compare HTTP servers alone (docs/http-server.md).

``GET`` answers 13 bytes; ``POST`` echoes its body. Served by uvicorn
(``python3 -m uvicorn benchmarks.peers.trivial_asgi:app``) or by the built-in server
(``python3 -m benchmarks.peers.trivial_asgi PORT [eager]``: ``eager`` sets eager_start).
Never imported by the product.
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any


async def app(scope: dict, receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    body = b"hello, world\n"
    if scope["method"] == "POST":
        chunks = []
        while True:
            message = await receive()
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        body = b"".join(chunks)
    await send({"type": "http.response.start", "status": 200, "headers": [
        (b"content-type", b"text/plain"), (b"content-length", b"%d" % len(body))]})
    await send({"type": "http.response.body", "body": body})


async def serve(port: int, eager_start: bool) -> None:
    from live.http.server import HTTPServer
    server = HTTPServer(app, port=port, eager_start=eager_start)
    await server.start()
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(serve(int(sys.argv[1]), sys.argv[2:] == ["eager"]))
