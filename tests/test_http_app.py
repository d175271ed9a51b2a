"""The HTTP API as an ASGI app, called in-process (no sockets): routes, bodies, errors, the
viewers' feed. The same endpoints over real sockets, under both servers: test_http_contract.py."""

from __future__ import annotations

import asyncio
import json

import pytest

import config
import live.http.app
from live.http.app import MAX_BODY_BYTES, App, Service, StreamSends
from live.http.feed import VIEWER_QUEUE_EVENTS, Feed
from live.run import overview_of
from redis_adapter import get_adapter, get_redis


def make_app(feed=None):
    feed = feed or Feed()
    return App(Service(feed, overview=lambda: overview_of([], {"posted": 0}),
                       figures=lambda: {"poster_posted": 3, "pending_events": 2}))


def call(app, method, path, body=b"", headers=None):
    """One request through the app; (status, headers dict, body bytes)."""
    headers = headers if headers is not None else (
        [(b"content-type", b"application/json")] if body else [])
    scope = {"type": "http", "method": method, "path": path, "headers": headers,
             "query_string": b"", "http_version": "1.1"}
    sent, received = [], [{"type": "http.request", "body": body, "more_body": False}]

    async def receive():
        return received.pop(0) if received else {"type": "http.disconnect"}

    async def send(message):
        sent.append(message)
    asyncio.run(app(scope, receive, send))
    start = sent[0]
    return (start["status"], {k.decode(): v.decode() for k, v in start["headers"]},
            b"".join(m.get("body", b"") for m in sent[1:]))


def post(app, match_id, fields, **kwargs):
    body = fields if isinstance(fields, bytes) else json.dumps(fields).encode()
    return call(app, "POST", f"/matches/{match_id}/reactions", body, **kwargs)


def test_post_stores_the_reaction_and_answers_201_with_the_record():
    """POST /matches/5/reactions is POSTMethod: the counter and the list grow by one."""
    status, headers, body = post(make_app(), 5, {"user_id": 6, "emoticon_type": "sad"})
    record = json.loads(body)
    assert status == 201 and headers["content-type"] == "application/json"
    assert (record["user_id"], record["match_id"], record["emoticon_type"]) == (6, 5, "sad")
    assert get_redis().get("5_sad") == "1" and get_adapter().pending_events() == 1


def test_post_with_batched_ingest_answers_202(monkeypatch):
    """With --ingest-batch above 1 the reaction is accepted into the buffer: 202."""
    monkeypatch.setattr(config, "INGEST_BATCH_EVENTS", 100)
    status, _, _ = post(make_app(), 5, {"user_id": 6, "emoticon_type": "sad"})
    assert status == 202


@pytest.mark.parametrize("match_id, fields, words", [
    (5, {"user_id": 0, "emoticon_type": "sad"}, "invalid user_id 0: user_id must be an int"),
    (5, {"user_id": 6, "emoticon_type": "angry"}, "invalid emoticon_type 'angry'"),
    (5, {"user_id": "6", "emoticon_type": "sad"}, "invalid user_id '6'"),
    (5, {"user_id": True, "emoticon_type": "sad"}, "invalid user_id True"),
    (11, {"user_id": 6, "emoticon_type": "sad"}, "invalid match_id 11"),
    (0, {"user_id": 6, "emoticon_type": "sad"}, "invalid match_id 0"),
    (5, {"user_id": 6}, "missing field 'emoticon_type'"),
    (5, {"user_id": 6, "emoticon_type": "sad", "match_id": 5}, "unknown field 'match_id'"),
    (5, [6, "sad"], "the body must be a JSON object"),
    (5, b'{"user_id": 6,', "malformed JSON"),
    (5, b"[" * 100_000, "413"),
    (5, b'{"user_id": 6, "emoticon_type": "sad", "emoticon_type": "heart"}',
     "field 'emoticon_type' given twice"),
    (5, b'{"user_id": 6, "user_id": 7, "emoticon_type": "sad"}', "field 'user_id' given twice"),
    (5, b'\xef\xbb\xbf{"user_id": 6, "emoticon_type": "sad"}', "malformed JSON"),
    (5, '{"user_id": 6, "emoticon_type": "sad"}'.encode("utf-16"), "malformed JSON"),
])
def test_bad_reaction_is_refused_with_400_and_changes_nothing(match_id, fields, words):
    """Each invalid field gets 400 with the API layer's message; nothing reaches Redis."""
    status, _, body = post(make_app(), match_id, fields)
    if words == "413":
        assert status == 413
    else:
        assert status == 400 and words in json.loads(body)["error"], body
    assert get_redis().dbsize() == 0


