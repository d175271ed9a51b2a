"""The end of a run: the summary line and the reconciliation, and the start-up warning that
foretells a MISMATCH.

The reconciliation checks that every event posted is accounted for: in the counters, and as a
row, a dead letter, a spilled line or an event still pending (docs/failures.md). With the
in-memory Redis this process is the whole system; with a real Redis other processes share it,
so a process claims only what it did and the system-wide check reads Redis and the table
(live/reconcile.py).
"""

from __future__ import annotations

import logging
import os
import sqlite3
import time
from typing import Callable

import config
from db import ReactionsTable
from foundation.redis_client import redacted
from live.backups import BackupTicks
from live.console import unposted
from live.exits import EXIT_MISMATCH, EXIT_NOT_CHECKED, EXIT_OK, EXIT_SPILLED
from live.poster import Poster
from live.reconcile import Reconciliation, reconcile
from redis_adapter import RedisAdapter, error_text

__all__ = ["log_summary", "reconcile_and_log", "log_reconciliation", "log_not_checked",
           "dead_letter_sink", "warn_of_counters_backed_up_elsewhere"]

logger = logging.getLogger(__name__)


def log_summary(role: str, poster: Poster, http_posted: int | None, backups: BackupTicks | None,
                adapter: RedisAdapter, started: float) -> int:
    """Log the summary of a run of ``role`` that started at ``started`` (monotonic seconds),
    and the reconciliation; the exit status: EXIT_OK if OK, EXIT_SPILLED if every event is
    accounted for but some only in a spill file, EXIT_NOT_CHECKED if no consistent view could
    be read, else EXIT_MISMATCH. ``http_posted``: the reactions acknowledged over HTTP (None
    without an HTTP server); ``backups`` is None in a process that does not back up."""
    if config.REDIS_URL:
        return _shared_summary(role, poster, http_posted, backups, adapter, started)
    posted = poster.posted + (http_posted or 0)
    counters = adapter.counter_total()
    manager = backups.manager  # the in-memory Redis: this process runs every part
    rows, dead, spilled = manager.events, manager.dead_lettered, backups.spilled  # this run's
    pending = adapter.pending_events()
    accounted = (posted == counters == rows + dead + spilled + pending and pending == 0)
    verdict = "MISMATCH" if not accounted else "FAILED" if poster.error else "OK"
    over_http = f" and {http_posted:,} over HTTP" if http_posted is not None else ""
    logger.info("summary: ran %.1fs, posted %s events in %.1fs (%s/s)%s%s, backups run: %d",
                time.monotonic() - started, f"{poster.posted:,}", poster.seconds,
                f"{poster.rate_posted:,.0f}", unposted(poster), over_http, backups.backups)
    logger.info("reconciliation: posted=%d redis_counters=%d database_rows=%d "
                "pending_in_redis=%d refused=%d failed=%d dead_lettered=%d spilled=%d %s",
                posted, counters, rows, pending, poster.refused, poster.failed, dead,
                spilled, verdict)
    _log_dead_poster(poster)
    if rows + dead + spilled + pending > posted:
        logger.info("hint: the table, dead letters and Redis hold more events than this run "
                    "posted: items it did not post were written to its lists (see the table "
                    "dead_letters, source_key and reason)")
    if verdict != "OK":
        return EXIT_MISMATCH
    return EXIT_SPILLED if spilled else EXIT_OK


def _shared_summary(role: str, poster: Poster, http_posted: int | None,
                    backups: BackupTicks | None, adapter: RedisAdapter, started: float) -> int:
    """With a real Redis: this process's own part, then the system-wide reconciliation.

    Other processes may share the Redis and the table, so this one claims only what it did
    (a posting process no rows, a backup process no posts). The system-wide check needs the
    database file: a post or get process without one says it did not run it (``--reconcile``
    does it at any time).
    """
    parts = [f"ran {time.monotonic() - started:.1f}s, role {role}"]
    if role in ("all", "post"):
        parts.append(f"posted {poster.posted:,} events in {poster.seconds:.1f}s "
                     f"({poster.rate_posted:,.0f}/s), refused {poster.refused:,}, "
                     f"failed {poster.failed:,}")
    if http_posted is not None:
        parts.append(f"posted {http_posted:,} events over HTTP")
    if backups is not None:
        parts.append(f"backups run {backups.backups}, moved {backups.manager.events:,} events "
                     f"to the table, dead-lettered {backups.manager.dead_lettered:,}")
    logger.info("summary: %s", "; ".join(parts))
    status = _system_wide(role, adapter, backups.table if backups is not None else None)
    return EXIT_MISMATCH if _log_dead_poster(poster) else status


def _log_dead_poster(poster: Poster) -> bool:
    """If the posting thread died during the run, say so (the run is not OK); True then."""
    if poster.error is None:
        return False
    logger.error("the posting thread died during the run (%s): not OK", error_text(poster.error))
    return True


def _system_wide(role: str, adapter: RedisAdapter, table: ReactionsTable | None) -> int:
    """Log the system-wide reconciliation line (or why it was not run); its exit status
    (EXIT_NOT_CHECKED if it could not be read). A process that does not back up opens the
    database read-only, only now."""
    if table is None and (config.DB_PATH == ":memory:" or not os.path.isfile(config.DB_PATH)):
        missing = ("without --db FILE" if config.DB_PATH == ":memory:" else
                   f"whose --db {config.DB_PATH} no backup has made yet")
        logger.info("system-wide reconciliation: not run (a %s process %s has no table to "
                    "compare; run --reconcile with the backup's --db)", role, missing)
        return EXIT_OK
    try:
        if table is None:
            table = ReactionsTable(config.DB_PATH, read_only=True)
        return reconcile_and_log(adapter, table)
    except Exception as error:
        return log_not_checked(error)


def log_not_checked(error: BaseException) -> int:
    """Log that the system-wide reconciliation could not be read, and why (``error``: the
    database file locked past its busy timeout, a hot journal this process may not roll back,
    Redis gone...); EXIT_NOT_CHECKED: nothing is claimed either way."""
    logger.error("system-wide reconciliation: NOT CHECKED, could not be read: %s",
                 error_text(error))
    logger.debug("why the reconciliation could not be read", exc_info=error)
    return EXIT_NOT_CHECKED


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
    EXIT_OK, EXIT_MISMATCH, or EXIT_NOT_CHECKED when no consistent view was read."""
    logger.info("%s", result.line())
    for (match_id, emoticon), (counter, held) in sorted(result.mismatches.items())[:10]:
        logger.info("  match %d %s: counter %d, rows + pending %d", match_id, emoticon, counter,
                    held)
    if len(result.mismatches) > 10:
        logger.info("  ... and %s more counters that differ", f"{len(result.mismatches) - 10:,}")
    if not result.consistent:
        return EXIT_NOT_CHECKED
    return EXIT_OK if result.ok else EXIT_MISMATCH


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
