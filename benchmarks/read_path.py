"""Item 3: the read path -- GETMethod against the seed's SQL aggregate and against a bare dict.

a. Rows: the same generated events fill two SQLite ``:memory:`` tables of db.CREATE_TABLE, one
   with db.CREATE_INDEX and one without, growing to each size of ``Settings.read_sizes``; the Redis
   counters are set to the same per-match counts. Per size: GETMethod microseconds per call against
   db.AGGREGATE_QUERY (executed bare on a sqlite3 connection, fetchall, no lock: the cheapest way
   SQL can answer) with and without the index, over the same random match ids. Ratio GET / SQL.
b. Matches: config.MAX_MATCHES set to each of ``Settings.match_counts`` with every counter
   populated; GETMethod microseconds per call over random match ids, against the floor: a bare
   dict holding the same counters, looked up by the same ``{match_id}_{emoticon}`` keys into a
   dict of the same shape (no lock, no validation, no weighted mean). Ratio GET / dict
   (floor: <= 3x). GET's growth from the smallest to the largest case shows whether its cost
   depends on the number of events (a) or of matches (b); the dict floor's own growth over the
   matches is shown next to it (a bigger dict misses the CPU caches more, whatever reads it).
"""

from __future__ import annotations

import collections
import random
import sqlite3
import time
from typing import Callable, Sequence

import api_layer
import config
import db
import redis_adapter

from .common import (Result, Row, Settings, config_values, flush_redis, fmt_ratio, fmt_us,
                     interleave, median, progress, ratio, verdict)

GET_DICT_MAX_RATIO = 3.0
"""GETMethod may cost at most this many times the bare dict lookup."""
FLAT_MAX_GROWTH = 1.5
"""GET counts as flat when its largest case costs at most this many times its smallest
(this benchmark's own criterion; the issue asks to show flatness, with no number)."""
MAX_CALLS = 200_000
MIN_CALLS = 3


# -- per-call timing loops (each returns microseconds per call) ---------------------------------

def get_us(match_ids: Sequence[int]) -> float:
    """Microseconds per GETMethod call over ``match_ids``."""
    get = api_layer.GETMethod
    started = time.perf_counter()
    for match_id in match_ids:
        get(match_id)
    return (time.perf_counter() - started) / len(match_ids) * 1e6


def sql_us(connection: sqlite3.Connection, match_ids: Sequence[int]) -> float:
    """Microseconds per db.AGGREGATE_QUERY (execute + fetchall) over ``match_ids``."""
    query = db.AGGREGATE_QUERY
    started = time.perf_counter()
    for match_id in match_ids:
        connection.execute(query, (match_id,)).fetchall()
    return (time.perf_counter() - started) / len(match_ids) * 1e6


def dict_us(counters: dict[str, int], match_ids: Sequence[int]) -> float:
    """Microseconds per bare dict lookup of one match's counters over ``match_ids``."""
    emoticons = config.EMOTICON_TYPES
    started = time.perf_counter()
    for match_id in match_ids:
        {emoticon: counters.get(f"{match_id}_{emoticon}", 0) for emoticon in emoticons}
    return (time.perf_counter() - started) / len(match_ids) * 1e6


def calls_for(timer: Callable[[Sequence[int]], float], probe_ids: Sequence[int],
              budget_s: float) -> int:
    """How many calls make one repeat of ``timer`` last about ``budget_s`` seconds."""
    per_call_us = timer(probe_ids)
    return max(MIN_CALLS, min(MAX_CALLS, int(budget_s * 1e6 / max(per_call_us, 1e-3))))


def random_ids(count: int, matches: int, seed: int) -> list[int]:
    """``count`` random match ids in 1..``matches``."""
    rng = random.Random(seed)
    return [rng.randint(1, matches) for _ in range(count)]


# -- a. GET vs SQL as the table grows ------------------------------------------------------------

def sql_table(with_index: bool) -> sqlite3.Connection:
    """A fresh ``:memory:`` reactions_table (db.CREATE_TABLE), with db.CREATE_INDEX or not."""
    connection = sqlite3.connect(":memory:", isolation_level=None)
    allowed = ", ".join("'" + emoticon.replace("'", "''") + "'"
                        for emoticon in config.EMOTICON_TYPES)
    connection.execute(db.CREATE_TABLE.format(allowed=allowed))
    if with_index:
        connection.execute(db.CREATE_INDEX)
    return connection


