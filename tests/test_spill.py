"""The final backup's fallback: the per-run busy deadline, spill files, and loading one exactly
once; the start-up write probe."""

import json
import sqlite3
import tempfile
import threading
from pathlib import Path

import pytest

import config
from api_layer import POSTMethod
from backup_data import BackupDataManager, BackupError, new_batch
from db import ReactionsTable
from redis_adapter import encode_event, get_adapter, get_redis
from live.spill import SpillError, load_spill, spill_directories, write_spill
from tests.threads import join_all


@pytest.fixture
def path(tmp_path):
    return str(tmp_path / "reactions.db")


class DeadlineSpy(ReactionsTable):
    """Records the deadline each insert of a run was given."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.deadlines = []

    def insert_batch(self, events, batch=None, dead_letters=(), verify=None, deadline=None,
                     source=None):
        self.deadlines.append(deadline)
        return super().insert_batch(events, batch, dead_letters, verify, deadline, source)


def test_one_run_gives_every_list_the_same_deadline(path):
    """The busy wait is a deadline per run: ten lists share one, busy_timeout after the start."""
    posted = [POSTMethod(1, match_id, "sad") for match_id in range(1, 11)]
    table = DeadlineSpy(path, busy_timeout=30.0)
    BackupDataManager(table=table).run()
    assert len(table.deadlines) == len(posted) == 10 and len(set(table.deadlines)) == 1


def test_locked_file_fails_every_list_of_the_run_and_keeps_them_staged(path):
    """With another process holding the file, each list fails with "database is locked" and
    stays staged; after the lock is gone the next run moves them all once."""
    posted = [POSTMethod(1, match_id, "sad") for match_id in range(1, 11)]
    table = ReactionsTable(path, busy_timeout=0.05)
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("begin exclusive")
    with pytest.raises(BackupError) as excinfo:
        BackupDataManager(table=table).run()
    holder.rollback()
    assert len(excinfo.value.errors) == 10
    assert all("database is locked" in str(error) for error in excinfo.value.errors.values())
    assert get_adapter().pending_events() == 10
    assert BackupDataManager(table=table).run().events == len(posted) == table.count()


@pytest.mark.parametrize("read", [lambda table: table.count(), lambda table: table.latest(3),
                                  lambda table: table.aggregate(1)],
                         ids=["count", "latest", "aggregate"])
def test_status_reads_of_a_locked_file_fail_fast_instead_of_the_busy_timeout(path, read):
    """count(), latest() and aggregate() on a file another process holds locked raise "database
    is locked" after READ_WAIT_SECONDS, not after the table's hour-long busy timeout (which a
    transaction just used), so they never stretch a backup's deadline or a shutdown."""
    table = ReactionsTable(path, busy_timeout=3600.0)
    table.insert_many([{"user_id": 1, "match_id": 1, "emoticon_type": "sad", "timestamp": 1.0}])
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("begin exclusive")
    outcome = []
    reader = threading.Thread(target=lambda: outcome.append(_raised(read, table)), daemon=True)
    reader.start()
    try:
        join_all([reader], timeout=60)  # a safety net against the hour-long wait, not a time limit
    finally:
        holder.rollback()
        holder.close()
    assert outcome and "database is locked" in outcome[0]


def _raised(call, *args):
    try:
        call(*args)
    except sqlite3.OperationalError as error:
        return str(error)
    return "no error"


def test_busy_timeout_defaults_to_the_setting(path):
    """ReactionsTable and BackupDataManager wait DB_BUSY_TIMEOUT_SECONDS unless told."""
    config.DB_BUSY_TIMEOUT_SECONDS = 2.5
    table = ReactionsTable(path)
    assert table.busy_timeout == BackupDataManager(table=table).busy_timeout == 2.5


def test_write_probe_leaves_no_trace(path):
    """The start-up probe's row is gone from the ledger once the table is open."""
    ReactionsTable(path).close()
    with sqlite3.connect(path) as connection:
        assert connection.execute("select count(*) from backup_batches").fetchone()[0] == 0


