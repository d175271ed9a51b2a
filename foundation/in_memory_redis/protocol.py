"""What crosses between redis-py and the server: arguments on the way in, replies on the way out.

Arguments are encoded as redis-py's Encoder sends them (``_encode``, ``_pack``) and parsed as
Redis reads them (``_parse_int``, ``_word``). A reply leaves the server as Redis puts it on the
wire (an int, a bulk string, an array, a ``_Status`` such as OK, an error reply); the client
side then decodes it and applies redis-py's response callback (``_client_reply``), as redis-py
does after reading a reply. ``_bytes_sent`` records, process-wide, whether any argument has
been kept as bytes: until then replies skip the decoding pass (see docs/in-memory-redis.md).
"""

from __future__ import annotations

from typing import Any, Callable

from .command_table import COMMAND_NAMES
from .errors import DataError, NOT_AN_INTEGER, ResponseError

NEVER_DECODE = "NEVER_DECODE"
"""execute_command option (redis-py's name): answer bytes, whatever decode_responses says."""
EMPTY_RESPONSE = "EMPTY_RESPONSE"
"""execute_command option (redis-py's name): the reply to give if Redis answers an error (a
pipeline does not send the command at all); mget([]) answers [] this way."""

_INT64_MIN, _INT64_MAX = -(2 ** 63), 2 ** 63 - 1


class _Status(str):
    """A status reply (Redis's "+OK"), as opposed to a bulk string that happens to read "OK"."""


OK = _Status("OK")


# -- arguments: what redis-py's Encoder sends -------------------------------------------------

# Set once any argument is kept as bytes: until then no reply can hold bytes, and replies skip
# the decoding pass (the POST and GET paths never send any).
_bytes_sent = False


