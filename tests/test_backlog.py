"""A bounded backlog and failed posts: POSTMethod's refusal over maxmemory, the poster's counts,
back-off and state logging, and the backup and status still working while Redis is full."""

import logging
import random
import sqlite3
import time

import pytest

import config
from live import poster as poster_module
from api_layer import InvalidReactionError, POSTMethod, ReactionRefusedError
from backup_data import BackupDataManager, BackupError, BackupResult
from db import ReactionsTable
from foundation.in_memory_redis import OutOfMemoryError
from foundation.log_gate import Every
from live.cli import apply_settings, parse_args
from live.run import LiveRun
from redis_adapter import get_adapter, get_redis


@pytest.fixture
def full_redis():
    """The process-wide Redis with one event in it and a maxmemory it is already over."""
    redis = get_redis()
    saved = redis.maxmemory
    POSTMethod(1, 1, "heart")
    redis.maxmemory = 1
    yield redis
    redis.maxmemory = saved


@pytest.fixture
def poster(monkeypatch):
    """A Poster (not started) whose pauses after a refusal are a microsecond, and whose clock
    moves a whole STATE_LOG_SECONDS at each look (every spell ends at its first success)."""
    monkeypatch.setattr(poster_module, "BACKOFF_SECONDS", (1e-6, 1e-6))
    poster = poster_module.Poster(0, random.Random(7))
    ticks = iter(range(0, 10**9, int(poster_module.STATE_LOG_SECONDS) or 1))
    poster.clock = lambda: next(ticks)
    return poster


def test_refusals_now_and_then_are_one_spell(full_redis, poster, caplog):
    """Refusals alternating with successes within STATE_LOG_SECONDS: one warning, no pairs."""
    poster.clock = lambda: 0.0  # no time passes: one spell
    with caplog.at_level(logging.INFO, logger="live.poster"):
        for _ in range(10):
            full_redis.maxmemory = 1
            post(poster, 1)
            full_redis.maxmemory = 0
            post(poster, 1)
    messages = [record.getMessage() for record in caplog.records]
    assert poster.refused == 10 and len(messages) == 1 and "POST refused" in messages[0]


def post(poster, times):
    """Call the poster's one-POST step ``times`` times."""
    for _ in range(times):
        poster._post_or_back_off()


def test_post_over_maxmemory_raises_refused_and_changes_nothing(full_redis):
    """Over maxmemory POSTMethod raises ReactionRefusedError caused by Redis's OOM error, and
    neither the counter nor the list changes."""
    before = get_adapter().snapshot()
    with pytest.raises(ReactionRefusedError) as excinfo:
        POSTMethod(2, 1, "heart")
    assert isinstance(excinfo.value.__cause__, OutOfMemoryError)
    assert get_adapter().snapshot() == before


def test_backup_and_pending_count_work_while_redis_is_full(full_redis):
    """Staging (MULTI refused over maxmemory) falls back to one RENAME each: the backup frees
    Redis, and posts are accepted again."""
    assert get_adapter().pending_events() == 1
    table = ReactionsTable(":memory:")
    assert BackupDataManager(table=table).run().events == 1
    assert get_adapter().pending_events() == 0 and table.count() == 1
    full_redis.maxmemory = 1_000_000
    POSTMethod(2, 1, "heart")


def test_poster_counts_a_refused_post_and_goes_on(full_redis, poster):
    """A refused post is counted, not posted, and the poster keeps posting once Redis accepts."""
    assert poster._post_or_back_off() is False
    assert (poster.posted, poster.refused, poster.error) == (0, 1, None)
    full_redis.maxmemory = 0
    post(poster, 5)
    assert (poster.posted, poster.refused) == (5, 1)


def test_poster_logs_full_once_per_spell_and_accepting_again(full_redis, poster, caplog):
    """Many refusals in one spell log one warning; the end of the spell logs one line."""
    with caplog.at_level(logging.INFO, logger="live.poster"):
        post(poster, 20)
        full_redis.maxmemory = 0
        post(poster, 6)
    messages = [record.getMessage() for record in caplog.records]
    assert poster.refused == 20
    assert sum("POST refused" in message for message in messages) == 1
    assert "used memory > 'maxmemory'" in messages[0]
    assert messages[-1] == "POSTs accepted again after 20 refused in all"


