"""One live run: the posting thread, the GET and backup ticks, and the orderly stop.

As the seed's "How to start the application": a thread posts random reactions through
POSTMethod; an asyncio task reads every match's counters (GET) every GET_INTERVAL_SECONDS; another
runs the write-behind backup every BACKUP_INTERVAL_SECONDS in a worker thread, so the event loop
(and the GET tick) never waits on SQL. Beside them the HTTP API serves POSTMethod and
GETMethod, and each GET tick is pushed to its viewers (live/http/). A stop (signal, --duration,
closed stdout) stops the posting and the HTTP API, flushes the ingest buffer, runs the final
backup and logs the summary. With ``--role post|get|backup|api`` a process runs some parts only
(docs/real-redis.md, docs/http-api.md).
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import os
import random
import signal
import time
from functools import partial
from typing import Any

import config
from api_layer import read_counts_many
from db import get_reactions_table
from live.backups import BackupTicks
from live.console import (GET_TABLE_MAX_ROWS, banner_lines, format_get_table, when_stdout_closed,
                          unposted)
from live.cli import ROLE_PARTS
from live.exits import EXIT_INTERRUPTED, EXIT_USAGE
from live.http.app import match_view
from live.http.side import HTTPSide, HTTPStartError
from live.poster import Poster
from live.signals import StopSignals
from live.summary import log_summary, warn_of_counters_backed_up_elsewhere
from live.ticks import every
from redis_adapter import close_ingest_buffer, error_text, get_adapter, get_ingest_buffer, held_events

__all__ = ["LiveRun", "POSTER_JOIN_SECONDS", "SWITCH_INTERVAL_SECONDS"]

logger = logging.getLogger(__name__)

POSTER_JOIN_SECONDS = 5.0  # at shutdown, the longest wait for the poster to end its batch
SWITCH_INTERVAL_SECONDS = 0.001
"""How long a thread may keep the GIL while another waits (Python's default: 5 ms); set by
the process that runs a LiveRun (main.py, live/http/asgi.py), not by LiveRun itself.

The poster at --rate 0 never waits for anything, so each time the backup thread (sqlite3 releases
the GIL per statement) or the event loop (after each sleep) lets go of the GIL, it may wait a
whole switch interval to get it back. At 5 ms the backup falls behind the poster and the GET tick
runs late; at 1 ms both keep up (docs/performance.md)."""


class LiveRun:
    """One live run of the pipeline, or of the parts ``role`` names (ROLE_PARTS): ``await
    main()`` runs it until stopped and returns the exit status. ``explicit_port``: the HTTP
    port was asked for, so a busy one stops the run (live/http/side.py)."""

    def __init__(self, role: str = "all", explicit_port: bool = False) -> None:
        self.role = role
        self.adapter = get_adapter()
        # Only a process that backs up writes the database: a post or get process does not
        # open it (nor lock it) until its summary reads it, read-only.
        self.backups = (BackupTicks(self.adapter, get_reactions_table(), self._abandoned)
                        if self.runs("backup") else None)
        self.poster = Poster(config.POSTS_PER_SECOND, random.Random(config.RANDOM_SEED))
        self.http = (HTTPSide(self.overview, self.figures, explicit_port, role == "api")
                     if self.runs("http") and config.HTTP_PORT is not None else None)
        self._started = time.monotonic()
        self._last_status = (self._started, 0)
        self._stop: asyncio.Event | None = None

    def runs(self, part: str) -> bool:
        """True if this process runs ``part`` ("post", "get", "backup" or "http")."""
        return part in ROLE_PARTS[self.role]

    @property
    def posted(self) -> int:
        """Reactions this process acknowledged: the poster's and the HTTP API's."""
        return self.poster.posted + (self.http.posted if self.http is not None else 0)

    async def main(self, serve: bool = True, handle_signals: bool = True) -> int:
        """Run until stopped (a signal, --duration, a closed stdout, stop()); return the exit
        status (live/exits.py). ``serve``: the built-in server serves the HTTP API (False when
        another ASGI server does: live/http/asgi.py); ``handle_signals``: this run owns them."""
        self._stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        when_stdout_closed(lambda: loop.call_soon_threadsafe(self._stop.set))
        if self.http is not None:
            try:
                await self.http.start(serve)
            except HTTPStartError as error:
                logger.error("%s", error)
                return EXIT_USAGE
            if self.backups is not None:
                self.backups.on_backup = partial(self.http.publish_backup_threadsafe, loop)
        if handle_signals:
            StopSignals(self._stop.set, self._exit_now).install()
        rows_before = self.backups.rows_now() if self.backups is not None else 0
        if self.backups is not None:
            self.backups.last_rows = rows_before  # the status shows rows before a first backup
        for line in banner_lines(self.role, rows_before, self.http and self.http.url):
            logger.info("%s", line)
        if config.REDIS_URL and self.backups is not None:
            warn_of_counters_backed_up_elsewhere(self.adapter, self.backups.table)
        tasks = [asyncio.create_task(tick) for tick in self._ticks()]
        try:
            await asyncio.wait_for(self._stop.wait(), timeout=config.DURATION_SECONDS)
        except asyncio.TimeoutError:
            logger.info("duration of %gs reached", config.DURATION_SECONDS)
        return await self.shutdown(tasks)

    def stop(self) -> None:
        """Ask the run to stop, as a first Ctrl-C does (from the event loop's thread)."""
        if self._stop is not None:
            self._stop.set()

    def _ticks(self) -> list:
        """Start the poster (if this process posts); the periodic tasks of this role."""
        get_interval, backup_interval = config.GET_INTERVAL_SECONDS, config.BACKUP_INTERVAL_SECONDS
        ticks = []
        if self.runs("post"):
            get_ingest_buffer()  # its flush thread starts before the first POST
            self.poster.start()
        if self.runs("get"):
            ticks.append(every(get_interval, self.get_tick, "GET"))
        elif self.role == "post":  # no GET table here: the status line alone, as often
            ticks.append(every(get_interval, self.status_tick, "status"))
        if self.backups is not None:
            ticks.append(every(backup_interval, self.backups.tick, "backup"))
        return ticks

    async def get_tick(self) -> None:
        """GET: log every match's weighted means (raw counts), and the status.

        It reads each match's counters with the one MGET GETMethod makes (read_counts_many:
        pipelined, a round trip per thousand matches) and applies weighted_means to that same
        read, so that each cell's mean and count agree; GETMethod is exactly those two steps.
        """
        started = time.monotonic()
        wanted = self.http.feed.wanted_matches() if self.http is not None else set()
        try:  # both in a worker: many matches, and with a real Redis the status SCANs it
            rows, followed, figures = await asyncio.to_thread(
                lambda: (*self._read_matches(wanted), self._status_figures()))
        except asyncio.CancelledError:  # the run stops: say why no table follows, calmly
            logger.info("stopping: the GET under way (%.1fs into its read) ends without a "
                        "table, as planned", time.monotonic() - started)
            raise
        which = "per match"
        if config.MAX_MATCHES > GET_TABLE_MAX_ROWS:
            which = f"the busiest {GET_TABLE_MAX_ROWS} of {config.MAX_MATCHES:,} matches"
        logger.info("GET weighted mean = ceil(count/%s) (raw count), %s; %s",
                    f"{config.WEIGHTED_MEAN_DIVISOR:,}", which, self._status_line(figures))
        for line in format_get_table(rows):
            logger.info("%s", line)
        if self.http is not None:  # the viewers' push: this same read, fanned out
            self.http.publish_tick(overview_of(rows, figures),
                                   {m: match_view(m, counts) for m, counts in followed.items()})

    def _read_matches(self, wanted: set[int]
                      ) -> tuple[list[tuple[int, dict[str, int]]], dict[int, dict[str, int]]]:
        """Every match's counters in one pass (up to MAX_MATCHES_LIMIT matches a tick): the
        busiest GET_TABLE_MAX_ROWS (ties: lowest id first), and the counts of the ``wanted``
        matches (those viewers follow)."""
        followed: dict[int, dict[str, int]] = {}

        def noting(rows):
            for row in rows:
                if row[0] in wanted:
                    followed[row[0]] = row[1]
                yield row
        rows = noting(read_counts_many(range(1, config.MAX_MATCHES + 1)))
        if config.MAX_MATCHES <= GET_TABLE_MAX_ROWS:
            return list(rows), followed
        busiest = heapq.nlargest(GET_TABLE_MAX_ROWS, rows,
                                 key=lambda row: sum(count or 0 for count in row[1].values()))
        return busiest, followed

    def overview(self) -> dict[str, Any]:
        """The busiest matches and the status, read now (GET /matches before the first tick)."""
        rows, _ = self._read_matches(set())
        return overview_of(rows, self._status_figures())

    async def status_tick(self) -> None:
        """A posting-only process's periodic line: its status without a GET table."""
        logger.info("%s", self._status_line(await asyncio.to_thread(self._status_figures)))

    def _status_figures(self) -> dict[str, Any]:
        """The status now: events posted (by this process), the rate since the last call
        (events/s), refused, failed and skipped posts, events pending in Redis, rows in the
        table after the last backup (None if unknown here), and MAX_MATCHES."""
        now, posted = time.monotonic(), self.posted
        then, posted_then = self._last_status
        self._last_status = (now, posted)
        return {"posted": posted, "posted_by_http": self.http.posted if self.http else 0,
                "rate": (posted - posted_then) / (now - then) if now > then else 0.0,
                "refused": self.poster.refused + (self.http.app.tally.refused if self.http else 0),
                "failed": self.poster.failed, "skipped": self.poster.skipped,
                "pending": self._pending(posted),
                "rows": self.backups.last_rows if self.backups is not None else None,
                "max_matches": config.MAX_MATCHES}

    def _status_line(self, figures: dict[str, Any]) -> str:
        """The status as the console shows it (a process that posts nothing: pending only)."""
        if not (self.runs("post") or self.runs("http")):
            return f"pending in Redis {figures['pending']:,}"
        return (f"posted {figures['posted']:,} at {figures['rate']:,.0f}/s, refused "
                f"{figures['refused']:,}{unposted(self.poster)}, pending in Redis "
                f"{figures['pending']:,}")

    def figures(self) -> dict[str, Any]:
        """The run's figures for /metrics (blocking: it reads the table's size)."""
        backups = self.backups
        return {"poster_posted": self.poster.posted if self.runs("post") else None,
                "poster_refused": self.poster.refused if self.runs("post") else None,
                "pending_events": self._pending(),
                "table_rows": backups.table.count() if backups is not None else None,
                "backups": backups.backups if backups is not None else None,
                "backup_seconds_sum": backups.seconds_sum if backups is not None else None,
                "backup_events_sum": backups.events_sum if backups is not None else None}

    def _pending(self, posted: int | None = None) -> int:
        """Events posted and not yet in the table, for the status line and a second Ctrl-C.

        With the in-memory Redis this process is its only writer, so its own tallies give the
        number at once, however large the keyspace: ``posted`` (default: the poster's count now)
        less the events still in the ingest buffer, those the backups moved to the table or
        dead-lettered (counted when their transaction commits) and those spilled. A real Redis
        is shared, so there the lists themselves are counted (SCAN and LLEN: it grows with the
        keyspace, as SCAN does on any Redis).
        """
        if config.REDIS_URL:
            return self.adapter.pending_events()
        posted = self.posted if posted is None else posted
        manager = self.backups.manager
        return max(0, posted - held_events() - manager.events - manager.dead_lettered
                   - self.backups.spilled)

    def _abandoned(self) -> str:
        """The events pending in Redis, for the last words of an exit without the table."""
        try:
            return f"{self._pending():,}"
        except Exception as error:  # exiting anyway: say so rather than raise
            return f"an unknown number of ({error_text(error)})"

    def _exit_now(self, signum: int) -> None:
        """A deliberate Ctrl-C during the stop: say what is left behind, then exit at once
        (EXIT_INTERRUPTED)."""
        backup = ", without the final backup" if self.runs("backup") else ""
        logger.warning("second %s: exiting now%s: %s", signal.Signals(signum).name, backup,
                       self._left_behind())
        logging.shutdown()
        os._exit(EXIT_INTERRUPTED)

    def _left_behind(self) -> str:
        """The acknowledged events an exit now abandons, wherever they are held: those in the
        ingest buffer (not yet in Redis) always; those pending in the in-memory Redis, which
        ends with the process. A real Redis keeps its pending events for a later backup."""
        held = held_events()
        if config.REDIS_URL:
            buffered = " (held in the ingest buffer)" if held else ""
            line = f"{held:,} acknowledged events abandoned{buffered}"
            if self.runs("backup"):
                line += f"; {self._abandoned()} pending in Redis stay there for a later backup"
            return line
        try:
            in_redis = self._pending()
        except Exception as error:  # exiting anyway: say so rather than raise
            return f"an unknown number of acknowledged events abandoned ({error_text(error)})"
        where = f"{in_redis:,} pending in the in-memory Redis"
        if held:
            where += f", {held:,} held in the ingest buffer"
        return f"{in_redis + held:,} acknowledged events abandoned ({where})"

    async def shutdown(self, tasks: list[asyncio.Task]) -> int:
        """Stop posting and serving HTTP (streams ended, requests in flight answered), flush
        the ingest buffer, cancel the ticks, run the final backup
        (spilling what it cannot move from the in-memory Redis), log the summary; return the
        exit status. The waits are bounded: the poster gets POSTER_JOIN_SECONDS, a backup in
        progress and the final one their busy deadline (DB_BUSY_TIMEOUT_SECONDS) besides their
        SQL work."""
        if self.poster.is_alive():
            self.poster.stop()
            await asyncio.to_thread(self.poster.join, POSTER_JOIN_SECONDS)
            if self.poster.is_alive():
                logger.warning("posting thread still busy after %gs; going on without it",
                               POSTER_JOIN_SECONDS)
        if self.http is not None:  # before the last flush: every acknowledged POST in it
            await self.http.stop()
        try:
            await asyncio.to_thread(close_ingest_buffer)
        except Exception as error:
            logger.error("last ingest flush failed (%s): its events are lost with this process",
                         error)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self.backups is not None:
            logger.info("%s", self.backups.final_line(posted=self.runs("post")))
            await asyncio.to_thread(self.backups.final)
        return self.summary()

    def summary(self) -> int:
        """Log the summary and the reconciliation; the exit status (live/summary.py)."""
        return log_summary(self.role, self.poster, self.http.posted if self.http else None,
                           self.backups, self.adapter, self._started)


def overview_of(rows: list[tuple[int, dict[str, int]]], figures: dict[str, Any]) -> dict[str, Any]:
    """A GET tick as the API shows it (GET /matches, /stream): the busiest matches with their
    counts and weighted means, the emoticons, the divisor, the status figures, the time."""
    return {"time": time.time(), "divisor": config.WEIGHTED_MEAN_DIVISOR,
            "emoticons": list(config.EMOTICON_TYPES),
            "matches": [match_view(match_id, counts) for match_id, counts in rows],
            "status": figures}
