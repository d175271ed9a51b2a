"""The HTTP side of a live run: the API app, its built-in server, and the viewers' feed.

LiveRun (live/run.py) makes one when HTTP_PORT is not None, starts it before posting, publishes
each GET tick and backup to it, and stops it first at shutdown: the server stops accepting,
the streams end, requests in flight are answered; only then do the final backup and the summary
run, so no POST acknowledged over HTTP is left out of them.
"""

from __future__ import annotations

import asyncio
import errno
import logging
from typing import Any, Callable

import config
from live.http.app import App, Service
from live.http.feed import Feed
from live.http.server import HTTPServer

__all__ = ["HTTPSide", "HTTPStartError", "SHUTDOWN_SECONDS", "DEFAULT_PORT"]

logger = logging.getLogger(__name__)

SHUTDOWN_SECONDS = 5.0
"""At shutdown, the longest wait for the requests in flight to be answered."""
DEFAULT_PORT = 8000
"""config.py's HTTP_PORT as shipped: if it is busy the run takes a free port instead."""


class HTTPStartError(Exception):
    """The HTTP server could not listen where it was asked (a busy port asked for explicitly,
    an address this host does not have); the message is one line."""


class HTTPSide:
    """The app over ``overview`` and ``figures`` (see live.http.app.Service), its server and
    its feed. ``explicit_port``: the port was asked for (a flag, or config.py changed), so a
    busy one is refused rather than replaced. ``reuse_port``: several processes share it."""

    def __init__(self, overview: Callable[[], dict[str, Any]],
                 figures: Callable[[], dict[str, Any]], explicit_port: bool,
                 reuse_port: bool = False) -> None:
        self.feed = Feed()
        self.server: HTTPServer | None = None
        self.app = App(Service(self.feed, overview, figures, self._connections))
        self._explicit_port, self._reuse_port = explicit_port, reuse_port

    @property
    def posted(self) -> int:
        """Reactions POSTMethod acknowledged over HTTP."""
        return self.app.tally.posted

    @property
    def url(self) -> str | None:
        """The live page's address; None when another ASGI server serves the app."""
        if self.server is None:
            return None
        host = config.HTTP_HOST
        shown = f"[{host}]" if ":" in host else host
        return f"http://{shown}:{self.server.port}/"

    def _connections(self) -> int:
        return self.server.open_connections if self.server is not None else 0

    async def start(self, serve: bool = True) -> None:
        """Listen on HTTP_HOST:HTTP_PORT (the shipped default port, if busy, becomes a free
        one, said in one line); nothing if not ``serve`` (another ASGI server serves the app).
        Raises HTTPStartError."""
        if not serve:
            return
        port = config.HTTP_PORT
        try:
            self.server = await self._listen(port)
        except OSError as error:
            if error.errno != errno.EADDRINUSE or self._explicit_port or port != DEFAULT_PORT:
                raise HTTPStartError(_why(error, port)) from None
            self.server = await self._listen(0)
            logger.warning("HTTP port %d is busy; serving on free port %d instead (ask for a "
                           "port with --http-port)", port, self.server.port)

    async def _listen(self, port: int) -> HTTPServer:
        # The app needs no task before it first waits (its streams make their own): each
        # request that it answers at once then costs no task (live/http/server.py).
        server = HTTPServer(self.app, config.HTTP_HOST, port, reuse_port=self._reuse_port,
                            eager_start=True)
        await server.start()
        return server

    def publish_tick(self, overview: dict[str, Any], matches: dict[int, dict[str, Any]]) -> None:
        """One GET tick to the viewers (event loop thread)."""
        self.feed.publish_tick(overview, matches)

    def publish_backup_threadsafe(self, loop: asyncio.AbstractEventLoop,
                                  backup: dict[str, Any]) -> None:
        """One backup's result to the viewers, from the backup's worker thread."""
        try:
            loop.call_soon_threadsafe(self.feed.publish_backup, backup)
        except RuntimeError:  # the loop has closed: the run is over, no viewer is left
            pass

    async def stop(self) -> None:
        """Stop accepting, end the streams, answer what is in flight (SHUTDOWN_SECONDS)."""
        self.feed.close()
        if self.server is not None:
            await self.server.shutdown(SHUTDOWN_SECONDS)


def _why(error: OSError, port: int) -> str:
    """One line for a server that cannot listen."""
    where = f"{config.HTTP_HOST}:{port}"
    if error.errno == errno.EADDRINUSE:
        return (f"HTTP port {port} is busy ({where}): choose another with --http-port, or 0 "
                "for any free port")
    return f"cannot listen on {where} for HTTP: {error.strerror or error}"
