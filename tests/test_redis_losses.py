"""A real Redis that forgets what it acknowledged: emptied, rewound, a staged list deleted.

Each case runs main.py against a redis-server the test starts (tests/redis_server.py). The
promise checked: no event is ever inserted twice, and no run, summary or --reconcile says OK
while events Redis acknowledged are in no table; the loss is said once, in one line, with a
number and a time.
"""

import re
import signal
import time

import pytest

from tests.redis_server import RedisServer, require_real_redis
from tests.test_main import finish, read_until, start
from tests.test_real_redis import distinct_rows, posted_and_refused, reconcile_command

LOSS_LINE = re.compile(r"ERROR: Redis lost acknowledged events: .* (?P<what>was emptied or "
                       r"replaced|went back to an earlier state) (?:between [\d:.]+ and|at) "
                       r"[\d:.]+ .*: at least (?P<lost>[\d,]+) acknowledged events are in no "
                       r"table")
POSTER_LINE = re.compile(r"WARNING: Redis forgot what it acknowledged: .* (?:between [\d:.]+ "
                         r"and|at) [\d:.]+ .*: at most (?P<lost>[\d,]+) acknowledged events")
LOSS_VERDICT = re.compile(r"system-wide reconciliation: .* lost_in_redis=(?P<lost>\d+) LOSS")


def number(text):
    return int(text.replace(",", ""))


@pytest.fixture
def run():
    """start(), with every process still running at the test's end killed (a failed assert
    must not leave a backup process behind)."""
    processes = []

    def run(*flags):
        processes.append(start(*flags))
        return processes[-1]
    yield run
    for process in processes:
        if process.poll() is None:
            process.kill()
            process.communicate(timeout=60)


def loss_lines(lines):
    return [found for found in map(LOSS_LINE.search, lines) if found]


def test_flushdb_mid_run_of_one_process_is_a_reported_loss(own_redis_server, run, tmp_path):
    """--role all, its Redis flushed mid-run: one loss line naming the events lost, exit 1."""
    path = tmp_path / "r.db"
    process = run("--redis-url", own_redis_server.url, "--db", str(path), "--rate", "2000",
                    "--duration", "3", "--backup-interval", "0.5", "--get-interval", "0.5")
    lines = read_until(process, lambda line: " backup moved" in line)
    time.sleep(0.3)  # events pending again when the flush comes
    own_redis_server.client().flushdb()
    status, lines = finish(process, lines)
    assert status == 1, "\n".join(lines)
    [loss] = loss_lines(lines)
    posted, refused = posted_and_refused(lines)
    rows = distinct_rows(path)[0]
    assert refused == 0 and rows < posted
    assert number(loss.group("lost")) == posted - rows  # one poster: its replies are exact
    assert number(LOSS_VERDICT.search(lines[-1]).group("lost")) == posted - rows
    assert not any("Traceback" in line or POSTER_LINE.search(line) for line in lines)


def test_flushdb_while_a_poster_and_a_backup_run_is_reported_and_reconciled(own_redis_server, run,
                                                                            tmp_path):
    """A poster and a backup process on one Redis and one file, FLUSHDB by someone else:
    each process says so once, and --reconcile says LOSS (exit 1), never OK."""
    path, url = tmp_path / "shared.db", own_redis_server.url
    backup = run("--redis-url", url, "--db", str(path), "--role", "backup",
                 "--backup-interval", "0.3")
    read_until(backup, lambda line: "role backup" in line)
    poster = run("--redis-url", url, "--db", str(path), "--role", "post", "--rate", "3000",
                 "--duration", "4", "--get-interval", "0.5")
    poster_lines = read_until(poster, lambda line: "posted" in line and "pending" in line)
    backup_lines = read_until(backup, lambda line: " backup moved" in line)
    own_redis_server.client().flushdb()
    status, output = reconcile_command(url, path)  # at once: no backup may have run since
    assert status == 1 and LOSS_VERDICT.search(output), output
    status, poster_lines = finish(poster, poster_lines)
    assert status == 1, "\n".join(poster_lines)
    assert len([line for line in poster_lines if POSTER_LINE.search(line)]) == 1, poster_lines
    backup.send_signal(signal.SIGINT)
    status, backup_lines = finish(backup, backup_lines)
    assert status == 1, "\n".join(backup_lines)
    [loss] = loss_lines(backup_lines)
    posted = posted_and_refused(poster_lines)[0]
    rows = distinct_rows(path)[0]
    lost = number(loss.group("lost"))
    assert 0 < lost <= posted - rows
    status, output = reconcile_command(url, path)
    assert status == 1 and number(LOSS_VERDICT.search(output).group("lost")) == posted - rows
    assert not any("Traceback" in line for line in backup_lines + poster_lines)


