"""The Poster when Redis refuses POSTs for a while: counted, backed off, resumed, logged once."""

import itertools
import logging
import random
import threading

from live import poster as poster_module
from api_layer import ReactionRefusedError
from tests.threads import JOIN_TIMEOUT_SECONDS, join_all


def refused():
    """What POSTMethod raises for a lost connection: ReactionRefusedError from the client's."""
    error = ReactionRefusedError("Redis refused the reaction: Connection refused")
    error.__cause__ = ConnectionError("Connection refused")
    return error


def test_refused_posts_are_counted_and_posting_resumes(monkeypatch, caplog):
    """Three failing POSTs: refused == 3, posting goes on, one warning each way."""
    failures, stored, done = [3], [], threading.Event()

    def post(user_id, match_id, emoticon_type):
        if failures[0]:
            failures[0] -= 1
            raise refused()
        stored.append(user_id)
        if len(stored) >= 100:
            done.set()

    monkeypatch.setattr(poster_module, "POSTMethod", post)
    monkeypatch.setattr(poster_module, "BACKOFF_SECONDS", (0.001, 0.002))
    poster = poster_module.Poster(0, random.Random(1))
    ticks = itertools.count(step=poster_module.STATE_LOG_SECONDS)  # a second between looks: spell ends
    poster.clock = lambda: next(ticks)
    with caplog.at_level(logging.WARNING, logger="live.poster"):
        poster.start()
        try:
            assert done.wait(timeout=JOIN_TIMEOUT_SECONDS), "100 posts never stored"
        finally:
            poster.stop()
            join_all([poster])
    assert poster.refused == 3 and poster.posted == len(stored) >= 100
    messages = [record.getMessage() for record in caplog.records]
    assert sum("POST refused" in message for message in messages) == 1
    assert sum("accepted again after 3 refused" in message for message in messages) == 1


def test_paced_poster_does_not_burst_after_an_outage(monkeypatch):
    """At a set rate, the posts due during an outage are skipped, not posted in a burst."""
    calls = []

    def post(user_id, match_id, emoticon_type):
        calls.append(user_id)
        if len(calls) == 1:
            raise refused()

    monkeypatch.setattr(poster_module, "POSTMethod", post)
    monkeypatch.setattr(poster_module, "BACKOFF_SECONDS", (0.01, 0.01))
    poster = poster_module.Poster(100, random.Random(1))
    poster._began = 0.0  # as if it had been posting for a long time: much is due
    monkeypatch.setattr(poster_module.time, "monotonic", lambda: 10.0)
    assert poster._due() == poster_module.Poster.BATCH  # 1,000 due: capped at one batch
    assert poster._post_or_back_off() is False
    assert poster.refused == 1 and poster._due() == 0
