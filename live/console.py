"""What a live run shows on the console: the log format, the GET table, the start banner.

Every line goes through ``logging``: ``HH:MM:SS.mmm message``, with the level named only for a
warning or worse. The GET table shows the busiest GET_TABLE_MAX_ROWS matches, so a run over many
matches never floods the terminal. A closed or unwritable stdout asks the run to stop
(``on_stdout_closed``) rather than fail at each line.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Callable

import config
from api_layer import weighted_means
from foundation.redis_client import redacted
from live.poster import Poster

__all__ = ["GET_TABLE_MAX_ROWS", "configure_logging", "on_stdout_closed", "format_get_table",
           "unposted", "banner_lines"]

GET_TABLE_MAX_ROWS = 10  # the GET table shows the busiest matches only, so it never floods

on_stdout_closed: list[Callable[[], None]] = []
"""What a closed stdout calls: the run's stop requests."""


class _ConsoleFormatter(logging.Formatter):
    """Time, then the message; the level only when it is a warning or worse."""

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        if record.levelno >= logging.WARNING:
            stamp, _, message = text.partition(" ")
            text = f"{stamp} {record.levelname}: {message}"
        return text


class _ConsoleHandler(logging.StreamHandler):
    """stdout. When its reader has gone (``python3 main.py | head``) or it cannot be written at
    all (``> /dev/full``, a full disk: one line on stderr says so) it asks the run to stop (the
    callables in on_stdout_closed), sends what is left of stdout to /dev/null, and from then on
    shows only warnings and errors, on stderr (a spill file's name must still reach someone)."""

    def handleError(self, record: logging.LogRecord) -> None:
        error = sys.exc_info()[1]
        if not isinstance(error, OSError) or self.stream is not sys.stdout:
            super().handleError(record)
            return
        if not isinstance(error, BrokenPipeError):  # a full disk, EIO...: said once, on stderr
            sys.stderr.write(f"stdout cannot be written ({error}): stopping as when its reader "
                             "has gone; warnings and errors follow here\n")
        self._reader_gone()

    def _reader_gone(self) -> None:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # the exit's flush of stdout must not fail again
        os.close(devnull)
        self.setStream(sys.stderr)
        self.setLevel(logging.WARNING)
        for stop in on_stdout_closed:
            try:
                stop()
            except RuntimeError:  # the event loop has closed: the run is over anyway
                pass


def configure_logging() -> None:
    """Send log records to stdout: ``HH:MM:SS.mmm message``."""
    handler = _ConsoleHandler(sys.stdout)
    handler.setFormatter(_ConsoleFormatter("%(asctime)s.%(msecs)03d %(message)s", "%H:%M:%S"))
    logging.basicConfig(level=logging.INFO, handlers=[handler])


def format_get_table(rows: list[tuple[int, dict[str, int | None]]]) -> list[str]:
    """Lines of the GET table: per match, each emoticon's weighted mean and (raw count), or
    "unreadable" for a counter holding another application's value."""
    lines = ["  match  " + "".join(f"{emoticon:<16}" for emoticon in config.EMOTICON_TYPES)]
    for match_id, counts in rows:
        means = weighted_means(counts)
        cells = "".join(f"{_cell(means[e], counts[e]):<16}" for e in config.EMOTICON_TYPES)
        lines.append(f"  {match_id:>5}  {cells}")
    return [line.rstrip() for line in lines]


def _cell(mean: int | None, count: int | None) -> str:
    return "unreadable" if count is None else f"{mean} ({count:,})"


def unposted(poster: Poster) -> str:
    """", failed F, skipped S while backing off" for ``poster``'s counts that are not 0
    (skipped: posts the schedule asked for during its pauses, never attempted)."""
    failed = f", failed {poster.failed:,}" if poster.failed else ""
    skipped = poster.skipped
    return failed + (f", skipped {skipped:,} while backing off" if skipped else "")


def banner_lines(role: str, rows_before: int | None, http_url: str | None = None) -> list[str]:
    """The start lines: the run's settings, only for the parts ``role`` runs ("all", "post",
    "get", "backup" or "api"); ``rows_before`` is the table's size at the start (None: not
    readable now); ``http_url`` the live page's address when this process serves HTTP."""
    runs = {part: role in ("all", part) or (role == "api" and part == "get")
            for part in ("post", "get", "backup")}
    rate = config.POSTS_PER_SECOND
    first = (f"Live Reactions: {config.MAX_MATCHES:,} matches, {config.MAX_USERS:,} users, "
             f"emoticons {'/'.join(config.EMOTICON_TYPES)}")
    parts = []
    if runs["post"]:
        first += ", posting " + ("as fast as it can" if rate == 0 else f"{rate:,g} events/s")
        seed = "random" if config.RANDOM_SEED is None else config.RANDOM_SEED
        parts.append(f"seed {seed}")
    if runs["get"]:
        parts.append(f"GET every {config.GET_INTERVAL_SECONDS:g}s")
    elif runs["post"]:
        parts.append(f"status every {config.GET_INTERVAL_SECONDS:g}s")
    if runs["backup"]:
        rows = (" (its size unknown for now)" if rows_before is None else
                f" (already {rows_before:,} rows)" if rows_before else "")
        parts.append(f"backup every {config.BACKUP_INTERVAL_SECONDS:g}s to database "
                     f"{config.DB_PATH}{rows}")
    duration = config.DURATION_SECONDS
    until = "Ctrl-C to stop" if duration is None else f"stops after {duration:g}s"
    lines = [first, ", ".join(parts) + "; " + until]
    if config.REDIS_URL or config.INGEST_BATCH_EVENTS > 1:
        lines.append(_redis_line(role, runs["post"] or http_url is not None))
    if http_url is not None:
        lines.append(f"HTTP API and live page: {http_url} (docs/http-api.md)")
    elif role in ("all", "api") and config.HTTP_PORT is not None:
        lines.append("HTTP API served by the ASGI server that runs this app (docs/http-api.md)")
    return lines


def _redis_line(role: str, posts: bool) -> str:
    """The banner's third line: which Redis, the key prefix, the role, how POSTs are written."""
    batch = config.INGEST_BATCH_EVENTS
    redis = f"Redis {redacted(config.REDIS_URL)}" if config.REDIS_URL else "Redis in-memory"
    line = f"{redis}, key prefix {config.KEY_PREFIX!r}, role {role}"
    if posts:
        line += (f", ingest batches of {batch:,} events or {config.INGEST_FLUSH_SECONDS:g}s"
                 if batch > 1 else ", one write per POST")
    return line
