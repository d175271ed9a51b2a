"""The live page (GET /) in a real browser: headless Chromium, driven over W3C WebDriver by
chromedriver (tests/webdriver.py, http.client only), loads it from a running ``main.py``.

The poster is near silent (--rate 0.001: its first post would come after 1,000 s), so every count
changes only by this module's own reactions, and the page's counts can be compared with the
API's. Skipped with the reason where chromedriver or Chromium is missing (Debian: apt-get install
chromium chromium-driver; .ci/run installs them).
"""

from __future__ import annotations

import json
import sys
from typing import Callable

import pytest

from tests.redis_server import free_port
from tests.test_http_contract import Server
from tests.webdriver import Browser, missing_browser, wait_until

pytestmark = pytest.mark.skipif(missing_browser() is not None, reason=str(missing_browser()))

WAIT_SECONDS = 30  # any single wait of these tests: a safety net, not a performance bound
MATCHES = 20       # more than the page's ten busiest, so the chooser's range is tested too
FLAGS = ["--rate", "0.001", "--get-interval", "0.3", "--backup-interval", "1",
         "--matches", str(MATCHES)]

# One script reads what the page shows, as text: the tick it shows, the busiest matches' cells,
# the figures, the stream's state and the chosen match's counts.
READ_PAGE = """
const text = (id) => document.getElementById(id).innerText.trim();
const rows = [...document.querySelectorAll("#matches tbody tr")].map((row) => [row.dataset.match,
  [...row.querySelectorAll("td")].map((td) => [td.dataset.emoticon, td.innerText])]);
const yours = document.getElementById("your-counts");
return {time: document.getElementById("tick-time").dataset.time, rows,
        posted: text("posted"), posted_http: text("posted-http"), pending: text("pending"),
        refused: text("refused"),
        connection: document.getElementById("connection").dataset.state,
        connection_text: text("connection"),
        your_match: yours.dataset.match || null,
        your_counts: Object.fromEntries([...yours.querySelectorAll("[data-emoticon]")].map(
          (box) => [box.dataset.emoticon, box.querySelector(".raw").innerText])),
        tap_result: document.getElementById("tap-result").dataset.state || null,
        tap_text: text("tap-result")};
"""


def number(text: str) -> int:
    """A figure as the page shows it ("1,204") as an int."""
    return int(text.replace(",", ""))


def cell(text: str) -> tuple[int, int]:
    """A table cell as the page shows it, "2 (1,204)": (weighted mean, raw count)."""
    mean, count = text.split("(")
    return number(mean.strip()), number(count.rstrip(")").strip())


def read_page(browser: Browser) -> dict:
    return browser.execute(READ_PAGE)


def wait_for_page(browser: Browser, shows: Callable[[dict], bool], what: str) -> dict:
    """What the page shows, once ``shows`` it holds (at most WAIT_SECONDS)."""
    def showing():
        page = read_page(browser)
        return page if shows(page) else None
    return wait_until(showing, WAIT_SECONDS, what)


def table_of(page: dict) -> list[tuple[int, dict[str, tuple[int, int]]]]:
    """The busiest matches as the page shows them: [(match, {emoticon: (mean, count)})]."""
    return [(int(match), {name: cell(text) for name, text in cells})
            for match, cells in page["rows"]]


def api_table(overview: dict) -> list[tuple[int, dict[str, tuple[int, int]]]]:
    """The same, from GET /matches."""
    return [(m["match_id"], {name: (m["weighted_means"][name], m["counts"][name])
                             for name in overview["emoticons"]}) for m in overview["matches"]]


def get_json(run: Server, path: str) -> dict:
    status, _, body = run.request("GET", path)
    assert status == 200, body
    return json.loads(body)


def start_run(port: int = 0) -> Server:
    return Server([sys.executable, "-B", "main.py", *FLAGS, "--http-port", str(port)])


def url_of(run: Server) -> str:
    return f"http://127.0.0.1:{run.port}/"


def open_page(browser: Browser, run: Server) -> dict:
    """Load the page and wait until its stream is live and it shows a tick."""
    browser.get(url_of(run))
    return wait_for_page(browser, lambda page: page["connection"] == "live" and page["time"]
                         and page["your_match"], "the page to say 'live' and show a GET tick")


@pytest.fixture(scope="module")
def run():
    run = start_run()
    yield run
    if run.process.poll() is None:
        run.stop()


@pytest.fixture(scope="module")
def browser():
    browser = Browser(width=1200, height=1000)
    yield browser
    browser.close()


