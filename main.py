"""Run the Live Reactions pipeline live: ``python3 main.py`` (``--help`` for the flags).

Three things run at once, as in the seed:
1. a thread posting random reactions through POSTMethod, paced at POSTS_PER_SECOND;
2. an asyncio task reading every match's counters (GET) every GET_INTERVAL_SECONDS;
3. an asyncio task running the write-behind backup every BACKUP_INTERVAL_SECONDS, in a worker
   thread so the event loop (and the GET tick) never waits on SQL.
Ctrl-C, SIGTERM or the end of --duration stops posting, runs a final backup and prints a summary
that reconciles the posted events with Redis and the table. A second Ctrl-C exits at once (130).

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
import signal
import sqlite3
import sys
import threading
import time
from typing import Awaitable, Callable, Sequence

try:
    import config
except Exception as error:  # config.py is the user's to edit: a slip there is one line, not a trace
    sys.stderr.write(f"config.py cannot be loaded: {type(error).__name__}: {error}\n")
    sys.exit(2)  # as for a bad setting
from api_layer import POSTMethod, read_counts, weighted_means
from backup_data import BackupDataManager, BackupError
from db import ReactionsTable, SchemaMismatchError, get_reactions_table
from ingest import close_ingest_buffer, get_ingest_buffer
from reconcile import reconcile
from redis_adapter import RedisAdapter, get_adapter, set_adapter
from redis_client import RedisUnavailableError, connect, redacted
from settings import (MAX_MATCHES_FILE_LIMIT, MAX_MATCHES_LIMIT, MIN_INTERVAL_SECONDS, SETTINGS,
                      SettingsError, describe_value, validate_settings)

logger = logging.getLogger("live_reactions")

GET_TABLE_MAX_ROWS = 10  # the GET table shows the busiest matches only, so it never floods
EXIT_INTERRUPTED = 130  # the shell's code for "ended by SIGINT"
EXIT_USAGE = 2  # as argparse exits for a bad flag
ROLES = ("all", "post", "get", "backup")
"""--role: all = the three parts in one process (the seed); the others run one part each."""
BACKOFF_SECONDS = (0.05, 2.0)  # the poster's first and longest pause after a refused POST
SWITCH_INTERVAL_SECONDS = 0.001
"""How long a thread may keep the GIL while another waits (Python's default: 5 ms).

The poster at --rate 0 never waits for anything, so each time the backup thread (sqlite3 releases
the GIL per statement) or the event loop (after each sleep) lets go of the GIL, it may wait a
whole switch interval to get it back. At 5 ms the backup falls behind the poster and the GET tick
runs late; at 1 ms both keep up (README, Performance)."""


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


def _flag(parser: argparse.ArgumentParser, name: str, metavar: str | None, text: str) -> None:
    """Add the flag of setting ``name`` (its spelling is in settings.SETTINGS); None if absent."""
    default = describe_value(getattr(config, name, None)).replace("%", "%%")
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


class Poster(threading.Thread):
    """The posting thread: random reactions through POSTMethod at ``rate`` events/s (0 = flat out).

    The pace follows a fixed schedule from the start, so a slow moment is caught up. ``posted``
    counts the POSTs that succeeded; only this thread writes it. ``seconds`` is how long it has
    been posting (monotonic clock), up to its stop.

    A POST that fails (Redis gone, ...) is counted in ``refused``; the thread pauses (0.05 s,
    doubling up to 2 s while it keeps failing), then resumes on a schedule restarted from
    there, so an outage is not followed by a burst. One warning per outage, not per POST.
    """

    BATCH = 500  # posts between two looks at the clock and the stop flag

    def __init__(self, rate: float, rng: random.Random) -> None:
        super().__init__(name="poster", daemon=True)
        self.rate = rate
        self.rng = rng
        self.posted = 0
        self.refused = 0
        self._skipped = 0  # posts the schedule asked for during outages, never attempted
        self._backoff = 0.0
        self._began: float | None = None
        self._ended: float | None = None
        self._stopping = threading.Event()

    @property
    def seconds(self) -> float:
        if self._began is None:
            return 0.0
        return (self._ended or time.monotonic()) - self._began

    def stop(self) -> None:
        """Ask the thread to stop after its current batch; join() to wait for it."""
        self._stopping.set()

    def run(self) -> None:
        self._began = time.monotonic()
        try:
            while not self._stopping.is_set():
                due = self.BATCH if self.rate == 0 else self._due()
                if due == 0:
                    self._stopping.wait(min(0.01, 1 / self.rate))
                    continue
                for _ in range(due):
                    if not self._post_or_back_off():
                        break
        except Exception:
            logger.exception("posting stopped: POSTMethod failed")
        finally:
            self._ended = time.monotonic()

    def _due(self) -> int:
        """Posts the schedule asks for now, at most one batch."""
        behind = int(self.seconds * self.rate) - self.posted - self.refused - self._skipped
        return max(0, min(behind, self.BATCH))

    def _post_or_back_off(self) -> bool:
        """POST one; on failure count it refused, pause, and return False."""
        try:
            self.post_one()
        except Exception as error:
            self.refused += 1
            if not self._backoff:
                logger.warning("POST refused (%s); backing off and retrying", error)
            self._backoff = min(max(self._backoff * 2, BACKOFF_SECONDS[0]), BACKOFF_SECONDS[1])
            self._stopping.wait(self._backoff)
            if self.rate:
                self._skipped = int(self.seconds * self.rate) - self.posted - self.refused
            return False
        if self._backoff:
            logger.warning("POSTs accepted again after %s refused in all", f"{self.refused:,}")
            self._backoff = 0.0
        return True

    def post_one(self) -> None:
        """POST one random reaction."""
        rng = self.rng
        POSTMethod(rng.randint(1, config.MAX_USERS), rng.randint(1, config.MAX_MATCHES),
                   rng.choice(config.EMOTICON_TYPES))
        self.posted += 1


async def every(interval: float, tick: Callable[[], Awaitable[None]], what: str) -> None:
    """Await ``tick()`` every ``interval`` seconds on a fixed schedule, forever.

    The schedule is anchored to the start (monotonic clock), so it does not drift by the time a
    tick takes; ticks missed while one ran long are skipped, not bunched. A tick that raises is
    logged and the schedule goes on; while it keeps failing (Redis gone), once, not every tick.
    """
    loop = asyncio.get_running_loop()
    next_at = loop.time() + interval
    failing = False
    while True:
        await asyncio.sleep(max(0.0, next_at - loop.time()))
        try:
            await tick()
        except Exception as error:
            if not failing:  # a connection error needs no traceback; anything else does
                logger.warning("%s failed (%s); trying again every tick", what, error,
                               exc_info=not _is_connection_error(error))
            failing = True
        else:
            if failing:
                logger.warning("%s works again", what)
            failing = False
        missed = max(0, math.floor((loop.time() - next_at) / interval))
        next_at += (missed + 1) * interval


def _is_connection_error(error: BaseException) -> bool:
    """True for a lost or refused connection (OSError, redis-py's ConnectionError/TimeoutError)."""
    return isinstance(error, OSError) or type(error).__name__ in ("ConnectionError",
                                                                  "TimeoutError")


def format_get_table(rows: list[tuple[int, dict[str, int]]]) -> list[str]:
    """Lines of the GET table: per match, each emoticon's weighted mean and (raw count)."""
    lines = ["  match  " + "".join(f"{emoticon:<16}" for emoticon in config.EMOTICON_TYPES)]
    for match_id, counts in rows:
        means = weighted_means(counts)
        cells = "".join(f"{f'{means[e]} ({counts[e]:,})':<16}" for e in config.EMOTICON_TYPES)
        lines.append(f"  {match_id:>5}  {cells}")
    return [line.rstrip() for line in lines]


class LiveRun:
    """One live run of the pipeline: the poster thread, the GET and backup tasks, the shutdown."""

    def __init__(self, role: str = "all") -> None:
        self.adapter = get_adapter()
        self.table = get_reactions_table()
        self.manager = BackupDataManager(self.adapter, self.table)
        self.poster = Poster(config.POSTS_PER_SECOND, random.Random(config.RANDOM_SEED))
        self.rows_before = self.table.count()
        self.role = role  # --role: which parts of the pipeline this process runs
        self.moved = 0  # events this process's backups moved into the table
        self.backups = 0
        self._started = time.monotonic()
        self._last_status = (self._started, 0)
        self._interrupts = 0
        self._stop: asyncio.Event | None = None

    async def main(self) -> int:
        """Run until stopped; return the exit status (0 if the reconciliation is OK, else 1)."""
        self._stop = asyncio.Event()
        self._install_signal_handlers()
        self._log_banner()
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
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, self._on_signal, signum)

    def _on_signal(self, signum: int) -> None:
        self._interrupts += 1
        if self._interrupts > 1:
            logger.warning("second %s: exiting now, without the final backup",
                           signal.Signals(signum).name)
            logging.shutdown()
            os._exit(EXIT_INTERRUPTED)
        logger.info("%s: stopping (again to quit at once)", signal.Signals(signum).name)
        self._stop.set()

    def _log_banner(self) -> None:
        rate = config.POSTS_PER_SECOND
        pace = "as fast as it can" if rate == 0 else f"{rate:,g} events/s"
        rows = f" (already {self.rows_before:,} rows)" if self.rows_before else ""
        seed = "random" if config.RANDOM_SEED is None else config.RANDOM_SEED
        duration = config.DURATION_SECONDS
        until = "Ctrl-C to stop" if duration is None else f"stops after {duration:g}s"
        logger.info("Live Reactions: %s matches, %s users, emoticons %s, posting %s",
                    f"{config.MAX_MATCHES:,}", f"{config.MAX_USERS:,}",
                    "/".join(config.EMOTICON_TYPES), pace)
        logger.info("GET every %gs, backup every %gs, database %s%s, seed %s; %s",
                    config.GET_INTERVAL_SECONDS, config.BACKUP_INTERVAL_SECONDS, config.DB_PATH,
                    rows, seed, until)
        batch = config.INGEST_BATCH_EVENTS
        if config.REDIS_URL or batch > 1:
            ingest = (f"ingest batches of {batch:,} events or {config.INGEST_FLUSH_SECONDS:g}s"
                      if batch > 1 else "one write per POST")
            logger.info("Redis %s, key prefix %r, role %s, %s",
                        redacted(config.REDIS_URL) if config.REDIS_URL else "in-memory",
                        config.KEY_PREFIX, self.role, ingest)

    async def get_tick(self) -> None:
        """GET: log every match's weighted means (raw counts), and the status.

        It calls read_counts, the one MGET GETMethod makes, and weighted_means on that same
        read, so that each cell's mean and count agree; GETMethod is exactly those two steps.
        """
        rows = await asyncio.to_thread(self._table_rows)  # many matches: keep the loop free
        which = "per match"
        if config.MAX_MATCHES > GET_TABLE_MAX_ROWS:
            which = f"the busiest {GET_TABLE_MAX_ROWS} of {config.MAX_MATCHES:,} matches"
        logger.info("GET weighted mean = ceil(count/%s) (raw count), %s; %s",
                    f"{config.WEIGHTED_MEAN_DIVISOR:,}", which, self._status())
        for line in format_get_table(rows):
            logger.info("%s", line)

    def _table_rows(self) -> list[tuple[int, dict[str, int]]]:
        """Every match's counters, or the busiest GET_TABLE_MAX_ROWS (ties: lowest id first),
        read in one pass that keeps only those (up to MAX_MATCHES_LIMIT matches a tick)."""
        rows = ((match_id, read_counts(match_id)) for match_id in range(1, config.MAX_MATCHES + 1))
        if config.MAX_MATCHES <= GET_TABLE_MAX_ROWS:
            return list(rows)
        return heapq.nlargest(GET_TABLE_MAX_ROWS, rows, key=lambda row: sum(row[1].values()))

    async def status_tick(self) -> None:
        """A posting-only process's periodic line: its status without a GET table."""
        logger.info("%s", await asyncio.to_thread(self._status))

    def _status(self) -> str:
        pending = self.adapter.pending_events()  # read first: it never exceeds posted then
        if not self.runs("post"):
            return f"pending in Redis {pending:,}"
        now, posted = time.monotonic(), self.poster.posted
        then, posted_then = self._last_status
        self._last_status = (now, posted)
        rate = (posted - posted_then) / (now - then) if now > then else 0.0
        refused = f", refused {self.poster.refused:,}" if self.poster.refused else ""
        return f"posted {posted:,} at {rate:,.0f}/s{refused}, pending in Redis {pending:,}"

    async def backup_tick(self) -> None:
        """Run one backup in a worker thread and log its one-line result."""
        await asyncio.to_thread(self._backup)

    def _backup(self) -> None:
        try:
            result = self.manager.run()
        except BackupError as error:  # one line, not a traceback: it may recur every tick
            result = error.result
            logger.warning("backup: %s", error)
        self.backups += 1
        self.moved += result.events
        logger.info("backup moved %s events (lists: %d) in %.0f ms; table now %s rows",
                    f"{result.events:,}", result.keys, result.seconds * 1000,
                    f"{self.table.count():,}")
        if config.SHOW_DB_OUTPUT:
            self._log_db_output()

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
        """Stop posting, flush the ingest buffer, cancel the ticks, run the final backup, log
        the summary; exit status."""
        if self.poster.is_alive():
            self.poster.stop()
            await asyncio.to_thread(self.poster.join)
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
        waiting = " (after the backup in progress)" if self.manager.running else ""
        logger.info("posting stopped; final backup%s", waiting)
        try:
            await asyncio.to_thread(self._backup)  # run() waits for a backup still running
        except Exception:
            logger.exception("final backup failed; its events stay in Redis and end with it")
        return self._summary()

    def _summary(self) -> int:
        if config.REDIS_URL:
            return self._shared_summary()
        seconds = time.monotonic() - self._started
        posted = self.poster.posted
        counters = self.adapter.counter_total()
        rows = self.table.count() - self.rows_before
        pending = self.adapter.pending_events()
        ok = posted == counters == rows and pending == 0
        rate = posted / self.poster.seconds if self.poster.seconds else 0.0
        logger.info("summary: ran %.1fs, posted %s events in %.1fs (%s/s), backups run: %d",
                    seconds, f"{posted:,}", self.poster.seconds, f"{rate:,.0f}", self.backups)
        logger.info("reconciliation: posted=%d redis_counters=%d database_rows=%d "
                    "pending_in_redis=%d %s", posted, counters, rows, pending,
                    "OK" if ok else "MISMATCH")
        return 0 if ok else 1

    def _shared_summary(self) -> int:
        """With a real Redis: this process's own part, then the system-wide reconciliation.

        Other processes may share the Redis and the table, so this one claims only what it did
        (a posting process no rows, a backup process no posts); whether every counter adds up
        is the system-wide check, which sets the exit status (0 if OK).
        """
        parts = [f"ran {time.monotonic() - self._started:.1f}s, role {self.role}"]
        if self.runs("post"):
            rate = self.poster.posted / self.poster.seconds if self.poster.seconds else 0.0
            parts.append(f"posted {self.poster.posted:,} events in {self.poster.seconds:.1f}s "
                         f"({rate:,.0f}/s), refused {self.poster.refused:,}")
        if self.runs("backup"):
            parts.append(f"backups run {self.backups}, moved {self.moved:,} events to the table")
        logger.info("summary: %s", "; ".join(parts))
        try:
            result = reconcile(self.adapter, self.table)
        except Exception as error:
            logger.error("system-wide reconciliation could not be read: %s", error)
            return 1
        logger.info("%s", result.line())
        return 0 if result.ok else 1


def run_reconcile() -> int:
    """--reconcile: the system-wide reconciliation of --redis-url and --db.

    Exit status 0 if OK, 1 if not, 2 without a Redis URL and a database file."""
    if not config.REDIS_URL or config.DB_PATH == ":memory:":
        logger.error("--reconcile needs --redis-url URL and --db FILE: an in-memory Redis or "
                     "database lives only inside its own process")
        return EXIT_USAGE
    if not os.path.isfile(config.DB_PATH):
        logger.error("--reconcile: no database file %s", config.DB_PATH)
        return EXIT_USAGE
    table = ReactionsTable(config.DB_PATH)
    result = reconcile(RedisAdapter(connect(config.REDIS_URL), config.KEY_PREFIX), table)
    logger.info("%s", result.line())
    for (match_id, emoticon), (counter, held) in sorted(result.mismatches.items())[:10]:
        logger.info("  match %d %s: counter %d, rows + pending %d", match_id, emoticon, counter,
                    held)
    return 0 if result.ok else 1


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


class _ConsoleHandler(logging.StreamHandler):
    """stdout; silent once its reader has gone (``python3 main.py | head``), not a traceback each."""

    def handleError(self, record: logging.LogRecord) -> None:
        if isinstance(sys.exc_info()[1], BrokenPipeError):
            return
        super().handleError(record)


def configure_logging() -> None:
    """Send log records to stdout: ``HH:MM:SS.mmm message``."""
    handler = _ConsoleHandler(sys.stdout)
    handler.setFormatter(_ConsoleFormatter("%(asctime)s.%(msecs)03d %(message)s", "%H:%M:%S"))
    logging.basicConfig(level=logging.INFO, handlers=[handler])


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
    sys.setswitchinterval(SWITCH_INTERVAL_SECONDS)
    if args.role != "all" and not config.REDIS_URL:
        logger.error("--role %s needs --redis-url: with the in-memory Redis the other parts "
                     "would not see this process's data", args.role)
        return EXIT_USAGE
    try:
        if args.reconcile:
            return run_reconcile()
        use_redis()
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
