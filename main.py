"""Run the Live Reactions pipeline live: ``python3 main.py`` (``--help`` for the flags).

Three things run at once, as in the seed:
1. a thread posting random reactions through POSTMethod, paced at POSTS_PER_SECOND;
2. an asyncio task reading every match's counters (GET) every GET_INTERVAL_SECONDS;
3. an asyncio task running the write-behind backup every BACKUP_INTERVAL_SECONDS, in a worker
   thread so the event loop (and the GET tick) never waits on SQL.
Ctrl-C, SIGTERM, SIGHUP, the end of --duration or a closed stdout stops posting, runs a final
backup and prints a summary that reconciles the posted events with Redis and the table. If the
final backup cannot complete, the events of the in-memory Redis go to a spill file (spill.py;
exit 3), which ``python3 main.py --load-spill FILE --db PATH`` loads exactly once. A second
Ctrl-C exits at once (130), saying how many events it abandons. docs/failures.md has the policy
for each failure.

With ``--redis-url`` the same runs against a real Redis, and ``--role post|get|backup`` runs one
part only, so several processes can share one Redis and one database (docs/real-redis.md);
``--reconcile`` prints the system-wide reconciliation of such a Redis and database, and exits.
"""

from __future__ import annotations

if __name__ == "__main__":
    # Until the event loop installs its handlers, Ctrl-C ends the process the plain way (status
    # 130 in the shell) rather than with a KeyboardInterrupt traceback from the middle of imports.
    import signal
    signal.signal(signal.SIGINT, signal.SIG_DFL)

import argparse
import asyncio
import heapq
import logging
import math
import os
import random
import shlex
import signal
import sqlite3
import sys
import time
from typing import Awaitable, Callable, Sequence

try:
    import config
# config.py is the user's to edit: a slip there is one line, not a trace -- even one that raises
# KeyboardInterrupt or SystemExit (which would end the run silently, with its own status).
except BaseException as error:
    sys.stderr.write(f"config.py cannot be loaded: {type(error).__name__}: {error}\n")
    sys.exit(2)  # as for a bad setting
from api_layer import read_counts_many, weighted_means
from backup_data import BackupDataManager, BackupError, BackupProgress
from db import ReactionsTable, SchemaMismatchError, get_reactions_table
from foundation.log_gate import Every
from foundation.redis_client import RedisUnavailableError, connect, redacted
from live.poster import Poster
from live.preflight import check_redis
from live.reconcile import Reconciliation, reconcile
from live.settings import (MAX_MATCHES_FILE_LIMIT, MAX_MATCHES_LIMIT, MIN_INTERVAL_SECONDS,
                           SETTINGS, SettingsError, shown_value, validate_settings)
from live.spill import load_spill, spill_directories, write_spill
from redis_adapter import (RedisAdapter, close_ingest_buffer, error_text, get_adapter,
                           get_ingest_buffer, held_events, is_connection_error, set_adapter)

logger = logging.getLogger("live_reactions")

