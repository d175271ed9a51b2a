"""POSTMethod and GETMethod: what they store and serve, and bad input that changes nothing."""

import logging
import time

import pytest

import config
from api_layer import GETMethod, InvalidReactionError, POSTMethod, read_counts, weighted_mean
from redis_adapter import get_adapter, get_redis


def test_post_returns_the_stored_record():
    """POSTMethod answers the record in the seed's shape, timestamp in Unix seconds."""
    before = time.time()
    record = POSTMethod(6, 5, "sad")
    after = time.time()
    assert list(record) == ["user_id", "emoticon_type", "timestamp", "match_id"]
    assert (record["user_id"], record["emoticon_type"], record["match_id"]) == (6, "sad", 5)
    assert before <= record["timestamp"] <= after


def test_post_counts_and_appends():
    """POST increments {match_id}_{emoticon_type} and appends the record to match_data_{id}."""
    first = POSTMethod(6, 5, "sad")
    second = POSTMethod(9, 5, "sad")
    third = POSTMethod(98, 6, "heart")
    assert get_adapter().snapshot() == {
        "5_sad": 2,
        "6_heart": 1,
        "match_data_5": [first, second],
        "match_data_6": [third],
    }


def test_post_stores_strings_as_redis_does():
    """The counter is a Redis string and the list holds one JSON string per event."""
    POSTMethod(6, 5, "sad")
    redis = get_redis()
    assert redis.get("5_sad") == "1"
    [text] = redis.lrange("match_data_5", 0, -1)
    assert isinstance(text, str) and '"user_id": 6' in text


BAD_INPUTS = [
    # (user_id, match_id, emoticon_type, field named in the error)
    (True, 1, "heart", "user_id"),
    ("5", 1, "heart", "user_id"),
    (5.0, 1, "heart", "user_id"),
    (None, 1, "heart", "user_id"),
    (0, 1, "heart", "user_id"),
    (-1, 1, "heart", "user_id"),
    (1001, 1, "heart", "user_id"),
    (1, False, "heart", "match_id"),
    (1, "1", "heart", "match_id"),
    (1, 1.0, "heart", "match_id"),
    (1, 0, "heart", "match_id"),
    (1, 11, "heart", "match_id"),
    (1, 1, "Heart", "emoticon_type"),
    (1, 1, "angry", "emoticon_type"),
    (1, 1, "", "emoticon_type"),
    (1, 1, None, "emoticon_type"),
    (1, 1, b"heart", "emoticon_type"),
    (1, 1, 1, "emoticon_type"),
    (1, 1, ["heart"], "emoticon_type"),
]


@pytest.mark.parametrize("user_id, match_id, emoticon_type, field", BAD_INPUTS)
def test_post_bad_input_raises_and_changes_nothing(user_id, match_id, emoticon_type, field):
    """Bad input raises InvalidReactionError naming the field; Redis is left as it was."""
    kept = POSTMethod(1, 1, "heart")
    before = get_adapter().snapshot()
    with pytest.raises(InvalidReactionError) as excinfo:
        POSTMethod(user_id, match_id, emoticon_type)
    assert excinfo.value.field == field
    assert excinfo.value.value is (user_id, match_id, emoticon_type)[
        ["user_id", "match_id", "emoticon_type"].index(field)]
    assert get_adapter().snapshot() == before == {"1_heart": 1, "match_data_1": [kept]}


def test_invalid_input_is_a_value_error():
    """InvalidReactionError is a ValueError, for callers that catch those."""
    with pytest.raises(ValueError):
        POSTMethod(0, 1, "heart")


def test_error_message_says_what_is_allowed():
    """The message names the field, the value given and the allowed range or set."""
    with pytest.raises(InvalidReactionError) as excinfo:
        POSTMethod(1, 11, "heart")
    assert str(excinfo.value) == "invalid match_id 11: match_id must be an int from 1 to 10"
    with pytest.raises(InvalidReactionError) as excinfo:
        POSTMethod(1, 1, "Heart")
    assert str(excinfo.value) == ("invalid emoticon_type 'Heart': emoticon_type must be "
                                  "one of heart, sad, happy")


