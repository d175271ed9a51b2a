"""The system-wide reconciliation of one Redis key prefix and one database file, at any time.

What is compared: each counter ``{prefix}{match_id}_{emoticon}`` of this prefix in this Redis
must equal the rows that this Redis dataset's backups put in ReactionsTable for that match and
emoticon (the table counts them per source: RedisAdapter.source_id), plus its events still
pending in Redis (live or staged lists), plus those another sink holds (dead letters, spill
files: ``sinks``). Rows from other prefixes, other Redis servers or in-memory runs sharing the
file are not part of it. It holds at every instant, even while several processes post and back
up: a POST counts and appends in one MULTI/EXEC, and the backup commits rows before it deletes
their list.

A real Redis can forget what it acknowledged (emptied, replaced, rewound: docs/failures.md).
The table records, per dataset of that Redis, the highest count Redis acknowledged per cell
(db.ReactionsTable.loss_figures) and the losses backups found (ReactionsTable.losses). Events
acknowledged there and found in no table nor in Redis are counted as ``lost_in_redis``, and
the verdict is then LOSS, never OK: for the current dataset, what it acknowledged less its rows,
pending events and sinks; for an earlier one of the same Redis and prefix, what it acknowledged
less its rows, or the loss a backup recorded, whichever is more.

Read with ``python3 main.py --reconcile --redis-url URL --db FILE [--key-prefix P]``.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable, Collection, Iterable, Iterator

import config
from backup_data import between, clock_time
from db import ReactionsTable
from foundation.errors import ForeignValueError
from foundation.records import UNDECODABLE, borders_kept, named_cell
from redis_adapter import (RedisAdapter, count_cells, decode_events, error_text,
                           is_refused_command)

__all__ = ["Reconciliation", "reconcile", "Sink", "RECONCILE_SECONDS"]

logger = logging.getLogger(__name__)

Sink = Callable[[], dict[tuple[int, str], int]]
"""Another place events can end up (issue 6: dead letters, spill files): a function returning
its events per ``(match_id, emoticon_type)``. reconcile() adds them to the rows and pending."""

_TRIES = 20  # views taken at most until one is consistent
RECONCILE_SECONDS = 10.0
"""The longest reconcile() keeps taking views before it reports that it found none consistent."""
NO_SOURCE = ""
"""The source asked of the table before any backup has recorded this Redis's id: no rows."""


@dataclass
class Reconciliation:
    """Totals over every counter of the prefix, and the counters that do not add up."""

    counters: int
    """Sum of the counters: reactions ever counted."""
    rows: int
    """Rows in the table that came from this Redis dataset and prefix."""
    pending: int
    """Events in Redis lists not yet in the table."""
    sinks: int = 0
    """Events held by the other sinks (dead letters, spill files), 0 until those exist."""
    mismatches: dict[tuple[int, str], tuple[int, int]] = field(default_factory=dict)
    """``{(match_id, emoticon): (counter, rows + pending + sinks)}`` where they differ."""
    consistent: bool = True
    """False if no view read was consistent (lists appearing, or backups moving lists while
    the view was read, every time, up to the limits): then nothing is claimed either way."""
    unreadable: int = 0
    """Items of our lists that are not event records (poison): not attributable to a counter."""
    tries: int = 1
    """Views taken."""
    lost: int = 0
    """Events a real Redis acknowledged that are in no table nor in Redis (it forgot them)."""
    story: str = ""
    """What Redis did, when, for a loss (one clause); or why nothing could be checked."""

    @property
    def ok(self) -> bool:
        return self.consistent and not self.mismatches and not self.lost

    @property
    def verdict(self) -> str:
        """``OK``, ``LOSS`` (Redis forgot acknowledged events), ``MISMATCH in N counters`` or
        ``NOT CHECKED`` (no consistent view)."""
        if not self.consistent:
            return "NOT CHECKED"
        if self.lost:
            return "LOSS"
        return "OK" if self.ok else f"MISMATCH in {len(self.mismatches)} counters"

    def line(self) -> str:
        """One line: ``counters=N database_rows=N pending_in_redis=N ... OK|MISMATCH ...``."""
        extra = f" other_sinks={self.sinks}" if self.sinks else ""
        if self.unreadable:
            extra += f" unreadable_in_redis={self.unreadable}"
        if self.lost:
            extra += f" lost_in_redis={self.lost}"
        caveat = ("" if self.consistent else
                  f" (no consistent view in {self.tries} tries: lists appeared, or backups "
                  "moved lists while the view was read, every time; run --reconcile again)")
        if self.story:
            caveat = f" ({self.story})"
        return (f"system-wide reconciliation: redis_counters={self.counters} "
                f"database_rows={self.rows} pending_in_redis={self.pending}{extra} "
                f"{self.verdict}{caveat}")