GET_TABLE_MAX_ROWS = 10  # the GET table shows the busiest matches only, so it never floods
EXIT_INTERRUPTED = 130  # the shell's code for "ended by SIGINT"
EXIT_USAGE = 2  # as argparse exits for a bad flag
EXIT_SPILLED = 3  # the final backup failed; the pending events are in a spill file
EXIT_DEAD_LETTERS = 4  # --load-spill loaded the file, but some lines became dead letters
BACKUP_WARNING_SECONDS = 10.0  # while backups keep failing, their warning at most this often
EXIT_NOT_CHECKED = 5  # no consistent view of Redis and the table could be read: try again
POSTER_JOIN_SECONDS = 5.0  # at shutdown, the longest wait for the poster to end its batch
SKIPPED_TICKS_NOTICE_SECONDS = 30.0  # "GET: skipped N ticks" at most this often per task
ROLES = ("all", "post", "get", "backup")
"""--role: all = the three parts in one process (the seed); the others run one part each."""
SWITCH_INTERVAL_SECONDS = 0.001
"""How long a thread may keep the GIL while another waits (Python's default: 5 ms).

The poster at --rate 0 never waits for anything, so each time the backup thread (sqlite3 releases
the GIL per statement) or the event loop (after each sleep) lets go of the GIL, it may wait a
whole switch interval to get it back. At 5 ms the backup falls behind the poster and the GET tick
runs late; at 1 ms both keep up (docs/performance.md)."""


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command line: each flag's text (True for --show-db) under its setting's name, or None
    when the flag was not given. Their values are checked by settings.validate_settings."""
    parser = argparse.ArgumentParser(
        description="Live Reactions: post random emoji reactions to an in-memory Redis, serve "
                    "their weighted means, and back them up to SQLite (write-behind). Every "
                    "default comes from config.py.")
    _flag(parser, "MAX_MATCHES", "N", f"match ids run 1..N, at most {MAX_MATCHES_LIMIT:,} "
          f"({MAX_MATCHES_FILE_LIMIT:,} with a database file)")
    _flag(parser, "MAX_USERS", "N", "user ids run 1..N")
    _flag(parser, "POSTS_PER_SECOND", "R", "posting pace in events/s, 0 = as fast as it can")
    _flag(parser, "DURATION_SECONDS", "SECONDS",
          "stop by itself after this many seconds, None = at Ctrl-C")
    _flag(parser, "RANDOM_SEED", "N",
          "seed of the random reactions, for a repeatable run, None = different each run")
    _flag(parser, "DB_PATH", "PATH", "SQLite database: :memory: or a file that keeps the rows")
    _flag(parser, "SHOW_DB_OUTPUT", None, "after each backup, also show the table's latest "
          "rows and the seed's aggregate query per match")
    _flag(parser, "GET_INTERVAL_SECONDS", "SECONDS",
          "seconds between GET ticks, at least %g" % MIN_INTERVAL_SECONDS)
    _flag(parser, "BACKUP_INTERVAL_SECONDS", "SECONDS",
          "seconds between backups, at least %g" % MIN_INTERVAL_SECONDS)
    add_redis_flags(parser)
    return parser.parse_args(argv)


def add_redis_flags(parser: argparse.ArgumentParser) -> None:
    """The flags of a real Redis, batched ingest, the roles and the reconciliation command."""
    _flag(parser, "REDIS_URL", "URL",
          "a real Redis, e.g. redis://127.0.0.1:6379/0 (needs redis-py), None = in-memory")
    _flag(parser, "KEY_PREFIX", "TEXT", "put before every Redis key, e.g. live:")
    _flag(parser, "ALLOW_EVICTION", None, "run on a Redis whose maxmemory-policy may evict keys")
    _flag(parser, "INGEST_BATCH_EVENTS", "N",
          "events per Redis write (one MULTI/EXEC), 1 = one per POST")
    _flag(parser, "INGEST_FLUSH_SECONDS", "SECONDS",
          "longest wait of a buffered event, with --ingest-batch above 1")
    parser.add_argument("--role", choices=ROLES, default="all",
                        help="the part this process runs; other than all needs --redis-url "
                             "(default %(default)s)")
    parser.add_argument("--reconcile", action="store_true",
                        help="print the system-wide reconciliation of --redis-url and --db "
                             "(a file), then exit: 0 if OK, 1 if not")
    parser.add_argument("--load-spill", metavar="FILE",
                        help="load a spill file (written when a final backup failed) into the "
                             "--db table (a file) exactly once, then exit")


def _flag(parser: argparse.ArgumentParser, name: str, metavar: str | None, text: str) -> None:
    """Add the flag of setting ``name`` (its spelling is in settings.SETTINGS); None if absent."""
    default = shown_value(name, getattr(config, name, None)).replace("%", "%%")
    options = {"action": "store_true"} if metavar is None else {"metavar": metavar}
    parser.add_argument(SETTINGS[name].flag, dest=name, default=None,
                        help=f"{text} (default {default})", **options)


def apply_settings(args: argparse.Namespace) -> None:
    """Check config.py's settings and the flags over them, then write the result into config,
    before anything reads it. Raises settings.SettingsError (config unchanged) for a bad value."""
    flags = {name: value for name, value in vars(args).items()
             if name in SETTINGS and value is not None}
    for name, value in validate_settings(vars(config), flags).items():
        setattr(config, name, value)


async def every(interval: float, tick: Callable[[], Awaitable[None]], what: str) -> None:
    """Await ``tick()`` every ``interval`` seconds on a fixed schedule, forever.

    The schedule is anchored to the start (monotonic clock), so it does not drift by the time a
    tick takes; ticks missed while one ran long are skipped, not bunched, and said so
    (SkippedTicks). A tick that raises is logged and the schedule goes on; while it keeps
    failing (Redis gone), once, not every tick.
    """
    loop = asyncio.get_running_loop()
    next_at = loop.time() + interval
    failing = False
    skipped = SkippedTicks(what, interval)
    while True:
        await asyncio.sleep(max(0.0, next_at - loop.time()))
        started = loop.time()
        try:
            await tick()
        except Exception as error:
            if not failing:  # a connection error needs no traceback; anything else does
                logger.warning("%s failed (%s); trying again every tick", what, error,
                               exc_info=not is_connection_error(error))
            failing = True
        else:
            if failing:
                logger.warning("%s works again", what)
            failing = False
        ended = loop.time()
        missed = max(0, math.floor((ended - next_at) / interval))
        if missed:
            skipped.note(missed, started - next_at, ended - started)
        next_at += (missed + 1) * interval


class SkippedTicks:
    """The line saying that ticks of ``what`` were skipped, and why: the tick before them
    started late (the event loop was busy) and/or took longer than ``interval`` seconds. At
    most one line per SKIPPED_TICKS_NOTICE_SECONDS; a line counts the skips it did not tell."""

    def __init__(self, what: str, interval: float) -> None:
        self.what, self.interval = what, interval
        self.untold = 0  # ticks skipped since the last line
        self._gate = Every(SKIPPED_TICKS_NOTICE_SECONDS)

    def note(self, missed: int, late: float, took: float) -> None:
        """``missed`` ticks were skipped after a tick that started ``late`` seconds after its
        time and ran ``took`` seconds."""
        self.untold += missed
        if not self._gate.ready():
            return
        count = f"{self.untold:,} tick{'s' if self.untold > 1 else ''}"
        since = " since the last such line" if self.untold > missed else ""
        start = f"started {late:.1f}s late and " if late >= 0.05 else ""
        logger.info("%s: skipped %s%s, as the previous %s %stook %.1fs, past the %gs "
                    "interval (this line at most every %gs)", self.what, count, since,
                    self.what, start, took, self.interval, SKIPPED_TICKS_NOTICE_SECONDS)
        self.untold = 0


def format_get_table(rows: list[tuple[int, dict[str, int | None]]]) -> list[str]:
    """Lines of the GET table: per match, each emoticon's weighted mean and (raw count)."""
    lines = ["  match  " + "".join(f"{emoticon:<16}" for emoticon in config.EMOTICON_TYPES)]
    for match_id, counts in rows:
        means = weighted_means(counts)
        cells = "".join(
            f"{'unreadable' if counts[e] is None else f'{means[e]} ({counts[e]:,})':<16}"
            for e in config.EMOTICON_TYPES)
        lines.append(f"  {match_id:>5}  {cells}")
    return [line.rstrip() for line in lines]


