"""The settings of a run: one table of every setting and its rule, and one function to check them.

config.py holds the defaults; main.py's flags override some of them for one run. Either way a
value reaches the rest of the program only through ``validate_settings()``, once, at start-up:
main.py writes what it returns into ``config`` and the modules read ``config.NAME`` from then on.

To add a setting: give it a line in config.py (with its unit), a ``Setting`` in ``SETTINGS`` below
(its rule, and its flag if main.py has one), and the flag's ``add_argument`` in main.py. The rules
and the reasons for their limits are listed in docs/configuration.md.
"""

from __future__ import annotations

import difflib
import re
import shlex
from urllib.parse import urlsplit
from dataclasses import dataclass
from typing import Any, Callable, Mapping

from foundation.records import ID_MAX  # ids are SQLite INTEGERs and Redis counters: signed 64-bit
from foundation.redis_client import redacted  # stdlib only: redis-py is imported by connect() alone
from foundation.shown import cut, describe_value
from redis_adapter import KeyLayout  # the key layout's own rule, in one place

__all__ = ["SettingsError", "Rule", "Setting", "SETTINGS", "CONFIG_SOURCE", "validate_settings",
           "shown_value", "MAX_MATCHES_LIMIT", "MAX_MATCHES_FILE_LIMIT",
           "MIN_INTERVAL_SECONDS", "ID_MAX"]

CONFIG_SOURCE = "config.py"
"""The source named in an error about a value written in config.py."""

MAX_MATCHES_LIMIT = 100_000
"""The most matches a run serves. Every GET tick reads each match's counters (5 to 8 us a match:
0.6 s a tick at this limit, 2.4 s while posting at rate 0) and a backup may move one list per
match (4.2 s for 100,000 on :memory:); at 1,000,000 a tick took 7.8 s, 22 s while posting. On a
local redis-server the tick pipelines its MGETs: 1.5 to 2.0 s at this limit (docs/real-redis.md)."""
MAX_MATCHES_FILE_LIMIT = 1_000
"""The most matches with a database file: a backup commits each match's list on its own, 2 to
7 ms a list on disk, so 1,000 lists took 1.9 to 3.4 s of the 10 s interval (3,000: 9 to 14 s)."""
MAX_BUSY_SECONDS = 86_400  # a day: SQLite's busy timeout is an int of ms; longer is a hang
MIN_INTERVAL_SECONDS = 0.1  # shorter ticks print tables faster than anyone reads them
MAX_INGEST_BATCH = 100_000  # events per flush: one MULTI/EXEC of ~100 bytes a record
MIN_MAXMEMORY_BYTES = 1024 ** 2
"""The smallest memory limit of the in-memory Redis: the counters alone take some (10 matches of
5 emoticons: about 5 KB), and a limit they fill would refuse every post of the run. 1 MiB holds
about 11,000 pending events (94 bytes each, docs/failures.md)."""
MIN_FLUSH_SECONDS = 0.01  # the flush thread wakes this often at most
MAX_SECONDS = 1e9  # ~31 years: longer is forever for a live run; keeps clock sums finite
MAX_RATE = 1e9  # events/s; far above what one thread posts (docs/performance.md)
MAX_EMOTICONS = 10  # each is a 16-character column of the GET table: 10 make 170-character lines
EMOTICON_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,14}")
"""An emoticon: 1 to 15 ASCII letters, digits, _ or -, starting with a letter. It is part of a
Redis key (no spaces, no glob characters), a literal in the table's SQL CHECK (no quotes) and a
GET table column header (15 characters and a space)."""


class SettingsError(ValueError):
    """A setting's value is not allowed; nothing has started.

    ``name`` is the setting (config.py's name), ``source`` is where the value came from
    (``"config.py"`` or a flag such as ``"--rate"``), ``value`` is the value (a flag's text as
    typed), ``allowed`` says what is accepted and ``reason`` (maybe "") what is wrong with it.
    """

    def __init__(self, name: str, source: str, value: Any, allowed: str, reason: str = "") -> None:
        self.name, self.source, self.value = name, source, value
        self.allowed, self.reason = allowed, reason
        problem = "is not allowed" + (f" ({reason})" if reason else "")
        if value is MISSING:
            problem = "is missing"
        super().__init__(f"{_where(name, source, value)} {problem}; allowed: {allowed}")


MISSING: Any = type("Missing", (), {"__repr__": lambda self: "<missing>"})()
"""The value of a setting config.py does not define."""