def test_wrong_content_type_is_refused_with_400():
    """A form post is not JSON: 400 naming the content type expected."""
    status, _, body = post(make_app(), 5, {"user_id": 6, "emoticon_type": "sad"},
                           headers=[(b"content-type", b"application/x-www-form-urlencoded")])
    assert status == 400 and "content-type must be application/json" in json.loads(body)["error"]


def test_body_over_the_limit_is_refused_with_413():
    """A body over MAX_BODY_BYTES gets 413; nothing is stored."""
    status, _, _ = post(make_app(), 5, b" " * (MAX_BODY_BYTES + 1))
    assert status == 413 and get_redis().dbsize() == 0


def test_redis_over_maxmemory_answers_503_with_retry_after():
    """Redis refusing the write (OOM) is 503 with Retry-After: the client may try later."""
    redis = get_redis()
    redis.set("another app's key", "x")
    redis.maxmemory = 1  # used memory is over it now
    status, headers, body = post(make_app(), 5, {"user_id": 6, "emoticon_type": "sad"})
    redis.maxmemory = 0
    assert status == 503 and headers["retry-after"] == "1"
    assert "maxmemory" in json.loads(body)["error"] and redis.get("5_sad") is None


def test_get_match_gives_counts_and_weighted_means_of_one_read():
    """GET /matches/3: counts and ceil(count/1000) per emoticon (seed's weighted mean)."""
    app = make_app()
    for _ in range(1001):
        get_redis().incr("3_heart")
    status, _, body = call(app, "GET", "/matches/3")
    assert status == 200 and json.loads(body) == {
        "match_id": 3, "counts": {"heart": 1001, "sad": 0, "happy": 0},
        "weighted_means": {"heart": 2, "sad": 0, "happy": 0}}


@pytest.mark.parametrize("method, path, status, allow", [
    ("GET", "/nowhere", 404, None), ("GET", "/matches/abc", 404, None),
    ("DELETE", "/matches/3", 405, "GET, HEAD"), ("GET", "/matches/3/reactions", 405, "POST"),
    ("POST", "/metrics", 405, "GET, HEAD"), ("GET", "/matches/0", 400, None),
])
def test_unknown_paths_and_methods(method, path, status, allow):
    """404 for a path no route has, 405 with Allow for a method the route lacks."""
    got, headers, body = call(make_app(), method, path)
    assert got == status and "error" in json.loads(body)
    assert headers.get("allow") == allow


def test_metrics_are_prometheus_text():
    """/metrics: HELP and TYPE lines, counters ending in _total, the run's figures."""
    app = make_app()
    post(app, 5, {"user_id": 6, "emoticon_type": "sad"})
    status, headers, body = call(app, "GET", "/metrics")
    text = body.decode()
    assert status == 200 and headers["content-type"].startswith("text/plain; version=0.0.4")
    assert "# TYPE live_reactions_posted_total counter" in text
    assert 'live_reactions_posted_total{source="http"} 1' in text
    assert 'live_reactions_posted_total{source="poster"} 3' in text
    assert "live_reactions_pending_events 2" in text
    assert 'live_reactions_http_requests_total{status="201"} 1' in text


def test_the_page_is_one_html_file_without_external_assets():
    """GET /: HTML with its script and styles inline: no src= or href= to anywhere."""
    status, headers, body = call(make_app(), "GET", "/")
    page = body.decode()
    assert status == 200 and headers["content-type"] == "text/html; charset=utf-8"
    assert "<script>" in page and "http://" not in page and "https://" not in page
    assert " src=" not in page and "<link" not in page


# -- the viewers' feed --------------------------------------------------------------------------

def test_a_tick_is_encoded_once_and_reaches_every_viewer():
    """Every viewer of /stream gets the same bytes: one encoding per tick, however many."""
    async def scenario():
        feed = Feed()
        viewers = [feed.subscribe() for _ in range(1000)]
        feed.publish_tick({"time": 1.0, "matches": []}, {})
        events = [await viewer.next(1) for viewer in viewers]
        assert len({id(event) for event in events}) == 1
        return events[0]
    event = asyncio.run(scenario())
    assert event.startswith(b"id: 1\nevent: tick\ndata: {") and event.endswith(b"\n\n")


def test_a_match_viewer_gets_its_match_only_and_the_backups():
    """/matches/3/stream: match 3's tick, and every backup."""
    async def scenario():
        feed = Feed()
        viewer = feed.subscribe(3)
        assert feed.wanted_matches() == {3}
        feed.publish_tick({"time": 1.0}, {3: {"match_id": 3}, 4: {"match_id": 4}})
        feed.publish_backup({"events": 7, "rows": 7})
        return [await viewer.next(1) for _ in range(2)]
    tick, backup = asyncio.run(scenario())
    assert b'"match_id":3' in tick and b"event: backup" in backup and b'"rows":7' in backup