class LiveRun:
    """One live run of the pipeline: the poster thread, the GET and backup tasks, the shutdown."""

    def __init__(self, role: str = "all") -> None:
        self.role = role  # --role: which parts of the pipeline this process runs
        self.adapter = get_adapter()
        # Only a process that backs up writes the database: a post or get process does not
        # open it (nor lock it) until its summary reads it, read-only (shared_table()).
        self.table = get_reactions_table() if self.runs("backup") else None
        self.manager = (BackupDataManager(self.adapter, self.table) if self.table is not None
                        else None)
        self.poster = Poster(config.POSTS_PER_SECOND, random.Random(config.RANDOM_SEED))
        self.rows_before = self.table.count() if self.table is not None else 0
        self.backups = 0
        self.spilled = 0  # events the final backup wrote to a spill file
        self._failed_backups = 0  # backups failed in a row, for the rate-limited warning
        self._backup_failures_told = False  # a warning of this spell of failures was logged
        self._backup_log = Every(BACKUP_WARNING_SECONDS)
        self._started = time.monotonic()
        self._last_status = (self._started, 0)
        self._interrupts = 0
        self._stop: asyncio.Event | None = None

    async def main(self) -> int:
        """Run until stopped; return the exit status (0 if the reconciliation is OK, else 1)."""
        self._stop = asyncio.Event()
        self._install_signal_handlers()
        loop = asyncio.get_running_loop()
        _on_stdout_closed.append(lambda: loop.call_soon_threadsafe(self._stop.set))
        self._log_banner()
        if config.REDIS_URL and self.table is not None:
            warn_of_counters_backed_up_elsewhere(self.adapter, self.table)
        tasks = []
        if self.runs("post"):
            get_ingest_buffer()  # its flush thread starts before the first POST
            self.poster.start()
        get_interval, backup_interval = config.GET_INTERVAL_SECONDS, config.BACKUP_INTERVAL_SECONDS
        if self.runs("get"):
            tasks.append(asyncio.create_task(every(get_interval, self.get_tick, "GET")))
        elif self.role == "post":  # no GET table here: the status line alone, as often
            tasks.append(asyncio.create_task(every(get_interval, self.status_tick, "status")))
        if self.runs("backup"):
            tasks.append(asyncio.create_task(every(backup_interval, self.backup_tick, "backup")))
        try:
            await asyncio.wait_for(self._stop.wait(), timeout=config.DURATION_SECONDS)
        except asyncio.TimeoutError:
            logger.info("duration of %gs reached", config.DURATION_SECONDS)
        return await self.shutdown(tasks)

    def runs(self, part: str) -> bool:
        """True if this process runs ``part`` ("post", "get" or "backup") of the pipeline."""
        return self.role in ("all", part)

    def _install_signal_handlers(self) -> None:
        loop = asyncio.get_running_loop()
        # SIGHUP: the terminal or SSH session closed. Its default (exit at once) would lose every
        # pending event of the in-memory Redis, so it stops the run like Ctrl-C.
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            loop.add_signal_handler(signum, self._on_signal, signum)

    def _on_signal(self, signum: int) -> None:
        self._interrupts += 1
        if self._interrupts > 1:
            self._exit_now(signum)
        logger.info("%s: stopping (again to quit at once)", signal.Signals(signum).name)
        self._stop.set()

    def _exit_now(self, signum: int) -> None:
        """A second stop signal: say what is left behind, then exit at once (status 130)."""
        if self.runs("backup"):
            fate = ("left pending in Redis for a later backup" if config.REDIS_URL else
                    "abandoned: the in-memory Redis ends with the process")
            logger.warning("second %s: exiting now, without the final backup; %s events not "
                           "yet in the table %s", signal.Signals(signum).name, self._abandoned(),
                           fate)
        else:
            logger.warning("second %s: exiting now", signal.Signals(signum).name)
        logging.shutdown()
        os._exit(EXIT_INTERRUPTED)

    def _abandoned(self) -> str:
        """The events pending in Redis, for the last words of a second Ctrl-C."""
        try:
            return f"{self._pending():,}"
        except Exception as error:  # exiting anyway: say so rather than raise
            return f"an unknown number of ({error_text(error)})"

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
        posted = self.poster.posted if posted is None else posted
        manager = self.manager
        return max(0, posted - held_events() - manager.events - manager.dead_lettered
                   - self.spilled)

    def _log_banner(self) -> None:
        """Two or three lines saying what this process does: only the parts its role runs."""
        for line in self._banner_lines():
            logger.info("%s", line)

    def _banner_lines(self) -> list[str]:
        rate = config.POSTS_PER_SECOND
        first = (f"Live Reactions: {config.MAX_MATCHES:,} matches, {config.MAX_USERS:,} users, "
                 f"emoticons {'/'.join(config.EMOTICON_TYPES)}")
        parts = []
        if self.runs("post"):
            first += ", posting " + ("as fast as it can" if rate == 0 else f"{rate:,g} events/s")
            seed = "random" if config.RANDOM_SEED is None else config.RANDOM_SEED
            parts.append(f"seed {seed}")
        if self.runs("get"):
            parts.append(f"GET every {config.GET_INTERVAL_SECONDS:g}s")
        elif self.runs("post"):
            parts.append(f"status every {config.GET_INTERVAL_SECONDS:g}s")
        if self.runs("backup"):
            rows = f" (already {self.rows_before:,} rows)" if self.rows_before else ""
            parts.append(f"backup every {config.BACKUP_INTERVAL_SECONDS:g}s to database "
                         f"{config.DB_PATH}{rows}")
        duration = config.DURATION_SECONDS
        until = "Ctrl-C to stop" if duration is None else f"stops after {duration:g}s"
        lines = [first, ", ".join(parts) + "; " + until]
        batch = config.INGEST_BATCH_EVENTS
        if config.REDIS_URL or batch > 1:
            redis = f"Redis {redacted(config.REDIS_URL)}" if config.REDIS_URL else "Redis in-memory"
            third = f"{redis}, key prefix {config.KEY_PREFIX!r}, role {self.role}"
            if self.runs("post"):
                third += (f", ingest batches of {batch:,} events or "
                          f"{config.INGEST_FLUSH_SECONDS:g}s" if batch > 1
                          else ", one write per POST")
            lines.append(third)
        return lines

    async def get_tick(self) -> None:
        """GET: log every match's weighted means (raw counts), and the status.

        It reads each match's counters with the one MGET GETMethod makes (read_counts_many:
        pipelined, a round trip per thousand matches) and applies weighted_means to that same
        read, so that each cell's mean and count agree; GETMethod is exactly those two steps.
        """
        started = time.monotonic()
        try:  # both in a worker: many matches, and with a real Redis the status SCANs it
            rows, status = await asyncio.to_thread(lambda: (self._table_rows(), self._status()))
        except asyncio.CancelledError:  # the run stops: say why no table follows its banner
            logger.info("GET stopped with the run after %.1fs, before its table was read",
                        time.monotonic() - started)
            raise
        which = "per match"
        if config.MAX_MATCHES > GET_TABLE_MAX_ROWS:
            which = f"the busiest {GET_TABLE_MAX_ROWS} of {config.MAX_MATCHES:,} matches"
        logger.info("GET weighted mean = ceil(count/%s) (raw count), %s; %s",
                    f"{config.WEIGHTED_MEAN_DIVISOR:,}", which, status)
        for line in format_get_table(rows):
            logger.info("%s", line)

    def _table_rows(self) -> list[tuple[int, dict[str, int]]]:
        """Every match's counters, or the busiest GET_TABLE_MAX_ROWS (ties: lowest id first),
        read in one pass that keeps only those (up to MAX_MATCHES_LIMIT matches a tick)."""
        rows = read_counts_many(range(1, config.MAX_MATCHES + 1))
        if config.MAX_MATCHES <= GET_TABLE_MAX_ROWS:
            return list(rows)
        return heapq.nlargest(GET_TABLE_MAX_ROWS, rows,
                              key=lambda row: sum(count or 0 for count in row[1].values()))

    async def status_tick(self) -> None:
        """A posting-only process's periodic line: its status without a GET table."""
        logger.info("%s", await asyncio.to_thread(self._status))

    def _status(self) -> str:
        if not self.runs("post"):
            return f"pending in Redis {self._pending():,}"
        now, posted = time.monotonic(), self.poster.posted
        pending = self._pending(posted)
        then, posted_then = self._last_status
        self._last_status = (now, posted)
        rate = (posted - posted_then) / (now - then) if now > then else 0.0
        return (f"posted {posted:,} at {rate:,.0f}/s, refused {self.poster.refused:,}"
                f"{self._unposted()}, pending in Redis {pending:,}")

    def _unposted(self) -> str:
        """", failed F, skipped S while backing off" for the counts that are not 0 (skipped:
        posts the schedule asked for during the poster's pauses, never attempted)."""
        failed = f", failed {self.poster.failed:,}" if self.poster.failed else ""
        skipped = self.poster.skipped
        return failed + (f", skipped {skipped:,} while backing off" if skipped else "")

    async def backup_tick(self) -> None:
        """Run one backup in a worker thread and log its one-line result."""
        await asyncio.to_thread(self._backup)

    def _backup(self, final: bool = False) -> bool:
        """Run one backup and log its line; True if every list moved. Raises what run() raises
        besides BackupError (e.g. a Redis error)."""
        error = None
        try:
            result = self.manager.run(lambda progress: self._log_progress(progress, final))
        except BackupError as failure:  # one line, not a traceback: it may recur every tick
            result, error = failure.result, failure
        self.backups += 1
        moved_all = error is None
        told = self._note_backup(final, error)
        if told or result.events or result.dead_lettered:
            dead = f", dead-lettered {result.dead_lettered:,}" if result.dead_lettered else ""
            logger.info("backup moved %s events (lists: %d%s) in %.0f ms; %s",
                        f"{result.events:,}", result.keys, dead, result.seconds * 1000,
                        self._table_size())
        if config.SHOW_DB_OUTPUT and moved_all:
            try:
                self._log_db_output()
            except sqlite3.Error as failure:  # the events are in; only the display is missed
                logger.info("  db output skipped (%s)", failure)
        return moved_all

    @staticmethod
    def _log_progress(progress: BackupProgress, final: bool) -> None:
        """A long backup's progress line (BackupDataManager paces them: backup_data.py)."""
        logger.info("%s still running after %.0fs: %s of %s lists moved, %s events so far",
                    "final backup" if final else "backup", progress.seconds,
                    f"{progress.lists:,}", f"{progress.of_lists:,}", f"{progress.events:,}")

    def _note_backup(self, final: bool, error: BackupError | None) -> bool:
        """Log a failed backup's warning at most once per BACKUP_WARNING_SECONDS, with the
        count of failures in a row (a short interval and a locked file would otherwise print
        two lines a tick), and "backups work again" after a spell that was told; the final
        backup always. True if the backup's own line should be logged even when it moved
        nothing: a failure told, the first success after one, and the final backup (an idle
        Redis's periodic backups are silent: at --backup-interval 0.1, ten lines a second)."""
        if error is None:
            recovered = self._backup_failures_told
            if recovered:
                logger.warning("backups work again after %s failed", f"{self._failed_backups:,}")
            self._failed_backups, self._backup_failures_told = 0, False
            return recovered or final
        self._failed_backups += 1
        if not (self._backup_log.ready() or final):
            return False
        self._backup_failures_told = True
        retry = "the next backup retries them"
        if final:
            retry = ("a later backup retries them" if config.REDIS_URL
                     else "the in-memory Redis ends with this process")
        again = (f" ({self._failed_backups:,} failed backups in a row; this warning at most "
                 f"every {BACKUP_WARNING_SECONDS:g}s)" if self._failed_backups > 1 else "")
        logger.warning("%s: %s; %s%s", "final backup" if final else "backup", error, retry,
                       again)
        return True

    def _table_size(self) -> str:
        """The table's size for the backup line; a locked file makes it "unknown" after
        db.READ_WAIT_SECONDS, never a wait as long as the backup's."""
        try:
            return f"table now {self.table.count():,} rows"
        except sqlite3.Error as error:  # e.g. another process holds the file locked
            return f"table size unknown ({error})"

    def _log_db_output(self) -> None:
        """The seed's "line 38": the latest rows, and the seed's aggregate query per match."""
        for row in reversed(self.table.latest(3)):
            logger.info("  db row id=%d user_id=%d match_id=%d emoticon_type=%s timestamp=%.6f",
                        row["id"], row["user_id"], row["match_id"], row["emoticon_type"],
                        row["timestamp"])
        shown = min(config.MAX_MATCHES, GET_TABLE_MAX_ROWS)
        logger.info("  db aggregate query (seed's SQL), matches 1..%d of %s:", shown,
                    f"{config.MAX_MATCHES:,}")
        for match_id in range(1, shown + 1):
            counts = self.table.aggregate(match_id)
            cells = ", ".join(f"{e} {counts.get(e, 0):,}" for e in config.EMOTICON_TYPES)
            logger.info("  db match %5d: %s", match_id, cells)

    async def shutdown(self, tasks: list[asyncio.Task]) -> int:
        """Stop posting, flush the ingest buffer, cancel the ticks, run the final backup
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
        try:
            await asyncio.to_thread(close_ingest_buffer)
        except Exception as error:
            logger.error("last ingest flush failed (%s): its events are lost with this process",
                         error)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if not self.runs("backup"):
            return self._summary()
        logger.info("%s", self._final_backup_line())
        await asyncio.to_thread(self._final_backup)  # run() waits for a backup still running
        return self._summary()

    def _final_backup_line(self) -> str:
        """What the shutdown does now, said before the wait, so a locked file or a long backup
        is not mistaken for a hang: the lock wait only with a database file (no other process
        can lock :memory:), "posting stopped" only if this process posted."""
        in_progress = self.manager.running
        line = "posting stopped" if self.runs("post") else "stopping"
        line += "; final backup" + (" after the backup in progress" if in_progress else "")
        if config.DB_PATH != ":memory:":
            line += (f"; {'each' if in_progress else 'it'} waits up to "
                     f"{self.manager.busy_timeout:g}s if another process locks the database")
        return line

    def _final_backup(self) -> None:
        """The last chance for the events of the in-memory Redis: the table, else a spill file.
        A real Redis keeps what this backup cannot move, for a later one."""
        try:
            if self._backup(final=True):
                return
        except Exception as error:
            logger.error("final backup failed: %s", error_text(error))
        if not config.REDIS_URL:
            self._spill()

    def _spill(self) -> None:
        """Write the events still pending to a spill file and say where, in one line, with the
        command that loads it (absolute paths: it must work from any directory)."""
        directories = spill_directories(config.DB_PATH)
        try:
            result = write_spill(self.adapter, directories, self.manager.committed)
        except Exception as error:  # SpillError mostly; Redis too: nothing was deleted then
            logger.error("could not write a spill file (%s): the %s events still pending are "
                         "lost with the process", error_text(error), self._abandoned())
            return
        if result is not None:
            self.spilled = result.events
            logger.error("spilled %s pending events to %s; load them with: %s",
                         f"{result.events:,}", result.path, load_spill_command(result.path))

    def _summary(self) -> int:
        """Log the summary and the reconciliation; the exit status: 0 if OK, EXIT_SPILLED if
        every event is accounted for but some only in a spill file, else 1."""
        if config.REDIS_URL:
            return self._shared_summary()
        seconds = time.monotonic() - self._started
        poster = self.poster
        counters = self.adapter.counter_total()
        rows, dead = self.manager.events, self.manager.dead_lettered  # this run's, not the file's
        pending = self.adapter.pending_events()
        accounted = (poster.posted == counters == rows + dead + self.spilled + pending
                     and pending == 0)
        verdict = "MISMATCH" if not accounted else "FAILED" if poster.error else "OK"
        logger.info("summary: ran %.1fs, posted %s events in %.1fs (%s/s)%s, backups run: %d",
                    seconds, f"{poster.posted:,}", poster.seconds, f"{poster.rate_posted:,.0f}",
                    self._unposted(), self.backups)
        logger.info("reconciliation: posted=%d redis_counters=%d database_rows=%d "
                    "pending_in_redis=%d refused=%d failed=%d dead_lettered=%d spilled=%d %s",
                    poster.posted, counters, rows, pending, poster.refused, poster.failed, dead,
                    self.spilled, verdict)
        self._log_dead_poster()
        if rows + dead + self.spilled + pending > poster.posted:
            logger.info("hint: the table, dead letters and Redis hold more events than this run "
                        "posted: items it did not post were written to its lists (see the table "
                        "dead_letters, source_key and reason)")
        if verdict != "OK":
            return 1
        return EXIT_SPILLED if self.spilled else 0

    def _shared_summary(self) -> int:
        """With a real Redis: this process's own part, then the system-wide reconciliation.

        Other processes may share the Redis and the table, so this one claims only what it did
        (a posting process no rows, a backup process no posts). The system-wide check needs the
        database file: a post or get process without one says it did not run it (``--reconcile``
        does it at any time). Exit status: 0 if OK (or not run), 1 on MISMATCH or a dead poster,
        EXIT_NOT_CHECKED if no consistent view could be read.
        """
        parts = [f"ran {time.monotonic() - self._started:.1f}s, role {self.role}"]
        if self.runs("post"):
            parts.append(f"posted {self.poster.posted:,} events in {self.poster.seconds:.1f}s "
                         f"({self.poster.rate_posted:,.0f}/s), refused {self.poster.refused:,}, "
                         f"failed {self.poster.failed:,}")
        if self.runs("backup"):
            parts.append(f"backups run {self.backups}, moved {self.manager.events:,} events to "
                         f"the table, dead-lettered {self.manager.dead_lettered:,}")
        logger.info("summary: %s", "; ".join(parts))
        status = self._system_wide()
        return 1 if self._log_dead_poster() else status

    def _log_dead_poster(self) -> bool:
        """If the posting thread died during the run, say so (the run is not OK); True then."""
        if self.poster.error is None:
            return False
        logger.error("the posting thread died during the run (%s): not OK",
                     error_text(self.poster.error))
        return True

    def _system_wide(self) -> int:
        """Log the system-wide reconciliation line (or why it was not run); its exit status."""
        if self.table is None and (config.DB_PATH == ":memory:"
                                   or not os.path.isfile(config.DB_PATH)):
            missing = ("without --db FILE" if config.DB_PATH == ":memory:" else
                       f"whose --db {config.DB_PATH} no backup has made yet")
            logger.info("system-wide reconciliation: not run (a %s process %s has no table to "
                        "compare; run --reconcile with the backup's --db)", self.role, missing)
            return 0
        try:
            table = (self.table if self.table is not None
                     else ReactionsTable(config.DB_PATH, read_only=True))
            return reconcile_and_log(self.adapter, table)
        except Exception as error:
            logger.error("system-wide reconciliation could not be read: %s", error_text(error))
            return 1


def warn_of_counters_backed_up_elsewhere(adapter: RedisAdapter, table: ReactionsTable) -> None:
    """Log one warning if ``adapter``'s Redis counts, under its prefix, events that earlier runs
    backed up to another database: it has a dataset id (RedisAdapter.source_id: a backup ran),
    ``table`` holds no rows from that dataset (backup_sources), and the counters exceed the
    events still pending. The final reconciliation would report them as a MISMATCH. A Redis
    error here is left to the run, which reports its own."""
    try:
        source = adapter.source_id(create=False)
        if source is None or sum(table.census(source)[0].values()):
            return
        elsewhere = adapter.counter_total() - adapter.pending_events()
    except Exception as error:
        logger.debug("check of earlier counters skipped: %r", error)
        return
    if elsewhere > 0:
        logger.warning("Redis %s already counts %s events under key prefix %r that earlier runs "
                       "backed up to another database (none of their rows is in %s): the final "
                       "reconciliation will report MISMATCH unless you FLUSHDB that Redis db, "
                       "run with the --db those runs used, or choose another --key-prefix",
                       redacted(config.REDIS_URL), f"{elsewhere:,}", adapter.layout.prefix,
                       config.DB_PATH)


def dead_letter_sink(adapter: RedisAdapter, table: ReactionsTable
                     ) -> Callable[[], dict[tuple[int, str], int]]:
    """The dead letters of ``adapter``'s prefix (taken from its staged lists) per cell, as a
    reconcile() sink; none in a file made before dead letters were kept (opened read-only, it
    cannot gain the table)."""
    def sink() -> dict[tuple[int, str], int]:
        try:
            return table.dead_letter_cells(adapter.layout.is_staged)
        except sqlite3.OperationalError:  # no such table: dead_letters
            return {}
    return sink


def reconcile_and_log(adapter: RedisAdapter, table: ReactionsTable) -> int:
    """The system-wide reconciliation of ``adapter``'s Redis and prefix against ``table``, its
    dead letters included, logged; the exit status (log_reconciliation)."""
    return log_reconciliation(reconcile(adapter, table, [dead_letter_sink(adapter, table)]))


def log_reconciliation(result: Reconciliation) -> int:
    """Log the reconciliation line and the first ten counters that differ; the exit status:
    0 OK, 1 MISMATCH, EXIT_NOT_CHECKED when no consistent view was read."""
    logger.info("%s", result.line())
    for (match_id, emoticon), (counter, held) in sorted(result.mismatches.items())[:10]:
        logger.info("  match %d %s: counter %d, rows + pending %d", match_id, emoticon, counter,
                    held)
    if not result.consistent:
        return EXIT_NOT_CHECKED
    return 0 if result.ok else 1


def run_reconcile() -> int:
    """--reconcile: the system-wide reconciliation of --redis-url and --db.

    The database file is opened read-only: nothing is created or locked in it, and a file
    without reactions_table is refused (SchemaMismatchError). Exit status 0 if OK, 1 on
    MISMATCH, EXIT_NOT_CHECKED if no consistent view could be read, 2 without a Redis URL and
    a database file."""
    missing = [(flag, default) for flag, default, absent in (
        ("--redis-url URL (the Redis whose counters to check)", "an in-memory Redis",
         not config.REDIS_URL),
        ("--db FILE (the database to reconcile against)", "a :memory: database",
         config.DB_PATH == ":memory:")) if absent]
    if missing:
        logger.error("--reconcile needs %s: %s lives only inside its own process",
                     " and ".join(flag for flag, _ in missing),
                     " or ".join(default for _, default in missing))
        return EXIT_USAGE
    if not os.path.isfile(config.DB_PATH):
        logger.error("--reconcile: no database file %s", config.DB_PATH)
        return EXIT_USAGE
    table = ReactionsTable(config.DB_PATH, read_only=True)
    adapter = RedisAdapter(connect(config.REDIS_URL), config.KEY_PREFIX)
    return reconcile_and_log(adapter, table)


def use_redis() -> None:
    """Make a real Redis (config.REDIS_URL) the process-wide one; raise RedisUnavailableError."""
    if config.REDIS_URL:
        set_adapter(RedisAdapter(connect(config.REDIS_URL), config.KEY_PREFIX))


class _ConsoleFormatter(logging.Formatter):
    """Time, then the message; the level only when it is a warning or worse."""

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        if record.levelno >= logging.WARNING:
            stamp, _, message = text.partition(" ")
            text = f"{stamp} {record.levelname}: {message}"
        return text


_on_stdout_closed: list[Callable[[], None]] = []  # what a closed stdout calls: a stop request


class _ConsoleHandler(logging.StreamHandler):
    """stdout. When its reader has gone (``python3 main.py | head``) or it cannot be written at
    all (``> /dev/full``, a full disk: one line on stderr says so) it asks the run to stop (the
    callables in _on_stdout_closed), sends what is left of stdout to /dev/null, and from then on
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
        for stop in _on_stdout_closed:
            try:
                stop()
            except RuntimeError:  # the event loop has closed: the run is over anyway
                pass


