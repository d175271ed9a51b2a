"""The Redis layer of the reactions: RedisAdapter, the key layout, and the process-wide client.

``RedisAdapter`` is the reactions' view of Redis (seed: "RedisAdapter layer"). Its ``KeyLayout``
owns the key formats -- ``{prefix}{match_id}_{emoticon_type}`` for counters,
``{prefix}match_data_{match_id}`` for the event lists, with ``KEY_PREFIX`` empty by default (the
seed's names) -- and it does the domain operations: record one reaction or one ingest flush, read
one match's counters, move the event lists out for the write-behind backup, and show a snapshot
in the seed's format. Keys of other shapes (other applications', other prefixes') are never
counted, moved or deleted.

It talks to any client with redis-py's API. By default that is the process-wide ``InMemoryRedis``
(foundation/in_memory_redis/), the in-process stand-in for a Redis server; ``set_adapter``
installs one over a real Redis (redis_client.connect), whose replies may be str or bytes.
"""

from __future__ import annotations

import functools
import itertools
import json
import logging
import operator
import re
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator

import config
from foundation.acks import UNREAD, Acknowledged
from foundation.errors import ForeignValueError, WrongTypeError
from foundation.in_memory_redis import (DataError, InMemoryRedis, OutOfMemoryError, RedisError,
                                        ResponseError)
from foundation.ingest import IngestBuffer
from foundation.records import UNDECODABLE, named_cell
from foundation.shown import cut

__all__ = [
    "RedisError", "ResponseError", "DataError", "OutOfMemoryError", "InMemoryRedis",
    "is_out_of_memory", "is_connection_error",
    "get_redis", "RedisAdapter", "get_adapter", "set_adapter", "KeyLayout", "SEED_LAYOUT",
    "counter_key", "match_data_key", "staging_key", "decode_events", "encode_event", "make_event",
    "WrongTypeError", "ForeignValueError", "error_text", "get_ingest_buffer",
    "close_ingest_buffer", "held_events", "redis_place", "Staging", "is_refused_command",
]

logger = logging.getLogger(__name__)

_server: InMemoryRedis | None = None
_server_lock = threading.Lock()


def get_redis() -> InMemoryRedis:
    """The process-wide InMemoryRedis (created on first use), as a shared Redis server is, with
    ``maxmemory`` = config.REDIS_MAXMEMORY_BYTES."""
    global _server
    if _server is None:  # checked again under the lock: only the first calls pay for it
        with _server_lock:
            if _server is None:
                _server = InMemoryRedis(maxmemory=config.REDIS_MAXMEMORY_BYTES)
    return _server


def is_out_of_memory(error: BaseException) -> bool:
    """True for Redis's OOM answer (over maxmemory, noeviction), as InMemoryRedis or redis-py
    raises it (both name the class OutOfMemoryError; redis-py is not imported here)."""
    return isinstance(error, OutOfMemoryError) or type(error).__name__ == "OutOfMemoryError"


def is_refused_command(error: BaseException) -> bool:
    """True for Redis refusing a command itself: an ACL without it (NOPERM, redis-py's
    NoPermissionError) or a command renamed or disabled by the operator ("unknown command")."""
    text = str(error)
    return (type(error).__name__ == "NoPermissionError" or text.startswith("NOPERM")
            or text.lower().startswith("unknown command"))


def redis_place(client: Any) -> str | None:
    """Where ``client``'s Redis is, for a log line and the database's record of its datasets:
    ``host:port/db`` or ``unix:path/db`` (never a password); None for an InMemoryRedis, which
    lives and dies with this process (nothing else can empty or rewind it)."""
    if isinstance(client, InMemoryRedis):
        return None
    kwargs = getattr(getattr(client, "connection_pool", None), "connection_kwargs", None)
    if not isinstance(kwargs, dict):
        return type(client).__name__
    if kwargs.get("path"):
        return f"unix:{kwargs['path']}/{kwargs.get('db', 0)}"
    return f"{kwargs.get('host', 'localhost')}:{kwargs.get('port', 6379)}/{kwargs.get('db', 0)}"


def is_connection_error(error: BaseException) -> bool:
    """True for a lost or refused connection to Redis: OSError, or redis-py's ConnectionError
    and TimeoutError (told by name, as redis-py is not imported here)."""
    return isinstance(error, OSError) or type(error).__name__ in ("ConnectionError",
                                                                  "TimeoutError")


# -- the reactions' key layout: the one place that knows it ------------------------------------

_GLOB_SPECIAL = re.compile(r"([*?\[\]\\])")
_PREFIX_MAX_CHARS = 200


def error_text(error: BaseException) -> str:
    """``ClassName: message`` for a log line. Not repr(): redis-py 8 spells its errors'
    repr as ``network:TimeoutError``, which hides the message."""
    return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__


def _utf8(text: str) -> bool:
    """True if ``text`` can be sent to Redis: redis-py encodes key names as UTF-8."""
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


_LIST_MATCH_ID = re.compile(r"match_data_([1-9][0-9]*)")
NAMESPACE = "live-reactions:"
"""Where the product's own keys live, after the prefix: not a name another application uses."""
LEGACY_SOURCE = "reactions_source"
"""The previous version's name of the dataset id key (a generic name another application may
hold a value at: read only if it is a string that looks like an id)."""


def _glob_escape(text: str) -> str:
    """``text`` as a literal inside a Redis glob pattern (backslash before * ? [ ] \\)."""
    return _GLOB_SPECIAL.sub(r"\\\1", text)


