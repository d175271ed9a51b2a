"""``python3 -m benchmarks --quick --json FILE`` runs to the end and reports every figure.

No timing thresholds: the pass/miss column is the benchmark's business, not the test's. This only
checks that each item ran and produced the figures it promises, with positive numbers where a
zero would mean it measured nothing.
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
RUN_TIMEOUT_SECONDS = 420  # a safety net against a hung run, not a performance bound


def positive(figures: dict, *keys: str) -> None:
    """Each of ``keys`` is in ``figures`` and is a number > 0."""
    for key in keys:
        assert key in figures, f"missing figure {key!r} in {sorted(figures)}"
        value = figures[key]
        assert isinstance(value, (int, float)) and not isinstance(value, bool), (key, value)
        assert value > 0, (key, value)


def has_verdict(figures: dict, *keys: str) -> None:
    """The pass/miss flag and the floor it was checked against are there."""
    assert isinstance(figures["pass"], bool)
    positive(figures, *keys)


def test_quick_run_reports_every_figure(tmp_path):
    out = tmp_path / "bench.json"
    run = subprocess.run([sys.executable, "-m", "benchmarks", "--quick", "--json", str(out)],
                         cwd=ROOT, capture_output=True, text=True, timeout=RUN_TIMEOUT_SECONDS)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "POSTMethod" in run.stdout  # the table was printed
    figures = json.loads(out.read_text())

    assert figures["meta"]["mode"] == "quick"
    assert figures["meta"]["items"] == [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]
    positive(figures["meta"], "repeats", "seconds")

    # 1. POST path against the dict+list floor
    post = figures["post_path"]
    positive(post, "events", "post_eps", "floor_eps", "ratio")
    has_verdict(post, "min_ratio")

    # 2. the Poster thread at rate 0
    positive(figures["poster"], "eps", "ratio_to_post_loop")

    # 3. read path: GET vs SQL per table size, GET vs dict per match count, growth
    read = figures["read_path"]
    assert len(read["by_rows"]) >= 2
    for case in read["by_rows"]:
        positive(case, "rows", "get_us", "sql_index_us", "sql_noindex_us",
                 "ratio_index", "ratio_noindex")
        assert case["consistent"] is True  # Redis counters and table hold the same counts
    assert [case["matches"] for case in read["by_matches"]] == [10, 1_000, 100_000]
    for case in read["by_matches"]:
        positive(case, "matches", "get_us", "dict_us", "ratio")
    has_verdict(read["get_vs_dict"], "get_us", "dict_us", "ratio", "max_ratio")
    positive(read, "get_growth_over_rows", "get_growth_over_matches", "dict_growth_over_matches")

    # 4. write path: POST via Redis vs one INSERT + commit per event
    for name in ("memory", "file"):
        positive(figures["write_path"][name], "events", "post_eps", "insert_eps", "ratio")

    # 5. backup throughput and GET tick lateness
    backup = figures["backup"]
    has_verdict(backup["throughput"], "events", "backup_rows_per_s", "executemany_rows_per_s",
                "ratio", "min_ratio")
    lateness = backup["lateness"]
    has_verdict(lateness, "interval_ms", "worst_ms", "median_worst_ms", "max_ms")
    for run_figures in lateness["runs"]:
        positive(run_figures, "backup_events", "backup_s", "ticks", "posted_during_backup")

    # 6. memory: bytes per pending event, main.py runs and their RSS
    memory = figures["memory"]
    has_verdict(memory, "bytes_per_pending_event", "max_bytes")
    assert set(memory["runs"]) == {"default_pace", "rate0", "rate0_file"}
    for name, main_run in memory["runs"].items():
        assert main_run["exit_code"] == 0, (name, main_run["tail"])
        assert main_run["reconciliation"] == "OK", (name, main_run["tail"])
        positive(main_run, "posted", "posted_eps", "peak_rss_mb")
        assert main_run["rss_series_mb"] and all(rss > 0 for rss in main_run["rss_series_mb"])
    positive(memory["runs"]["rate0_file"]["first_last"], "window_s", "first_mb", "last_mb")

    # 7. batched ingest vs one write per POST, on the in-memory server and (if any) redis-server
    ingest = figures["batched_ingest"]
    for case in ("ingest", "poster", "floor", "ceiling"):
        positive(ingest["in_memory"][case], "a_eps", "b_eps", "ratio")
    has_verdict(ingest["in_memory"]["floor"], "min_ratio")
    if "skipped" not in ingest["redis_server"]:
        for case in ("ingest", "poster", "raw"):
            positive(ingest["redis_server"][case], "a_eps", "b_eps", "ratio")
        has_verdict(ingest["redis_server"]["raw"], "min_ratio")
    
    # 8. the longest lock hold of one command, with many keys present
    hold = figures["lock_hold"]
    positive(hold, "keys", "calls", "worst_ms", "key_table_growth_ms", "keys_added_to_grow")
    assert all(ms > 0 for ms in hold["longest_hold_ms"].values())

    # 9. the cost of one reconciliation with a backlog pending, on both servers
    cost = figures["reconcile_cost"]
    in_memory = cost["in_memory"]["100000"]
    assert in_memory["ok"] is True, in_memory["line"]
    positive(in_memory, "seconds", "peak_traced_mb", "longest_hold_ms")
    redis_server = cost["redis_server"]["100000"]
    if "skipped" not in redis_server:
        assert redis_server["ok"] is True, redis_server["line"]
        positive(redis_server, "seconds", "peak_rss_mb", "pings", "longest_ping_ms")

    # 10. the HTTP API: wrk against each server, stream viewers, GET during a backup
    http_api = figures["http_api"]
    servers = ["builtin"] + (["uvicorn", "fastapi"] if http_api["peer_python"] else [])
    assert all(stop["clean"] for stop in http_api["stops"]), http_api["stops"]
    assert all(stop["reconciliation"] == "OK" for stop in http_api["stops"]), http_api["stops"]
    if http_api["wrk"]:
        for name in servers:
            for method in ("post", "get"):
                answered = http_api["throughput"]["servers"][name][method]
                positive(answered, "rps", "p99_ms")
                assert answered["non_2xx"] == 0 and answered["socket_errors"] == 0, answered
        during = http_api["during_backup"]
        has_verdict(during, "p99_ms", "alone_p99_ms", "events", "max_ms")
        assert all(run["backup"] for run in during["runs"]), during["runs"]
    for name in servers:
        watched = http_api["viewers"]["servers"][name]
        assert watched["most_held"] == watched["levels"][-1]["level"], watched
        for level in watched["levels"]:
            assert level["ticks"] and level["held"], level
            positive(level, "delivery_worst_s", "kb_per_viewer")


WRK_REPORT = """Running 2s test @ http://127.0.0.1:40000/matches/1
  1 threads and 32 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     1.10ms    1.03ms  14.45ms   90.98%
    Req/Sec    34.55k    10.72k   44.28k    78.43%
  Latency Distribution
     50%  775.00us
     75%    0.89ms
     90%    1.95ms
     99%    1.20s
  175182 requests in 5.10s, 26.56MB read
  Socket errors: connect 0, read 2, write 0, timeout 3
  Non-2xx or 3xx responses: 7
Requests/sec:  34350.21
Transfer/sec:      5.21MB
"""


def test_wrk_report_is_read_in_milliseconds():
    """Item 10 reads wrk --latency's report: us, ms and s all become ms; errors are counted."""
    from benchmarks.http_api import parse_wrk
    assert parse_wrk(WRK_REPORT) == {"rps": 34350.21, "p50_ms": 0.775, "p99_ms": 1200.0,
                                     "requests": 175182, "non_2xx": 7, "socket_errors": 5}


def test_only_names_items_and_the_parts_of_item_10():
    """--only takes item numbers, and 10a, 10b, 10c for one part of item 10; a part of any other
    item, or a word, is refused with the items named."""
    from benchmarks.__main__ import chosen_items, chosen_parts
    assert (chosen_items("1,10c"), chosen_parts("1,10c")) == ([1, 10], "c")
    assert (chosen_items("10a,10c"), chosen_parts("10a,10c")) == ([10], "ac")
    assert chosen_parts("10") == chosen_parts("10,10c") == chosen_parts(None) == "abc"
    for wrong in ("5c", "10d", "x"):
        with pytest.raises(SystemExit, match="10a, 10b, 10c"):
            chosen_items(wrong)
