"""Spill files: the pending events written out when the final backup cannot reach the table.

The in-memory Redis dies with the process, so when the final backup fails (database locked by
another process past DB_BUSY_TIMEOUT_SECONDS, disk error...) every event still in Redis is written
to a spill file: JSON Lines, one stored item a line, in the seed's record format
``{"user_id": .., "emoticon_type": .., "timestamp": .., "match_id": ..}``. The file is fsynced
(and its directory) before the lists it holds are deleted from Redis.

``python3 main.py --load-spill FILE --db PATH`` loads such a file into the table exactly once: the
rows go in with a ledger row named after the file's SHA-256 in one transaction, so loading the
same content again adds nothing. Lines that are not one valid record (records.py) become dead
letters, as in a backup.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import os
import tempfile
import time
from dataclasses import dataclass
from typing import Collection, Iterator, Sequence

from backup_data import SortedItems, new_batch
from db import ReactionsTable
from redis_adapter import RedisAdapter

__all__ = ["SpillResult", "LoadResult", "SpillError", "spill_directories", "write_spill",
           "load_spill"]

_LINES_PER_CHUNK = 10_000  # lines per chunk while loading, to bound memory


@dataclass(frozen=True)
class SpillResult:
    """A spill file written: where, and how many items (events) it holds."""

    path: str
    events: int


@dataclass(frozen=True)
class LoadResult:
    """What loading a spill file did: rows and dead letters added (both 0 if loaded before)."""

    rows: int
    dead_lettered: int
    already_loaded: bool


class SpillError(OSError):
    """No directory took the spill file; ``errors`` maps each directory tried to its OSError.
    Nothing was deleted from Redis and no partial file is left."""

    def __init__(self, errors: dict[str, OSError]) -> None:
        self.errors = errors
        super().__init__("no directory took the spill file: " + "; ".join(
            f"{directory}: {error!r}" for directory, error in errors.items()))


def spill_directories(db_path: str) -> list[str]:
    """Where spill files may go, in the order tried: beside the database file, the working
    directory, then the temporary directory ($TMPDIR, tempfile.gettempdir()). The fault that
    breaks the database (a full disk, a directory made read-only) often breaks its directory
    too, so one place is not enough. Duplicates are dropped; :memory: starts at the working
    directory."""
    directories = [os.getcwd(), tempfile.gettempdir()]
    if db_path != ":memory:" and not db_path.startswith("file:"):
        directories.insert(0, os.path.dirname(os.path.abspath(db_path)))
    return list(dict.fromkeys(os.path.realpath(directory) for directory in directories))


def _line(text: str) -> str:
    """An item as one line: as stored, unless it holds a line break (then as a JSON string, so
    that it stays one line; loading dead-letters it like any other item that is not a record)."""
    return json.dumps(text) if "\n" in text or "\r" in text else text


def write_spill(adapter: RedisAdapter, directories: Sequence[str],
                committed: Collection[str] = ()) -> SpillResult | None:
    """Write every event pending in Redis to a new spill file in the first of ``directories``
    that takes it whole, fsync it, then delete from Redis the lists it holds. None if nothing
    was pending.

    ``committed`` names staged lists whose rows are in the table already (their DEL failed): they
    are not written, only deleted with the others.

    Live lists are staged first (one RENAME each, atomic), so an event appended meanwhile lands
    in a fresh list that is neither written nor deleted. The name is unique per call:
    ``reactions-spill-YYYYmmddTHHMMSSZ-<random>.jsonl``. A directory whose file cannot be
    written whole (no permission, disk full, file size limit) gets its partial file removed and
    the next is tried; if none takes it, SpillError is raised and nothing is deleted from Redis.
    """
    adapter.stage_all(adapter.match_data_keys(), new_batch())
    keys = [key for key in adapter.staged_keys() if key not in committed]
    if not keys:
        return None
    errors: dict[str, OSError] = {}
    for directory in directories:
        try:
            result = _write_file(adapter, keys, directory)
        except OSError as error:
            errors[directory] = error
            continue
        for key in [*keys, *committed]:
            adapter.drop(key)
        return result
    raise SpillError(errors)


def _write_file(adapter: RedisAdapter, keys: list[str], directory: str) -> SpillResult:
    """The items of ``keys`` in a new file in ``directory``, fsynced with its directory entry;
    on OSError the partial file is removed (a cut file must not pass for a spill)."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    descriptor, path = tempfile.mkstemp(prefix=f"reactions-spill-{stamp}-", suffix=".jsonl",
                                        dir=directory)
    events = 0
    try:
        with open(descriptor, "w", encoding="utf-8", newline="\n") as file:
            for key in keys:
                for chunk in adapter.iter_items(key):
                    file.writelines(_line(text) + "\n" for text in chunk)
                    events += len(chunk)
            file.flush()
            os.fsync(file.fileno())
        _fsync_directory(directory)  # the file's name must survive a crash too
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(path)
        raise
    return SpillResult(path, events)


def _fsync_directory(directory: str) -> None:
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _file_digest(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _line_chunks(path: str) -> Iterator[list[str]]:
    """The file's lines without their "\\n", in chunks of _LINES_PER_CHUNK."""
    with open(path, encoding="utf-8", newline="\n") as file:
        lines = (line[:-1] if line.endswith("\n") else line for line in file)
        while chunk := list(itertools.islice(lines, _LINES_PER_CHUNK)):
            yield chunk


def load_spill(path: str, table: ReactionsTable) -> LoadResult:
    """Insert the spill file at ``path`` into ``table`` exactly once.

    One transaction holds the rows, the dead letters (lines that are not one valid record) and
    the ledger row ``spill:<sha256 of the file>``; a file whose content was loaded before adds
    nothing (``already_loaded``). Raises OSError or UnicodeDecodeError if the file cannot be
    read, sqlite3.Error if the table refuses (then nothing is added).
    """
    batch = f"spill:{_file_digest(path)}"
    if table.has_batch(batch):
        return LoadResult(0, 0, True)
    source = SortedItems(_line_chunks(path), f"spill:{os.path.basename(path)}",
                         table.emoticon_types)
    rows, dead = table.insert_batch(source.events(), batch, source.dead_letters, source.verify)
    # The ledger is checked again inside the transaction: a concurrent load of the same content
    # that committed first makes this one skip before reading a line.
    return LoadResult(rows, dead, not source.started)