def reconcile(adapter: RedisAdapter, table: ReactionsTable, sinks: Iterable[Sink] = (),
              seconds: float = RECONCILE_SECONDS,
              clock: Callable[[], float] = time.monotonic) -> Reconciliation:
    """Compare every counter of ``adapter``'s prefix with its rows, pending events and sinks.

    One view is a consistent cut: Redis is read in one MULTI/EXEC -- the counters and the
    length of every pending list -- then the table (its rows and ledger,
    ReactionsTable.census), then the lists' items, in chunks (_read_lists: a list only grows
    at its tail until a backup renames it away, so the length fixes the part of it that
    belongs to the view), then Redis again to prove that the table read and the items read
    are the ones of the MULTI's instant as far as this prefix's events go (_still_a_cut). No
    lock is held, no backup waits, no Redis call returns more than READ_CHUNK_ITEMS items, and
    it holds in any journal mode of the database file (WAL too). A view that missed a key
    made after the keys were chosen (the MULTI's KEYS show it), or that a backup's work in
    between made unprovable, is taken again, with the keys KEYS showed; staged lists read in
    full are not read again. The first view reads every pending event once, however long that
    takes; after it, views are taken at most _TRIES in all and for ``seconds`` seconds, then
    the result says NOT CHECKED instead of a verdict. A staged list whose rows are committed
    but which is not deleted yet is in the ledger: counted as rows, not pending (and not read).
    With a real Redis, what it forgot is added (the module's docstring). A key of ours holding
    another application's value, or a command Redis refuses, gives NOT CHECKED saying so.
    """
    try:
        return _reconcile(adapter, table, sinks, seconds, clock)
    except Exception as error:
        if not (isinstance(error, ForeignValueError) or is_refused_command(error)):
            raise
        return Reconciliation(0, 0, 0, consistent=False, tries=0,
                              story=f"Redis refused it: {error_text(error)}")


def _reconcile(adapter: RedisAdapter, table: ReactionsTable, sinks: Iterable[Sink],
               seconds: float, clock: Callable[[], float]) -> Reconciliation:
    # What Redis acknowledged, read before the view: every event it counts was acknowledged
    # before that read, so the view holds it (read after, a newer POST's count would not be).
    acknowledged = _acknowledged(adapter, table)
    deadline = None
    keys = _scanned_keys(adapter)
    staged_read: dict[tuple[str, int], tuple[Counter, int]] = {}  # they never change
    tries = 0
    while True:
        tries += 1
        replies = _read_redis(adapter, *keys)
        # After the MULTI, never before (_still_a_cut); the dataset's id too: one a first
        # backup makes meanwhile holds rows the view must see, as it does any backup's.
        source = adapter.source_id(create=False) or NO_SOURCE
        rows, ledger = table.census(source)
        view, keys = _redis_view(adapter, *keys, replies)
        lists = None
        if view is not None:
            lists = _read_lists(adapter, table, source, view, ledger, staged_read)
        if lists is not None or tries >= _TRIES:
            break
        if deadline is None:
            deadline = clock() + seconds
        elif clock() >= deadline:
            break
    if lists is None:
        return Reconciliation(0, sum(rows.values()), 0, consistent=False, tries=tries)
    counters = view[0]
    pending, unreadable = lists
    pending_counts = Counter()
    for counts in pending.values():
        pending_counts.update(counts)
    other = Counter()
    for sink in sinks:
        other.update(sink())
    mismatches, held = {}, {}
    for cell in set(counters) | set(rows) | set(pending_counts) | set(other):
        held[cell] = rows.get(cell, 0) + pending_counts[cell] + other[cell]
        if counters.get(cell, 0) != held[cell]:
            mismatches[cell] = (counters.get(cell, 0), held[cell])
    result = Reconciliation(sum(counters.values()), sum(rows.values()),
                            sum(pending_counts.values()), sum(other.values()), mismatches,
                            True, unreadable, tries)
    if acknowledged is not None:
        result.lost, result.story = _forgotten(adapter, acknowledged, source, held)
    return result


