"""The same live run and HTTP API under a production ASGI server:
``python3 -m uvicorn live.http.asgi:app --port 8000`` (uvicorn is an optional dependency).

The server's lifespan starts a LiveRun that serves through it instead of the built-in server;
its shutdown (uvicorn's Ctrl-C) stops the run as a first Ctrl-C does: the streams end, the final
backup runs, the summary is logged. main.py's flags come from the environment variable
LIVE_REACTIONS_FLAGS (e.g. ``--redis-url redis://127.0.0.1:6379/0 --role api``), config.py gives
the rest; uvicorn's own options choose the address and the workers. With the in-memory Redis
run one worker only: each worker would hold a Redis of its own (docs/http-api.md).
"""

from __future__ import annotations

import asyncio
import os
import shlex
import sys
from typing import Any

__all__ = ["LiveRunApp", "app", "FLAGS_VARIABLE"]

FLAGS_VARIABLE = "LIVE_REACTIONS_FLAGS"
"""The environment variable holding main.py's flags for a run under an ASGI server."""


class LiveRunApp:
    """An ASGI app whose lifespan runs a LiveRun; its HTTP requests go to that run's API."""

    def __init__(self) -> None:
        self.run: Any = None
        self._task: asyncio.Task | None = None

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
        elif self.run is not None and self.run.http is not None:
            await self.run.http.app(scope, receive, send)

    async def _lifespan(self, receive: Any, send: Any) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                failure = await self._start()
                await send({"type": "lifespan.startup.failed", "message": failure} if failure
                           else {"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self.run is not None:
                    self.run.stop()
                    await self._task
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _start(self) -> str | None:
        """Build and start the run from LIVE_REACTIONS_FLAGS; the reason it cannot, if so."""
        import config  # late: importing this module must not read config.py's settings yet
        from live.cli import apply_settings, parse_args, role_refusal, use_redis
        from live.console import configure_logging
        from live.run import SWITCH_INTERVAL_SECONDS, LiveRun
        from live.settings import SettingsError

        configure_logging()
        try:
            args = parse_args(shlex.split(os.environ.get(FLAGS_VARIABLE, "")))
            apply_settings(args)
        except (SettingsError, SystemExit) as error:
            return f"{FLAGS_VARIABLE}: {error}"
        if config.HTTP_PORT is None:
            config.HTTP_PORT = 0  # served by this ASGI server, whatever config.py says
        if role_refusal(args.role) is not None or args.role not in ("all", "api"):
            return f"{FLAGS_VARIABLE}: --role {args.role} serves no HTTP (all or api do)"
        sys.setswitchinterval(SWITCH_INTERVAL_SECONDS)  # as main.py: the run's threads keep up
        use_redis()
        self.run = LiveRun(args.role)
        self._task = asyncio.create_task(self.run.main(serve=False, handle_signals=False))
        await asyncio.sleep(0)  # let the run start its ticks before the first request
        return None


app = LiveRunApp()
"""The ASGI app uvicorn loads: ``python3 -m uvicorn live.http.asgi:app``."""
