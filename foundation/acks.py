"""What this process saw a shared Redis acknowledge, and the moment it saw Redis forget.

On a real Redis a POST's INCR reply is the counter's value once its event was acknowledged.
``Acknowledged`` keeps, per dataset and ``(match_id, emoticon)``, the highest such value (a
"mark"). Which dataset: one write in READ_EVERY (and the first, and the next after a sign of
trouble) also reads the dataset id (the key ``{prefix}live-reactions:dataset``) in its
MULTI/EXEC; the counts of the writes in between are held back until the next read confirms the
same dataset (then they are its marks) or shows another one (then they are dropped: they may
be either's). Redis forgot something when a read shows another dataset id (emptied, or
replaced) or a reply a counter at or below its mark (rewound: a restart from an older snapshot,
a failover to a replica that lagged; and emptied, seen at once). The first such sign is kept as
a ``Lapse`` until someone takes it to report it; the marks are taken, a batch at a time, to be
written to the database, where they outlive Redis (db.ReactionsTable.record_counts).

Nothing here talks to Redis or the database: the adapter feeds it, the live run reads it.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any, Iterable

__all__ = ["Acknowledged", "Lapse", "UNREAD", "READ_EVERY"]

Cell = tuple[int, str]

UNREAD = object()
"""note(dataset=UNREAD): the write did not read the dataset id."""
READ_EVERY = 64
"""A write reads the dataset id once in this many (read_due). The read is one more command in
a POST's MULTI/EXEC: about 15% of a POST on a local Redis when every POST made it, 0.3% so."""


@dataclass(frozen=True)
class Lapse:
    """The first sign that Redis forgot what it had acknowledged."""

    dataset: str
    """The dataset id the earlier acknowledgements were made in."""
    since: float
    """The last moment (Unix seconds) this process saw it intact: its last POST acknowledged
    in it before the sign."""
    found: float
    """When the sign came (Unix seconds)."""
    now: str | None
    """The dataset id Redis answered then (None: the id key is gone; ``dataset``: the same
    dataset, whose counter went back)."""
    marks: dict[Cell, int] = field(default_factory=dict)
    """The highest value of each counter acknowledged in ``dataset`` before the sign."""
    cell: Cell | None = None
    """A counter that went back, if one did, with its ``answered`` value (at or below its mark)."""
    answered: int = 0