def _where(name: str, source: str, value: Any) -> str:
    if value is MISSING:
        return f"{source}: {name}"
    if source == CONFIG_SOURCE:
        return f"{source}: {name} = {shown_value(name, value)}"
    text = value if name not in SECRET_SETTINGS or not isinstance(value, str) else redacted(value)
    if isinstance(text, str):  # cut as config.py values are; a lone surrogate shown escaped
        text = cut(text)
        text = shlex.quote(text.encode("utf-8", "backslashreplace").decode())
    return f"{source} {text} ({name})"


SECRET_SETTINGS = frozenset({"REDIS_URL"})
"""Settings whose value may hold a password: shown with it replaced by *** (redis_client)."""


def shown_value(name: str, value: Any) -> str:
    """Setting ``name``'s ``value`` as an error line or --help shows it: cut to 60 characters
    (describe_value), with any password of a secret setting replaced by ***."""
    if name in SECRET_SETTINGS and isinstance(value, str):
        value = redacted(value)
    return describe_value(value)


class Refused(ValueError):
    """Raised by a rule's check: the value is not allowed; the message (maybe "") says why."""


@dataclass(frozen=True)
class Rule:
    """What a setting accepts.

    ``check(value)`` returns the value to use (e.g. a list as a tuple) or raises Refused.
    ``parse(text)`` turns a flag's text into a value for check (ValueError: not allowed).
    ``allowed`` says what is accepted, in words, for the error message.
    """

    allowed: str
    check: Callable[[Any], Any]
    parse: Callable[[str], Any] = str


@dataclass(frozen=True)
class Setting:
    """One setting: its name in config.py, its rule, and the flag of main.py that overrides it."""

    name: str
    rule: Rule
    flag: str | None = None


def _a(value: Any) -> str:
    """The type of ``value`` with its article: "an int", "a str", "None"."""
    name = type(value).__name__
    if value is None:
        return "None"
    return f"{'an' if name[0] in 'aeiou' else 'a'} {name}"