def test_spill_writes_every_pending_event_once_and_frees_redis(tmp_path):
    """Live and staged lists alike go to the file, one stored record a line, in posting order
    per match; then Redis holds no event."""
    older = [POSTMethod(1, 1, "sad"), POSTMethod(2, 2, "heart")]
    get_adapter().stage_all(get_adapter().match_data_keys(), new_batch())
    newer = POSTMethod(3, 1, "happy")
    result = write_spill(get_adapter(), [str(tmp_path)])
    lines = open(result.path).read().splitlines()
    assert result.events == 3 and sorted(lines) == sorted(map(encode_event, older + [newer]))
    assert [json.loads(line) for line in lines if '"match_id": 1}' in line] == [older[0], newer]
    assert get_adapter().pending_events() == 0


def test_spill_names_are_unique(tmp_path):
    """Two spills in the same second get two files."""
    paths = set()
    for _ in range(2):
        POSTMethod(1, 1, "sad")
        paths.add(write_spill(get_adapter(), [str(tmp_path)]).path)
    assert len(paths) == 2


def test_spill_with_nothing_pending_writes_no_file(tmp_path):
    """No pending event, no spill file."""
    assert write_spill(get_adapter(), [str(tmp_path)]) is None
    assert list(tmp_path.iterdir()) == []


def test_spill_that_cannot_be_written_deletes_nothing(tmp_path):
    """If no directory takes the file, SpillError names each and every event is in Redis."""
    POSTMethod(1, 1, "sad")
    missing = [str(tmp_path / "missing"), str(tmp_path / "gone")]
    with pytest.raises(SpillError) as raised:
        write_spill(get_adapter(), missing)
    assert list(raised.value.errors) == missing
    assert get_adapter().pending_events() == 1


def test_spill_falls_back_to_the_next_directory(tmp_path):
    """A directory that refuses the file is skipped: the spill goes to the next one."""
    POSTMethod(1, 1, "sad")
    spill = write_spill(get_adapter(), [str(tmp_path / "missing"), str(tmp_path)])
    assert Path(spill.path).parent == tmp_path and spill.events == 1
    assert get_adapter().pending_events() == 0


def test_spill_cut_short_leaves_no_partial_file(tmp_path, monkeypatch):
    """A write that fails midway (disk full) removes its partial file; Redis keeps every
    event, and the next directory gets the whole file."""
    for user_id in range(1, 4):
        POSTMethod(user_id, user_id, "sad")
    full, spare = tmp_path / "full", tmp_path / "spare"
    full.mkdir()
    spare.mkdir()
    real_iter, calls = get_adapter().iter_items, []

    def iter_items(key):  # the first list read (into "full") fails after its items
        calls.append(key)
        yield from real_iter(key)
        if len(calls) == 1:
            raise OSError(28, "No space left on device")

    monkeypatch.setattr(get_adapter(), "iter_items", iter_items)
    spill = write_spill(get_adapter(), [str(full), str(spare)])
    assert list(full.iterdir()) == []
    assert spill.events == 3 and len(Path(spill.path).read_text().splitlines()) == 3
    assert Path(spill.path).parent == spare


def test_spill_keeps_an_item_with_a_line_break_on_one_line(tmp_path, path):
    """An item holding a newline is written as one JSON string line, and loads as a dead
    letter."""
    POSTMethod(1, 1, "sad")
    get_redis().rpush("match_data_1", "two\nlines")
    spill = write_spill(get_adapter(), [str(tmp_path)])
    assert open(spill.path).read().splitlines()[1] == '"two\\nlines"'
    result = load_spill(spill.path, ReactionsTable(path))
    assert (result.rows, result.dead_lettered) == (1, 1)


def test_load_spill_inserts_once(tmp_path, path):
    """Loading a spill file adds its events; loading it again adds nothing."""
    posted = [POSTMethod(user_id, 1, "heart") for user_id in range(1, 6)]
    spill = write_spill(get_adapter(), [str(tmp_path)])
    table = ReactionsTable(path)
    first, second = load_spill(spill.path, table), load_spill(spill.path, table)
    assert (first.rows, first.already_loaded) == (5, False)
    assert (second.rows, second.dead_lettered, second.already_loaded) == (0, 0, True)
    assert table.count() == len(posted)


def test_load_spill_skipped_by_a_concurrent_load_says_loaded_before(tmp_path, path,
                                                                   monkeypatch):
    """A load that passes the first ledger check while another load of the same content
    commits is skipped inside its transaction and reports already_loaded, not 0 rows added."""
    POSTMethod(1, 1, "heart")
    spill = write_spill(get_adapter(), [str(tmp_path)])
    table = ReactionsTable(path)
    load_spill(spill.path, table)
    monkeypatch.setattr(table, "has_batch", lambda batch: False)  # the race: checked before
    second = load_spill(spill.path, table)
    assert (second.rows, second.dead_lettered, second.already_loaded) == (0, 0, True)
    assert table.count() == 1