class Acknowledged:
    """Per dataset id and cell, the highest counter value Redis acknowledged to this process.

    ``note()`` is called after each successful write (any thread); ``take_lapse()`` and
    ``take_marks()`` hand over what was found and what is new since the last call. A lock
    guards it all; each call is a few dictionary operations.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.dataset: str | None = None  # the id the latest write answered
        self._acked: dict[str, dict[Cell, int]] = {}  # from this process's own writes
        self._marks: dict[str, dict[Cell, int]] = {}  # those and the counters read (see())
        self._told: set[str] = set()  # datasets whose lapse was found: one each
        self._fell: dict[str, dict[Cell, int]] = {}  # the first reply at or below its mark
        self.lapsed = threading.Event()
        """Set when a lapse is found: a watcher writes the marks at once (take_lapse clears)."""
        self._writes = 0
        self._unsure = True  # the dataset is not known (yet, or since a lapse): read it
        self._held: dict[Cell, int] = {}  # counts of writes that did not read the dataset
        self._since: dict[str, float] = {}  # dataset -> last write acknowledged in it, intact
        self._dirty: dict[str, dict[Cell, int]] = {}
        self._lapse: Lapse | None = None

    def confirm(self, dataset: str | None, when: float) -> None:
        """The dataset id read now (not by a write): the counts held since the last read are
        its marks if it is the same, else dropped (note with no counts)."""
        self.note(dataset, [], when)

    def read_due(self) -> bool:
        """Count one write; True if it should read the dataset id (the first, one in
        READ_EVERY, and the next after a sign of trouble)."""
        with self._lock:
            self._writes += 1
            return self._unsure or self._writes % READ_EVERY == 1

    def note(self, dataset: Any, counts: Iterable[tuple[Cell, int]], when: float) -> None:
        """One write acknowledged: ``counts`` are its cells' counter values after it (INCR or
        INCRBY replies), in dataset ``dataset`` (None: Redis holds no dataset id; UNREAD: the
        write did not read it), at ``when`` (Unix seconds)."""
        with self._lock:
            if dataset is UNREAD:
                self._hold(counts, when)
                return
            previous = self.dataset
            if dataset != previous and previous is not None:
                if dataset is None:
                    # Emptied: a count made after it would have started again, at or below
                    # its mark (seen in _hold); so the held counts of marked cells are before.
                    acked = self._acked.get(previous, {})
                    self._mark(previous, [(cell, count) for cell, count in self._held.items()
                                          if cell in acked], when)
                self._lapsed(previous, when, dataset)
                self._held.clear()  # of the old dataset or the new one: unknown, dropped
            held, self._held = self._held, {}
            self.dataset, self._unsure = dataset, False
            if dataset is None:  # an unmarked Redis: nothing to compare with, nothing to keep
                return
            self._mark(dataset, held.items(), when)
            acked = self._acked[dataset]
            intact = True
            for cell, count in counts:
                # Compared with this process's own replies only: a counter read by a backup
                # may be newer than a reply noted after it. One thread writes at a time.
                mark = acked.get(cell)
                if mark is not None and count <= mark:
                    self._lapsed(dataset, when, dataset, cell, count)
                    self._fell.setdefault(dataset, {}).setdefault(cell, count)
                    intact = False
                    continue  # the mark stays: Redis did acknowledge that much
                self._mark(dataset, [(cell, count)], when)
            if intact:
                self._since[dataset] = when

    def _mark(self, dataset: str, counts: Iterable[tuple[Cell, int]], when: float) -> None:
        """Counts acknowledged in ``dataset``: its marks (this process's and all)."""
        acked = self._acked.setdefault(dataset, {})
        marks = self._marks.setdefault(dataset, {})
        dirty = self._dirty.setdefault(dataset, {})
        for cell, count in counts:
            if count > acked.get(cell, 0):
                acked[cell] = count
            if count > marks.get(cell, 0):
                marks[cell] = dirty[cell] = count

    def _hold(self, counts: Iterable[tuple[Cell, int]], when: float) -> None:
        """The counts of a write that did not read the dataset id: a count at or below its
        mark is a sign of trouble at once (the counts held until then were made before it, in
        the dataset last read: they are its marks); the others wait for the next read."""
        dataset = None if self._unsure else self.dataset
        acked = self._acked.get(dataset, {}) if dataset is not None else {}
        for cell, count in counts:
            mark = acked.get(cell)
            if mark is not None and count <= mark:
                held, self._held = self._held, {}
                self._mark(dataset, held.items(), when)
                self._lapsed(dataset, when, dataset, cell, count)
                self._fell.setdefault(dataset, {}).setdefault(cell, count)
                self._unsure = True
                continue
            if count > self._held.get(cell, 0):
                self._held[cell] = count

    def see(self, dataset: str, counts: dict[Cell, int]) -> None:
        """Counter values read in ``dataset`` (a backup's staging): marks, no lapse check."""
        with self._lock:
            marks = self._marks.setdefault(dataset, {})
            dirty = self._dirty.setdefault(dataset, {})
            for cell, count in counts.items():
                if count > marks.get(cell, 0):
                    marks[cell] = dirty[cell] = count

    def _lapsed(self, dataset: str, when: float, now: str | None, cell: Cell | None = None,
                answered: int = 0) -> None:
        if dataset not in self._told:
            self._told.add(dataset)
            self._lapse = Lapse(dataset, self._since.get(dataset, when), when, now,
                                dict(self._marks.get(dataset, {})), cell, answered)
            self.lapsed.set()

    def take_lapse(self) -> Lapse | None:
        """The lapse found since the last call, if any (each is handed over once)."""
        with self._lock:
            lapse, self._lapse = self._lapse, None
            self.lapsed.clear()
            return lapse

    def take_marks(self) -> dict[str, dict[Cell, int]]:
        """``{dataset: {cell: mark}}`` for the marks that rose since the last call."""
        with self._lock:
            dirty, self._dirty = self._dirty, {}
            return {dataset: marks for dataset, marks in dirty.items() if marks}

    def restore(self, marks: dict[str, dict[Cell, int]]) -> None:
        """Hand back marks taken (take_marks) but not written: taken again next time."""
        with self._lock:
            for dataset, cells in marks.items():
                dirty = self._dirty.setdefault(dataset, {})
                for cell, count in cells.items():
                    dirty[cell] = max(count, dirty.get(cell, 0))

    def since(self, dataset: str) -> float | None:
        """The last time (Unix seconds) a write of this process was acknowledged in
        ``dataset`` with every counter intact; None if none was."""
        with self._lock:
            return self._since.get(dataset)

    def fell(self, dataset: str) -> dict[Cell, int]:
        """Per cell, the first counter value this process was answered at or below its mark
        in ``dataset`` (what the counter went back to, plus the writes since, its own one)."""
        with self._lock:
            return dict(self._fell.get(dataset, {}))

    def marks(self, dataset: str) -> dict[Cell, int]:
        """A copy of the marks of ``dataset``."""
        with self._lock:
            return dict(self._marks.get(dataset, {}))