def add_rows(connections: Sequence[sqlite3.Connection], count: int, rng: random.Random,
             counts: collections.Counter) -> None:
    """Insert ``count`` random events into every table (one transaction each); tally ``counts``."""
    emoticons, matches, users = config.EMOTICON_TYPES, config.MAX_MATCHES, config.MAX_USERS
    stamp = time.time()
    rows = [(rng.randint(1, users), rng.randint(1, matches), rng.choice(emoticons),
             stamp + number * 1e-3) for number in range(count)]
    counts.update((match_id, emoticon) for _, match_id, emoticon, _ in rows)
    for connection in connections:
        connection.execute("begin")
        connection.executemany(db.INSERT, rows)
        connection.execute("commit")


def set_counters(counts: dict[tuple[int, str], int]) -> None:
    """Make the Redis counters hold exactly ``counts`` (everything else flushed)."""
    flush_redis()
    redis = redis_adapter.get_redis()
    for (match_id, emoticon), count in counts.items():
        redis.set(redis_adapter.counter_key(match_id, emoticon), count)


def check_consistent(connection: sqlite3.Connection, matches: int) -> bool:
    """True if GETMethod equals ceil(SQL count / divisor) for every match (same data both ways)."""
    divisor = config.WEIGHTED_MEAN_DIVISOR
    for match_id in range(1, matches + 1):
        sql = {emoticon: -(-count // divisor) for count, emoticon in
               connection.execute(db.AGGREGATE_QUERY, (match_id,)).fetchall()}
        get = {emoticon: mean for emoticon, mean in api_layer.GETMethod(match_id).items() if mean}
        if sql != get:
            return False
    return True


def rows_case(settings: Settings, tables: dict[bool, sqlite3.Connection], rows: int) -> dict:
    """GET, SQL with index and SQL without index, per call, on tables holding ``rows`` rows."""
    matches = config.MAX_MATCHES
    get_ids = random_ids(calls_for(get_us, random_ids(1_000, matches, 0), settings.call_budget_s),
                         matches, seed=rows)
    sql_calls = {flag: calls_for(lambda ids: sql_us(tables[flag], ids), [1, 2, 3],
                                 settings.call_budget_s) for flag in (True, False)}
    get, with_index, without_index = interleave(
        settings.repeats, lambda: get_us(get_ids),
        lambda: sql_us(tables[True], get_ids[:sql_calls[True]]),
        lambda: sql_us(tables[False], get_ids[:sql_calls[False]]))
    case = {"rows": rows, "matches": matches, "get_us": median(get),
            "sql_index_us": median(with_index), "sql_noindex_us": median(without_index),
            "calls": {"get": len(get_ids), "sql_index": sql_calls[True],
                      "sql_noindex": sql_calls[False]},
            "consistent": check_consistent(tables[True], matches),
            "samples": {"get_us": get, "sql_index_us": with_index,
                        "sql_noindex_us": without_index}}
    case["ratio_index"] = ratio(case["get_us"], case["sql_index_us"])
    case["ratio_noindex"] = ratio(case["get_us"], case["sql_noindex_us"])
    return case


def run_rows(settings: Settings) -> list[dict]:
    """Part a: every size of ``settings.read_sizes``, the tables growing from one to the next."""
    rng, counts = random.Random(3), collections.Counter()
    tables = {True: sql_table(True), False: sql_table(False)}
    cases, held = [], 0
    try:
        for size in settings.read_sizes:
            progress(f"3a. GET vs SQL aggregate at {size:,} rows")
            add_rows(list(tables.values()), size - held, rng, counts)
            held = size
            set_counters(counts)
            cases.append(rows_case(settings, tables, size))
    finally:
        for connection in tables.values():
            connection.close()
        flush_redis()
    return cases


# -- b. GET vs a bare dict as the number of matches grows ----------------------------------------

def matches_case(settings: Settings, matches: int) -> dict:
    """GET vs the bare dict lookup with config.MAX_MATCHES = ``matches``, all counters set."""
    rng = random.Random(matches)
    counts = {(match_id, emoticon): rng.randint(0, 1_000_000)
              for match_id in range(1, matches + 1) for emoticon in config.EMOTICON_TYPES}
    set_counters(counts)
    store = {redis_adapter.counter_key(match_id, emoticon): count
             for (match_id, emoticon), count in counts.items()}
    calls = calls_for(get_us, random_ids(1_000, matches, 0), settings.call_budget_s)
    ids = random_ids(calls, matches, seed=matches + 1)
    get, bare = interleave(settings.repeats, lambda: get_us(ids), lambda: dict_us(store, ids))
    flush_redis()
    return {"matches": matches, "counters": len(counts), "calls": calls,
            "get_us": median(get), "dict_us": median(bare),
            "ratio": ratio(median(get), median(bare)),
            "samples": {"get_us": get, "dict_us": bare}}


def run_matches(settings: Settings) -> list[dict]:
    """Part b: every count of ``settings.match_counts`` (config.MAX_MATCHES restored after)."""
    cases = []
    for matches in settings.match_counts:
        progress(f"3b. GET vs dict lookup at {matches:,} matches")
        with config_values(MAX_MATCHES=matches):
            cases.append(matches_case(settings, matches))
    return cases


# -- the item ------------------------------------------------------------------------------------

def growth(values: Sequence[float]) -> float:
    """Largest case over smallest case (first over last in the order given): last / first."""
    return ratio(values[-1], values[0])


def run_read_path(settings: Settings) -> Result:
    """Item 3: parts a and b, the floor check and the growth figures."""
    rows_cases = run_rows(settings)
    match_cases = run_matches(settings)
    headline = match_cases[0]  # the smallest match count: config.py's default of 10
    growth_rows = growth([case["get_us"] for case in rows_cases])
    growth_matches = growth([case["get_us"] for case in match_cases])
    figures = {
        "by_rows": rows_cases, "by_matches": match_cases,
        "get_vs_dict": {"matches": headline["matches"], "get_us": headline["get_us"],
                        "dict_us": headline["dict_us"], "ratio": headline["ratio"],
                        "max_ratio": GET_DICT_MAX_RATIO,
                        "pass": headline["ratio"] <= GET_DICT_MAX_RATIO},
        "get_growth_over_rows": growth_rows, "get_growth_over_matches": growth_matches,
        "dict_growth_over_matches": growth([case["dict_us"] for case in match_cases]),
        "flat_max_growth": FLAT_MAX_GROWTH, "repeats": settings.repeats,
    }
    return Result(figures, table_rows(figures))


def table_rows(figures: dict) -> list[Row]:
    """The table lines of item 3."""
    out = []
    for case in figures["by_rows"]:
        label = f"GET vs SQL aggregate, {case['rows']:,} rows"
        for flag, name in (("index", "index"), ("noindex", "no index")):
            out.append(Row("3", f"{label}, {name}", fmt_us(case["get_us"]),
                           f"SQL {fmt_us(case[f'sql_{flag}_us'])}",
                           fmt_ratio(case[f"ratio_{flag}"])))
    sizes = figures["by_rows"]
    out.append(Row("3", f"GET growth {sizes[0]['rows']:,} -> {sizes[-1]['rows']:,} rows",
                   f"{fmt_us(sizes[0]['get_us'])} -> {fmt_us(sizes[-1]['get_us'])}", "",
                   fmt_ratio(figures["get_growth_over_rows"]), f"<= {FLAT_MAX_GROWTH}x *",
                   "flat" if figures["get_growth_over_rows"] <= FLAT_MAX_GROWTH else "GROWS"))
    for case in figures["by_matches"]:
        passed = case["ratio"] <= GET_DICT_MAX_RATIO
        out.append(Row("3", f"GET vs bare dict lookup, {case['matches']:,} matches",
                       fmt_us(case["get_us"]), f"dict {fmt_us(case['dict_us'])}",
                       fmt_ratio(case["ratio"]), f"<= {GET_DICT_MAX_RATIO:g}x", verdict(passed)))
    cases = figures["by_matches"]
    out.append(Row("3", f"GET growth {cases[0]['matches']:,} -> {cases[-1]['matches']:,} matches",
                   f"{fmt_us(cases[0]['get_us'])} -> {fmt_us(cases[-1]['get_us'])}",
                   f"dict floor grew {fmt_ratio(figures['dict_growth_over_matches'])}",
                   fmt_ratio(figures["get_growth_over_matches"]), f"<= {FLAT_MAX_GROWTH}x *",
                   "flat" if figures["get_growth_over_matches"] <= FLAT_MAX_GROWTH else "GROWS"))
    return out
