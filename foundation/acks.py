"""What this process saw a shared Redis acknowledge, and the moment it saw Redis forget.

On a real Redis every POST's MULTI/EXEC also reads the dataset id (the key
``{prefix}live-reactions:dataset``): its INCR reply is the counter's value once the event was
acknowledged, in that dataset. ``Acknowledged`` keeps, per dataset and ``(match_id, emoticon)``,
the highest such value (a "mark"). Redis forgot something when a reply shows another dataset id
(emptied, or replaced) or a counter at or below its mark (rewound: a restart from an older
snapshot, a failover to a replica that lagged). The first such sign is kept as a ``Lapse`` until
someone takes it to report it; the marks are taken, a batch at a time, to be written to the
database, where they outlive Redis (db.ReactionsTable.record_counts).

Nothing here talks to Redis or the database: the adapter feeds it, the live run reads it.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Iterable

__all__ = ["Acknowledged", "Lapse"]

Cell = tuple[int, str]


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
        self._since: dict[str, float] = {}  # dataset -> last write acknowledged in it, intact
        self._dirty: dict[str, dict[Cell, int]] = {}
        self._lapse: Lapse | None = None

    def note(self, dataset: str | None, counts: Iterable[tuple[Cell, int]], when: float) -> None:
        """One write acknowledged: ``counts`` are its cells' counter values after it (INCR or
        INCRBY replies), in dataset ``dataset`` (None: Redis holds no dataset id), at ``when``
        (Unix seconds)."""
        with self._lock:
            previous = self.dataset
            if dataset != previous and previous is not None:
                self._lapsed(previous, when, dataset)
            self.dataset = dataset
            if dataset is None:  # an unmarked Redis: nothing to compare with, nothing to keep
                return
            acked = self._acked.setdefault(dataset, {})
            marks = self._marks.setdefault(dataset, {})
            dirty = self._dirty.setdefault(dataset, {})
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
                acked[cell] = count
                if count > marks.get(cell, 0):
                    marks[cell] = dirty[cell] = count
            if intact:
                self._since[dataset] = when

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