class KeyLayout:
    """The reactions' key names under one ``prefix`` (config.KEY_PREFIX; "" = the seed's names).

    - counter: ``{prefix}{match_id}_{emoticon_type}`` (seed: ``5_heart``)
    - event list: ``{prefix}match_data_{match_id}`` (seed: ``match_data_5``)
    - staged list: ``{prefix}match_data_{match_id}:backup:{batch}`` (backup_data.py)
    - the product's own keys, under ``{prefix}live-reactions:`` (NAMESPACE), a name no other
      application is likely to use: the dataset id (``dataset``), the backup generation
      (``generation``), each batched ingest's marker (``ingest:{flush_id}``) and the start-up
      probe (``probe:{token}``). Before, the dataset id was ``{prefix}reactions_source``
      (LEGACY_SOURCE): a Redis holding it as a string is taken over (RedisAdapter.source_id).

    Only keys of exactly these shapes are this run's: the ``is_*`` tests below decide what the
    adapter counts, moves or deletes, so another application's keys in the same Redis (or the
    keys of another prefix) are never touched. A staged key cannot be read as a key of any
    prefix's other shapes (its tail ``:backup:{batch}`` holds a colon, which no live list,
    counter or marker ends with), and the prefix it embeds is the text before its last
    ``match_data_``, so it is recognised only by the layout of that very prefix.

    Raises ValueError for a prefix that is not a str, is longer than 200 characters, ends in a
    digit (``"a1"`` + ``"5_heart"`` would read as counter ``15_heart`` of prefix ``"a"``) or
    cannot be sent to Redis (not encodable as UTF-8: a lone surrogate such as ``"\\udcff"``).
    """

    def __init__(self, prefix: str = "") -> None:
        if (type(prefix) is not str or len(prefix) > _PREFIX_MAX_CHARS or prefix[-1:].isdigit()
                or not _utf8(prefix)):
            raise ValueError(f"invalid key prefix {cut(repr(prefix))}: must be a str of at most "
                             f"{_PREFIX_MAX_CHARS} characters, valid UTF-8, not ending in a "
                             "digit, e.g. 'live:'")
        self.prefix = prefix
        glob, literal = _glob_escape(prefix), re.escape(prefix)
        self.match_data_pattern = glob + "match_data_*"  # staged lists match it too
        self.staging_pattern = glob + "match_data_*:backup:*"
        self.counter_pattern = glob + "[1-9]*_*"
        self._counter = re.compile(literal + r"([1-9][0-9]*)_(.+)", re.DOTALL)
        self._match_data = re.compile(literal + r"match_data_[1-9][0-9]*")
        self._staged = re.compile(literal + r"match_data_[1-9][0-9]*:backup:([0-9A-Za-z.]+)")

    def counter_key(self, match_id: int | str, emoticon_type: str) -> str:
        """The counter of one emoticon in one match: ``{prefix}{match_id}_{emoticon_type}``."""
        return f"{self.prefix}{match_id}_{emoticon_type}"

    def match_data_key(self, match_id: int | str) -> str:
        """The list of one match's event records: ``{prefix}match_data_{match_id}``."""
        return f"{self.prefix}match_data_{match_id}"

    def staging_key(self, key: str, batch: str) -> str:
        """Where backup run ``batch`` parks the list ``key`` while it copies it to the table.

        ``match_data_5:backup:{batch}`` is not a live list, so new events of match 5 start a
        fresh list meanwhile. Each run has its own ``batch`` (ASCII letters, digits and dots,
        ordered by time), so a list left by a failed run is never overwritten, and sorting
        staged keys by batch gives their age order.
        """
        return f"{key}:backup:{batch}"

    @property
    def source_key(self) -> str:
        """``{prefix}live-reactions:dataset``: the id of this Redis dataset under this prefix
        (RedisAdapter.source_id), which the table records with the rows backed up from it. Its
        disappearance means this Redis was emptied or replaced (docs/real-redis.md)."""
        return f"{self.prefix}{NAMESPACE}dataset"

    @property
    def legacy_source_key(self) -> str:
        """``{prefix}reactions_source``: where the previous version kept the dataset id."""
        return f"{self.prefix}{LEGACY_SOURCE}"

    @property
    def generation_key(self) -> str:
        """``{prefix}live-reactions:generation``: a counter every backup step increments (each
        staging and each deletion of a moved list), so a Redis that went back to an earlier
        state shows a lower value than the database recorded (backup_data.py)."""
        return f"{self.prefix}{NAMESPACE}generation"

    def ingest_marker_key(self, flush_id: str) -> str:
        """The key an ingest flush sets in its own MULTI/EXEC, so a retry can tell it happened."""
        return f"{self.prefix}{NAMESPACE}ingest:{flush_id}"

    def probe_key(self, token: str) -> str:
        """A key no one uses, for the start-up check of the commands Redis allows."""
        return f"{self.prefix}{NAMESPACE}probe:{token}"

    @property
    def own_keys(self) -> tuple[str, ...]:
        """The product's keys of fixed name, each holding a string (its value is ours)."""
        return (self.source_key, self.generation_key)

    def parse_counter(self, key: str, emoticon_types: Iterable[str]) -> tuple[int, str] | None:
        """``(match_id, emoticon_type)`` if ``key`` is one of this layout's counters, else None."""
        found = self._counter.fullmatch(key)
        if found is None or found.group(2) not in emoticon_types:
            return None
        return int(found.group(1)), found.group(2)

    def is_match_data(self, key: str) -> bool:
        """True if ``key`` is a live event list of this layout."""
        return self._match_data.fullmatch(key) is not None

    def is_staged(self, key: str) -> bool:
        """True if ``key`` is a staged event list of this layout."""
        return self._staged.fullmatch(key) is not None

    def staged_batch(self, key: str) -> str:
        """The backup run (batch) that staged ``key``, one of this layout's staged lists."""
        return self._staged.fullmatch(key).group(1)

    def is_pending(self, key: str) -> bool:
        """True if ``key`` holds events of this layout not yet in the table (live or staged)."""
        return self.is_match_data(key) or self.is_staged(key)

    def list_match_id(self, key: str) -> int:
        """The match whose events the live or staged list ``key`` holds: the number after the
        first ``match_data_`` past the prefix (a batch name holds no ``_``)."""
        return int(_LIST_MATCH_ID.search(key, len(self.prefix)).group(1))


