"""Knobs of the Live Reactions simulation.

Every setting carries its unit in its name or its comment. ``python3 main.py`` flags override
these values for one run (see ``python3 main.py --help``); edit this file to change the defaults.
main.py checks every value at start-up (settings.py holds the rules; docs/configuration.md) and refuses
a bad one with one line naming it; an upper-case name here that is not a setting is refused too.
"""

MAX_MATCHES = 10
"""Match ids run from 1 to MAX_MATCHES (count of matches)."""

MAX_USERS = 1000
"""User ids run from 1 to MAX_USERS (count of users)."""

EMOTICON_TYPES = ("heart", "sad", "happy")
"""The emoticons a viewer can tap (seed: sad, happy, heart); the table's CHECK allows only these."""

POSTS_PER_SECOND = 1000
"""Pace of main.py's posting thread in events/s; 0 = as fast as it can.

At 1000 events/s over 10 matches and 3 emoticons each counter grows ~33/s, so its weighted mean
steps up about every 30 s. An hour at this pace is 3.6 M rows in the table (docs/configuration.md)."""

DURATION_SECONDS = None
"""Seconds after which main.py stops by itself (final backup, summary), or None: until Ctrl-C."""

GET_INTERVAL_SECONDS = 5.0
"""Seconds between two GET ticks in main.py (seed: every 5 s)."""

BACKUP_INTERVAL_SECONDS = 10.0
"""Seconds between two write-behind backups from Redis to the table (seed: every 10 s)."""

WEIGHTED_MEAN_DIVISOR = 1000
"""GET returns ceil(count / WEIGHTED_MEAN_DIVISOR) per emoticon (seed: ceil(count/1000))."""

DB_PATH = ":memory:"
"""SQLite database: ":memory:" (gone at exit) or a file path that keeps the rows."""

RANDOM_SEED = None
"""Seed of the posting thread's random generator (int), or None for a different run each time."""

SHOW_DB_OUTPUT = False
"""True: each backup also logs the table's latest rows and the seed's aggregate query (seed's
"uncomment line 38 in backup_data.py")."""

KEY_PREFIX = ""
"""Put before every Redis key of the reactions ("" = the seed's names, e.g. "live:" gives
``live:5_heart``), so several runs or other applications can share one Redis. Not ending in a
digit."""

REDIS_URL = None
"""None = the in-process InMemoryRedis; or a real Redis, e.g. "redis://127.0.0.1:6379/0" (needs
redis-py: python3 -m pip install redis). See docs/real-redis.md."""

ALLOW_EVICTION = False
"""True accepts a real Redis whose maxmemory-policy may evict this run's keys (allkeys-*, or
volatile-* with INGEST_BATCH_EVENTS > 1); False refuses it at start (docs/failures.md)."""

INGEST_BATCH_EVENTS = 1
"""Events per ingest flush, one MULTI/EXEC each (1 = the seed's one write per POST). Above 1,
GET lags by up to INGEST_FLUSH_SECONDS and a crash loses at most one unflushed buffer."""

INGEST_FLUSH_SECONDS = 0.5
"""Seconds the oldest buffered event may wait before its flush (with INGEST_BATCH_EVENTS > 1)."""

DB_BUSY_TIMEOUT_SECONDS = 5.0
"""Seconds one backup run may wait in all for a database another process holds locked: a deadline
per run, not per statement or list. Past it the run fails and its lists stay staged in Redis (the
final backup then writes them to a spill file, see docs/failures.md)."""

REDIS_MAXMEMORY_BYTES = 1024 ** 3
"""The in-memory Redis's maxmemory in bytes (Redis's setting, noeviction policy); 0 = no limit,
else at least 1 MiB (a limit the counters alone fill would refuse every post). Over it, posts are
refused (and counted) until a backup frees memory. 1 GiB holds about 11 M pending events (94
bytes each in the estimate, 153 bytes of process memory): some 2 minutes of --rate 0 backlog, 3
hours at 1000 events/s (docs/failures.md, measured)."""

HTTP_HOST = "127.0.0.1"
"""Where main.py's HTTP API and live page listen: loopback by default; "0.0.0.0" (every IPv4
interface) or another address must be asked for. See docs/http-api.md."""

HTTP_PORT = 8000
"""The HTTP port (0 = any free port; None = no HTTP server). If this default port is busy the run
takes a free one and says so; a port asked for otherwise (a flag, another value here) that is
busy stops the run at start-up."""
