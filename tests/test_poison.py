"""Poison items: a list item that is not exactly one valid record is dead-lettered, never blocks
its list, never becomes two rows; a list is deleted only when rows + dead letters = items read."""

import json

import pytest

from foundation import records
from api_layer import POSTMethod
from backup_data import BackupDataManager, BackupError, CountMismatchError
from db import DeadLetter, ReactionsTable
from redis_adapter import encode_event, get_adapter, get_redis

GOOD = {"user_id": 1, "emoticon_type": "sad", "timestamp": 1.5, "match_id": 4}
TYPES = ("heart", "sad", "happy")


@pytest.fixture
def table():
    table = ReactionsTable(":memory:")
    yield table
    table.close()


def with_fields(**changes):
    record = dict(GOOD, **changes)
    return json.dumps({key: value for key, value in record.items() if value is not ...})


DEEP = "[" * 100_000 + "]" * 100_000  # an item any client can push: 200 kB


POISON = {
    "not JSON": ("{user_id: 1", "not one JSON value"),
    "empty": ("", "not one JSON value"),
    "two records in one item": (json.dumps(GOOD) + ", " + json.dumps(GOOD),
                                "not one JSON value: Extra data"),
    "a list": ("[" + json.dumps(GOOD) + "]", "not a JSON object but a list"),
    "missing field": (with_fields(timestamp=...), "missing field timestamp"),
    "extra field": (with_fields(extra=1), "extra field extra"),
    "id as string": (with_fields(user_id="1"), "user_id '1' is not an int"),
    "id as bool": (with_fields(match_id=True), "match_id True is not an int"),
    "id over 64 bits": (with_fields(user_id=2 ** 63), "is not an int from 1 to 2**63-1"),
    "zero id": (with_fields(match_id=0), "match_id 0 is not an int"),
    "NaN timestamp": (with_fields(timestamp=float("nan")), "timestamp nan is not a finite"),
    "string timestamp": (with_fields(timestamp="now"), "timestamp 'now' is not a finite"),
    # An int SQLite cannot store failed the list's INSERT, one beyond a float's range the
    # check itself (OverflowError): either way the list stayed staged for good.
    "int timestamp over 64 bits": (with_fields(timestamp=2 ** 63),
                                   "timestamp 9223372036854775808 is not a finite"),
    "int timestamp under 64 bits": (with_fields(timestamp=-2 ** 63 - 1),
                                    "timestamp -9223372036854775809 is not a finite"),
    "int timestamp beyond a float": (with_fields(timestamp=10 ** 400),
                                     "timestamp 1000000000000000000000000000000000000000000"
                                     "00000000000000... is not a finite"),
    "emoticon the CHECK refuses": (with_fields(emoticon_type="angry"),
                                   "emoticon_type 'angry' is not one of the table's"),
    "repeated field": (json.dumps(GOOD)[:-1] + ', "user_id": 4}', "repeated field user_id"),
    "extra field of a long name": (with_fields(**{"x" * 10_000: 1}),
                                   "extra field " + "x" * 57 + "..."),
    "another match's record": (with_fields(match_id=2), "match_id 2 is not its list's (4)"),
    # A field named by the JSON escape of a lone surrogate, in an ASCII item: its name in the
    # reason made the text SQLite cannot store (UTF-8), so the list stayed staged for good.
    "extra field named a lone surrogate": (with_fields(**{"\ud800": 1}),
                                           "extra field \\ud800"),
    "repeated field named a lone surrogate": (json.dumps(GOOD)[:-1] + ', "\\udfff": 1, '
                                              '"\\udfff": 2}', "repeated field \\udfff"),
    # json.loads raises RecursionError, not ValueError, for nesting past the recursion limit:
    # it escaped the check, failed the list's insert, and the list stayed staged for good.
    "nested deeper than json.loads recurses": (DEEP, "not one JSON value: maximum recursion"),
    "record nested deeper than json.loads recurses": (with_fields(user_id=...)[:-1]
                                                      + ', "user_id": ' + DEEP + "}",
                                                      "not one JSON value: maximum recursion"),
}


@pytest.mark.parametrize("name", POISON)
def test_poison_reason_names_the_fault(name):
    """poison_reason says what is wrong with each kind of poison item (of list match_data_4)."""
    text, reason = POISON[name]
    assert reason in records.poison_reason(text, TYPES, GOOD["match_id"])


def test_a_valid_record_has_no_poison_reason():
    """The stored form of a posted event is a valid record."""
    assert records.poison_reason(encode_event(GOOD), TYPES) is None


@pytest.mark.parametrize("timestamp", [2 ** 63 - 1, -2 ** 63, 0, -1.5])
def test_int_timestamps_of_64_bits_are_stored(table, timestamp):
    """A record whose timestamp is an int SQLite can store (or any finite float) is an event:
    it becomes a row with that timestamp."""
    get_redis().rpush("match_data_4", with_fields(timestamp=timestamp))
    result = BackupDataManager(table=table).run()
    assert (result.events, result.dead_lettered) == (1, 0)
    assert table.latest(1)[0]["timestamp"] == float(timestamp)