SEED_LAYOUT = KeyLayout("")
"""The seed's key names (no prefix)."""
counter_key = SEED_LAYOUT.counter_key
match_data_key = SEED_LAYOUT.match_data_key
staging_key = SEED_LAYOUT.staging_key
MATCH_DATA_PATTERN = SEED_LAYOUT.match_data_pattern
STAGING_PATTERN = SEED_LAYOUT.staging_pattern


_POST_KEYS_CACHED = 30_000  # about 3 MB of keys: 10,000 matches of 3 emoticons


@functools.lru_cache(maxsize=4096)
def _counter_keys(layout: KeyLayout, match_id: int,
                  emoticon_types: tuple[str, ...]) -> list[str]:
    """One match's counter keys, built once: GET asks for the same few matches every tick."""
    return [layout.counter_key(match_id, emoticon) for emoticon in emoticon_types]


INGEST_MARKER_TTL_SECONDS = 86_400
"""How long an ingest marker lives after its buffer's last flush, in seconds (a day). A clean
stop deletes it; a killed poster's marker goes by itself then. A flush in doubt must be retried
within that time (Redis back within a day), or its marker may be gone and the retry apply it
again."""
_CELL_OF_EVENT = operator.itemgetter("match_id", "emoticon_type")  # in C: once per buffered POST
_READ_CHUNK = 1_000
"""Events per LRANGE while reading a staged list: it bounds the memory a read holds, and the
time the backup holds the GIL in one C call, decoding a chunk in one json.loads (about 1 ms at
1,000 events, 10 ms at 10,000: the GETs of the event loop wait that long; docs/performance.md)."""


@functools.lru_cache(maxsize=64)
def _json_string(text: str) -> str:
    return json.dumps(text)


def encode_event(event: dict[str, Any]) -> str:
    """An event record ``{user_id, emoticon_type, timestamp, match_id}`` as the JSON string
    stored in its Redis list; the same text ``json.dumps(event)`` gives.

    Written out rather than json.dumps because it runs once per POST and is 4x faster.
    """
    return (f'{{"user_id": {event["user_id"]}, '
            f'"emoticon_type": {_json_string(event["emoticon_type"])}, '
            f'"timestamp": {event["timestamp"]!r}, "match_id": {event["match_id"]}}}')


def encode_events(events: Iterable[dict[str, Any]]) -> list[str]:
    """``[encode_event(event) for event in events]``: an ingest flush encodes a thousand at once."""
    return [encode_event(event) for event in events]  # not map(): its calls cost more (3.11)


def decode_events(texts: list[str] | list[bytes]) -> list[dict[str, Any]]:
    """The event records ``{user_id, emoticon_type, timestamp, match_id}`` stored as ``texts``
    (str, or bytes from a client that does not decode replies), decoded in one json.loads call
    (several times faster than one call per event)."""
    if texts and isinstance(texts[0], bytes):
        return json.loads(b"[" + b",".join(texts) + b"]")
    return json.loads("[" + ",".join(texts) + "]")


def count_cells(texts: Iterable[str] | Iterable[bytes]) -> Counter:
    """Items per ``(match_id, emoticon_type)`` among stored ``texts``, each decoded on its
    own; an item that is not one event naming a cell (poison) is not counted."""
    counted: Counter = Counter()
    for text in texts:
        try:
            decoded = decode_events([text])
        except UNDECODABLE:
            continue
        cell = named_cell(decoded[0]) if len(decoded) == 1 else None
        if cell is not None:
            counted[cell] += 1
    return counted


def _counts(emoticon_types: tuple[str, ...], values: list[Any], keys: list[str],
            unreadable: Any) -> dict[str, int | None]:
    """``{emoticon: count}`` from one MGET's replies of ``keys``; 0 where the counter is
    missing, None where it holds a string that is not an integer (another application's
    value), each such key passed to ``unreadable(key, value)``."""
    counts = {}
    try:
        for emoticon, value in zip(emoticon_types, values):  # a loop: cheaper than a
            counts[emoticon] = 0 if value is None else int(value)  # comprehension (3.11)
    except ValueError:
        for key, emoticon, value in zip(keys, emoticon_types, values):
            counts[emoticon] = 0 if value is None else _int_or_none(value)
            if counts[emoticon] is None:
                unreadable(key, value)
    return counts


def _int_or_none(value: Any) -> int | None:
    """A counter's value as an int; None for a missing key or a value that is not one."""
    try:
        return None if value is None else int(value)
    except (TypeError, ValueError):
        return None


def _cells(events: list[dict[str, Any]]) -> Counter:
    """``{(match_id, emoticon_type): events}`` in first-seen order: one INCRBY each."""
    return Counter(map(_CELL_OF_EVENT, events))


def _by_match(events: list[dict[str, Any]]) -> dict[int, list[dict[str, Any]]]:
    """``{match_id: its events in order}`` in first-seen order: one RPUSH each."""
    by_match: dict[int, list[dict[str, Any]]] = {}
    for event in events:
        by_match.setdefault(event["match_id"], []).append(event)
    return by_match


UNRECORDED_SOURCE = "unrecorded"
"""The source of rows backed up while Redis was too full to store its id (see source_id)."""


def _text(reply: Any) -> Any:
    """A key name or status reply as str, whichever way the client decodes replies.

    redis-py left at ``decode_responses=False`` answers bytes; a bytes key name formatted into a
    staging key would become ``backup_..._b'match_data_1'`` and strand its events.
    """
    return reply.decode(errors="backslashreplace") if isinstance(reply, bytes) else reply


_DATASET_ID = re.compile(r"[0-9a-f]{32}")  # uuid4().hex, as source_id makes them


