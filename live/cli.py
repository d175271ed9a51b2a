"""The command line of ``python3 main.py``: its flags, and the checks of what they ask for.

Each flag overrides one setting of config.py for one run; its text goes, unchecked, to
``live.settings.validate_settings`` with config.py's values (one function checks them all).
``--help`` shows config.py's value as each flag's default.
"""

from __future__ import annotations

import argparse
import logging
from typing import Sequence

import config
from foundation.redis_client import connect
from live.exits import EXIT_USAGE
from live.settings import (MAX_MATCHES_FILE_LIMIT, MAX_MATCHES_LIMIT, MIN_INTERVAL_SECONDS,
                           SETTINGS, shown_value, validate_settings)
from redis_adapter import RedisAdapter, set_adapter

__all__ = ["ROLES", "ROLE_PARTS", "writes", "parse_args", "apply_settings", "use_redis", "role_refusal"]

logger = logging.getLogger(__name__)

ROLE_PARTS = {
    "all": {"post", "get", "backup", "http"},
    "post": {"post"}, "get": {"get"}, "backup": {"backup"},
    "api": {"get", "http"},
}
"""The parts each --role runs: all = the seed's three operations and the HTTP API in one
process; api = the HTTP API with the GET ticks that feed its streams, and no poster."""
ROLES = ("all", "post", "get", "backup", "api")
"""--role: all = the three parts in one process (the seed) and the HTTP API; post, get and
backup run one part each; api serves the HTTP API (with the GET ticks its streams need) and
posts nothing by itself."""


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command line: each flag's text (True for --show-db) under its setting's name, or None
    when the flag was not given. Their values are checked by live.settings.validate_settings."""
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
    _flag(parser, "HTTP_HOST", "HOST", "the HTTP API's address: 127.0.0.1 = this machine only")
    _flag(parser, "HTTP_PORT", "PORT", "the HTTP API's port, 0 = any free port, None = no HTTP")
    _add_redis_flags(parser)
    return parser.parse_args(argv)


def _add_redis_flags(parser: argparse.ArgumentParser) -> None:
    """The flags of a real Redis, batched ingest, the roles and the one-shot commands."""
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
                             "(a file), then exit: 0 if OK, 1 on MISMATCH or LOSS, 5 if not "
                             "checked")
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


def writes(role: str) -> bool:
    """True if ``role`` writes reactions to Redis: its poster, or POSTs over its HTTP API."""
    return bool(ROLE_PARTS[role] & {"post", "http"})


def use_redis() -> None:
    """Make a real Redis (config.REDIS_URL) the process-wide one; raise RedisUnavailableError."""
    if config.REDIS_URL:
        set_adapter(RedisAdapter(connect(config.REDIS_URL), config.KEY_PREFIX))


def role_refusal(role: str) -> int | None:
    """EXIT_USAGE, logged in one line, if ``role`` cannot run with these settings; else None."""
    if role != "all" and not config.REDIS_URL:
        logger.error("--role %s needs --redis-url: with the in-memory Redis the other parts "
                     "would not see this process's data", role)
        return EXIT_USAGE
    if role == "api" and config.HTTP_PORT is None:
        logger.error("--role api serves HTTP: it needs an --http-port (HTTP_PORT is None)")
        return EXIT_USAGE
    if config.REDIS_URL and role in ("all", "backup") and config.DB_PATH == ":memory:":
        logger.error("--role %s with --redis-url needs --db FILE: its backups would move the "
                     "shared Redis's events into a :memory: table that ends with this process",
                     role)
        return EXIT_USAGE
    return None