def _encode(value: Any) -> str | bytes:
    """Turn an argument into what Redis receives, as redis-py's Encoder does.

    Text is kept as str when it is UTF-8 (the usual case), as bytes otherwise: Redis stores any
    bytes, and only a decoding read of them fails.
    """
    global _bytes_sent
    if type(value) is int:  # the commonest after ASCII text (an INCRBY amount, an index)
        return repr(value)
    if isinstance(value, str):  # a subclass (e.g. a str Enum) is sent as its plain str value
        if not value.isascii():
            value.encode()  # UnicodeEncodeError on a lone surrogate, as redis-py's Encoder
        return str.__str__(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        data = bytes(value)
        try:
            return data.decode()
        except UnicodeDecodeError:
            _bytes_sent = True
            return data
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return repr(value)
    raise DataError(f"Invalid input of type: '{type(value).__name__}'. "
                    "Convert to a bytes, string, int or float first.")


def _pack(args: tuple) -> list[str | bytes]:
    """The command as Redis receives it: the name, then every argument encoded."""
    command = list(args)
    index = 0
    for arg in args:  # a loop, not a comprehension: cheaper on CPython 3.11
        if type(arg) is not str or not arg.isascii():  # ASCII text (nearly all) is sent as is
            command[index] = repr(arg) if type(arg) is int else _encode(arg)
        index += 1
    if command[0] in COMMAND_NAMES:  # the usual case: an offered name, as redis-py spells it
        return command
    words = _split_name(args)  # "GET k", or just "get" or b"GET"
    return command if words is args else _pack(words)


def _split_name(args: tuple) -> tuple:
    """redis-py's pack: a name holding whitespace is split into words, so
    ``execute_command("FLUSHDB ASYNC")`` sends FLUSHDB and ASYNC (a bytes name only if it holds
    a space). A name of whitespace only leaves the next argument as the name."""
    name = args[0]
    if isinstance(name, str) and not name.isalpha():
        words = tuple(name.encode().split())
    elif isinstance(name, (bytes, bytearray)) and b" " in name:
        words = tuple(name.split())
    else:
        return args
    return (words + args[1:]) or args  # nothing at all: sent as it is, an unknown command


def _raw(text: str | bytes) -> bytes:
    """The bytes of an argument or key."""
    return text if type(text) is bytes else text.encode()


def _word(arg: str | bytes) -> str:
    """An option name upper-cased ("" for bytes that are not UTF-8: never a valid option)."""
    return arg.upper() if type(arg) is str else ""


def _parse_int(text: str | bytes) -> int:
    """Parse a signed 64-bit integer the way Redis's string2ll does, or raise ResponseError.

    Only the canonical form counts: no '+', no leading zeros or spaces, no "-0" -- exactly the
    strings that str() gives back unchanged.
    """
    if type(text) is not str or not 0 < len(text) <= 20:
        raise ResponseError(NOT_AN_INTEGER)
    if len(text) < 19 and text.isdigit() and text.isascii() and (text[0] != "0" or text == "0"):
        return int(text)  # the usual case, a small non-negative number, already canonical
    try:
        number = int(text)
    except ValueError:
        raise ResponseError(NOT_AN_INTEGER) from None
    if str(number) != text or not _INT64_MIN <= number <= _INT64_MAX:
        raise ResponseError(NOT_AN_INTEGER)
    return number


# -- replies: what redis-py makes of them ------------------------------------------------------

def _decode(reply: Any) -> Any:
    """A reply as redis-py with decode_responses=True gives it: bytes decoded as UTF-8.

    Raises UnicodeDecodeError, as redis-py does, for a value that is not UTF-8.
    """
    if type(reply) is bytes:
        return reply.decode()
    if type(reply) is list:
        return [_decode(item) for item in reply]
    if type(reply) is _Status:
        return str(reply)
    return reply


def _undecoded(reply: Any) -> Any:
    """A reply as redis-py gives it with NEVER_DECODE: every string as bytes."""
    if isinstance(reply, str):
        return reply.encode()
    if type(reply) is list:
        return [_undecoded(item) for item in reply]
    return reply


def _is_ok(reply: Any) -> bool:
    return reply == "OK" or reply == b"OK"


def _set_reply(reply: Any, **options: Any) -> Any:
    """redis-py's parse_set_result: the old value with GET, else True for OK, None if not set."""
    return reply if options.get("get") else reply and _is_ok(reply)


def _scan_reply(reply: Any, **options: Any) -> tuple[int, list]:
    cursor, keys = reply
    return int(cursor), keys


# redis-py's response callbacks for the commands offered (looked up by the upper-cased name).
_CALLBACKS: dict[str, Callable[..., Any]] = {
    "SET": _set_reply,
    "SCAN": _scan_reply,
    "RENAMENX": lambda reply, **options: bool(reply),
    "EXPIRE": lambda reply, **options: bool(reply),
    "PERSIST": lambda reply, **options: bool(reply),
    "PING": lambda reply, **options: reply == "PONG" or reply == b"PONG",
    **dict.fromkeys(["GET", "MGET", "INCRBY", "INCR", "DECR", "DECRBY", "RPUSH", "LRANGE",
                     "LLEN", "DEL", "UNLINK", "EXISTS", "TTL", "PTTL", "TYPE", "KEYS", "DBSIZE",
                     "EXEC", "DISCARD"]),  # no callback: the reply as it is
}
for _name in ("RENAME", "FLUSHDB", "WATCH", "UNWATCH"):
    _CALLBACKS[_name] = lambda reply, **options: _is_ok(reply)


# Commands whose reply redis-py returns as read: with no bytes stored, nothing to do to it.
# (KEYS is left out: its glob pattern is compiled first, see _compile_patterns.)
_PLAIN_REPLIES = frozenset(["GET", "MGET", "INCRBY", "INCR", "DECR", "DECRBY", "RPUSH",
                            "LRANGE", "LLEN", "DEL", "UNLINK", "EXISTS", "TTL", "PTTL", "DBSIZE"])


def _callback(name: str | bytes) -> Callable[..., Any] | None:
    """redis-py's response callback for the command ``name`` (any case), or None."""
    callback = _CALLBACKS.get(name, _CALLBACKS)  # the usual exact, upper-case name first
    if callback is _CALLBACKS:
        callback = _CALLBACKS.get(_word(name))
    return callback


def _client_reply(name: Any, reply: Any, options: dict[str, Any],
                  in_transaction: bool = False) -> Any:
    """The server's ``reply`` to a command as redis-py returns it (decoded, then its callback).

    ``name`` is the command's first argument as the caller gave it: redis-py looks its callback
    up by that, so ``execute_command("SET k v")`` answers the raw "OK". Inside MULTI/EXEC
    redis-py decodes every reply, NEVER_DECODE or not.
    """
    if options or _bytes_sent:
        never_decode = NEVER_DECODE in options and not in_transaction
        reply = _undecoded(reply) if never_decode else _decode(reply)
    elif type(reply) is _Status:
        reply = str.__str__(reply)
    callback = _callback(name)
    if callback is None:
        return reply
    return callback(reply, **{key: value for key, value in options.items()
                              if key not in (NEVER_DECODE, EMPTY_RESPONSE, "keys")})

