"""What a live run shows on the console: the log format, the GET table, the start banner.

Every line goes through ``logging``: ``HH:MM:SS.mmm message``, with the level named only for a
warning or worse. The GET table shows the busiest GET_TABLE_MAX_ROWS matches, so a run over many
matches never floods the terminal. A closed or unwritable stdout asks the run to stop
(``when_stdout_closed``) rather than fail at each line.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Callable, TextIO

import config
from api_layer import weighted_means
from foundation.redis_client import redacted
from live.poster import Poster

__all__ = ["GET_TABLE_MAX_ROWS", "configure_logging", "when_stdout_closed", "format_get_table",
           "unposted", "banner_lines"]

GET_TABLE_MAX_ROWS = 10  # the GET table shows the busiest matches only, so it never floods

_stops: list[Callable[[], None]] = []  # what a closed stdout calls: the run's stop requests
_stdout_closed = False  # it happened: a stop request registered later is made at once


def when_stdout_closed(stop: Callable[[], None]) -> None:
    """Call ``stop()`` when stdout is found closed or unwritable; at once if it already was
    (a line logged before the run registered, such as a busy port's warning, found it)."""
    _stops.append(stop)
    if _stdout_closed:
        stop()


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
    callables given to when_stdout_closed), sends what is left of stdout to /dev/null, and from then on
    shows only warnings and errors, on stderr (a spill file's name must still reach someone).
    When stderr cannot be written either (the terminal closed: both are the dead terminal), it
    stops the run all the same and shows nothing more: a log line must never be what fails."""

    def handleError(self, record: logging.LogRecord) -> None:
        error = sys.exc_info()[1]
        if not isinstance(error, OSError):
            super().handleError(record)
            return
        if self.stream is sys.stdout:
            if not isinstance(error, BrokenPipeError):  # a full disk, EIO...: said on stderr
                _write_or_lose(sys.stderr, f"stdout cannot be written ({error}): stopping as "
                                           "when its reader has gone; warnings and errors "
                                           "follow here\n")
            _to_devnull(sys.stdout)
            self.setStream(sys.stderr)
            self.setLevel(logging.WARNING)
        else:  # stderr is gone too
            _to_devnull(self.stream)
        _stop_the_run()


def _write_or_lose(stream: TextIO, text: str) -> None:
    """Write ``text`` to ``stream`` if it can be written; else nothing."""
    try:
        stream.write(text)
        stream.flush()
    except OSError:
        pass


def _to_devnull(stream: TextIO) -> None:
    """Send what is left of ``stream`` (its file descriptor) to /dev/null, so that no later
    write, nor the flush at exit, fails again."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, stream.fileno())
    except (OSError, ValueError):  # no descriptor to replace
        pass
    finally:
        os.close(devnull)


def _stop_the_run() -> None:
    global _stdout_closed
    _stdout_closed = True
    for stop in _stops:
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
