"""The backup part of a live run: the periodic write-behind backup and the final one, with
their console lines.

BackupDataManager (backup_data.py) does the moving; this module runs it in a worker thread, says
what each run moved in one line, keeps a spell of failures to a warning per
BACKUP_WARNING_SECONDS, and at shutdown gives the in-memory Redis's events a last chance: the
table, else a spill file (live/spill.py) that ``--load-spill`` loads exactly once.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shlex
import sqlite3
import sys
import time
from typing import Any, Callable

import config
from backup_data import BackupDataManager, BackupError, BackupProgress
from db import ReactionsTable
from foundation.log_gate import Spell
from live.console import GET_TABLE_MAX_ROWS
from live.spill import spill_directories, write_spill
from redis_adapter import RedisAdapter, error_text

__all__ = ["BackupTicks", "BACKUP_WARNING_SECONDS", "load_spill_command"]

logger = logging.getLogger(__name__)

BACKUP_WARNING_SECONDS = 10.0  # while backups keep failing, their warning at most this often
MAIN_PY = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "main.py")


class BackupTicks:
    """Runs ``manager``'s backups of ``adapter``'s Redis into ``table`` and logs them.

    ``backups`` counts the runs, ``spilled`` the events the final backup wrote to a spill file.
    ``abandoned()`` (from the live run) says how many events are still pending, for the line of
    a spill that could not be written.
    """

    def __init__(self, adapter: RedisAdapter, table: ReactionsTable,
                 abandoned: Callable[[], str]) -> None:
        self.adapter, self.table = adapter, table
        self.manager = BackupDataManager(adapter, table)
        self.backups = 0
        self.spilled = 0
        self.seconds_sum = 0.0  # seconds the backups took in all, for /metrics
        self.events_sum = 0  # events they moved to the table in all
        self.last_rows: int | None = None  # the table's size after the last backup that moved some
        self.on_backup: Callable[[dict[str, Any]], None] | None = None  # the viewers' feed
        self.failures = Spell(BACKUP_WARNING_SECONDS, repeat=True)
        self._abandoned = abandoned

    async def tick(self) -> None:
        """Run one backup in a worker thread (the event loop never waits on SQL)."""
        await asyncio.to_thread(self.run)

    def run(self, final: bool = False) -> bool:
        """Run one backup and log its line; True if every list moved. Raises what
        BackupDataManager.run raises besides BackupError (e.g. a Redis error)."""
        error = None
        try:
            result = self.manager.run(lambda progress: self._log_progress(progress, final))
        except BackupError as failure:  # one line, not a traceback: it may recur every tick
            result, error = failure.result, failure
        self.backups += 1
        self.seconds_sum += result.seconds
        self.events_sum += result.events
        told = self._note(final, error)
        if told or result.events or result.dead_lettered:
            dead = f", dead-lettered {result.dead_lettered:,}" if result.dead_lettered else ""
            logger.info("backup moved %s events (lists: %d%s) in %.0f ms; %s",
                        f"{result.events:,}", result.keys, dead, result.seconds * 1000,
                        self._table_size())
            if self.on_backup is not None:
                self.on_backup({"time": time.time(), "events": result.events,
                                "lists": result.keys, "dead_lettered": result.dead_lettered,
                                "seconds": round(result.seconds, 3), "rows": self.last_rows,
                                "final": final})
        if config.SHOW_DB_OUTPUT and error is None:
            try:
                self._log_db_output()
            except sqlite3.Error as failure:  # the events are in; only the display is missed
                logger.info("  db output skipped (%s)", failure)
        return error is None

    @staticmethod
    def _log_progress(progress: BackupProgress, final: bool) -> None:
        """A long backup's progress line (BackupDataManager paces them: backup_data.py)."""
        logger.info("%s still running after %.0fs: %s of %s lists moved, %s events so far",
                    "final backup" if final else "backup", progress.seconds,
                    f"{progress.lists:,}", f"{progress.of_lists:,}", f"{progress.events:,}")

    def _note(self, final: bool, error: BackupError | None) -> bool:
        """Log a failed backup's warning at most once per BACKUP_WARNING_SECONDS, with the
        count of failures in a row (a short interval and a locked file would otherwise print
        two lines a tick), and "backups work again" after a spell that was told; the final
        backup always. True if the backup's own line should be logged even when it moved
        nothing: a failure told, the first success after one, and the final backup (an idle
        Redis's periodic backups are silent: at --backup-interval 0.1, ten lines a second)."""
        if error is None:
            failed = self.failures.failures
            recovered = self.failures.ended()
            if recovered:
                logger.warning("backups work again after %s failed", f"{failed:,}")
            return recovered or final
        if not (self.failures.failed() or final):
            return False
        self.failures.told = True
        retry = "the next backup retries them"
        if final:
            retry = ("a later backup retries them" if config.REDIS_URL
                     else "the in-memory Redis ends with this process")
        failed = self.failures.failures
        again = (f" ({failed:,} failed backups in a row; this warning at most every "
                 f"{BACKUP_WARNING_SECONDS:g}s)" if failed > 1 else "")
        logger.warning("%s: %s; %s%s", "final backup" if final else "backup", error, retry,
                       again)
        return True

    def rows_now(self) -> int | None:
        """The table's size, or None if it cannot be read now (another process holds the file
        locked past db.READ_WAIT_SECONDS): a size is shown, never waited for."""
        try:
            return self.table.count()
        except sqlite3.Error as error:
            logger.info("table size unknown for now (%s)", error)
            return None

    def _table_size(self) -> str:
        """The table's size for the backup line; a locked file makes it "unknown" after
        db.READ_WAIT_SECONDS, never a wait as long as the backup's."""
        try:
            self.last_rows = self.table.count()
            return f"table now {self.last_rows:,} rows"
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

    def final_line(self, posted: bool) -> str:
        """What the shutdown does now, said before the wait, so a locked file or a long backup
        is not mistaken for a hang: the lock wait only with a database file (no other process
        can lock :memory:), "posting stopped" only if this process ``posted``."""
        in_progress = self.manager.running
        line = "posting stopped" if posted else "stopping"
        line += "; final backup" + (" after the backup in progress" if in_progress else "")
        if config.DB_PATH != ":memory:":
            line += (f"; {'each' if in_progress else 'it'} waits up to "
                     f"{self.manager.busy_timeout:g}s if another process locks the database")
        return line

    def final(self) -> None:
        """The last chance for the events of the in-memory Redis: the table, else a spill file.
        A real Redis keeps what this backup cannot move, for a later one. Waits for a backup
        still running first (BackupDataManager.run does)."""
        try:
            if self.run(final=True):
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


def load_spill_command(spill_path: str) -> str:
    """The shell command that loads ``spill_path`` into config.DB_PATH, with absolute paths of
    the interpreter of this run (``python`` may not exist, or be another one), the program,
    the file and the database, quoted for a POSIX shell."""
    words = [sys.executable, MAIN_PY, "--load-spill",
             os.path.abspath(spill_path), "--db", os.path.abspath(config.DB_PATH)]
    return " ".join(shlex.quote(word) for word in words)