@pytest.mark.parametrize("name", POISON)
def test_poison_item_is_dead_lettered_and_its_list_moves(table, name):
    """A poison item goes to dead_letters with its text and reason; its list's good events
    become rows, the list is freed, and the run counts one dead letter."""
    text, reason = POISON[name]
    before = POSTMethod(1, 4, "heart")
    get_redis().rpush("match_data_4", text)
    after = POSTMethod(2, 4, "happy")
    result = BackupDataManager(table=table).run()
    assert (result.events, result.dead_lettered, result.keys) == (2, 1, 1)
    assert [(row["user_id"], row["timestamp"]) for row in reversed(table.latest(5))] == [
        (before["user_id"], before["timestamp"]), (after["user_id"], after["timestamp"])]
    [letter] = table.dead_letters()
    assert letter["raw"] == text and reason in letter["reason"]
    assert letter["source_key"].startswith("match_data_4:backup:")
    assert get_adapter().pending_events() == 0


def test_a_repeated_field_is_poison_even_among_valid_records():
    """The fast path (one json.loads for the whole chunk) does not let a repeated field through
    as its last value: the item is poison, its neighbours events."""
    repeated = json.dumps(GOOD)[:-1] + ', "user_id": 4}'
    events, poison = records.sort_items([json.dumps(GOOD), repeated, json.dumps(GOOD)], TYPES)
    assert events == [GOOD, GOOD] and poison == [(repeated, "repeated field user_id")]


def test_a_spill_line_of_any_match_is_an_event():
    """Without a list's match (a spill file mixes matches), any match_id is accepted."""
    assert records.poison_reason(json.dumps(dict(GOOD, match_id=9)), TYPES) is None


def test_items_that_only_join_into_valid_records_are_poison(table):
    """Two items that are two records only when joined (an object split across them) are two
    dead letters, not two rows."""
    first = json.dumps(GOOD) + ', {"user_id": 2, "emoticon_type": "sad", "timestamp": 2.0'
    get_redis().rpush("match_data_4", first, '"match_id": 4}')
    result = BackupDataManager(table=table).run()
    assert (result.events, result.dead_lettered) == (0, 2)
    assert table.count() == 0 and len(table.dead_letters()) == 2


def test_manager_totals_count_rows_and_dead_letters_over_runs(table):
    """events and dead_lettered add up what each run of the manager wrote."""
    manager = BackupDataManager(table=table)
    for _ in range(2):
        POSTMethod(1, 1, "sad")
        get_redis().rpush("match_data_1", "oops")
        manager.run()
    assert (manager.events, manager.dead_lettered) == (2, 2)


def test_count_mismatch_rolls_back_and_keeps_the_list(table, monkeypatch):
    """If rows + dead letters differ from the items read, nothing is committed or deleted."""
    POSTMethod(1, 1, "sad")
    POSTMethod(2, 1, "sad")
    monkeypatch.setattr(records, "sort_items", lambda texts, types, match_id=None: ([], []))
    monkeypatch.setattr("backup_data.sort_items", lambda texts, types, match_id=None: ([], []))
    with pytest.raises(BackupError) as excinfo:
        BackupDataManager(table=table).run()
    [error] = excinfo.value.errors.values()
    assert isinstance(error, CountMismatchError)
    assert "read 2 items but wrote 0 rows and 0 dead letters" in str(error)
    assert table.count() == 0 and table.dead_letters() == []
    assert get_adapter().pending_events() == 2


def test_system_wide_reconciliation_counts_dead_letters_of_counted_events(table):
    """A counted event that became a dead letter still adds up in reconcile() through the
    table's dead-letter sink; without it the counter would show a mismatch."""
    from live.reconcile import reconcile
    for user_id in (1, 2, 3):
        POSTMethod(user_id, 4, "sad")
    redis = get_redis()
    items = redis.lrange("match_data_4", 0, -1)
    redis.delete("match_data_4")
    redis.rpush("match_data_4", *items[:2], items[2].replace('"user_id": 3', '"user_id": -3'))
    BackupDataManager(table=table).run()
    assert not reconcile(get_adapter(), table).ok
    result = reconcile(get_adapter(), table, [table.dead_letter_cells])
    assert result.ok and (result.rows, result.sinks) == (2, 1)


def test_a_dead_letter_nested_too_deep_names_no_cell(table):
    """A dead letter json.loads cannot decode for its nesting (RecursionError) names no cell
    in the reconciliation's sink, like any other text that is not JSON, instead of raising."""
    table.insert_batch([], dead_letters=[DeadLetter(DEEP, "too deep", "match_data_4:backup:1")])
    assert table.dead_letter_cells() == {}
