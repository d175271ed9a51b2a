"""Start-up checks of a real Redis, before anything is posted or moved.

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
then read from INFO). The in-memory Redis needs none of it.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any, Callable

import config
from foundation.errors import ForeignValueError
from foundation.redis_client import RedisUnavailableError, redacted
from redis_adapter import RedisAdapter, error_text, get_adapter, is_refused_command

__all__ = ["RedisRefused", "check_redis", "refused_commands"]

logger = logging.getLogger(__name__)


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
        "MULTI": multi, "WATCH": watch, "DEL": lambda r: r.delete(key, other, listed),
    }


ROLE_COMMANDS = {
    "post": ("GET", "SET", "INCR", "RPUSH", "INCRBY", "LREM", "DEL", "WATCH", "MULTI", "SCAN",
             "LLEN"),
    "get": ("GET", "SET", "MGET", "SCAN", "LLEN", "MULTI"),
    "backup": ("GET", "SET", "MGET", "INCR", "INCRBY", "SCAN", "RENAME", "LRANGE", "LLEN",
               "DEL", "TYPE", "MULTI"),
}
"""The commands each part runs (``all``: every one); the seed's are GET, MGET, INCR, RPUSH,
LRANGE and DEL."""


def refused_commands(adapter: RedisAdapter, role: str) -> dict[str, str]:
    """``{command: why}`` for each command ``role`` needs that the server refuses."""
    wanted = set()
    for part, commands in ROLE_COMMANDS.items():
        if role in ("all", part):
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
                       "ALLOW_EVICTION: %s; such a loss shows as MISMATCH (docs/failures.md)",
                       _where(), policy, risk)
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
                       "it, and the events pending then are lost (docs/failures.md)", _where())
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
    except ForeignValueError as error:
        raise RedisRefused(f"{_where()}: {error}") from None


def check_redis(role: str, adapter: RedisAdapter | None = None) -> None:
    """The start-up checks of the module's docstring, for ``role`` (all, post, get, backup) on
    ``adapter`` (default the process-wide one). Nothing for the in-memory Redis. Raises
    RedisRefused (one line)."""
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
