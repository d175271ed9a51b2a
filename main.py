"""Run the Live Reactions pipeline live: ``python3 main.py`` (``--help`` for the flags).

As the seed's "How to start the application", three things run at once:
1. a thread posting random reactions through POSTMethod (api_layer.py), paced at
   POSTS_PER_SECOND, for random matches and users (MAX_MATCHES, MAX_USERS in config.py);
2. an asyncio task calling GET every GET_INTERVAL_SECONDS: each match's weighted means;
3. an asyncio task running the write-behind backup (backup_data.py) every
   BACKUP_INTERVAL_SECONDS, which moves the events from Redis into the database (db.py).
Ctrl-C stops it: posting stops, a final backup runs, and a summary reconciles the posted events
with Redis and the table (a second Ctrl-C quits at once). live/run.py runs the three parts;
docs/failures.md says what each failure keeps and what the exit statuses mean.

With ``--redis-url`` the same runs against a real Redis, and ``--role post|get|backup`` runs one
part only, so several processes can share one Redis and one database (docs/real-redis.md).
``--reconcile`` and ``--load-spill FILE`` are one-shot commands (live/commands.py).
"""

from __future__ import annotations

if __name__ == "__main__":
    # Until the event loop installs its handlers, Ctrl-C ends the process the plain way (status
    # 130 in the shell) rather than with a KeyboardInterrupt traceback from the middle of imports;
    # an ignored SIGINT (a background job of a script) stays ignored.
    import signal
    if signal.getsignal(signal.SIGINT) is not signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.SIG_DFL)

import asyncio
import logging
import signal
import sqlite3
import sys
from typing import Sequence

try:
    import config
# config.py is the user's to edit: a slip there is one line, not a trace -- even one that raises
# KeyboardInterrupt or SystemExit (which would end the run silently, with its own status).
except BaseException as error:
    sys.stderr.write(f"config.py cannot be loaded: {type(error).__name__}: {error}\n")
    sys.exit(2)  # as for a bad setting
from db import SchemaMismatchError
from foundation.redis_client import RedisUnavailableError
from live.cli import apply_settings, parse_args, role_refusal, use_redis
from live.commands import load_spill_file, run_reconcile
from live.console import configure_logging
from live.exits import EXIT_INTERRUPTED, EXIT_USAGE
from live.preflight import check_redis
from live.run import SWITCH_INTERVAL_SECONDS, LiveRun
from live.settings import SettingsError
from live.signals import inherited_as_ignored

logger = logging.getLogger("live_reactions")

def main(argv: Sequence[str] | None = None) -> int:
    """Parse the flags, check the settings, build the parts, run them until stopped; return the
    exit status (live/exits.py; 2: a bad setting, Redis or database, logged in one line)."""
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
        check_redis(args.role)  # a real Redis: what it refuses, named before anything runs
        run = LiveRun(args.role, explicit_port=args.HTTP_PORT is not None)
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
        if not inherited_as_ignored(signal.SIGINT):
            signal.signal(signal.SIGINT, signal.SIG_DFL)  # a late Ctrl-C: no traceback either


if __name__ == "__main__":
    sys.exit(main())
