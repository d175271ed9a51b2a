"""Start-up checks of a real Redis, before anything is posted or moved, and the watch of what it
acknowledged in a process that only posts.

``check_redis(role)`` runs once, after ``--redis-url`` is connected (main.py). With a real Redis
it refuses to start, with one line (RedisRefused, exit status 2 like any bad setting), when:

- the server refuses a command this role needs beyond the seed's writes (RENAME, SCAN, INCRBY,
  LREM, WATCH, MULTI...): an ACL without it (NOPERM) or an operator's rename-command;
- its ``maxmemory-policy`` may evict our keys: any ``allkeys-*`` policy (a pending list evicted
  is acknowledged events lost), and a ``volatile-*`` one where our keys carry a TTL (the
  batched ingest's markers: an evicted one lets a retried flush count its events twice), unless
  ALLOW_EVICTION (``--allow-eviction``) accepts it: then one warning line;
- one of our own keys of fixed name holds another application's value.

It says in one line, and goes on, when the server keeps no persistence at all (a restart
empties it), and what it could not check (a managed Redis that forbids CONFIG: the policy is
then read from INFO). Then it makes sure the dataset id exists (RedisAdapter.source_id), so that
every acknowledgement is made in a dataset, and records it in the database of a backing-up role
with a fresh backup generation. In a ``post`` process a thread then writes, every second, the
counts Redis acknowledged to the database (if ``--db`` names the backup's file) and says once,
in one line, when Redis forgot them (foundation/acks.py). The in-memory Redis needs none of it.
"""

from __future__ import annotations

import atexit
import logging
import threading
import time
import uuid
from typing import Any, Callable

import config
from backup_data import between
from db import ReactionsTable, get_reactions_table, record_acknowledged
from foundation.acks import Lapse
from foundation.errors import ForeignValueError
from foundation.redis_client import RedisUnavailableError, redacted
from live.cli import ROLE_PARTS, writes
from redis_adapter import RedisAdapter, error_text, get_adapter, is_refused_command

__all__ = ["RedisRefused", "check_redis", "refused_commands", "AckWatch", "WATCH_SECONDS"]

logger = logging.getLogger(__name__)

WATCH_SECONDS = 1.0
"""How often a posting process writes what Redis acknowledged and looks for a lapse."""


class RedisRefused(RedisUnavailableError):
    """The Redis cannot serve this run as configured; the message is one line saying why and
    what to do. main.py exits with status 2, as for a bad setting."""


def _probes(adapter: RedisAdapter) -> dict[str, Callable[[Any], Any]]:
    """Each command a role may need, run on a key no one uses, in a form that changes nothing
    that lasts (the probe keys are deleted at the end)."""
    key = adapter.layout.probe_key(uuid.uuid4().hex)
    other, listed = key + ":b", key + ":l"

    def multi(r: Any) -> Any:
        pipe = r.pipeline(transaction=True)
        pipe.get(key)
        return pipe.execute()

    def watch(r: Any) -> Any:
        with r.pipeline(transaction=True) as pipe:
            pipe.watch(key)
            pipe.unwatch()

    return {
        "GET": lambda r: r.get(key), "MGET": lambda r: r.mget([key, other]),
        "SET": lambda r: r.set(key, 0), "INCR": lambda r: r.incr(key),
        "INCRBY": lambda r: r.incrby(key, 0), "RPUSH": lambda r: r.rpush(listed, "x"),
        "LLEN": lambda r: r.llen(listed), "LRANGE": lambda r: r.lrange(listed, 0, 0),
        "LREM": lambda r: r.lrem(listed, 0, "x"), "TYPE": lambda r: r.type(key),
        "RENAME": lambda r: r.rename(other, other + "2"),  # "no such key": allowed
        "SCAN": lambda r: r.scan(0, match=key + "*", count=10, _type="list"),
        "UNLINK": lambda r: r.unlink(key + ":u"),
        "MULTI": multi, "WATCH": watch, "DEL": lambda r: r.delete(key, other, listed),
    }


