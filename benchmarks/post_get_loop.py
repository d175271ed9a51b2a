"""POST and GET in plain loops, to compare two checkouts: ``python3 -m benchmarks.post_get_loop``.

Prints the best of 5 passes over 100,000 generated POSTs (events/s) and 100,000 GETs (µs each)
on the in-memory server. Run it in each checkout, alternately, on an idle machine: the two
figures of one checkout drift together from run to run, so only side-by-side runs compare.
"""

from __future__ import annotations

import logging
import random
import time

from . import ROOT  # noqa: F401  (puts the project on sys.path)

import api_layer
import redis_adapter

PASSES = 5
CALLS = 100_000


def post_eps() -> float:
    """Best events/s of POSTMethod over the same CALLS generated reactions."""
    rng = random.Random(1)
    reactions = [(rng.randint(1, 1000), rng.randint(1, 10), rng.choice(("heart", "sad", "happy")))
                 for _ in range(CALLS)]
    best = 0.0
    for _ in range(PASSES):
        redis_adapter.get_redis().flushdb()
        started = time.perf_counter()
        for reaction in reactions:
            api_layer.POSTMethod(*reaction)
        best = max(best, CALLS / (time.perf_counter() - started))
    return best


def get_us() -> float:
    """Best µs per GETMethod call over 10 matches with counters."""
    match_ids = list(range(1, 11)) * (CALLS // 10)
    best = float("inf")
    for _ in range(PASSES):
        started = time.perf_counter()
        for match_id in match_ids:
            api_layer.GETMethod(match_id)
        best = min(best, (time.perf_counter() - started) / len(match_ids) * 1e6)
    return best


if __name__ == "__main__":
    logging.disable(logging.CRITICAL)
    print(f"POSTMethod {post_eps():,.0f} events/s; GETMethod {get_us():.2f} us")