def test_redis_full_again_after_one_post_starts_a_new_spell(full_redis, poster, caplog):
    """A post accepted between refusals ends the spell (logged) and the next refusal starts
    another (logged again once the once-a-second gate allows)."""
    poster.refusals.gate = Every(0)
    with caplog.at_level(logging.INFO, logger="live.poster"):
        post(poster, 1)
        full_redis.maxmemory = full_redis.used_memory + 1  # room for one more post
        post(poster, 2)
    messages = [record.getMessage() for record in caplog.records]
    assert (poster.posted, poster.refused) == (1, 2)
    assert [message.split(" (")[0].split(" after")[0] for message in messages] == [
        "POST refused", "POSTs accepted again", "POST refused"]


def test_posts_scheduled_during_a_back_off_are_counted_skipped(full_redis, monkeypatch):
    """At 1,000 events/s, 10 s into the schedule, one refusal and its pause: the 9,999 posts
    the schedule asked for meanwhile are counted as skipped, not silently dropped."""
    monkeypatch.setattr(poster_module, "BACKOFF_SECONDS", (1e-6, 1e-6))
    paced = poster_module.Poster(1000, random.Random(7))
    paced._began = time.monotonic() - 10
    post(paced, 1)
    assert paced.refused == 1 and paced.skipped >= 9_999


def test_status_line_shows_skipped_posts():
    """The GET status line names the posts skipped while backing off."""
    run = live_run()
    run.poster._skipped = 9_000
    assert ", skipped 9,000 while backing off, pending in Redis" in run._status_line(run._status_figures())


def test_poster_counts_other_failures_logs_them_rate_limited_and_goes_on(poster, monkeypatch,
                                                                           caplog):
    """A POST failing for another reason than bad input is counted, logged once per window,
    and posting goes on."""
    def broken(*args):
        raise ConnectionError("injected")
    monkeypatch.setattr(poster_module, "POSTMethod", broken)
    with caplog.at_level(logging.WARNING, logger="live.poster"):
        post(poster, 10)
    assert (poster.failed, poster.posted, poster.error) == (10, 0, None)
    [record] = caplog.records
    assert "POST failed (1 so far), posting goes on: ConnectionError: injected" in (
        record.getMessage())


def test_poster_dies_on_its_own_bad_reaction(poster, monkeypatch):
    """InvalidReactionError is a bug of the poster, not a passing fault: the thread ends and
    keeps the error."""
    def invalid(*args):
        raise InvalidReactionError("match_id", 0, "an int from 1 to 10")
    monkeypatch.setattr(poster_module, "POSTMethod", invalid)
    poster.start()
    poster.join(timeout=60)
    assert not poster.is_alive() and isinstance(poster.error, InvalidReactionError)


def live_run(*flags):
    apply_settings(parse_args(list(flags)))
    return LiveRun()


def reconciliation_line(caplog):
    return next(record.getMessage() for record in caplog.records
                if record.getMessage().startswith("reconciliation:"))


def test_failing_backups_warn_once_per_window_and_once_when_they_work_again(caplog,
                                                                           monkeypatch):
    """Five failed backups in a row (a locked file, a short interval) give one warning and one
    backup line, not ten lines; the first backup that works says so once, with the count."""
    run = live_run()
    failure = BackupError(BackupResult(0, 0, 0.0), {"k": sqlite3.OperationalError("locked")})
    monkeypatch.setattr(run.backups.failures, "gate", Every(3600))

    def failing(on_progress=None):
        raise failure
    monkeypatch.setattr(run.backups.manager, "run", failing)
    with caplog.at_level(logging.INFO, logger="live"):
        for _ in range(5):
            assert run.backups.run() is False
        monkeypatch.setattr(run.backups.manager, "run",
                            lambda on_progress=None: BackupResult(3, 1, 0.0))
        assert run.backups.run() is True
    messages = [record.getMessage() for record in caplog.records]
    assert [message.split(":")[0].split(" 3 ")[0] for message in messages] == [
        "backup", "backup moved 0 events (lists", "backups work again after 5 failed",
        "backup moved"]