ROLE_COMMANDS = {
    "post": ("GET", "SET", "INCR", "RPUSH", "INCRBY", "LREM", "DEL", "WATCH", "MULTI", "SCAN",
             "LLEN"),
    "get": ("GET", "SET", "MGET", "SCAN", "LLEN", "MULTI"),
    "backup": ("GET", "SET", "MGET", "INCR", "INCRBY", "SCAN", "RENAME", "LRANGE", "LLEN",
               "UNLINK", "TYPE", "MULTI"),
}
"""The commands each part runs (``all``: every one); the seed's are GET, MGET, INCR, RPUSH,
LRANGE and DEL."""


def refused_commands(adapter: RedisAdapter, role: str) -> dict[str, str]:
    """``{command: why}`` for each command ``role`` needs that the server refuses."""
    wanted = set()
    for part, commands in ROLE_COMMANDS.items():
        if part in ROLE_PARTS[role] or (part == "post" and writes(role)):
            wanted.update(commands)
    refused = {}
    for name, probe in _probes(adapter).items():  # DEL last: it removes the probe keys
        if name not in wanted and name != "DEL":
            continue
        try:
            probe(adapter.redis)
        except Exception as error:
            if is_refused_command(error) and name in wanted:
                refused[name] = ("no permission (ACL)" if "NOPERM" in str(error) or
                                 type(error).__name__ == "NoPermissionError"
                                 else "unknown command: renamed or disabled")
    return refused


def _where() -> str:
    return f"Redis {redacted(config.REDIS_URL)}" if config.REDIS_URL else "Redis"


def _text(value: Any) -> Any:
    return value.decode(errors="backslashreplace") if isinstance(value, bytes) else value


def _config(client: Any, name: str) -> tuple[str | None, str]:
    """CONFIG GET ``name``: (its value, "") or (None, why it could not be read)."""
    try:
        reply = client.config_get(name)
    except Exception as error:
        return None, error_text(error)
    for key, value in reply.items():
        if _text(key) == name:
            return _text(value), ""
    return None, "not reported"


def _info(client: Any, section: str) -> tuple[dict[str, Any] | None, str]:
    try:
        return {_text(k): _text(v) for k, v in client.info(section).items()}, ""
    except Exception as error:
        return None, error_text(error)


def _evicts_ours(policy: str) -> str | None:
    """Why ``policy`` may evict this process's keys, or None if it may not."""
    if policy == "noeviction":
        return None
    if policy.startswith("volatile-"):  # only keys with a TTL: ours are the ingest markers
        if config.INGEST_BATCH_EVENTS > 1:
            return ("it evicts keys with a TTL, and the batched ingest's markers have one: an "
                    "evicted marker lets a retried flush count its events twice")
        return None
    return "an evicted list loses acknowledged events, an evicted counter starts again"


def _check_memory_and_persistence(client: Any) -> None:
    """The eviction policy (refused unless allowed) and persistence (said); each in one line,
    with what could not be checked."""
    policy, config_error = _config(client, "maxmemory-policy")
    memory, info_error = (None, "")
    if policy is None:
        memory, info_error = _info(client, "memory")
        if memory is not None:
            policy = memory.get("maxmemory_policy")
    unchecked = []
    if config_error:
        unchecked.append(f"CONFIG is refused ({config_error})")
    if policy is None:
        unchecked.append(f"INFO is refused ({info_error})" if info_error else
                         "INFO reports no maxmemory_policy")
    risk = None if policy is None else _evicts_ours(str(policy))
    if risk is not None and not config.ALLOW_EVICTION:
        if unchecked:
            logger.info("%s: %s; its eviction policy was read from INFO", _where(),
                        "; ".join(unchecked))
        raise RedisRefused(
            f"{_where()} may evict this run's keys (maxmemory-policy {policy}): {risk}; set "
            "maxmemory-policy noeviction on that server, or accept the risk with "
            "--allow-eviction (ALLOW_EVICTION in config.py)")
    if risk is not None:
        logger.warning("%s may evict this run's keys (maxmemory-policy %s), accepted by "
                       "ALLOW_EVICTION: %s; such a loss shows as MISMATCH or as Redis "
                       "forgetting (docs/failures.md)", _where(), policy, risk)
    _say_unchecked(unchecked, policy, _persistence(client, bool(config_error)))