def configure_logging() -> None:
    """Send log records to stdout: ``HH:MM:SS.mmm message``."""
    handler = _ConsoleHandler(sys.stdout)
    handler.setFormatter(_ConsoleFormatter("%(asctime)s.%(msecs)03d %(message)s", "%H:%M:%S"))
    logging.basicConfig(level=logging.INFO, handlers=[handler])


def load_spill_command(spill_path: str) -> str:
    """The shell command that loads ``spill_path`` into config.DB_PATH, with absolute paths of
    the program, the file and the database, quoted for a POSIX shell."""
    words = [os.path.basename(sys.executable), os.path.abspath(__file__), "--load-spill",
             os.path.abspath(spill_path), "--db", os.path.abspath(config.DB_PATH)]
    return " ".join(shlex.quote(word) for word in words)


def load_spill_file(path: str, db_path: str) -> int:
    """``--load-spill FILE``: load a spill file into the table at ``db_path`` exactly once and
    log one line; the exit status: 0 done or loaded before; 1 refused by the database (nothing
    added); 2 a :memory: or missing database, a missing spill file, or a file it cannot read or
    use (nothing created); EXIT_DEAD_LETTERS loaded, but some lines became dead letters.

    The database must exist already: a spill belongs to the database its run used, and a new
    empty file (a mistyped path) would take it silently, made for this config's emoticons."""
    if db_path == ":memory:":
        logger.error("--load-spill needs --db FILE: a :memory: table ends with the process")
        return EXIT_USAGE
    for what, file in (("spill file", path), ("database file", db_path)):
        if not os.path.isfile(file):
            logger.error("--load-spill: no %s %s; nothing loaded", what, os.path.abspath(file))
            return EXIT_USAGE
    try:
        table = ReactionsTable(db_path)
    except (SchemaMismatchError, sqlite3.Error) as error:
        logger.error("cannot use database %s: %s", db_path, error)
        return EXIT_USAGE
    try:
        result = load_spill(path, table)
    except (OSError, UnicodeDecodeError) as error:
        logger.error("cannot read spill file %s: %s", path, error)
        return EXIT_USAGE
    except sqlite3.Error as error:
        logger.error("could not load %s into %s, nothing added: %s", path, db_path, error)
        return 1
    finally:
        table.close()
    if result.already_loaded:
        logger.info("%s was loaded into %s before: nothing added", path, db_path)
        return 0
    logger.info("loaded %s: %s rows and %s dead letters added to %s", path,
                f"{result.rows:,}", f"{result.dead_lettered:,}", db_path)
    if result.dead_lettered:
        logger.warning("%s lines of %s are not valid records for this table: they are in its "
                       "dead_letters, with the reason (docs/failures.md)",
                       f"{result.dead_lettered:,}", path)
        return EXIT_DEAD_LETTERS
    return 0


