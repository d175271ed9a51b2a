"""The final backup's fallback: the per-run busy deadline, spill files, and loading one exactly
once; the start-up write probe."""

import json
import sqlite3

import pytest

import config
from api_layer import POSTMethod
from backup_data import BackupDataManager, BackupError, new_batch
from db import ReactionsTable
from redis_adapter import encode_event, get_adapter, get_redis
from spill import load_spill, spill_directory, write_spill


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
    result = write_spill(get_adapter(), str(tmp_path))
    lines = open(result.path).read().splitlines()
    assert result.events == 3 and sorted(lines) == sorted(map(encode_event, older + [newer]))
    assert [json.loads(line) for line in lines if '"match_id": 1}' in line] == [older[0], newer]
    assert get_adapter().pending_events() == 0


def test_spill_names_are_unique(tmp_path):
    """Two spills in the same second get two files."""
    paths = set()
    for _ in range(2):
        POSTMethod(1, 1, "sad")
        paths.add(write_spill(get_adapter(), str(tmp_path)).path)
    assert len(paths) == 2


def test_spill_with_nothing_pending_writes_no_file(tmp_path):
    """No pending event, no spill file."""
    assert write_spill(get_adapter(), str(tmp_path)) is None
    assert list(tmp_path.iterdir()) == []


def test_spill_that_cannot_be_written_deletes_nothing(tmp_path):
    """If the file cannot be written, OSError and every event is still in Redis."""
    POSTMethod(1, 1, "sad")
    with pytest.raises(OSError):
        write_spill(get_adapter(), str(tmp_path / "missing"))
    assert get_adapter().pending_events() == 1


def test_spill_keeps_an_item_with_a_line_break_on_one_line(tmp_path, path):
    """An item holding a newline is written as one JSON string line, and loads as a dead
    letter."""
    POSTMethod(1, 1, "sad")
    get_redis().rpush("match_data_1", "two\nlines")
    spill = write_spill(get_adapter(), str(tmp_path))
    assert open(spill.path).read().splitlines()[1] == '"two\\nlines"'
    result = load_spill(spill.path, ReactionsTable(path))
    assert (result.rows, result.dead_lettered) == (1, 1)


def test_load_spill_inserts_once(tmp_path, path):
    """Loading a spill file adds its events; loading it again adds nothing."""
    posted = [POSTMethod(user_id, 1, "heart") for user_id in range(1, 6)]
    spill = write_spill(get_adapter(), str(tmp_path))
    table = ReactionsTable(path)
    first, second = load_spill(spill.path, table), load_spill(spill.path, table)
    assert (first.rows, first.already_loaded) == (5, False)
    assert (second.rows, second.dead_lettered, second.already_loaded) == (0, 0, True)
    assert table.count() == len(posted)


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


def test_spill_directory_is_beside_the_database_or_the_working_directory(tmp_path,
                                                                         monkeypatch):
    """A file database spills beside itself; :memory: into the working directory."""
    monkeypatch.chdir(tmp_path)
    assert spill_directory(":memory:") == str(tmp_path)
    assert spill_directory("sub/x.db") == str(tmp_path / "sub")


def test_spill_skips_a_list_already_committed(tmp_path):
    """A staged list whose rows are committed (its DEL failed) is deleted, not spilled again."""
    POSTMethod(1, 1, "sad")
    POSTMethod(2, 2, "sad")
    staged = get_adapter().stage_all(get_adapter().match_data_keys(), new_batch())
    [committed] = [key for key in staged if key.startswith("match_data_1:backup:")]
    spill = write_spill(get_adapter(), str(tmp_path), committed={committed})
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