def _persistence(client: Any, config_refused: bool) -> str | None:
    """"none" if the server keeps no persistence, "" if it keeps some, None if unknown."""
    if not config_refused:
        save, error = _config(client, "save")
        appendonly, error2 = _config(client, "appendonly")
        if not error and not error2:
            return "none" if not save and appendonly == "no" else ""
    persistence, _ = _info(client, "persistence")
    if persistence is not None and str(persistence.get("aof_enabled")) == "1":
        return ""
    return None


def _say_unchecked(unchecked: list[str], policy: Any, persistence: str | None) -> None:
    if persistence == "none":
        logger.warning("%s keeps no persistence (save '' and appendonly no): a restart empties "
                       "it, and the events pending then are lost (reported when it happens, "
                       "docs/failures.md)", _where())
    if not unchecked and persistence is not None:
        return
    missing = []
    if policy is None:
        missing.append("its eviction policy")
    if persistence is None:
        missing.append("whether it persists its data")
    if not missing:
        if unchecked:
            logger.info("%s: %s; its eviction policy (%s) was read from INFO", _where(),
                        "; ".join(unchecked), policy)
        return
    reason = "; ".join(unchecked) or "CONFIG does not say"
    logger.warning("%s: %s could not be checked (%s)%s; make sure it runs with maxmemory-policy "
                   "noeviction and keeps its data across restarts", _where(),
                   " and ".join(missing), reason,
                   f"; its eviction policy ({policy}) was read from INFO"
                   if policy is not None and unchecked else "")


def _own_keys(adapter: RedisAdapter) -> None:
    """Refuse a value of another application at one of our keys of fixed name."""
    try:
        adapter.source_id(create=False)
        adapter.generation()
    except ForeignValueError as error:
        raise RedisRefused(f"{_where()}: {error}") from None


def _mark_dataset(adapter: RedisAdapter, role: str) -> None:
    """Make sure Redis holds a dataset id before the first acknowledgement: taken over from
    the previous version's key, or made for a Redis with no backup generation yet (fresh or
    emptied). A Redis whose id alone went while its generation stayed is left to the backup,
    which can tell whether its data stayed too. A backing-up role records the dataset in the
    database with a fresh generation, so a Redis emptied before the first backup is found."""
    layout = adapter.layout
    dataset = adapter.source_id(create=False)  # ours, or the previous version's id
    if adapter.redis.get(layout.source_key) is None and (
            dataset is not None or adapter.redis.get(layout.generation_key) is None):
        dataset = adapter.source_id(create=True)
    if role not in ("all", "backup") or dataset is None:
        return
    table = get_reactions_table()
    cells = [(match_id, emoticon) for match_id in range(1, config.MAX_MATCHES + 1)
             for emoticon in table.emoticon_types]
    counted, pending = adapter.backlog(cells)
    generation = adapter.redis.incr(layout.generation_key)
    table.note_dataset(dataset, adapter.place, layout.prefix, generation, current=True,
                       base=max(0, counted - pending))


def check_redis(role: str, adapter: RedisAdapter | None = None) -> AckWatch | None:
    """The start-up checks of the module's docstring, for ``role`` (all, post, get, backup) on
    ``adapter`` (default the process-wide one). Nothing for the in-memory Redis. Raises
    RedisRefused (one line); in a ``post`` process, starts and returns the AckWatch."""
    adapter = adapter if adapter is not None else get_adapter()
    if adapter.place is None:
        return None
    refused = refused_commands(adapter, role)
    if refused:
        names = ", ".join(f"{name} ({why})" for name, why in sorted(refused.items()))
        raise RedisRefused(f"{_where()} refuses commands --role {role} needs: {names}; ask its "
                           "operator to allow them for this user, or not to rename them "
                           "(docs/real-redis.md lists what each role needs)")
    _check_memory_and_persistence(adapter.redis)
    _own_keys(adapter)
    _mark_dataset(adapter, role)
    if "backup" in ROLE_PARTS[role] or not writes(role):
        return None
    watch = AckWatch(adapter, config.DB_PATH).start()
    atexit.register(watch.stop)
    return watch


