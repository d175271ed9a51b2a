"""The one-shot commands of ``python3 main.py``: ``--reconcile`` and ``--load-spill FILE``.

Each does one thing and exits with a status of live/exits.py, logged in one line.
"""

from __future__ import annotations

import logging
import os
import sqlite3

import config
from db import ReactionsTable, SchemaMismatchError
from foundation.redis_client import connect
from live.exits import EXIT_DEAD_LETTERS, EXIT_OK, EXIT_USAGE
from live.spill import load_spill
from live.summary import log_not_checked, reconcile_and_log
from redis_adapter import RedisAdapter

__all__ = ["run_reconcile", "load_spill_file"]

logger = logging.getLogger(__name__)


def run_reconcile() -> int:
    """--reconcile: the system-wide reconciliation of --redis-url and --db.

    The database file is opened read-only: nothing is created or locked in it (a hot journal
    of a killed writer is rolled back: ReactionsTable), and a file without reactions_table is
    refused (SchemaMismatchError). Exit status EXIT_OK if OK, EXIT_MISMATCH, EXIT_NOT_CHECKED
    if no consistent view could be read or the file or Redis could not be read (one line says
    why and what to run), EXIT_USAGE without a Redis URL and a database file. Raises
    RedisUnavailableError if Redis cannot be reached at the start."""
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
    try:
        table = ReactionsTable(config.DB_PATH, read_only=True)
    except sqlite3.OperationalError as error:  # locked, a hot journal it may not roll back
        return log_not_checked(error)
    adapter = RedisAdapter(connect(config.REDIS_URL), config.KEY_PREFIX)
    try:
        return reconcile_and_log(adapter, table)
    except Exception as error:  # Redis lost, the file locked or unreadable meanwhile
        return log_not_checked(error)
    finally:
        table.close()


def load_spill_file(path: str, db_path: str) -> int:
    """``--load-spill FILE``: load a spill file into the table at ``db_path`` exactly once and
    log one line; the exit status: EXIT_OK done or loaded before; EXIT_USAGE nothing added: a
    :memory: or missing database, a missing spill file, a file it cannot read or use, or a
    database that refused the load (locked past its busy timeout, disk full...: run it again
    once the database can be written); EXIT_DEAD_LETTERS loaded, but some lines became dead
    letters.

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
    except sqlite3.Error as error:  # as a database refused at the start: nothing was added
        logger.error("could not load %s into %s, nothing added: %s", path, db_path, error)
        return EXIT_USAGE
    finally:
        table.close()
    if result.already_loaded:
        logger.info("%s was loaded into %s before: nothing added", path, db_path)
        return EXIT_OK
    logger.info("loaded %s: %s rows and %s dead letters added to %s", path,
                f"{result.rows:,}", f"{result.dead_lettered:,}", db_path)
    if result.dead_lettered:
        logger.warning("%s lines of %s are not valid records for this table: they are in its "
                       "dead_letters, with the reason (docs/failures.md)",
                       f"{result.dead_lettered:,}", path)
        return EXIT_DEAD_LETTERS
    return EXIT_OK