@dataclass
class Staging:
    """What one backup's staging step saw and did, in one MULTI/EXEC on a shared Redis
    (RedisAdapter.stage_checkpoint)."""

    staged: list[str]
    """The staged keys: each live list renamed for this backup."""
    dataset: str | None = None
    """The dataset id Redis held at that instant (None: its key is gone)."""
    generation: int = 0
    """The backup generation after this step's INCR (or, ``counted`` False, as it was)."""
    counted: bool = True
    """False when Redis refused the INCR (over maxmemory): ``generation`` is the value read."""
    counters: dict[tuple[int, str], int] = field(default_factory=dict)
    """The configured counters at that instant (missing and unreadable ones left out)."""
    lengths: dict[str, int] = field(default_factory=dict)
    """Items of each staged and leftover list at that instant (0: gone)."""
    heads: dict[str, str] = field(default_factory=dict)
    """The first item of each staged and leftover list at that instant (a list found empty
    later was moved by another backup if that item is a row: backup_data.py)."""


def make_event(user_id: int, match_id: int, emoticon_type: str,
               timestamp: float) -> dict[str, Any]:
    """The event record ``{"user_id", "emoticon_type", "timestamp", "match_id"}`` (the seed's
    snapshot order; ``timestamp`` in Unix seconds), as stored in Redis and the table."""
    return {"user_id": user_id, "emoticon_type": emoticon_type,
            "timestamp": timestamp, "match_id": match_id}


_FROM_CLIENT: Any = object()  # RedisAdapter(place=...) not given: from the client


