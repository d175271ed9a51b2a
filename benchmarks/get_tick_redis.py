"""The GET tick's read of 100,000 matches on a local redis-server: one MGET round trip per match
(before) vs pipelined, 1,000 matches a round trip (api_layer.read_counts_many, now).

Run: ``python3 -m benchmarks.get_tick_redis`` (needs redis-server and redis-py; the figures are in
docs/real-redis.md).
"""

import time

import config
from api_layer import read_counts, read_counts_many
from redis_adapter import RedisAdapter, set_adapter
from foundation.redis_client import connect
from tests.redis_server import RedisServer

MATCHES = 100_000  # settings.MAX_MATCHES_LIMIT
REPEATS = 3


def main() -> None:
    server = RedisServer().start()
    try:
        config.MAX_MATCHES = MATCHES
        adapter = RedisAdapter(connect(server.url), "")
        set_adapter(adapter)
        for match_id in range(100, MATCHES + 1, 100):
            adapter.record_reaction(1, match_id, "heart", 1.0)
        ids = range(1, MATCHES + 1)
        for name, read in [("one MGET round trip per match (before)",
                            lambda: [read_counts(m) for m in ids]),
                           ("pipelined, 1,000 matches a round trip (now)",
                            lambda: list(read_counts_many(ids)))]:
            times = []
            for _ in range(REPEATS):
                began = time.perf_counter()
                read()
                times.append(time.perf_counter() - began)
            print(f"{name}: {min(times):.1f}-{max(times):.1f} s per tick of {MATCHES:,} matches")
    finally:
        set_adapter(None)
        server.close()


if __name__ == "__main__":
    main()