def test_redis_restarted_from_an_older_snapshot_inserts_no_copy(own_redis_server, run, tmp_path):
    """A restart from an RDB snapshot taken before some backups brings back lists already
    moved: none of their events is inserted again, and the run reports the rewind, exit 1."""
    path = tmp_path / "r.db"
    process = run("--redis-url", own_redis_server.url, "--db", str(path), "--rate", "2000",
                  "--backup-interval", "0.3", "--get-interval", "0.3", "--duration", "20")
    lines = read_until(process, lambda line: " backup moved" in line)
    time.sleep(0.2)
    own_redis_server.client().save()  # the snapshot: lists pending now were moved by the next backups
    moved_after = 0
    while moved_after < 2:
        lines += read_until(process, lambda line: " backup moved" in line)
        moved_after += 1
    own_redis_server.stop()  # no save at shutdown: the restart loads the older snapshot
    own_redis_server.start()
    for _ in range(3):  # the restored lists are moved by then
        lines += read_until(process, lambda line: " backup moved" in line)
    process.send_signal(signal.SIGINT)
    status, lines = finish(process, lines)
    rows, distinct = distinct_rows(path)
    assert rows == distinct, f"{rows - distinct} events inserted twice"
    assert status == 1, "\n".join(lines)
    [loss] = loss_lines(lines) or ["\n".join(lines)]
    assert loss.group("what") == "went back to an earlier state"
    assert "copies of events already in the table were not inserted again" in loss.string
    [verdict] = [line for line in lines if "system-wide reconciliation:" in line]
    assert number(LOSS_VERDICT.search(verdict).group("lost")) == number(loss.group("lost"))


def test_redis_restarted_empty_without_persistence_is_a_reported_loss(own_redis_server, run, tmp_path):
    """A Redis without persistence restarted mid-run comes back empty: reported, exit 1."""
    path = tmp_path / "r.db"
    process = run("--redis-url", own_redis_server.url, "--db", str(path), "--rate", "2000",
                  "--backup-interval", "0.4", "--get-interval", "0.4", "--duration", "15")
    lines = read_until(process, lambda line: " backup moved" in line)
    time.sleep(0.2)
    own_redis_server.stop()
    own_redis_server.start()
    lines += read_until(process, lambda line: "ERROR: Redis lost" in line)
    process.send_signal(signal.SIGINT)
    status, lines = finish(process, lines)
    assert status == 1, "\n".join(lines)
    [loss] = loss_lines(lines)
    assert loss.group("what") == "was emptied or replaced" and number(loss.group("lost")) > 0
    assert distinct_rows(path)[0] == distinct_rows(path)[1]


def test_a_deleted_staged_list_is_a_reported_loss(own_redis_server, tmp_path):
    """Another client DELs a staged list before the backup moves it: the loss is named."""
    import redis
    from db import ReactionsTable
    from redis_adapter import RedisAdapter
    from backup_data import BackupDataManager
    adapter = RedisAdapter(redis.Redis(port=own_redis_server.port), "")
    table = ReactionsTable(str(tmp_path / "r.db"))
    manager = BackupDataManager(adapter, table)
    for n in range(5):
        adapter.record_reaction(n + 1, 1, "heart", 1000.0 + n)
    real_iter_items = adapter.iter_items

    def delete_first(key):
        adapter.redis.delete(key)  # gone between its staging and its read
        return real_iter_items(key)

    adapter.iter_items = delete_first
    manager.run()
    adapter.iter_items = real_iter_items
    assert [(loss["kind"], loss["events"]) for loss in table.losses()] == [("deleted", 5)]


def test_a_failover_to_a_replica_that_lagged_inserts_no_copy(run, tmp_path):
    """The run moves to a replica that stopped following before the last backups (a failover,
    at another address): the lists it brings back are copies, none inserted, and it is said."""
    require_real_redis()
    primary = RedisServer(args=("--repl-diskless-sync-delay", "0")).start()  # syncs at once
    replica = RedisServer().start()
    path = tmp_path / "r.db"
    try:
        replica.client().replicaof("127.0.0.1", primary.port)
        process = run("--redis-url", primary.url, "--db", str(path), "--rate", "2000",
                      "--backup-interval", "0.3", "--get-interval", "0.3", "--duration", "30")
        lines = read_until(process, lambda line: " backup moved" in line)
        dataset = "live-reactions:dataset"
        while replica.client().info("replication")["master_link_status"] != "up" or (
                replica.client().get(dataset) != primary.client().get(dataset)):
            time.sleep(0.05)  # bounded by the run's --duration: the primary's keys stay
        replica.client().replicaof("NO", "ONE")  # it lags from now on
        for _ in range(2):  # lists it still holds are moved on the primary
            lines += read_until(process, lambda line: " backup moved" in line)
        process.send_signal(signal.SIGINT)
        status, lines = finish(process, lines)
        assert status == 0, "\n".join(lines)
        status, lines = finish(run("--redis-url", replica.url, "--db", str(path), "--rate",
                                   "500", "--duration", "1", "--backup-interval", "0.3"), [])
    finally:
        primary.close()
        replica.close()
    rows, distinct = distinct_rows(path)
    assert rows == distinct, f"{rows - distinct} events inserted twice"
    said = [line for line in lines if "went back to an earlier state" in line]
    assert len(said) == 1 and re.search(r"[1-9][\d,]* copies of events already in the table "
                                        r"were not inserted again", said[0]), lines