def test_the_page_shows_the_counts_the_api_reads(run, browser):
    """The busiest matches' means and counts, and the figures, equal GET /matches at the tick
    the page shows, and each match's counts equal GET /matches/{id}."""
    open_page(browser, run)
    for match_id, emoticon, times in [(3, "heart", 3), (12, "sad", 2), (20, "happy", 1)]:
        for _ in range(times):
            assert run.post(match_id, {"user_id": 6, "emoticon_type": emoticon})[0] == 201

    def same_tick():  # the page and GET /matches at one tick, one that has counted the posts
        page, overview = read_page(browser), get_json(run, "/matches")
        counted = {m["match_id"]: m["counts"] for m in overview["matches"]}
        if page["time"] and float(page["time"]) == overview["time"] and \
                counted.get(20, {}).get("happy") == 1:
            return page, overview
        return None
    page, overview = wait_until(same_tick, WAIT_SECONDS,
                                "the page to show the GET tick that counted the posts")
    shown = table_of(page)
    assert shown == api_table(overview)
    assert [match for match, _ in shown[:3]] == [3, 12, 20]  # the busiest first
    assert len(shown) == 10
    for match_id, counts in shown:
        read = get_json(run, f"/matches/{match_id}")
        assert counts == {name: (read["weighted_means"][name], read["counts"][name])
                          for name in overview["emoticons"]}
    status = overview["status"]
    assert page["posted_http"] == f"({status['posted_by_http']:,} over HTTP)"
    assert (number(page["posted"]), number(page["pending"]), number(page["refused"])) == (
        status["posted"], status["pending"], status["refused"])


def test_clicking_a_reaction_raises_its_count(run, browser):
    """Choose match 17, click heart: the page shows its heart count one higher at a later tick,
    in the chosen match's counts and in the table, and says the tap was counted."""
    open_page(browser, run)
    browser.type_into(browser.find("#tap-match"), "17\ue007")  # \ue007: the Enter key
    before = get_json(run, "/matches/17")["counts"]
    page = wait_for_page(browser, lambda page: page["your_match"] == "17",
                         "the page to show match 17's counts")
    assert {name: number(text) for name, text in page["your_counts"].items()} == before

    browser.click(browser.find('#tap-buttons button[data-emoticon="heart"]'))

    page = wait_for_page(browser, lambda page: page["tap_result"] == "counted",
                         "the page to say the tap was counted")
    assert number(page["your_counts"]["heart"]) == before["heart"] + 1
    assert get_json(run, "/matches/17")["counts"]["heart"] == before["heart"] + 1
    assert "match 17's heart is now" in page["tap_text"]
    page = wait_for_page(browser, lambda page: 17 in dict(table_of(page)),
                         "match 17 among the busiest")
    assert dict(table_of(page))[17]["heart"][1] == before["heart"] + 1


def test_the_match_chooser_keeps_to_max_matches(run, browser):
    """A match above --matches is refused on the page, with the range, and nothing is posted."""
    open_page(browser, run)
    posted = get_json(run, "/matches")["status"]["posted"]
    browser.type_into(browser.find("#tap-match"), str(MATCHES + 1))
    browser.click(browser.find('#tap-buttons button[data-emoticon="sad"]'))
    page = read_page(browser)
    assert page["tap_result"] == "refused"
    assert f"from 1 to {MATCHES}" in page["tap_text"]
    assert browser.text(browser.find("#tap-range")) == f"1 to {MATCHES}"

    def later_tick():
        overview = get_json(run, "/matches")
        return overview if overview["time"] > float(page["time"]) else None
    assert wait_until(later_tick, WAIT_SECONDS, "a later GET tick")["status"]["posted"] == posted


def test_the_page_says_when_the_stream_is_lost_and_reconnects(browser):
    """Stop main.py: the page says the stream is lost; start it again on the same port: the page
    reconnects by itself and follows the new run's ticks."""
    port = free_port()
    first = start_run(port)
    try:
        shown = open_page(browser, first)
    finally:
        first.stop()
    lost = wait_for_page(browser, lambda page: page["connection"] == "lost",
                         "the page to say the stream is lost")
    assert "stream lost" in lost["connection_text"]
    second = start_run(port)
    try:
        again = wait_for_page(browser, lambda page: page["connection"] == "live"
                              and float(page["time"]) > float(shown["time"]),
                              "the page to reconnect and show a new tick")
        assert again["connection_text"].startswith("live again")
    finally:
        assert second.stop()[0] == 0
