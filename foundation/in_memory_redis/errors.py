"""Redis's errors as redis-py raises them: the exception classes and Redis's error texts.

The classes mirror redis.exceptions (RedisError at the root), so code that catches redis-py's
errors reads the same against InMemoryRedis. A command handler raises ResponseError with one of
the texts below; the server hands it back as the command's error reply, and the client side
raises it, as redis-py raises the error reply it reads. ``_annotate`` words an error inside a
pipeline as redis-py does.
"""

from __future__ import annotations

import textwrap

# Error texts as redis-py shows them: it strips a leading "ERR " and keeps other prefixes.
WRONGTYPE = "WRONGTYPE Operation against a key holding the wrong kind of value"
NOT_AN_INTEGER = "value is not an integer or out of range"
OVERFLOW = "increment or decrement would overflow"
NO_SUCH_KEY = "no such key"
WRONG_ARITY = "wrong number of arguments for '{}' command"
SYNTAX_ERROR = "syntax error"
INVALID_EXPIRE = "invalid expire time in '{}' command"
EXEC_WITHOUT_MULTI = "EXEC without MULTI"
DISCARD_WITHOUT_MULTI = "DISCARD without MULTI"
# redis-py strips the "OOM " error code and raises OutOfMemoryError with the rest.
OUT_OF_MEMORY = "command not allowed when used memory > 'maxmemory'."


class RedisError(Exception):
    """Root of the Redis errors (redis.exceptions.RedisError)."""


class ResponseError(RedisError):
    """Redis answered with an error reply, e.g. WRONGTYPE (redis.exceptions.ResponseError)."""


class OutOfMemoryError(ResponseError):
    """Used memory is over ``maxmemory`` and the command may grow it (redis.exceptions.OutOfMemoryError).

    Redis's ``noeviction`` policy: nothing is evicted; commands that can add data are refused
    until memory is freed (by DEL, say), and the data already stored is untouched.
    """


class ExecAbortError(ResponseError):
    """Redis discarded a transaction (its EXECABORT reply; redis.exceptions.ExecAbortError)."""


class DataError(RedisError):
    """A value redis-py cannot send: only str, bytes, int and float are (redis.exceptions.DataError)."""


class WatchError(RedisError):
    """A WATCHed key changed before EXEC: the transaction did not run (redis.exceptions.WatchError)."""


def _shown(arg: str | bytes) -> str:
    """An argument as Redis quotes it in an error text (its bytes, as far as they print)."""
    return arg if type(arg) is str else arg.decode("utf-8", "replace")


def _annotate(error: ResponseError, number: int, command: list) -> ResponseError:
    """Prefix an error with the failing command's place, as redis-py's pipeline does."""
    text = textwrap.shorten(" ".join(map(_shown, command)), width=100, placeholder="...",
                            break_long_words=True)
    error.args = (f"Command # {number} ({text}) of pipeline caused error: "
                  f"{error.args[0]}",)
    return error

