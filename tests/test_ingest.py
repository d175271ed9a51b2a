"""Batched ingest: one MULTI/EXEC per flush, on size, age and close; retries never double-count."""

import logging
import threading

import pytest

import config
from api_layer import InvalidReactionError, POSTMethod
from foundation.ingest import IngestBuffer
from foundation.log_gate import Every
from redis_adapter import get_ingest_buffer, InMemoryRedis, RedisAdapter, RedisError, get_adapter, make_event


class FakeClock:
    """Monotonic seconds that move only when told to."""

    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def events(n, match_id=1):
    return [make_event(user + 1, match_id, "heart", float(user)) for user in range(n)]


@pytest.fixture
def adapter():
    return RedisAdapter(InMemoryRedis(), prefix="")


class FailingExec:
    """Wraps a client so that the next ``fail`` EXECs raise, after (or before) running."""

    def __init__(self, client, fail, after_exec):
        self.client, self.fail, self.after_exec = client, fail, after_exec

    def __getattr__(self, name):
        return getattr(self.client, name)

    def pipeline(self, transaction=True):
        pipe, wrapper = self.client.pipeline(transaction), self

        class Pipe:
            def __enter__(self):
                pipe.__enter__()
                return self

            def __exit__(self, *exc_info):
                return pipe.__exit__(*exc_info)

            def __getattr__(self, name):
                attribute = getattr(pipe, name)
                if name != "execute":
                    return attribute

                def execute(*args, **kwargs):
                    if wrapper.fail:
                        wrapper.fail -= 1
                        if wrapper.after_exec:
                            attribute(*args, **kwargs)
                        raise RedisError("Connection lost")
                    return attribute(*args, **kwargs)
                return execute
        return Pipe()


def test_buffer_writes_nothing_until_full(adapter):
    """Below max_events nothing reaches Redis; the event that fills the buffer flushes it."""
    buffer = IngestBuffer(adapter, 3, 60.0)
    for event in events(2):
        buffer.add(event)
    assert adapter.counter_total() == 0 and buffer.held == 2
    buffer.add(events(3)[2])
    assert adapter.get_counts(1, ["heart"]) == {"heart": 3} and adapter.pending_events() == 3
    assert buffer.held == 0


def test_flush_is_one_transaction_per_buffer(adapter):
    """A flush of events over two matches is one EXEC: counters equal pending throughout."""
    buffer = IngestBuffer(adapter, 1000, 60.0)
    for event in events(4, match_id=1) + events(3, match_id=2):
        buffer.add(event)
    assert buffer.flush() == 7
    assert adapter.get_counts(2, ["heart"]) == {"heart": 3}
    assert list(adapter.iter_events("match_data_2")) == events(3, match_id=2)


def test_age_thread_flushes_an_old_buffer(adapter):
    """The age thread writes a buffer whose oldest event is flush_seconds old."""
    buffer = IngestBuffer(adapter, 1000, 0.05).start()
    buffer.add(events(1)[0])
    for _ in range(200):
        if adapter.counter_total() == 1:
            break
        threading.Event().wait(0.01)
    assert adapter.counter_total() == 1 and buffer.held == 0
    buffer.close()


def test_close_flushes_and_removes_the_marker(adapter):
    """close() writes what is held and deletes the buffer's marker key."""
    buffer = IngestBuffer(adapter, 1000, 60.0).start()
    buffer.add(events(1)[0])
    buffer.close()
    assert adapter.counter_total() == 1 and adapter.redis.exists(buffer.marker) == 0


@pytest.mark.parametrize("after_exec", [False, True], ids=["lost before EXEC", "reply lost"])
def test_failed_flush_is_retried_once(adapter, after_exec):
    """A flush that failed (EXEC run or not) ends up in Redis exactly once after the retry."""
    flaky = RedisAdapter(FailingExec(adapter.redis, 1, after_exec), prefix="")
    buffer = IngestBuffer(flaky, 2, 60.0)
    for event in events(2):
        buffer.add(event)  # fills the buffer: its flush fails, the events are kept
    assert buffer.held == 2
    assert buffer.flush() == (0 if after_exec else 2)
    assert adapter.counter_total() == adapter.pending_events() == 2


def test_add_refused_while_redis_fails(adapter):
    """With a flush in doubt and Redis still failing, add() raises and takes nothing."""
    buffer = IngestBuffer(RedisAdapter(FailingExec(adapter.redis, 2, False), prefix=""), 1, 60.0)
    buffer.add(events(1)[0])
    with pytest.raises(RedisError):
        buffer.add(events(2)[1])
    assert buffer.held == 1
    buffer.add(events(2)[1])
    assert adapter.counter_total() == 2 and buffer.held == 0


def test_retry_uses_watch_on_a_real_redis(real_redis):
    """On redis-py, a retry of a flush whose EXEC did happen adds nothing (WATCH + marker)."""
    adapter = RedisAdapter(real_redis, prefix="t:")
    batch = events(3)
    adapter.record_batch(batch, "t:ingest_x", 1)
    assert adapter.record_batch_once(batch, "t:ingest_x", 1) is False
    assert adapter.record_batch_once(batch, "t:ingest_x", 2) is True
    assert adapter.counter_total() == adapter.pending_events() == 6


def test_post_buffers_when_batching_is_on():
    """With INGEST_BATCH_EVENTS > 1, POSTMethod returns the record before it is in Redis."""
    config.INGEST_BATCH_EVENTS, config.INGEST_FLUSH_SECONDS = 2, 60.0
    POSTMethod(1, 1, "sad")
    assert get_adapter().counter_total() == 0 and get_ingest_buffer().held == 1
    POSTMethod(2, 1, "sad")
    assert get_adapter().counter_total() == 2


def test_bad_input_raises_before_buffering():
    """Validation stays in the API layer: a bad POST raises and buffers nothing."""
    config.INGEST_BATCH_EVENTS = 10
    with pytest.raises(InvalidReactionError):
        POSTMethod(1, 1, "angry")
    assert get_ingest_buffer().held == 0


def test_main_with_batched_ingest_reconciles(tmp_path):
    """main.py --ingest-batch on the in-memory server: the last buffer is flushed before the
    final backup, so posted == counters == rows and the run ends OK."""
    from tests.test_main import finish, reconciliation, start
    status, lines = finish(start("--rate", "0", "--duration", "1", "--ingest-batch", "300",
                                 "--ingest-flush", "0.2", "--backup-interval", "0.3"), [])
    match = reconciliation(lines)
    assert status == 0 and match.group("verdict") == "OK", "\n".join(lines)
    posted, counters, rows, pending = map(int, match.groups()[:4])
    assert posted == counters == rows > 0 and pending == 0


def test_flush_failures_that_come_and_go_log_one_pair_per_window(adapter, caplog):
    """Flushes failing and succeeding in turn log one failed / works-again pair per window
    (here an hour), not a pair per flip."""
    buffer = IngestBuffer(adapter, 1000, 60.0)
    buffer.failures.gate = Every(3600)
    with caplog.at_level(logging.WARNING, logger="foundation.ingest"):
        for _ in range(5):
            buffer._note_state(failing=True, error=RedisError("OOM"))
            buffer._note_state(failing=False)
    assert [record.getMessage().split(" (")[0].split(";")[0] for record in caplog.records] == [
        "ingest flush failed", "ingest flush works again"]