def _acknowledged(adapter: RedisAdapter, table: ReactionsTable) -> dict[str, Any] | None:
    """What the table records of this Redis and prefix's datasets: each one's row, its
    figures (ReactionsTable.loss_figures) and the losses recorded; None for the in-memory
    Redis (nothing but this process can make it forget)."""
    if adapter.place is None:
        return None
    place, prefix = adapter.place, adapter.layout.prefix
    datasets = table.datasets(place, prefix)
    return {"datasets": datasets, "losses": table.losses(place, prefix),
            "figures": {row["source"]: table.loss_figures(row["source"]) for row in datasets}}


def _forgotten(adapter: RedisAdapter, acknowledged: dict[str, Any], current: str,
               held: dict[tuple[int, str], int]) -> tuple[int, str]:
    """The events this Redis and prefix acknowledged that are nowhere now, and one clause
    saying what happened (the latest loss recorded, or what the table shows).

    For each dataset the table knows at this place and prefix: what Redis acknowledged per cell
    (ReactionsTable.loss_figures) less what is held -- rows, pending and sinks for the current
    one (``held``), rows for an earlier one not yet found gone by a backup -- or the losses
    backups recorded for it, whichever is more. For a dataset a backup found gone (ended), the
    recorded loss alone: deleting that record (docs/failures.md) clears it."""
    place, prefix = adapter.place, adapter.layout.prefix
    recorded = Counter()
    for loss in acknowledged["losses"]:
        recorded[loss["source"]] += loss["events"]
    lost, unrecorded = 0, []
    for dataset in acknowledged["datasets"]:
        source = dataset["source"]
        figures = acknowledged["figures"][source]
        if source == current:
            seen = sum(max(0, counted - held.get(cell, 0))
                       for cell, (counted, _) in figures.items())
        elif dataset["ended"] is not None:
            seen = 0
        else:
            seen = sum(max(0, counted - rows) for counted, rows in figures.values())
        seen = max(0, seen - (dataset.get("base") or 0))  # counted before: in another file
        if source != current and dataset["ended"] is None and seen:
            unrecorded.append(dataset)
        lost += max(seen, recorded[source])
    if not lost:
        return 0, ""
    losses = acknowledged["losses"]
    where = f"Redis {place}, key prefix {prefix!r}"
    if losses:
        last = losses[-1]
        what = {"emptied": "was emptied or replaced", "rewound": "went back to an earlier state",
                "deleted": f"lost the staged list {last['detail']}"}.get(last["kind"], "forgot")
        story = f"{where} {what} {between(last['since'], last['found'])}"
        if len(losses) > 1:
            story += f", and {len(losses) - 1} more time(s) before"
    elif unrecorded:
        story = (f"{where} no longer holds dataset {unrecorded[0]['source']}, last seen intact at "
                 f"{clock_time(unrecorded[0]['seen'])}: emptied or replaced")
    else:
        story = f"{where} no longer holds events it acknowledged"
    return lost, f"{story}; docs/failures.md"


def _scanned_keys(adapter: RedisAdapter) -> tuple[list[str], list[str]]:
    """This layout's counter keys and pending lists, found with SCAN (types checked)."""
    return list(adapter.counter_keys()), sorted(adapter.pending_keys())