def test_load_spill_dead_letters_bad_lines(tmp_path, path):
    """Lines that are not one valid record become dead letters named after the file."""
    spill = tmp_path / "by-hand.jsonl"
    spill.write_text(encode_event({"user_id": 1, "emoticon_type": "sad", "timestamp": 1.0,
                                   "match_id": 2}) + "\nnot json\n")
    table = ReactionsTable(path)
    result = load_spill(str(spill), table)
    assert (result.rows, result.dead_lettered) == (1, 1)
    [letter] = table.dead_letters()
    assert (letter["raw"], letter["source_key"]) == ("not json", "spill:by-hand.jsonl")


def test_load_spill_dead_letters_a_line_naming_a_field_by_a_lone_surrogate(tmp_path, path):
    """A line whose extra field is named by the JSON escape of a lone surrogate is one dead
    letter, its reason storable: it does not make the whole file refused for good."""
    spill = tmp_path / "surrogate.jsonl"
    record = {"user_id": 1, "emoticon_type": "sad", "timestamp": 1.0, "match_id": 2}
    bad = encode_event(record)[:-1] + ', "\\ud800": 1}'
    spill.write_text(encode_event(record) + "\n" + bad + "\n")
    table = ReactionsTable(path)
    result = load_spill(str(spill), table)
    assert (result.rows, result.dead_lettered) == (1, 1)
    [letter] = table.dead_letters()
    assert letter["raw"] == bad and "extra field \\ud800" in letter["reason"]


def test_load_spill_dead_letters_a_line_nested_too_deep(tmp_path, path):
    """A line json.loads cannot decode for its nesting (RecursionError) is one dead letter,
    the file's records loaded, rather than a load that fails every time."""
    spill = tmp_path / "deep.jsonl"
    record = encode_event({"user_id": 1, "emoticon_type": "sad", "timestamp": 1.0, "match_id": 2})
    spill.write_text(record + "\n" + "[" * 100_000 + "]" * 100_000 + "\n")
    result = load_spill(str(spill), ReactionsTable(path))
    assert (result.rows, result.dead_lettered) == (1, 1)


def test_spill_directories_are_the_database_s_then_working_then_temporary(tmp_path,
                                                                          monkeypatch):
    """A file database spills beside itself first, then into the working directory, then
    $TMPDIR; :memory: starts at the working directory."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    assert spill_directories(":memory:") == [str(tmp_path), str(tmp_path / "tmp")]
    assert spill_directories("sub/x.db") == [str(tmp_path / "sub"), str(tmp_path),
                                             str(tmp_path / "tmp")]
    assert spill_directories("x.db") == [str(tmp_path), str(tmp_path / "tmp")]


def test_spill_skips_a_list_already_committed(tmp_path):
    """A staged list whose rows are committed (its DEL failed) is deleted, not spilled again."""
    POSTMethod(1, 1, "sad")
    POSTMethod(2, 2, "sad")
    staged = get_adapter().stage_all(get_adapter().match_data_keys(), new_batch())
    [committed] = [key for key in staged if key.startswith("match_data_1:backup:")]
    spill = write_spill(get_adapter(), [str(tmp_path)], committed={committed})
    assert spill.events == 1 and '"user_id": 2' in open(spill.path).read()
    assert get_adapter().pending_events() == 0


def test_failed_delete_marks_the_list_committed(path, monkeypatch):
    """When the DEL after a commit fails the manager names the list in ``committed``; once a
    later run frees it, it is no longer named."""
    POSTMethod(1, 1, "sad")
    manager = BackupDataManager(table=ReactionsTable(path))
    real_drop = manager.adapter.drop
    monkeypatch.setattr(manager.adapter, "drop", lambda key: 1 / 0)
    with pytest.raises(BackupError):
        manager.run()
    assert len(manager.committed) == 1 and manager.events == 1
    monkeypatch.setattr(manager.adapter, "drop", real_drop)
    manager.run()
    assert manager.committed == set() and manager.events == 1 == manager.table.count()