class AckWatch(threading.Thread):
    """In a process that posts but does not back up: every WATCH_SECONDS, write the counts
    Redis acknowledged to the database file ``db_path`` (when it is the backup's file: it must
    exist), and say once, in one line, when Redis forgot them (foundation/acks.py). A process
    that backs up does both in its backups instead (backup_data.py)."""

    def __init__(self, adapter: RedisAdapter, db_path: str,
                 every: float = WATCH_SECONDS) -> None:
        super().__init__(name="ack-watch", daemon=True)
        self.adapter, self.db_path, self.every = adapter, db_path, every
        self._stopping = threading.Event()

    def start(self) -> "AckWatch":
        super().start()
        return self

    def run(self) -> None:
        # Woken at once by a lapse: the marks it holds are what the loss's figure needs.
        while not self._stopping.is_set():
            self.adapter.acks.lapsed.wait(self.every)
            self.tick()

    def stop(self) -> None:
        """End the thread, writing what is left (at exit: atexit)."""
        self._stopping.set()
        self.adapter.acks.lapsed.set()
        self.tick()

    def tick(self) -> None:
        try:
            lapse = self.adapter.acks.take_lapse()
            self._save()
            if lapse is not None:
                self._tell(lapse)
        except Exception:  # a watch must not end the posting; said, and tried again
            logger.exception("watch of what Redis acknowledged failed")

    def _save(self) -> None:
        acks = self.adapter.acks
        acks.confirm(self.adapter.source_id(create=False), time.time())  # counts held since
        marks = acks.take_marks()
        if not marks:
            return
        seen = {dataset: acks.since(dataset) or time.time() for dataset in marks}
        unwritten = record_acknowledged(self.db_path, marks, seen)
        if unwritten and self.db_path != ":memory:":  # kept for when the backup made it
            acks.restore({dataset: marks[dataset] for dataset in unwritten})

    def _tell(self, lapse: Lapse) -> None:
        layout = self.adapter.layout
        try:  # read now: the lapse's id may be one a POST read up to 63 POSTs before
            current = self.adapter.source_id(create=False)
        except Exception:  # Redis gone meanwhile: the lapse's own reading, then
            current = lapse.now
        if current == lapse.dataset and lapse.now == lapse.dataset and lapse.cell is not None:
            what = (f"went back to an earlier state (counter "
                    f"{layout.counter_key(*lapse.cell)} answered {lapse.answered:,} after "
                    f"{lapse.marks.get(lapse.cell, 0):,})")
            how = "a restart from an older snapshot or AOF, a failover to a replica that lagged"
        else:
            what = "was emptied or replaced"
            how = "FLUSHDB, a restart without persistence, a failover"
        logger.warning("Redis forgot what it acknowledged: Redis %s, key prefix %r, %s %s (%s): "
                       "at most %s acknowledged events are lost (those already backed up are "
                       "safe); the backup process and --reconcile say how many",
                       self.adapter.place, layout.prefix, what, between(lapse.since, lapse.found),
                       how, f"{self._at_most(lapse):,}")

    def _at_most(self, lapse: Lapse) -> int:
        """The counts this process saw acknowledged that Redis no longer holds (its marks less
        the counters now), each cut to what the database file says is in no table, if it
        says: some of them may have been backed up before."""
        now = self.adapter.counts_of(lapse.marks) if lapse.now == lapse.dataset else {}
        forgotten = {cell: max(0, mark - now.get(cell, 0)) for cell, mark in lapse.marks.items()}
        try:
            table = ReactionsTable(self.db_path, read_only=True)
        except Exception:  # no file yet, or not the backup's: the marks alone say it
            return sum(forgotten.values())
        try:
            figures = table.loss_figures(lapse.dataset)
        finally:
            table.close()
        for cell, (counted, rows) in figures.items():
            if cell in forgotten:
                forgotten[cell] = min(forgotten[cell], max(0, counted - rows))
        return sum(forgotten.values())