class RedisAdapter:
    """The reactions' operations on Redis (seed: RedisAdapter).

    ``redis`` is any object with redis-py's API -- the process-wide InMemoryRedis by default, or
    a ``redis.Redis`` (decode_responses True or False: replies are decoded here either way).
    ``prefix`` puts every key of this adapter under it (KeyLayout; default config.KEY_PREFIX).
    Keys of other shapes or prefixes are never counted, moved or deleted.
    Redis errors (RedisError, or redis-py's own) pass through unchanged.
    """

    def __init__(self, redis: Any = None, prefix: str | None = None,
                 place: Any = _FROM_CLIENT) -> None:
        self.redis = redis if redis is not None else get_redis()
        self.layout = KeyLayout(config.KEY_PREFIX if prefix is None else prefix)
        self._told_unreadable: set[str] = set()  # counters said to hold another value
        # Where the Redis is (redis_place): None for the in-process server. A Redis outside
        # this process (``shared``) can be emptied, rewound or replaced behind its back: each
        # write then also reads the dataset id, and what Redis acknowledged is kept in acks.
        self.place = redis_place(self.redis) if place is _FROM_CLIENT else place
        self.acks: Acknowledged | None = Acknowledged() if self.place is not None else None
        # (match_id, emoticon_type) -> (counter key, list key): built once, as POST runs often
        # (up to _POST_KEYS_CACHED cells; a run with more matches builds the rest each time).
        self._post_keys: dict[tuple[int, str], tuple[str, str]] = {}

    def _scan(self, pattern: str, kind: str) -> list[str]:
        """Keys matching ``pattern`` holding a ``kind`` ("string" or "list"), as str, each once
        (Redis's SCAN may return a key more than once: its guarantee is "at least once" for a
        key present throughout). A key name that is not UTF-8 (another application's binary
        key, answered as bytes by a client at decode_responses=False) cannot be this layout's
        and is skipped."""
        found = {}
        for key in self.redis.scan_iter(match=pattern, _type=kind):
            if isinstance(key, bytes):
                try:
                    key = key.decode()
                except UnicodeDecodeError:
                    continue
            found[key] = None
        return list(found)

    def record_reaction(self, user_id: int, match_id: int, emoticon_type: str,
                        timestamp: float) -> dict[str, Any]:
        """Count one reaction and append its record, both in one atomic step (MULTI/EXEC).

        ``timestamp`` is Unix seconds. Returns the record as stored:
        ``{"user_id", "emoticon_type", "timestamp", "match_id"}`` (the seed's snapshot order).
        Inputs are not validated here; the API layer does that. Raises WrongTypeError when the
        counter or the list key holds another application's value: Redis runs the rest of a
        MULTI/EXEC after a command fails, so the half that ran is undone (see _settle).
        """
        event = make_event(user_id, match_id, emoticon_type, timestamp)
        keys = self._post_keys.get((match_id, emoticon_type))
        if keys is None:
            keys = (self.layout.counter_key(match_id, emoticon_type),
                    self.layout.match_data_key(match_id))
            if len(self._post_keys) < _POST_KEYS_CACHED:
                self._post_keys[match_id, emoticon_type] = keys
        pipe = self.redis.pipeline(transaction=True)
        pipe.incr(keys[0])
        pipe.rpush(keys[1], encode_event(event))
        if self.acks is None:
            self._settle([event], pipe.execute(raise_on_error=False))
            return event
        read = self.acks.read_due()
        if read:  # which dataset acknowledged it, one POST in acks.READ_EVERY
            pipe.get(self.layout.source_key)
        replies = pipe.execute(raise_on_error=False)
        self._settle([event], replies[:2])
        dataset = _text(replies[2]) if read else UNREAD
        if not isinstance(dataset, Exception):
            self.acks.note(dataset, [((match_id, emoticon_type), replies[0])], timestamp)
        return event

    def record_batch(self, events: list[dict[str, Any]], marker: str, flush: int) -> None:
        """Count and append many event records in ONE MULTI/EXEC (ingest.py's flush).

        One INCRBY per counter touched, one RPUSH per match with its records in order, and
        ``SET marker flush EX INGEST_MARKER_TTL_SECONDS`` (the buffer's flush number, an int)
        in the same transaction, so a retry can tell whether this flush happened
        (record_batch_once). Counters still equal
        rows plus pending at every instant Redis can be observed. Raises WrongTypeError when
        some counter or list key holds another application's value: the flush happened (its
        marker is set), except for the events of those keys, undone (``error.dropped``).
        """
        pipe = self.redis.pipeline(transaction=True)
        writes = self._queue_batch(pipe, events, marker, flush)
        self._settled(events, pipe.execute(raise_on_error=False), writes)

    def record_batch_once(self, events: list[dict[str, Any]], marker: str, flush: int) -> bool:
        """record_batch unless flush number ``flush`` of ``marker`` is already in Redis.

        Returns True if it applied the batch now, False if an earlier attempt had (its reply
        was lost with the connection). WATCH makes the check and the transaction one optimistic
        step: an earlier EXEC landing in between makes this one abort and look again. Raises
        WrongTypeError as record_batch does.
        """
        with self.redis.pipeline(transaction=True) as pipe:
            while True:
                try:
                    pipe.watch(marker)
                    if self._applied(pipe.get(marker), flush):
                        return False
                    pipe.multi()
                    writes = self._queue_batch(pipe, events, marker, flush)
                    replies = pipe.execute(raise_on_error=False)
                    break
                except Exception as error:
                    if type(error).__name__ != "WatchError":  # redis-py's, not importable here
                        raise
        self._settled(events, replies, writes)
        return True

    def _queue_batch(self, pipe: Any, events: list[dict[str, Any]], marker: str,
                     flush: int) -> int:
        """Queue a flush's writes (and, on a shared Redis, a read of the dataset id); the
        number of replies _settle checks (counters, then lists)."""
        cells, matches = _cells(events), _by_match(events)
        for (match_id, emoticon_type), count in cells.items():
            pipe.incrby(self.layout.counter_key(match_id, emoticon_type), count)
        for match_id, records in matches.items():
            pipe.rpush(self.layout.match_data_key(match_id), *encode_events(records))
        pipe.set(marker, flush, ex=INGEST_MARKER_TTL_SECONDS)
        if self.acks is not None:
            pipe.get(self.layout.source_key)
        return len(cells) + len(matches)

    def _settled(self, events: list[dict[str, Any]], replies: list[Any], writes: int) -> None:
        """Note what a flush's replies acknowledged (shared Redis), then _settle them."""
        if self.acks is not None and not isinstance(replies[-1], Exception):
            cells = list(_cells(events))
            failed = {match for match, reply in zip(_by_match(events), replies[len(cells):writes])
                      if isinstance(reply, Exception)}
            counts = [(cell, reply) for cell, reply in zip(cells, replies)
                      if isinstance(reply, int) and cell[0] not in failed]
            self.acks.note(_text(replies[-1]), counts, time.time())
        self._settle(events, replies[:writes])

    def _settle(self, events: list[dict[str, Any]], replies: list[Any]) -> None:
        """Check the replies of the writes queued for ``events`` (counters, then lists, as
        _queue_batch orders them) and undo what ran of any cell whose counter or list failed.

        Redis does not roll back a MULTI/EXEC when a command fails at run time (WRONGTYPE on
        another application's key, or a non-integer string under a counter's name); the other
        commands run. Left so, a failed counter would leave records nobody counted, a failed
        list counts nobody stored. So a failed counter's records are removed again (LREM, one
        each, from the tail) and a failed list's counters decremented, in one MULTI/EXEC; then
        WrongTypeError says how many events were not stored. A record whose list a backup
        staged in between cannot be removed: it is stored uncounted (``error.uncounted``).
        """
        for reply in replies:  # nearly always all succeeded: then nothing else is worked out
            if isinstance(reply, Exception):
                break
        else:
            return
        errors = [reply for reply in replies if isinstance(reply, Exception)]
        cells = _cells(events)
        matches = _by_match(events)
        failed_cells = {cell for cell, reply in zip(cells, replies) if isinstance(reply, Exception)}
        failed_matches = {match for match, reply in zip(matches, replies[len(cells):])
                          if isinstance(reply, Exception)}
        undo = self.redis.pipeline(transaction=True)
        removals = 0
        for (match_id, emoticon), count in cells.items():
            if match_id in failed_matches and (match_id, emoticon) not in failed_cells:
                undo.incrby(self.layout.counter_key(match_id, emoticon), -count)
            elif match_id not in failed_matches and (match_id, emoticon) in failed_cells:
                for event in matches[match_id]:
                    if event["emoticon_type"] == emoticon:
                        undo.lrem(self.layout.match_data_key(match_id), -1, encode_event(event))
                        removals += 1
        undone = undo.execute() if len(undo) else []
        uncounted = sum(1 for reply in undone[len(undone) - removals:] if reply == 0)
        dropped = sum(count for cell, count in cells.items()
                      if cell in failed_cells or cell[0] in failed_matches) - uncounted
        keys = ([self.layout.counter_key(*cell) for cell in failed_cells]
                + [self.layout.match_data_key(match) for match in failed_matches])
        raise WrongTypeError(sorted(keys), errors[0], dropped, uncounted)

    @staticmethod
    def _applied(marker_value: Any, flush: int) -> bool:
        return marker_value is not None and int(marker_value) >= flush

    def batch_applied(self, marker: str, flush: int) -> bool:
        """True if flush number ``flush`` (or a later one) of ``marker``'s buffer is in Redis."""
        return self._applied(self.redis.get(marker), flush)

    def source_id(self, create: bool = True, new: bool = False) -> str | None:
        """The id of this prefix's data in this Redis: a random hex string kept in
        ``{prefix}live-reactions:dataset``, made (SET NX) by the first caller with ``create``.

        The backup records it with the rows it inserts, so the reconciliation compares these
        counters with the rows that came from them alone. A Redis emptied since (FLUSHDB, a
        restart without persistence) gets a new id, as its counters start again. None if
        there is none yet and ``create`` is False. While Redis is over maxmemory (OOM) no id
        can be made: then UNRECORDED_SOURCE, whose rows no reconciliation counts.

        A Redis of the previous version keeps its id at ``{prefix}reactions_source``: if the
        new key is missing and that one holds an id (32 hex digits, as this method makes them),
        that id is the dataset's (taken over with ``create``), so its rows in the table still
        count. Any other value there is another application's and left alone. ``new`` makes
        a fresh id even then (a Redis found emptied: its earlier id is no longer its data).
        Raises ForeignValueError if the key holds another application's value.
        """
        key = self.layout.source_key
        value = self._own_string(key)
        if value is not None:
            return value
        legacy = None if new else self._legacy_id()
        if not create:
            return legacy
        try:
            self.redis.set(key, legacy or uuid.uuid4().hex, nx=True)
        except Exception as error:
            if not is_out_of_memory(error):
                raise
            return UNRECORDED_SOURCE  # the backup must run all the same: it frees memory
        return self._own_string(key)

    def _own_string(self, key: str) -> str | None:
        """The value of one of our own string keys (KeyLayout.own_keys); None if missing.
        Raises ForeignValueError when it holds another type."""
        try:
            return _text(self.redis.get(key))
        except Exception as error:
            if "WRONGTYPE" not in str(error):
                raise
            raise ForeignValueError(key, f"a {_text(self.redis.type(key))}") from None

    def _legacy_id(self) -> str | None:
        """The dataset id the previous version kept at ``{prefix}reactions_source``, if that
        key holds one; None for anything else (another application's value)."""
        try:
            value = _text(self.redis.get(self.layout.legacy_source_key))
        except Exception as error:
            if "WRONGTYPE" not in str(error):
                raise
            return None
        return value if isinstance(value, str) and _DATASET_ID.fullmatch(value) else None

    def get_counts(self, match_id: int, emoticon_types: Iterable[str]) -> dict[str, int]:
        """Each emoticon's counter for one match, read with one MGET; 0 where none was posted."""
        emoticon_types = tuple(emoticon_types)
        keys = _counter_keys(self.layout, match_id, emoticon_types)
        return _counts(emoticon_types, self.redis.mget(keys), keys, self._unreadable)

    GET_PIPELINE_MATCHES = 1_000
    """Matches read per round trip by get_counts_many: one MGET each, pipelined."""

    def get_counts_many(self, match_ids: Iterable[int], emoticon_types: Iterable[str]
                        ) -> Iterator[tuple[int, dict[str, int]]]:
        """``(match_id, get_counts(match_id, emoticon_types))`` for each match id, in order,
        the MGETs sent GET_PIPELINE_MATCHES at a time in one pipeline (not a transaction:
        each MGET is atomic on its own, as one get_counts is)."""
        emoticon_types = tuple(emoticon_types)
        ids = iter(match_ids)
        while chunk := list(itertools.islice(ids, self.GET_PIPELINE_MATCHES)):
            pipe = self.redis.pipeline(transaction=False)
            keys = []
            for match_id in chunk:  # built here: a sweep of more matches than the cache of
                # _counter_keys holds would miss on every one and push out GETMethod's entries
                keys.append([self.layout.counter_key(match_id, emoticon) for emoticon in
                             emoticon_types])
                pipe.mget(keys[-1])
            for match_id, values, match_keys in zip(chunk, pipe.execute(), keys):
                yield match_id, _counts(emoticon_types, values, match_keys, self._unreadable)

    def _unreadable(self, key: str, value: Any) -> None:
        """Say once per key that counter ``key`` holds ``value``, which is not a count."""
        if key in self._told_unreadable:
            return
        self._told_unreadable.add(key)
        logger.warning("counter %s holds %s, not an integer: another application's value? GET "
                       "shows it as unreadable and POSTs to it fail; delete or rename that key, "
                       "or choose another --key-prefix (said once)", key,
                       cut(repr(_text(value))))

    def counter_keys(self, emoticon_types: Iterable[str] | None = None
                     ) -> dict[str, tuple[int, str]]:
        """This layout's counter keys in Redis: ``{key: (match_id, emoticon_type)}``.

        Only strings shaped ``{prefix}{match_id}_{emoticon}`` with an emoticon of
        ``emoticon_types`` (default config.EMOTICON_TYPES) count: another application's strings
        and ingest markers do not.
        """
        emoticons = frozenset(config.EMOTICON_TYPES if emoticon_types is None else emoticon_types)
        found = {}
        for key in self._scan(self.layout.counter_pattern, "string"):
            parsed = self.layout.parse_counter(key, emoticons)
            if parsed is not None:
                found[key] = parsed
        return found

    def counter_total(self) -> int:
        """The sum of this layout's counters: all reactions ever counted under its prefix."""
        keys = list(self.counter_keys())
        if not keys:
            return 0
        return sum(_int_or_none(value) or 0 for value in self.redis.mget(keys))

    def match_data_keys(self) -> list[str]:
        """The lists ``{prefix}match_data_{id}`` holding events not yet backed up, found with
        SCAN. Only lists: another application's string of that name is not ours to move."""
        return [key for key in self._scan(self.layout.match_data_pattern, "list")
                if self.layout.is_match_data(key)]

    def staged_keys(self) -> list[str]:
        """Staged lists not yet moved (left by a failed or concurrent backup), oldest batch
        first (then by key)."""
        keys = (key for key in self._scan(self.layout.staging_pattern, "list")
                if self.layout.is_staged(key))
        return sorted(keys, key=lambda key: (self.layout.staged_batch(key), key))

    def pending_keys(self) -> set[str]:
        """Every list of this layout holding events not yet in the table (live and staged)."""
        return {key for key in self._scan(self.layout.match_data_pattern, "list")
                if self.layout.is_pending(key)}

    def stage_all(self, keys: list[str], batch: str) -> list[str]:
        """RENAME each list in ``keys`` to its staging key for ``batch``, all in one MULTI/EXEC.

        Returns the staged keys. One transaction makes a clean cut: the backup moves exactly
        what was pending at that instant, however fast new events arrive. A key gone since it
        was found (another backup took it) answers "no such key" and is skipped.
        """
        if not keys:
            return []
        # Over maxmemory the RENAMEs run one by one (_each_key); posts are refused meanwhile,
        # so the cut stays clean.
        replies = self._each_key(
            keys, lambda pipe, key: pipe.rename(key, self.layout.staging_key(key, batch)),
            raise_on_error=False)
        return [self.layout.staging_key(key, batch)
                for key, moved in zip(keys, replies) if moved is True]

    def _each_key(self, keys: Iterable[str], queue: Callable[[Any, str], Any],
                  raise_on_error: bool = True) -> list[Any]:
        """``queue(pipe, key)`` for each of ``keys`` in one MULTI/EXEC; the replies in order
        (errors as values unless ``raise_on_error``).

        Over maxmemory Redis refuses any MULTI, even of commands that add no data, which it
        runs alone (RENAME, LLEN): the same commands then go in a plain pipeline.
        """
        keys = list(keys)
        try:
            return self._queued(keys, queue, True, raise_on_error)
        except Exception as error:
            if not is_out_of_memory(error):
                raise
            return self._queued(keys, queue, False, raise_on_error)

    def _queued(self, keys: list[str], queue: Callable[[Any, str], Any], transaction: bool,
                raise_on_error: bool) -> list[Any]:
        pipe = self.redis.pipeline(transaction=transaction)
        for key in keys:
            queue(pipe, key)
        return pipe.execute(raise_on_error=raise_on_error)

    def iter_events(self, key: str) -> Iterator[dict[str, Any]]:
        """The event records of list ``key`` in order, read in chunks of LRANGE.

        Only for a list no one appends to any more (a staged one): chunks are separate reads.
        """
        for chunk in self.iter_items(key):
            yield from decode_events(chunk)

    def iter_items(self, key: str) -> Iterator[list[str]]:
        """The items of list ``key`` as stored, in order, in chunks of at most _READ_CHUNK items
        (one LRANGE each), as text: bytes replies are decoded as UTF-8, a byte that is not UTF-8
        kept visible as ``\\xNN``. Only for a list no one appends to any more."""
        start = 0
        while True:
            chunk = self.redis.lrange(key, start, start + _READ_CHUNK - 1)
            if chunk and isinstance(chunk[0], bytes):
                chunk = [item.decode("utf-8", "backslashreplace") for item in chunk]
            if chunk:
                yield chunk
            if len(chunk) < _READ_CHUNK:
                return
            start += _READ_CHUNK

    def drop(self, key: str) -> int | None:
        """Delete ``key`` (a staged list whose events are safely in the table) with UNLINK:
        gone at once for every reader, as with DEL, but Redis frees its items without holding
        up other clients (a DEL of a list of 100,000 events takes Redis milliseconds, every
        GET and POST waiting).

        On a shared Redis the same MULTI/EXEC increments the backup generation, and its new
        value is returned: a Redis that later goes back to a state holding ``key`` shows a
        lower generation than the one the database records for this deletion, so the list is
        recognised as a copy (backup_data.py). None on the in-process server, and when Redis
        refused the increment (over maxmemory: the key is deleted alone, to free memory).
        """
        if self.acks is None:
            self.redis.unlink(key)
            return None
        pipe = self.redis.pipeline(transaction=True)
        pipe.unlink(key)
        pipe.incr(self.layout.generation_key)
        try:
            replies = pipe.execute(raise_on_error=False)
        except Exception as error:
            if not is_out_of_memory(error):
                raise
            self.redis.unlink(key)
            return None
        return replies[1] if isinstance(replies[1], int) else None

    def stage_checkpoint(self, keys: list[str], batch: str, leftovers: Iterable[str],
                         cells: Iterable[tuple[int, str]]) -> Staging:
        """stage_all on a shared Redis, with what the backup needs to see whether Redis
        forgot, all read in the same MULTI/EXEC as the RENAMEs: the dataset id, the backup
        generation (incremented), the counters of ``cells`` and the length and first item of
        every list staged or left over (``leftovers``). Over maxmemory, where Redis refuses a
        MULTI with an INCR, the same is read without one (``counted`` False) and the lists are
        renamed one at a time. Raises ForeignValueError if the dataset id or generation key holds another
        application's value."""
        leftovers, cells = list(leftovers), list(cells)
        counter_keys = [self.layout.counter_key(*cell) for cell in cells]
        staged = [self.layout.staging_key(key, batch) for key in keys]
        try:
            replies = self._checkpoint(keys, staged, leftovers, counter_keys, transaction=True)
            counted = True
        except Exception as error:
            if not is_out_of_memory(error):
                raise
            replies = self._checkpoint(keys, staged, leftovers, counter_keys, transaction=False)
            counted = False
        dataset, generation = replies[0], replies[1]
        for key, reply in zip(self.layout.own_keys, (dataset, generation)):
            if isinstance(reply, Exception):
                raise ForeignValueError(key, f"a {_text(self.redis.type(key))}")
        values = replies[2] if counter_keys else []
        renamed = replies[2 + bool(counter_keys):2 + bool(counter_keys) + len(keys)]
        lists = replies[2 + bool(counter_keys) + len(keys):]
        moved = [key for key, reply in zip(staged, renamed) if reply is True]
        result = Staging(moved, _text(dataset), int(generation or 0), counted)
        for cell, value in zip(cells, values):
            count = _int_or_none(value)
            if count is not None:
                result.counters[cell] = count
        for key, length, head in zip([*staged, *leftovers], lists[0::2], lists[1::2]):
            if key in moved or key in leftovers:
                result.lengths[key] = length if isinstance(length, int) else 0
                if isinstance(head, list) and head:
                    result.heads[key] = _text(head[0])
        return result

    def _checkpoint(self, keys: list[str], staged: list[str], leftovers: list[str],
                    counter_keys: list[str], transaction: bool) -> list[Any]:
        pipe = self.redis.pipeline(transaction=transaction)
        pipe.get(self.layout.source_key)
        if transaction:
            pipe.incr(self.layout.generation_key)
        else:
            pipe.get(self.layout.generation_key)
        if counter_keys:
            pipe.mget(counter_keys)
        for key, new in zip(keys, staged):
            pipe.rename(key, new)
        for key in [*staged, *leftovers]:
            pipe.llen(key)
            pipe.lrange(key, 0, 0)
        return pipe.execute(raise_on_error=False)

    def generation(self) -> int:
        """The backup generation now (0 if none yet). Raises ForeignValueError if its key
        holds another application's value (another type, or a string not an integer)."""
        value = self._own_string(self.layout.generation_key)
        try:
            return int(value or 0)
        except ValueError:
            raise ForeignValueError(self.layout.generation_key,
                                    f"the string {cut(repr(value))}") from None

    def bump_generation(self, above: int, keys: list[str], batch: str) -> tuple[list[str], int]:
        """Rename each live list in ``keys`` for ``batch`` and raise the backup generation above
        ``above``, in one MULTI/EXEC (a rewound Redis's recovery: its later stagings must not
        be taken for rewound again). The staged keys and the new generation."""
        staged = [self.layout.staging_key(key, batch) for key in keys]
        pipe = self.redis.pipeline(transaction=True)
        for key, new in zip(keys, staged):
            pipe.rename(key, new)
        pipe.incrby(self.layout.generation_key, max(1, above + 1 - self.generation()))
        replies = pipe.execute(raise_on_error=False)
        moved = [new for new, reply in zip(staged, replies) if reply is True]
        return moved, int(replies[-1]) if isinstance(replies[-1], int) else above + 1

    def backlog(self, cells: Iterable[tuple[int, str]]) -> tuple[int, int]:
        """``(sum of the counters of cells, events pending in Redis)``, read in one MULTI/EXEC
        after a SCAN of the lists (a list made after the SCAN is left out: pending errs low)."""
        counter_keys = [self.layout.counter_key(*cell) for cell in cells]
        lists = sorted(self.pending_keys())
        pipe = self.redis.pipeline(transaction=True)
        if counter_keys:
            pipe.mget(counter_keys)
        for key in lists:
            pipe.llen(key)
        replies = pipe.execute(raise_on_error=False)
        counted = sum(map(lambda v: _int_or_none(v) or 0, replies[0])) if counter_keys else 0
        pending = sum(reply for reply in replies[bool(counter_keys):] if isinstance(reply, int))
        return counted, pending

    def counts_of(self, cells: Iterable[tuple[int, str]]) -> dict[tuple[int, str], int]:
        """The counters of ``cells`` now, one MGET (missing and unreadable ones left out)."""
        cells = list(cells)
        if not cells:
            return {}
        values = self.redis.mget([self.layout.counter_key(*cell) for cell in cells])
        return {cell: count for cell, count in zip(cells, map(_int_or_none, values))
                if count is not None}

    EXISTS_PIPELINE_KEYS = 1_000
    """Keys asked about per round trip by existing()."""

    def existing(self, keys: Iterable[str]) -> set[str]:
        """Those of ``keys`` that exist in Redis now, asked EXISTS_PIPELINE_KEYS at a time
        (one EXISTS each, in a pipeline: not a transaction)."""
        keys, found = list(keys), set()
        for first in range(0, len(keys), self.EXISTS_PIPELINE_KEYS):
            chunk = keys[first:first + self.EXISTS_PIPELINE_KEYS]
            pipe = self.redis.pipeline(transaction=False)
            for key in chunk:
                pipe.exists(key)
            found.update(key for key, there in zip(chunk, pipe.execute()) if there)
        return found

    def pending_events(self) -> int:
        """Events in Redis not yet in the table: live lists plus staged ones.

        A backup renaming lists between the SCAN and the LLENs would hide them, so the count is
        taken again until the keys stayed the same throughout (a few tries; then best effort).
        """
        keys = self.pending_keys()
        for _ in range(5):
            total = self._total_length(keys)
            keys, before = self.pending_keys(), keys
            if keys == before:
                break
        return total

    def _total_length(self, keys: set[str]) -> int:
        """The sum of LLEN over ``keys``, in one MULTI (or one by one while Redis is full)."""
        return sum(self._each_key(keys, lambda pipe, key: pipe.llen(key)))

    def snapshot(self) -> dict[str, Any]:
        """This layout's keys and values in the seed's format: counters as int, lists as event
        records. Other keys in the same Redis are left out."""
        snapshot: dict[str, Any] = {}
        counters = self.counter_keys()
        for key in sorted(set(counters) | self.pending_keys()):
            kind = _text(self.redis.type(key))  # "none" if it went meanwhile: then left out
            if kind == "string":
                snapshot[key] = int(self.redis.get(key))
            elif kind == "list":
                snapshot[key] = decode_events(self.redis.lrange(key, 0, -1))
        return snapshot