def _read_redis(adapter: RedisAdapter, counter_keys: list[str], list_keys: list[str]
                ) -> list[Any]:
    """One MULTI/EXEC: KEYS of our two patterns (what existed at that very instant), LLEN of
    each of ``list_keys``, MGET of ``counter_keys``; the raw replies, errors as values. Each
    command is O(1) per key: the size of the lists does not hold Redis up."""
    layout = adapter.layout
    pipe = adapter.redis.pipeline(transaction=True)
    pipe.keys(layout.counter_pattern)
    pipe.keys(layout.match_data_pattern)
    for key in list_keys:
        pipe.llen(key)
    if counter_keys:
        pipe.mget(counter_keys)
    return pipe.execute(raise_on_error=False)


def _redis_view(adapter: RedisAdapter, counter_keys: list[str], list_keys: list[str],
                replies: list[Any]
                ) -> tuple[tuple[dict[tuple[int, str], int], dict[str, int]] | None,
                           tuple[list[str], list[str]]]:
    """The view in ``replies`` (_read_redis of ``counter_keys`` and ``list_keys``).

    Returns the view -- counters per (match, emoticon), each pending list's length -- or None
    if it missed a key of ours (made or staged after the keys were chosen), and the keys the
    next view should read: those KEYS showed. A key of our shape holding the other type
    (another application's string named like a list, or list named like a counter) is not
    ours: its error reply or None is left out, as is a list gone before the MULTI (length 0).
    """
    layout = adapter.layout
    emoticons = frozenset(config.EMOTICON_TYPES)
    now_counters = sorted(key for key in _decoded(replies[0])
                          if layout.parse_counter(key, emoticons) is not None)
    now_lists = sorted(key for key in _decoded(replies[1]) if layout.is_pending(key))
    missed = (set(now_counters) - set(counter_keys)) | (set(now_lists) - set(list_keys))
    next_keys = (now_counters, now_lists)
    if any(_may_be_ours(adapter, key) for key in missed):
        return None, next_keys
    values = replies[-1] if counter_keys else []
    counters = {}
    for key, value in zip(counter_keys, values):
        cell = layout.parse_counter(key, emoticons)
        counters[cell] = counters.get(cell, 0) + _int_or_zero(value)
    lengths = {key: length for key, length in zip(list_keys, replies[2:])
               if not isinstance(length, Exception) and length}  # WRONGTYPE: not ours
    return (counters, lengths), next_keys


READ_CHUNK_ITEMS = 10_000
"""List items the reconciliation reads per round trip (LRANGEs in one pipeline) after a
view's MULTI: what bounds its memory and the time one of its Redis calls takes."""


def _read_lists(adapter: RedisAdapter, table: ReactionsTable, source: str,
                view: tuple[dict[tuple[int, str], int], dict[str, int]], ledger: frozenset[str],
                staged_read: dict[tuple[str, int], tuple[Counter, int]]
                ) -> tuple[dict[str, Counter], int] | None:
    """The events per cell of each pending list of ``view`` -- its first ``length`` items, the
    part the view's MULTI fixed -- and the unreadable items: ``({key: cells}, unreadable)``, or
    None if the view cannot be completed (_still_a_cut). A staged list in ``ledger`` is rows
    already: not read.

    Staged lists go first, oldest first as the backup moves them: each is read in full or
    found shorter (a backup committed and deleted it since the table was read: the view cannot
    count it). Those read in full go to ``staged_read`` for the next views: a staged list
    never changes. Then the live lists; then Redis again (_still_a_cut)."""
    counters, lengths = view
    layout = adapter.layout
    oldest_first = sorted((key for key in lengths if layout.is_staged(key) and key not in ledger),
                          key=lambda key: (layout.staged_batch(key), key))
    staged = {key: lengths[key] for key in oldest_first}
    unread = {key: length for key, length in staged.items() if (key, length) not in staged_read}
    complete = True
    for key, cells in _read_prefixes(adapter, unread, whole=False).items():
        if cells is None:
            complete = False  # committed and deleted since the table was read: not countable
        else:
            staged_read[key, unread[key]] = cells
    if not complete:
        return None
    live = {key: length for key, length in lengths.items() if layout.is_match_data(key)}
    found = _read_prefixes(adapter, live)
    if found is None or not _still_a_cut(adapter, table, source, counters, lengths, ledger,
                                         read_now=unread):
        return None
    for key, length in staged.items():
        found[key] = staged_read[key, length]
    return ({key: cells for key, (cells, _) in found.items()},
            sum(bad for _, bad in found.values()))