def role_refusal(role: str) -> int | None:
    """EXIT_USAGE, logged in one line, if ``role`` cannot run with these settings; else None."""
    if role != "all" and not config.REDIS_URL:
        logger.error("--role %s needs --redis-url: with the in-memory Redis the other parts "
                     "would not see this process's data", role)
        return EXIT_USAGE
    if config.REDIS_URL and role in ("all", "backup") and config.DB_PATH == ":memory:":
        logger.error("--role %s with --redis-url needs --db FILE: its backups would move the "
                     "shared Redis's events into a :memory: table that ends with this process",
                     role)
        return EXIT_USAGE
    return None


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the flags, check the settings, run the pipeline; return the exit status (2: a bad
    setting or database, logged in one line)."""
    args = parse_args(argv)
    configure_logging()
    try:
        apply_settings(args)
    except SettingsError as error:
        logger.error("%s", error)
        return EXIT_USAGE
    if args.load_spill is not None:
        return load_spill_file(args.load_spill, config.DB_PATH)
    sys.setswitchinterval(SWITCH_INTERVAL_SECONDS)
    status = None if args.reconcile else role_refusal(args.role)  # --reconcile: its own needs
    if status is not None:
        return status
    try:
        if args.reconcile:
            return run_reconcile()
        use_redis()
        check_redis(args.role)
        run = LiveRun(args.role)
    except RedisUnavailableError as error:
        logger.error("%s", error)
        return EXIT_USAGE
    except (SchemaMismatchError, sqlite3.Error) as error:
        logger.error("cannot use database %s: %s", config.DB_PATH, error)
        return EXIT_USAGE
    try:
        return asyncio.run(run.main())
    except KeyboardInterrupt:  # Ctrl-C before the signal handlers were in place
        return EXIT_INTERRUPTED
    finally:
        signal.signal(signal.SIGINT, signal.SIG_DFL)  # a late Ctrl-C: no traceback either


if __name__ == "__main__":
    sys.exit(main())
