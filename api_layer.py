"""The API layer: POSTMethod takes a reaction, GETMethod serves a match's weighted means.

Both touch Redis only (through RedisAdapter); the database is filled later by the write-behind
backup (backup_data.py), so neither request waits on SQL. Input validation and the weighted mean
each live in one function here.
"""

from __future__ import annotations

import time
from typing import Any, Iterable, Iterator

import config
from foundation.shown import describe_value
from redis_adapter import (get_adapter, get_ingest_buffer, is_connection_error, is_out_of_memory,
                           make_event)

__all__ = ["InvalidReactionError", "ReactionRefusedError", "is_refusal", "POSTMethod",
           "GETMethod", "read_counts", "read_counts_many", "weighted_mean", "weighted_means",
           "validate_reaction", "validate_match_id"]


class InvalidReactionError(ValueError):
    """A request field is invalid. Nothing was changed in Redis.

    ``field`` names the argument, ``value`` is what was given, ``allowed`` says what is accepted.
    """

    def __init__(self, field: str, value: Any, allowed: str) -> None:
        self.field, self.value, self.allowed = field, value, allowed
        super().__init__(f"invalid {field} {describe_value(value)}: {field} must be {allowed}")


class ReactionRefusedError(RuntimeError):
    """Redis refused a valid reaction or could not be reached; the POST was not acknowledged and
    the caller may retry later.

    Raised by POSTMethod when Redis answers OOM (used memory over maxmemory with the noeviction
    policy: config.REDIS_MAXMEMORY_BYTES), in which case nothing changed, and when the
    connection to a real Redis fails (see docs/real-redis.md for what such a write may have
    done). ``__cause__`` is the client's own error.
    """


def is_refusal(error: BaseException) -> bool:
    """True for the Redis errors POSTMethod raises as ReactionRefusedError: OOM, and a lost or
    refused connection (OSError, redis-py's ConnectionError and TimeoutError)."""
    return is_out_of_memory(error) or is_connection_error(error)


def _validate_id(field: str, value: Any, maximum: int) -> None:
    # bool is an int subclass and "5" or 5.0 would format into a different key: ids are exact ints.
    if type(value) is not int or not 1 <= value <= maximum:
        raise InvalidReactionError(field, value, f"an int from 1 to {maximum}")


def validate_match_id(match_id: Any) -> None:
    """Raise InvalidReactionError unless ``match_id`` is an int in 1..config.MAX_MATCHES."""
    # The rule checked inline first, as in validate_reaction: a valid id pays for no call.
    if type(match_id) is not int or not 1 <= match_id <= config.MAX_MATCHES:
        _validate_id("match_id", match_id, config.MAX_MATCHES)


def validate_reaction(user_id: Any, match_id: Any, emoticon_type: Any) -> None:
    """Raise InvalidReactionError for the first invalid field of a reaction.

    Rules: user_id an int in 1..config.MAX_USERS, match_id an int in 1..config.MAX_MATCHES (bool,
    str and float are not ids), emoticon_type one of config.EMOTICON_TYPES exactly (a str).
    """
    # The same rules in one expression first: a valid POST (nearly all) pays for no calls.
    if (type(user_id) is int and type(match_id) is int and type(emoticon_type) is str
            and 1 <= user_id <= config.MAX_USERS and 1 <= match_id <= config.MAX_MATCHES
            and emoticon_type in config.EMOTICON_TYPES):
        return
    _validate_id("user_id", user_id, config.MAX_USERS)
    validate_match_id(match_id)
    if type(emoticon_type) is not str or emoticon_type not in config.EMOTICON_TYPES:
        raise InvalidReactionError("emoticon_type", emoticon_type,
                                   "one of " + ", ".join(config.EMOTICON_TYPES))