def test_a_viewer_that_falls_behind_is_dropped():
    """A viewer whose connection does not drain holds at most VIEWER_QUEUE_EVENTS events;
    the next one drops it, so memory does not grow with a stalled client."""
    feed = Feed()
    viewer = feed.subscribe()
    for tick in range(VIEWER_QUEUE_EVENTS + 1):
        feed.publish_tick({"time": tick}, {})
    assert viewer.dropped and feed.open_streams == 0 and feed.dropped == 1
    assert asyncio.run(viewer.next(1)) is None


def test_an_idle_viewer_gets_a_keep_alive_each_timeout():
    """No event for ``timeout`` seconds since next() last returned: b"" (a keep-alive
    comment), again after each further ``timeout``; an event in between restarts the wait."""
    async def scenario():
        feed = Feed()
        viewer = feed.subscribe()
        loop = asyncio.get_running_loop()
        started = loop.time()
        first = await viewer.next(0.05)
        second = await viewer.next(0.05)
        waited = loop.time() - started
        loop.call_later(0.02, feed.publish_backup, {"events": 1})
        event = await viewer.next(0.05)
        feed.close()
        return first, second, waited, event, await viewer.next(0.05)
    first, second, waited, event, end = asyncio.run(scenario())
    assert first == second == b"" and 0.1 <= waited < 1.0
    assert event.startswith(b"id: 1\nevent: backup") and end is None


def test_a_stream_send_outside_a_task_is_refused():
    """A stream's send can only be dropped if it runs in a task (it is cancelled): outside one,
    as in a server's eager first step, StreamSends refuses it rather than losing the deadline."""
    sent = []

    async def send(message):
        sent.append(message)

    def by_hand(raised):   # a loop callback: no task
        step = StreamSends().send(send, {"type": "http.response.body", "body": b"x"})
        try:
            step.send(None)
        except BaseException as error:
            raised.set_result(error)

    async def in_loop():
        raised = asyncio.get_running_loop().create_future()
        asyncio.get_running_loop().call_soon(by_hand, raised)
        return await raised
    error = asyncio.run(in_loop())
    assert isinstance(error, RuntimeError) and "in a task" in str(error)
    assert sent == []


def test_a_stream_send_that_waits_past_its_deadline_is_dropped(monkeypatch):
    """A send whose connection takes nothing for STREAM_SEND_SECONDS raises TimeoutError (the
    viewer is dropped); a send that completes, and a cancellation from elsewhere, are as ever."""
    monkeypatch.setattr(live.http.app, "STREAM_SEND_SECONDS", 0.05)
    monkeypatch.setattr(live.http.app, "STREAM_SWEEP_SECONDS", 0.01)

    async def scenario():
        sends, sent = StreamSends(), []

        async def quick(message):
            sent.append(message)

        async def stalled(message):
            await asyncio.sleep(60)

        await sends.send(quick, {"n": 1})
        started = asyncio.get_running_loop().time()
        with pytest.raises(asyncio.TimeoutError):
            await sends.send(stalled, {"n": 2})
        waited = asyncio.get_running_loop().time() - started
        other = asyncio.ensure_future(sends.send(stalled, {"n": 3}))
        await asyncio.sleep(0.01)
        other.cancel()
        with pytest.raises(asyncio.CancelledError):
            await other
        return sent, waited
    sent, waited = asyncio.run(scenario())
    assert sent == [{"n": 1}] and 0.05 <= waited < 1.0


def test_closing_the_feed_ends_every_stream():
    """At shutdown every viewer gets what is queued, then the end."""
    feed = Feed()
    viewers = [feed.subscribe(), feed.subscribe(2)]
    feed.publish_backup({"events": 1})
    feed.close()
    assert asyncio.run(viewers[0].next(1)).startswith(b"id: 1\nevent: backup")
    assert asyncio.run(viewers[0].next(1)) is None and feed.open_streams == 0


@pytest.mark.parametrize("path", ["/matches/" + "9" * 25, "/matches/" + "1" * 5000,
                                  "/matches/" + "9" * 25 + "/stream"])
def test_a_match_id_of_too_many_digits_is_400_not_404(path):
    """An id of digits is a match id however long: refused with 400 naming the range."""
    status, _, body = call(make_app(), "GET", path)
    assert status == 400 and "match_id must be an int from 1 to 10" in json.loads(body)["error"]