def _read_prefixes(adapter: RedisAdapter, lengths: dict[str, int], whole: bool = True
                   ) -> dict[str, tuple[Counter, int] | None] | None:
    """``{key: (cells, unreadable)}`` of the first ``lengths[key]`` items of each list, read
    with LRANGEs of at most READ_CHUNK_ITEMS items in all per round trip (a pipeline, no
    transaction); None for a list that held fewer items (with ``whole``, the result is None)."""
    found: dict[str, tuple[Counter, int] | None] = {key: (Counter(), 0) for key in lengths}
    for batch in _batches(lengths):
        pipe = adapter.redis.pipeline(transaction=False)
        for key, start, stop in batch:
            pipe.lrange(key, start, stop - 1)
        for (key, start, stop), texts in zip(batch, pipe.execute(raise_on_error=False)):
            if isinstance(texts, Exception) or len(texts) < stop - start:
                if whole:
                    return None
                found[key] = None  # WRONGTYPE or shorter: not the list the view saw
            elif found[key] is not None:
                cells, bad = _named_cells(texts)
                found[key][0].update(cells)
                found[key] = (found[key][0], found[key][1] + bad)
    return found


def _batches(lengths: dict[str, int]) -> Iterator[list[tuple[str, int, int]]]:
    """The ranges ``(key, start, stop)`` covering the first ``lengths[key]`` items of each
    list, in order, in batches of at most READ_CHUNK_ITEMS items."""
    batch, items = [], 0
    for key, length in lengths.items():
        for start in range(0, length, READ_CHUNK_ITEMS):
            stop = min(start + READ_CHUNK_ITEMS, length)
            if batch and items + stop - start > READ_CHUNK_ITEMS:
                yield batch
                batch, items = [], 0
            batch.append((key, start, stop))
            items += stop - start
    if batch:
        yield batch


def _still_a_cut(adapter: RedisAdapter, table: ReactionsTable, source: str,
                 counters: dict[tuple[int, str], int], lengths: dict[str, int],
                 ledger: frozenset[str], read_now: Collection[str] = ()) -> bool:
    """True if the view -- ``counters`` and the pending lists of ``lengths``, read in one
    MULTI -- and the table read after it (whose ledger is ``ledger``) count each event of the
    prefix once, and only the events the counters count. Read after the table.

    A backup that committed between the MULTI and the table read is harmless when the table
    says so. It commits a staged list's rows together with the list's ledger row (only while
    the list holds items: backup_data.py), deletes the list after, and drops the ledger row
    only after that. So a staged list of the view is in the ledger read exactly if its rows
    are in the table read -- then it counts as rows, else as pending -- unless it was deleted
    and its ledger row dropped before the table was read. Two cases are checked here:

    - a staged list of the view, not in the ledger read and gone from Redis now, must be in
      the ledger now (committed after the table was read); if not, it may have been committed,
      deleted and forgotten before (its events would count twice): not a cut. The lists of
      ``read_now`` were read in full after the table was: they were there then;
    - a list a backup renamed after the MULTI (a live list of the view, or one made since) has
      rows the table may already hold that the view counts as pending, or the counters did not
      count yet. A POST or an ingest flush grows a match's list and its counters together, in
      one MULTI/EXEC, so a live list is still the view's exactly when its length now is the
      view's length plus what its match's counters gained since (_same_lists)."""
    layout = adapter.layout
    staged = [key for key in lengths
              if layout.is_staged(key) and key not in ledger and key not in read_now]
    if staged:
        pipe = adapter.redis.pipeline(transaction=False)
        for key in staged:
            pipe.exists(key)
        gone = {key for key, there in zip(staged, pipe.execute()) if not there}
        if gone and not gone <= table.census(source)[1]:
            return False
    return _same_lists(adapter, counters, lengths)