def test_a_dead_poster_fails_the_run(caplog):
    """If the posting thread died, the run's verdict is FAILED and its status 1."""
    run = live_run()
    run.poster.error = RuntimeError("injected")
    with caplog.at_level(logging.INFO, logger="live"):
        assert run.summary() == 1
    assert reconciliation_line(caplog).endswith(" FAILED")


def test_reconciliation_counts_dead_letters_of_posted_events(caplog):
    """A posted event spoiled in Redis is dead-lettered: posted = rows + dead-lettered, OK."""
    run = live_run("--matches", "1")
    for _ in range(3):
        run.poster.post_one()
    redis = get_redis()
    [key] = redis.keys("match_data_*")
    items = redis.lrange(key, 0, -1)
    redis.delete(key)
    redis.rpush(key, *items[:-1], items[-1].replace('"user_id": ', '"user_id": -'))
    with caplog.at_level(logging.INFO, logger="live"):
        run.backups.final()
        assert run.summary() == 0
    line = reconciliation_line(caplog)
    assert line.endswith("database_rows=2 pending_in_redis=0 refused=0 failed=0 "
                         "dead_lettered=1 spilled=0 OK"), line


def test_the_process_wide_redis_gets_its_maxmemory_from_config(monkeypatch):
    """get_redis() creates the server with config.REDIS_MAXMEMORY_BYTES."""
    import config
    import redis_adapter
    monkeypatch.setattr(redis_adapter, "_server", None)
    monkeypatch.setattr(config, "REDIS_MAXMEMORY_BYTES", 12_345)
    assert redis_adapter.get_redis().maxmemory == 12_345


def test_a_foreign_key_fails_its_posts_without_slowing_the_others(poster, monkeypatch):
    """WrongTypeError (one key of another app) is counted failed; the poster does not pause."""
    from redis_adapter import WrongTypeError
    pauses = []
    monkeypatch.setattr(poster, "_back_off", lambda: pauses.append(1))
    get_redis().set("match_data_1", "another app's value")
    monkeypatch.setattr(config, "MAX_MATCHES", 1)
    with pytest.raises(WrongTypeError):
        POSTMethod(1, 1, "heart")
    assert poster._post_or_back_off() is True
    assert (poster.failed, poster.posted, pauses) == (1, 0, [])


def test_status_pending_reads_no_keyspace(monkeypatch):
    """With the in-memory Redis the status's pending count comes from the run's own tallies:
    no SCAN, so it costs the same with 10 keys or a million, and it equals the lists' count."""
    run = live_run("--matches", "3")
    for _ in range(5):
        run.poster.post_one()
    run.backups.manager.run()
    for _ in range(4):
        run.poster.post_one()
    listed = run.adapter.pending_events()
    monkeypatch.setattr(get_redis(), "scan", None)  # a SCAN now would fail
    assert run._pending() == listed == 4


def test_foreign_items_in_a_list_are_explained_by_a_hint(caplog):
    """Items this run did not post (written into its lists by someone else) make the
    reconciliation MISMATCH; a hint line says why instead of leaving the sums unexplained."""
    run = live_run("--matches", "1")
    run.poster.post_one()
    get_redis().rpush("match_data_1", "written by someone else")
    with caplog.at_level(logging.INFO, logger="live"):
        run.backups.final()
        assert run.summary() == 1
    line = reconciliation_line(caplog)
    assert "database_rows=1" in line and "dead_lettered=1" in line and line.endswith("MISMATCH")
    assert any(record.getMessage().startswith("hint: the table, dead letters and Redis hold "
                                              "more events than this run posted")
               for record in caplog.records)