def weighted_mean(count: int) -> int:
    """ceil(count / config.WEIGHTED_MEAN_DIVISOR), in integers (seed: ceil(count/1000)).

    0 -> 0, 1 -> 1, 1000 -> 1, 1001 -> 2 with the default divisor of 1000.
    """
    return -(-count // config.WEIGHTED_MEAN_DIVISOR)


def weighted_means(counts: dict[str, int | None]) -> dict[str, int | None]:
    """``{emoticon_type: weighted_mean(count)}`` for a dict of counts; None stays None (a
    counter holding another application's value: unreadable)."""
    means = {}
    for emoticon, count in counts.items():  # a loop: cheaper than a comprehension for a few
        means[emoticon] = weighted_mean(count) if count is not None else None  # emoticons
    return means  # (CPython 3.11), and GET runs often


def POSTMethod(user_id: int, match_id: int, emoticon_type: str) -> dict[str, Any]:
    """Record one reaction: increment ``{match_id}_{emoticon_type}`` and append the event record
    to ``match_data_{match_id}``, both in one atomic Redis step (seed: POST flow).

    Returns the stored record ``{"user_id", "emoticon_type", "timestamp", "match_id"}`` with
    ``timestamp`` in Unix seconds (float). Raises InvalidReactionError (see validate_reaction)
    before touching Redis, so bad input changes nothing. Raises ReactionRefusedError when Redis
    refuses the write (over maxmemory: nothing changed) or cannot be reached, and
    redis_adapter.WrongTypeError when the counter or list key holds another application's value
    (what ran was undone: nothing stored); any other Redis error is raised as the client raises
    it. Either way the POST was not acknowledged.

    With config.INGEST_BATCH_EVENTS > 1 the record goes to the process's IngestBuffer and is
    written with others in one MULTI/EXEC within config.INGEST_FLUSH_SECONDS (ingest.py).
    """
    validate_reaction(user_id, match_id, emoticon_type)
    try:
        buffer = get_ingest_buffer()
        if buffer is None:
            return get_adapter().record_reaction(user_id, match_id, emoticon_type, time.time())
        event = make_event(user_id, match_id, emoticon_type, time.time())
        buffer.add(event)
        return event
    except Exception as error:
        if is_refusal(error):
            raise ReactionRefusedError(f"Redis refused the reaction: {error}") from error
        raise


def read_counts(match_id: int) -> dict[str, int | None]:
    """The raw counters of one match: ``{emoticon_type: count}`` for every configured emoticon.

    One MGET on Redis, no database call. A counter holding a string that is not an integer
    (another application's value) is None, unreadable, and said once in a log line; the
    others are read all the same. Raises InvalidReactionError for a bad match_id.
    """
    validate_match_id(match_id)
    return get_adapter().get_counts(match_id, config.EMOTICON_TYPES)


def read_counts_many(match_ids: Iterable[int]) -> Iterator[tuple[int, dict[str, int]]]:
    """``(match_id, read_counts(match_id))`` for each of ``match_ids``, in order, with the MGETs
    pipelined: one round trip per RedisAdapter.GET_PIPELINE_MATCHES matches rather than one per
    match (the GET tick at 100,000 matches on a real Redis). Each MGET is still one atomic
    read, so a match's counts agree with each other as read_counts's do. Raises
    InvalidReactionError for a bad match_id (checked as each chunk is read)."""
    return get_adapter().get_counts_many(map(_checked_match_id, match_ids),
                                         config.EMOTICON_TYPES)


def _checked_match_id(match_id: Any) -> int:
    validate_match_id(match_id)
    return match_id


def GETMethod(match_id: int) -> dict[str, int | None]:
    """The weighted mean per emoticon of one match, from the Redis counters only (seed: GET flow).

    Returns ``{emoticon_type: ceil(count / WEIGHTED_MEAN_DIVISOR)}`` for every configured
    emoticon, 0 where none was posted, None where the counter holds another application's
    value (read_counts). Raises InvalidReactionError for a bad match_id.
    """
    return weighted_means(read_counts(match_id))
