"""Item 7: the longest time one command holds the InMemoryRedis lock, with many keys present.

Redis serves one command at a time, so a slow command delays every client; KEYS and FLUSHDB are
O(N) in Redis too and are left out, as the issue says. The server is filled with
``Settings.lock_keys`` keys shaped like the reactions' (7 counters and 1 event list per match),
its lock is replaced by one that times each hold, acquire to release, and each command below
runs ``CALLS`` times against it; the longest hold per command is reported, then the longest over
all. A hold is timed twice: in CPU time of the holding thread (``time.thread_time``: the
command's own work, the figure) and in wall time (``time.perf_counter``: what another client
waited, which also counts the moments the OS ran other processes instead, so it is noisy on a
busy machine; shown as the reference). "create keys" adds new keys until the key table grows (Python's dict
doubles at once, which Redis does incrementally): its hold is reported on its own line.
The filled keyspace is moved out of the garbage collector's reach (gc.freeze), so a hold
measures the command, not a full collection over a million objects that happened to start in it.
"""

from __future__ import annotations

import gc
import threading
import time
from typing import Any, Callable

from foundation.in_memory_redis import InMemoryRedis

from .common import Result, Row, Settings, fmt_us, progress

CALLS = 200
"""Runs of each timed command; the longest hold of them is its figure."""
EMOTICONS = ("heart", "like", "sad", "angry", "wow", "haha", "fire")
SLOW_GLOB = "a*" * 31 + "b"
"""31 ``a*`` groups: exponential for a backtracking matcher (issue 7)."""
LONG_GLOB = "[^\x00]" * 10_000
"""A long pattern: compiled before the lock is taken, so only matching is timed (issue 7)."""


class TimedLock:
    """A threading.Lock that records each hold's (CPU, wall) seconds in ``holds``."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.holds: list[tuple[float, float]] = []
        self._since = (0.0, 0.0)

    def __enter__(self) -> None:
        self._lock.acquire()
        self._since = (time.thread_time(), time.perf_counter())

    def __exit__(self, *exc_info: Any) -> None:
        cpu, wall = self._since
        self.holds.append((time.thread_time() - cpu, time.perf_counter() - wall))
        self._lock.release()

    def longest(self) -> tuple[float, float]:
        """The longest hold recorded, in CPU and in wall seconds."""
        return max(cpu for cpu, _ in self.holds), max(wall for _, wall in self.holds)


def fill(server: InMemoryRedis, keys: int) -> None:
    """``keys`` keys: per match 7 counters and one list of 3 event records."""
    pipe = server.pipeline(transaction=False)
    for match in range(keys // (len(EMOTICONS) + 1)):
        for emoticon in EMOTICONS:
            pipe.incrby(f"{match}_{emoticon}", 1)
        pipe.rpush(f"match_data_{match}", *['{"user_id": 1}'] * 3)
        if len(pipe) >= 10_000:
            pipe.execute()
    pipe.execute()


def commands(server: InMemoryRedis) -> dict[str, Callable[[int], Any]]:
    """The timed commands: name -> a call taking the run number."""
    cursor = [0]

    def scan(count: int | None = None, match: str | None = None) -> Callable[[int], Any]:
        def step(number: int) -> None:
            cursor[0], _ = server.scan(cursor[0], match=match, count=count)
        return step

    return {
        "GET": lambda n: server.get(f"{n}_heart"),
        "MGET 7 counters": lambda n: server.mget([f"{n}_{e}" for e in EMOTICONS]),
        "INCRBY": lambda n: server.incrby(f"{n}_like", 1),
        "RPUSH": lambda n: server.rpush(f"match_data_{n}", '{"user_id": 2}'),
        "MULTI INCRBY+RPUSH (a POST)": lambda n: server.pipeline().incrby(f"{n}_sad", 1)
        .rpush(f"match_data_{n}", "{}").execute(),
        "LRANGE 0 -1": lambda n: server.lrange(f"match_data_{n}", 0, -1),
        "LLEN": lambda n: server.llen(f"match_data_{n}"),
        "SET EX": lambda n: server.set(f"new_{n}", "v", ex=1000),
        "EXPIRE / TTL / PERSIST": lambda n: (server.expire(f"{n}_wow", 100), server.ttl(f"{n}_wow"),
                                              server.persist(f"{n}_wow")),
        "RENAME list": lambda n: server.rename(f"match_data_{n}", f"backup_x_match_data_{n}"),
        "DEL": lambda n: server.delete(f"backup_x_match_data_{n}"),
        "EXISTS / TYPE": lambda n: (server.exists(f"{n}_haha"), server.type(f"{n}_haha")),
        "SCAN (COUNT 10)": scan(),
        "SCAN MATCH *match_data_*": scan(match="*match_data_*"),
        "SCAN COUNT 1000": scan(count=1000),
        f"SCAN MATCH {SLOW_GLOB[:8]}...b (31 a*)": scan(count=100, match=SLOW_GLOB),
        "SCAN MATCH [^\\x00] x 10,000": scan(count=10, match=LONG_GLOB),
        "DBSIZE": lambda n: server.dbsize(),
    }


def longest_hold(lock: TimedLock, call: Callable[[int], Any], calls: int) -> tuple[float, float]:
    """The longest lock hold (CPU, wall seconds) over ``calls`` runs of ``call``."""
    lock.holds.clear()
    for number in range(calls):
        call(number)
    return lock.longest()


def key_table_growth(server: InMemoryRedis, lock: TimedLock) -> tuple[float, float, int]:
    """Add keys until the key table has grown once: the longest hold (CPU, wall seconds) and
    the keys added."""
    lock.holds.clear()
    added = 0
    size = server._data.__sizeof__()
    while server._data.__sizeof__() == size:
        server.set(f"grow_{added}", "v")
        added += 1
    return (*lock.longest(), added)


def run_lock_hold(settings: Settings) -> Result:
    """Item 7: the longest lock hold per command, milliseconds, with ``lock_keys`` keys."""
    progress(f"item 8: lock holds with {settings.lock_keys:,} keys")
    server = InMemoryRedis()
    fill(server, settings.lock_keys)
    gc.collect()
    gc.freeze()
    lock = TimedLock()
    server._lock = lock
    keys = server.dbsize()
    holds = {name: longest_hold(lock, call, CALLS) for name, call in commands(server).items()}
    growth_cpu, growth_wall, added = key_table_growth(server, lock)
    server.flushdb()
    gc.unfreeze()
    worst = max(holds, key=lambda name: holds[name][0])
    figures = {"keys": keys, "calls": CALLS,
               "longest_hold_ms": {name: cpu * 1000 for name, (cpu, _) in holds.items()},
               "longest_hold_wall_ms": {name: wall * 1000 for name, (_, wall) in holds.items()},
               "worst_command": worst, "worst_ms": holds[worst][0] * 1000,
               "key_table_growth_ms": growth_cpu * 1000,
               "key_table_growth_wall_ms": growth_wall * 1000, "keys_added_to_grow": added}
    rows = [Row("8", f"lock hold (CPU), {name}", fmt_us(cpu * 1e6), f"wall {fmt_us(wall * 1e6)}")
            for name, (cpu, wall) in holds.items()]
    rows.append(Row("8", f"longest hold of any command above, {keys:,} keys",
                    fmt_us(holds[worst][0] * 1e6), worst))
    rows.append(Row("8", "SET of a new key that grows the key table", fmt_us(growth_cpu * 1e6),
                    f"wall {fmt_us(growth_wall * 1e6)}, after {added:,} new keys"))
    return Result(figures, rows)