def test_limits_follow_config():
    """The id ranges are read from config at call time (main.py's flags change them)."""
    config.MAX_MATCHES = 20
    POSTMethod(1, 20, "heart")
    config.MAX_USERS = 5
    with pytest.raises(InvalidReactionError):
        POSTMethod(6, 1, "heart")


def test_ids_at_the_limits_are_valid():
    """Ids 1 and the configured maximum are accepted."""
    POSTMethod(1, 1, "heart")
    POSTMethod(config.MAX_USERS, config.MAX_MATCHES, "happy")
    assert get_redis().mget("1_heart", f"{config.MAX_MATCHES}_happy") == ["1", "1"]


@pytest.mark.parametrize("count, mean", [(0, 0), (1, 1), (999, 1), (1000, 1), (1001, 2),
                                         (2000, 2), (2001, 3), (10 ** 18 + 1, 10 ** 15 + 1)])
def test_weighted_mean_edges(count, mean):
    """weighted mean = ceil(count / 1000) (seed), exact for huge counts too."""
    assert weighted_mean(count) == mean


def test_weighted_mean_follows_divisor():
    """The divisor is config.WEIGHTED_MEAN_DIVISOR."""
    config.WEIGHTED_MEAN_DIVISOR = 10
    assert weighted_mean(11) == 2


def test_get_with_no_reactions_is_all_zero():
    """GET answers every configured emoticon, 0 where nothing was posted."""
    assert GETMethod(3) == {"heart": 0, "sad": 0, "happy": 0}


@pytest.mark.parametrize("count, mean", [(1, 1), (999, 1), (1000, 1), (1001, 2)])
def test_get_serves_weighted_means_of_the_counters(count, mean):
    """GET reads the counters and applies the weighted mean per emoticon."""
    get_redis().set("4_heart", count)
    assert GETMethod(4) == {"heart": mean, "sad": 0, "happy": 0}


def test_get_counts_posts():
    """Posted reactions show up in read_counts and GET."""
    for user_id in range(1, 1002):
        POSTMethod(user_id % 1000 + 1, 2, "happy")
    POSTMethod(1, 2, "sad")
    assert read_counts(2) == {"heart": 0, "sad": 1, "happy": 1001}
    assert GETMethod(2) == {"heart": 0, "sad": 1, "happy": 2}


def test_get_does_not_touch_the_event_lists():
    """GET reads only counters: the event lists are left as they were."""
    POSTMethod(1, 1, "heart")
    before = get_adapter().snapshot()
    GETMethod(1)
    assert get_adapter().snapshot() == before


@pytest.mark.parametrize("match_id", [0, 11, "1", 1.0, True, None])
def test_get_bad_match_id(match_id):
    """GET with an invalid match id raises InvalidReactionError naming match_id."""
    with pytest.raises(InvalidReactionError) as excinfo:
        GETMethod(match_id)
    assert excinfo.value.field == "match_id"


class MyInt(int):
    pass


class BadRepr:
    def __repr__(self):
        raise RuntimeError("no repr")


@pytest.mark.parametrize("value, shown", [
    (10 ** 5000, "<int>"),
    (MyInt(1), "1 (a MyInt)"),
    (BadRepr(), "<BadRepr>"),
], ids=["huge_int", "int_subclass", "broken_repr"])
def test_error_message_survives_odd_values(value, shown):
    """Huge ints, int subclasses and broken reprs still give InvalidReactionError, readable."""
    with pytest.raises(InvalidReactionError) as excinfo:
        POSTMethod(value, 1, "heart")
    assert str(excinfo.value).startswith(f"invalid user_id {shown}: ")
    assert get_adapter().snapshot() == {}


def test_get_shows_a_counter_holding_another_value_as_unreadable(caplog):
    """A counter that is not an integer is None (unreadable), the others read; said once."""
    POSTMethod(1, 1, "sad")
    POSTMethod(2, 1, "sad")
    get_adapter().redis.set("1_heart", "abc")
    with caplog.at_level(logging.WARNING, logger="redis_adapter"):
        assert GETMethod(1) == {"heart": None, "sad": 1, "happy": 0}
        assert GETMethod(1) == {"heart": None, "sad": 1, "happy": 0}
    assert [record.getMessage().split(" holds")[0] for record in caplog.records] == [
        "counter 1_heart"]