_CHECK_MATCHES = 1_000  # matches checked per MULTI by _same_lists


def _same_lists(adapter: RedisAdapter, counters: dict[tuple[int, str], int],
                lengths: dict[str, int]) -> bool:
    """True if no match's live list was renamed since the view of ``counters`` and
    ``lengths``: for every match of the view, its list's length now is its length then plus
    what its counters gained since (each match's list and counters read in one MULTI), and no
    counter of another match has appeared since (its list may have been renamed already)."""
    layout = adapter.layout
    emoticons = tuple(config.EMOTICON_TYPES)
    matches = sorted({match_id for match_id, _ in counters}
                     | {layout.list_match_id(key) for key in lengths if layout.is_match_data(key)})
    known = {layout.counter_key(match_id, emoticon) for match_id in matches
             for emoticon in emoticons}
    for first in range(0, max(len(matches), 1), _CHECK_MATCHES):
        chunk = matches[first:first + _CHECK_MATCHES]
        pipe = adapter.redis.pipeline(transaction=True)
        if not first:
            pipe.keys(layout.counter_pattern)
        for match_id in chunk:
            pipe.llen(layout.match_data_key(match_id))
            pipe.mget([layout.counter_key(match_id, emoticon) for emoticon in emoticons])
        replies = pipe.execute(raise_on_error=False)
        if not first:
            new = [key for key in _decoded(replies.pop(0)) if key not in known
                   and layout.parse_counter(key, emoticons) is not None]
            if any(_may_be_ours(adapter, key) for key in new):
                return False
        for match_id, length, values in zip(chunk, replies[::2], replies[1::2]):
            length = 0 if isinstance(length, Exception) else length  # not ours: not counted
            values = [] if isinstance(values, Exception) else values
            gained = sum(_int_or_zero(value) - counters.get((match_id, emoticon), 0)
                         for emoticon, value in zip(emoticons, values))
            if length != lengths.get(layout.match_data_key(match_id), 0) + gained:
                return False
    return True


def _decoded(keys: list[Any]) -> list[str]:
    """Key names as str; a name that is not UTF-8 cannot be ours and is left out."""
    names = []
    for key in keys:
        if isinstance(key, bytes):
            try:
                key = key.decode()
            except UnicodeDecodeError:
                continue
        names.append(key)
    return names


def _may_be_ours(adapter: RedisAdapter, key: str) -> bool:
    """True unless ``key`` (of our shape, unread) holds the other type: another app's value."""
    kind = adapter.redis.type(key)
    kind = kind.decode() if isinstance(kind, bytes) else kind
    wanted = "list" if adapter.layout.is_pending(key) else "string"
    return kind in (wanted, "none")


def _int_or_zero(value: Any) -> int:
    """A counter's value; 0 for None (gone) or a string that is not an integer (not ours)."""
    try:
        return int(value or 0)
    except ValueError:
        return 0


def _named_cells(texts: list[Any]) -> tuple[Counter, int]:
    """The cells a list's items name (records.named_cell), counted, and how many items name
    none (not JSON, not one object, no int match_id and str emoticon_type): "unreadable".
    One json.loads for a clean list."""
    try:
        if borders_kept(texts):  # else items could join into objects none of them is
            cells = list(map(named_cell, decode_events(texts)))
            if len(cells) == len(texts) and None not in cells:
                return Counter(cells), 0
    except UNDECODABLE:  # JSONDecodeError, UnicodeDecodeError, nested too deep
        pass
    counted = count_cells(texts)
    return counted, len(texts) - sum(counted.values())