_ASCII_INT = re.compile(r"[+-]?[0-9]+")
_ASCII_FLOAT = re.compile(r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?")


def parse_int(text: str) -> int:
    """A flag's text as an int: ASCII digits with an optional sign, nothing else (int() would
    also take spaces, underscores and other scripts' digits such as "５"). ValueError if not."""
    if not _ASCII_INT.fullmatch(text):
        raise ValueError(f"not an integer: {text!r}")
    return int(text)


def parse_float(text: str) -> float:
    """A flag's text as a number, in ASCII decimal or exponent notation only (float() would
    also take spaces, "inf", "nan", underscores and other scripts' digits). ValueError if not."""
    if not _ASCII_FLOAT.fullmatch(text):
        raise ValueError(f"not a number: {text!r}")
    return float(text)


def integer(low: int, high: int, allowed: str, zero: bool = False) -> Rule:
    """An int (not a bool, not a float) from ``low`` to ``high`` (or 0 if ``zero``)."""
    def check(value: Any) -> int:
        if type(value) is not int:
            raise Refused(f"{_a(value)}, not an int")
        if not (low <= value <= high or (zero and value == 0)):
            raise Refused("")
        return value
    return Rule(allowed, check, parse_int)


def number(low: float, high: float, allowed: str, zero: bool = False) -> Rule:
    """An int or float (not a bool), finite, from ``low`` to ``high`` (or 0 if ``zero``).

    The value used is a float."""
    def check(value: Any) -> float:
        if type(value) not in (int, float):
            raise Refused(f"{_a(value)}, not a number")
        # Compared before float(): an int too big for a float (10**400) is simply out of range.
        if not (low <= value <= high or (zero and value == 0)):
            raise Refused("")
        return float(value)
    return Rule(allowed, check, parse_float)


def optional(rule: Rule, meaning: str) -> Rule:
    """None (which means ``meaning``) or what ``rule`` accepts; a flag's text ``None`` is None,
    as --help shows config.py's None."""
    def check(value: Any) -> Any:
        return None if value is None else rule.check(value)

    def parse(text: str) -> Any:
        return None if text == "None" else rule.parse(text)
    return Rule(f"None ({meaning}) or {rule.allowed}", check, parse)


def _check_bool(value: Any) -> bool:
    if type(value) is not bool:
        raise Refused(f"{_a(value)}, not a bool")
    return value


def _check_emoticons(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        raise Refused(f"a str, not a tuple: write ({value!r},) for one emoticon")
    if type(value) not in (tuple, list):
        raise Refused(f"{_a(value)}, not a tuple")
    if not 1 <= len(value) <= MAX_EMOTICONS:
        raise Refused(f"{len(value)} emoticons")
    for emoticon in value:
        if type(emoticon) is not str or not EMOTICON_NAME.fullmatch(emoticon):
            raise Refused(f"{describe_value(emoticon)} is not such a name")
        if value.count(emoticon) > 1:
            raise Refused(f"{emoticon!r} appears twice")
    return tuple(value)


def _check_db_path(value: Any) -> str:
    if type(value) is not str:
        raise Refused(f"{_a(value)}, not a str")
    # "" would open a private temporary database, and SQLite cannot open a name with NUL.
    if not value or "\0" in value:
        raise Refused("")
    return value


def _check_redis_url(value: Any) -> str:
    if type(value) is not str:
        raise Refused(f"{_a(value)}, not a str")
    if not value.startswith(("redis://", "rediss://", "unix://")):
        raise Refused("")
    # redis-py reads the path as the db number and silently uses db 0 for "/abc".
    if not value.startswith("unix://") and not re.fullmatch(r"/?([0-9]+)?",
                                                             urlsplit(value).path):
        raise Refused("the database after the host must be a number, e.g. /0")
    return value


def _check_host(value: Any) -> str:
    if type(value) is not str or not value or any(c.isspace() or c == "\x00" for c in value):
        raise Refused("")
    return value


def _check_key_prefix(value: Any) -> str:
    try:
        return KeyLayout(value).prefix
    except ValueError:
        raise Refused("") from None


def _short(number: float) -> str:
    """1e9 as "1e9", not "1e+09"."""
    return f"{number:g}".replace("e+0", "e").replace("e+", "e")


_SECONDS = f"a number of seconds from {MIN_INTERVAL_SECONDS:g} to {_short(MAX_SECONDS)}"
_ID = "an int from 1 to 2**63-1 (ids are SQLite INTEGERs)"

SETTINGS: dict[str, Setting] = {setting.name: setting for setting in [
    Setting("MAX_MATCHES", integer(
        1, MAX_MATCHES_LIMIT,
        f"an int from 1 to {MAX_MATCHES_LIMIT:,}, or to {MAX_MATCHES_FILE_LIMIT:,} with a "
        "database file (each GET tick reads every match's counters and each backup commits "
        "every match's list; docs/configuration.md)"), "--matches"),
    Setting("MAX_USERS", integer(1, ID_MAX, _ID), "--users"),
    Setting("EMOTICON_TYPES", Rule(
        f"a tuple of 1 to {MAX_EMOTICONS} distinct names, each 1 to 15 ASCII letters, digits, "
        "_ or -, starting with a letter", _check_emoticons)),
    Setting("POSTS_PER_SECOND", number(
        0, MAX_RATE, f"a number of events/s from 0 to {_short(MAX_RATE)}, 0 = as fast as it can"),
        "--rate"),
    Setting("DURATION_SECONDS", optional(
        number(1e-3, MAX_SECONDS, f"a number of seconds from 0.001 to {_short(MAX_SECONDS)}"),
        "run until Ctrl-C"), "--duration"),
    Setting("GET_INTERVAL_SECONDS", number(MIN_INTERVAL_SECONDS, MAX_SECONDS, _SECONDS),
            "--get-interval"),
    Setting("BACKUP_INTERVAL_SECONDS", number(MIN_INTERVAL_SECONDS, MAX_SECONDS, _SECONDS),
            "--backup-interval"),
    Setting("WEIGHTED_MEAN_DIVISOR", integer(
        1, ID_MAX, "an int from 1 to 2**63-1 (a Redis counter never exceeds 2**63-1)")),
    Setting("DB_PATH", Rule('":memory:" or a file path: a non-empty str without NUL characters',
                            _check_db_path), "--db"),
    Setting("RANDOM_SEED", optional(
        integer(0, ID_MAX, "an int from 0 to 2**63-1 (a negative seed repeats its absolute "
                           "value's run)"), "a different run each time"), "--seed"),
    Setting("SHOW_DB_OUTPUT", Rule("True or False", _check_bool), "--show-db"),
    Setting("REDIS_URL", optional(Rule(
        "a Redis URL: redis://[[user]:password@]host[:port][/db number], rediss://... or "
        "unix://path (needs redis-py)", _check_redis_url), "the in-memory server"),
        "--redis-url"),
    Setting("KEY_PREFIX", Rule(
        'a str of at most 200 characters, valid UTF-8, not ending in a digit, "" = the seed\'s '
        "key names (a1 + 5_heart would read as counter 15_heart of prefix a)", _check_key_prefix),
        "--key-prefix"),
    Setting("ALLOW_EVICTION", Rule(
        "True or False (True: run on a Redis whose maxmemory-policy may evict this run's keys, "
        "accepting the loss it may cause)", _check_bool), "--allow-eviction"),
    Setting("INGEST_BATCH_EVENTS", integer(
        1, MAX_INGEST_BATCH, f"an int from 1 to {MAX_INGEST_BATCH:,} events, 1 = one write per "
        "POST (a flush is one MULTI/EXEC holding every record: about 10 MB at the limit)"),
        "--ingest-batch"),
    Setting("INGEST_FLUSH_SECONDS", number(
        MIN_FLUSH_SECONDS, MAX_SECONDS,
        f"a number of seconds from {MIN_FLUSH_SECONDS:g} to {_short(MAX_SECONDS)} (GET lags by "
        "up to this with --ingest-batch above 1)"), "--ingest-flush"),
    Setting("DB_BUSY_TIMEOUT_SECONDS", number(
        0, MAX_BUSY_SECONDS, f"a number of seconds from 0 to {MAX_BUSY_SECONDS:,} (one backup "
        "run's wait in all for a database locked by another process; 0 = no wait)")),
    Setting("HTTP_HOST", Rule(
        "an IP address or host name to listen on (a non-empty str without spaces): 127.0.0.1 "
        "(loopback) by default", _check_host), "--http-host"),
    Setting("HTTP_PORT", optional(integer(
        0, 65_535, "a TCP port from 1 to 65,535, or 0 = any free port"), "no HTTP server"),
        "--http-port"),
    Setting("REDIS_MAXMEMORY_BYTES", integer(
        MIN_MAXMEMORY_BYTES, ID_MAX, f"0 (no limit) or an int of bytes from "
        f"{MIN_MAXMEMORY_BYTES:,} (1 MiB) to 2**63-1 (the in-memory Redis's maxmemory)",
        zero=True)),
]}
"""Every setting, by its name in config.py: the one place for the rules of their values."""

def validate_settings(config_values: Mapping[str, Any],
                      flags: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Check every setting; return ``{name: value to use}`` for all of SETTINGS.

    ``config_values`` maps config.py's names to their values (e.g. ``vars(config)``; names that
    are not all upper case, such as modules and dunders, are ignored). ``flags`` maps a setting's
    name to the value of its flag when the flag was given: the text typed, or True for a switch.
    A flag's value wins over config.py's, but config.py's is checked too, so the file is right
    for the next run. Raises SettingsError for the first bad value, or for an upper-case name in
    config.py that is not a setting (a typo would otherwise be ignored silently).
    """
    flags = flags or {}
    _refuse_unknown(config_values)
    values, given = {}, {}
    for name, setting in SETTINGS.items():
        given[name] = (CONFIG_SOURCE, config_values.get(name, MISSING))
        values[name] = _checked(setting, *given[name])
        if name in flags:
            given[name] = (setting.flag or name, flags[name])
            values[name] = _checked(setting, *given[name], parse=True)
    _check_together(values, given)
    return values


def _check_together(values: Mapping[str, Any], given: Mapping[str, tuple[str, Any]]) -> None:
    """The rules between settings, on values each already allowed alone."""
    if values["DB_PATH"] != ":memory:" and values["MAX_MATCHES"] > MAX_MATCHES_FILE_LIMIT:
        source, value = given["DB_PATH"]
        raise SettingsError(
            "MAX_MATCHES", *given["MAX_MATCHES"], SETTINGS["MAX_MATCHES"].rule.allowed,
            f"more than {MAX_MATCHES_FILE_LIMIT:,} with the database file {value!r} from {source}")


def _checked(setting: Setting, source: str, value: Any, parse: bool = False) -> Any:
    """``setting``'s rule applied to ``value`` from ``source``; SettingsError if refused."""
    rule = setting.rule
    if value is MISSING:
        raise SettingsError(setting.name, source, value, rule.allowed)
    try:
        return rule.check(rule.parse(value) if parse and isinstance(value, str) else value)
    except (Refused, ValueError, OverflowError) as error:
        reason = str(error) if isinstance(error, Refused) else ""
        raise SettingsError(setting.name, source, value, rule.allowed, reason) from None


def _refuse_unknown(config_values: Mapping[str, Any]) -> None:
    for name in config_values:
        if name.isupper() and not name.startswith("_") and name not in SETTINGS:
            close = difflib.get_close_matches(name, SETTINGS, n=1)
            hint = f"did you mean {close[0]}?" if close else "a typo?"
            raise SettingsError(name, CONFIG_SOURCE, config_values[name],
                                "the settings " + ", ".join(SETTINGS), f"not a setting; {hint}")