_adapter: RedisAdapter | None = None


def get_adapter() -> RedisAdapter:
    """The process-wide RedisAdapter: the one set_adapter() installed, else one over
    ``get_redis()`` with config.KEY_PREFIX."""
    global _adapter
    if _adapter is None:
        server = get_redis()
        with _server_lock:
            if _adapter is None:
                _adapter = RedisAdapter(server)
    return _adapter


def set_adapter(adapter: RedisAdapter | None) -> None:
    """Make ``adapter`` the process-wide one (e.g. over a real Redis); None = back to default."""
    global _adapter
    with _server_lock:
        _adapter = adapter


_buffer: IngestBuffer | None = None


def get_ingest_buffer() -> IngestBuffer | None:
    """The process-wide IngestBuffer over get_adapter() (foundation/ingest.py), or None when
    config.INGEST_BATCH_EVENTS is 1 (the seed's one MULTI/EXEC per POST)."""
    global _buffer
    if _buffer is None and config.INGEST_BATCH_EVENTS > 1:
        adapter = get_adapter()
        with _server_lock:
            if _buffer is None:
                _buffer = IngestBuffer(adapter, config.INGEST_BATCH_EVENTS,
                                       config.INGEST_FLUSH_SECONDS).start()
    return _buffer


def close_ingest_buffer() -> None:
    """Flush and close the process-wide buffer, if any (shutdown: before the final backup).
    Raises the Redis error if the last flush fails; its events stay held."""
    global _buffer
    buffer = _buffer
    if buffer is not None:
        buffer.close()
        with _server_lock:
            _buffer = None


def held_events() -> int:
    """Events the process-wide buffer holds (acknowledged, not yet known to be in Redis); 0
    when there is no buffer. Unlike get_ingest_buffer() it never creates one."""
    buffer = _buffer
    return 0 if buffer is None else buffer.held
