"""settings.py: every setting checked once, from config.py or a flag; a bad one refused by name."""

import math
import re

import subprocess
import sys
from pathlib import Path

import pytest

import config
from live.cli import apply_settings, parse_args
from tests import program
from live.settings import (CONFIG_SOURCE, MAX_MATCHES_FILE_LIMIT, MAX_MATCHES_LIMIT, SETTINGS,
                      SettingsError, describe_value, validate_settings)

ROOT = Path(__file__).resolve().parent.parent
RUN_TIMEOUT_SECONDS = 120  # a safety net against a hung child, not a performance bound


def ids(cases):
    """Short test ids: NAME=value."""
    return [f"{case[0]}={describe_value(case[1])}"[:40] for case in cases]


def config_values(**overrides):
    """config.py's settings as a module's vars() would give them, with ``overrides``."""
    values = {name: getattr(config, name) for name in dir(config) if name.isupper()}
    return {**values, **overrides}


def refusal(flags=None, **overrides):
    """The SettingsError validate_settings raises for config.py's values with ``overrides``."""
    with pytest.raises(SettingsError) as excinfo:
        validate_settings(config_values(**overrides), flags)
    return excinfo.value


# -- config.py's values --------------------------------------------------------------------------

BAD_CONFIG_VALUES = [
    # the examples of issue 6
    ("POSTS_PER_SECOND", -1), ("POSTS_PER_SECOND", "fast"),
    ("GET_INTERVAL_SECONDS", 0), ("GET_INTERVAL_SECONDS", -1),
    ("WEIGHTED_MEAN_DIVISOR", 0), ("WEIGHTED_MEAN_DIVISOR", "1000"),
    ("WEIGHTED_MEAN_DIVISOR", -5), ("WEIGHTED_MEAN_DIVISOR", 1.5),
    ("EMOTICON_TYPES", "heart"), ("EMOTICON_TYPES", ("heart", "heart")), ("EMOTICON_TYPES", ()),
    ("MAX_MATCHES", 0), ("DB_PATH", None),
    # booleans are not numbers, floats are not ints, and numbers must be finite and in range
    ("POSTS_PER_SECOND", True), ("MAX_MATCHES", True), ("WEIGHTED_MEAN_DIVISOR", False),
    ("POSTS_PER_SECOND", math.nan), ("POSTS_PER_SECOND", math.inf), ("POSTS_PER_SECOND", 1e10),
    ("GET_INTERVAL_SECONDS", math.nan), ("BACKUP_INTERVAL_SECONDS", math.inf),
    ("BACKUP_INTERVAL_SECONDS", 0.05), ("BACKUP_INTERVAL_SECONDS", "10"),
    ("BACKUP_INTERVAL_SECONDS", 10 ** 400), ("DURATION_SECONDS", 0), ("DURATION_SECONDS", -1.0),
    ("MAX_MATCHES", 10.0), ("MAX_MATCHES", MAX_MATCHES_LIMIT + 1), ("MAX_MATCHES", 2 ** 63 - 1),
    ("MAX_USERS", 0), ("MAX_USERS", 2 ** 63), ("MAX_USERS", 10 ** 5000), ("MAX_USERS", "1000"),
    ("WEIGHTED_MEAN_DIVISOR", 2 ** 63),
    # emoticons: a sequence of distinct names fit for a Redis key, an SQL CHECK and a column
    ("EMOTICON_TYPES", {"heart", "sad"}), ("EMOTICON_TYPES", ("heart", 1)),
    ("EMOTICON_TYPES", ("heart", "")), ("EMOTICON_TYPES", ("heart", "broken heart")),
    ("EMOTICON_TYPES", ("it's",)), ("EMOTICON_TYPES", ("match_*",)), ("EMOTICON_TYPES", ("1up",)),
    ("EMOTICON_TYPES", ("a" * 16,)), ("EMOTICON_TYPES", tuple(f"e{i}" for i in range(11))),
    ("EMOTICON_TYPES", ("coeur\u2764",)), ("EMOTICON_TYPES", None),
    # the rest
    ("DB_PATH", ""), ("DB_PATH", "a\0b.db"), ("DB_PATH", b"x.db"),
    ("RANDOM_SEED", True), ("RANDOM_SEED", 1.5), ("RANDOM_SEED", -1), ("RANDOM_SEED", "7"),
    ("SHOW_DB_OUTPUT", 1), ("SHOW_DB_OUTPUT", "False"), ("SHOW_DB_OUTPUT", None),
]


@pytest.mark.parametrize("name, value", BAD_CONFIG_VALUES,
                         ids=ids(BAD_CONFIG_VALUES))
def test_bad_config_value_is_refused_by_name(name, value):
    """A bad value in config.py raises SettingsError naming the setting, config.py and the rule."""
    error = refusal(**{name: value})
    assert (error.name, error.source, error.allowed) == (name, CONFIG_SOURCE,
                                                         SETTINGS[name].rule.allowed)
    assert str(error).startswith(f"config.py: {name} = ")
    assert f"; allowed: {error.allowed}" in str(error) and "\n" not in str(error)


@pytest.mark.parametrize("value, reason", [
    ("heart", "a str, not a tuple: write ('heart',) for one emoticon"),
    (("heart", "heart"), "'heart' appears twice"),
    ((), "0 emoticons"),
    (("heart", "broken heart"), "'broken heart' is not such a name"),
])
def test_emoticon_refusal_says_what_is_wrong(value, reason):
    """A str is not a tuple of emoticons; duplicates and bad names are named in the message."""
    assert refusal(EMOTICON_TYPES=value).reason == reason


@pytest.mark.parametrize("name, value, reason", [
    ("POSTS_PER_SECOND", True, "a bool, not a number"),
    ("POSTS_PER_SECOND", "fast", "a str, not a number"),
    ("WEIGHTED_MEAN_DIVISOR", 1.5, "a float, not an int"),
    ("DB_PATH", None, "None, not a str"),
    ("SHOW_DB_OUTPUT", 1, "an int, not a bool"),
])
def test_wrong_type_is_named(name, value, reason):
    """A value of the wrong type is refused with its type named: a bool is not a number."""
    assert refusal(**{name: value}).reason == reason


GOOD_CONFIG_VALUES = [
    ("POSTS_PER_SECOND", 0, 0.0), ("POSTS_PER_SECOND", 2.5, 2.5), ("POSTS_PER_SECOND", 1e9, 1e9),
    ("GET_INTERVAL_SECONDS", 0.1, 0.1), ("BACKUP_INTERVAL_SECONDS", 1e9, 1e9),
    ("DURATION_SECONDS", None, None), ("DURATION_SECONDS", 0.001, 0.001),
    ("MAX_MATCHES", MAX_MATCHES_LIMIT, MAX_MATCHES_LIMIT), ("MAX_USERS", 2 ** 63 - 1, 2 ** 63 - 1),
    ("WEIGHTED_MEAN_DIVISOR", 1, 1), ("EMOTICON_TYPES", ["thumbs-up", "Sad_2"],
                                      ("thumbs-up", "Sad_2")),
    ("EMOTICON_TYPES", ("heart",), ("heart",)), ("EMOTICON_TYPES", ("a" * 15,), ("a" * 15,)),
    ("DB_PATH", "reactions.db", "reactions.db"), ("RANDOM_SEED", 0, 0), ("RANDOM_SEED", None, None),
    ("SHOW_DB_OUTPUT", True, True),
]


@pytest.mark.parametrize("name, value, used", GOOD_CONFIG_VALUES,
                         ids=ids(GOOD_CONFIG_VALUES))
def test_good_config_value_is_accepted(name, value, used):
    """An allowed value is returned as the program uses it (numbers of seconds as floats)."""
    value = validate_settings(config_values(**{name: value}))[name]
    assert value == used and type(value) is type(used)


def test_config_defaults_are_valid():
    """config.py as shipped passes, and every setting in it has a rule."""
    assert validate_settings(vars(config)) == config_values()


def test_unknown_config_name_is_refused_with_a_hint():
    """An upper-case name in config.py that is no setting (a typo) is refused, not ignored."""
    error = refusal(MAX_MATCHS=5)
    assert (error.name, error.source) == ("MAX_MATCHS", CONFIG_SOURCE)
    assert error.reason == "not a setting; did you mean MAX_MATCHES?"


def test_missing_config_setting_is_refused():
    """A setting deleted from config.py is refused as missing."""
    values = config_values()
    del values["MAX_USERS"]
    with pytest.raises(SettingsError, match=r"^config\.py: MAX_USERS is missing; allowed: "):
        validate_settings(values)


# -- flags ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", [setting.name for setting in SETTINGS.values()
                                  if setting.flag and setting.rule.allowed.startswith("None")])
def test_a_flag_of_none_is_none_as_help_shows_it(name):
    """--duration None, --seed None, --redis-url None: the default --help shows is accepted."""
    assert validate_settings(vars(config), {name: "None"})[name] is None

@pytest.mark.parametrize("name, text", [
    ("POSTS_PER_SECOND", "-1"), ("POSTS_PER_SECOND", "nan"), ("MAX_MATCHES", "0"),
    ("MAX_MATCHES", "1.5"), ("MAX_USERS", "x"), ("GET_INTERVAL_SECONDS", "0"),
    ("DURATION_SECONDS", "inf"), ("RANDOM_SEED", "-3"), ("DB_PATH", ""),
    ("MAX_MATCHES", str(MAX_MATCHES_LIMIT + 1)),
])
def test_bad_flag_is_refused_by_its_flag(name, text):
    """A bad flag value is refused by the same rule, naming the flag as typed and its setting."""
    error = refusal({name: text})
    flag = SETTINGS[name].flag
    assert (error.name, error.source, error.value) == (name, flag, text)
    assert str(error).startswith(f"{flag} {text or repr(text)} ({name}) is not allowed")


@pytest.mark.parametrize("name, text", [
    ("MAX_MATCHES", "５"), ("MAX_MATCHES", "١٠"), ("MAX_MATCHES", " 7 "), ("MAX_MATCHES", "1_0"),
    ("RANDOM_SEED", "５"), ("POSTS_PER_SECOND", "１"), ("POSTS_PER_SECOND", " 5"),
    ("POSTS_PER_SECOND", "1_000"), ("DURATION_SECONDS", "Infinity"),
])
def test_flag_numbers_are_ascii_digits_only(name, text):
    """A number flag takes ASCII digits only: other scripts' digits, spaces and _ are refused."""
    assert refusal({name: text}).source == SETTINGS[name].flag


@pytest.mark.parametrize("name, text, used", [
    ("MAX_MATCHES", "+7", 7), ("POSTS_PER_SECOND", "1e3", 1000.0),
    ("POSTS_PER_SECOND", ".5", 0.5), ("DURATION_SECONDS", "2.", 2.0),
])
def test_flag_numbers_in_ascii_notation_are_accepted(name, text, used):
    """Signs, decimals and exponents in ASCII are numbers."""
    assert validate_settings(config_values(), {name: text})[name] == used


def test_long_flag_value_is_cut_in_the_error():
    """A 50,000-character flag value is shown cut, as config.py values are."""
    error = str(refusal({"KEY_PREFIX": "x" * 50_000}))
    assert len(error) < 500 and "xxx..." in error


@pytest.mark.parametrize("prefix", ["\udcff:", "a\ud800"])
def test_prefix_that_is_not_utf8_is_refused(prefix):
    """A key prefix redis-py cannot encode is refused at start-up, shown escaped."""
    error = refusal({"KEY_PREFIX": prefix})
    assert error.name == "KEY_PREFIX" and "\\ud" in str(error) and "UTF-8" in str(error)
    assert refusal(KEY_PREFIX=prefix).source == CONFIG_SOURCE


@pytest.mark.parametrize("url", ["http://user:s3cret@127.0.0.1:1/0",
                                 "redis://127.0.0.1:1/abc?password=s3cret"])
def test_refused_redis_url_hides_its_password(url):
    """A refused URL is named without its password, from a flag or from config.py."""
    for error in (refusal({"REDIS_URL": url}), refusal(REDIS_URL=url)):
        assert "s3cret" not in str(error) and "***" in str(error)


def test_redis_url_with_a_database_that_is_not_a_number_is_refused():
    """redis://host/abc would silently be db 0 in redis-py: refused instead."""
    assert "must be a number" in str(refusal({"REDIS_URL": "redis://127.0.0.1:6379/abc"}))
    assert validate_settings(config_values(), {"REDIS_URL": "redis://h:1/15"})["REDIS_URL"]


def test_flag_overrides_config():
    """A flag's value wins over config.py's, parsed from its text."""
    values = validate_settings(config_values(), {"POSTS_PER_SECOND": "0", "MAX_MATCHES": "3",
                                                 "SHOW_DB_OUTPUT": True, "DB_PATH": "x.db"})
    assert (values["POSTS_PER_SECOND"], values["MAX_MATCHES"], values["SHOW_DB_OUTPUT"],
            values["DB_PATH"]) == (0.0, 3, True, "x.db")


def test_bad_config_value_is_reported_as_config_even_with_its_flag():
    """POSTS_PER_SECOND = "fast" in config.py is config.py's error, not a bad --rate."""
    error = refusal({"POSTS_PER_SECOND": "5"}, POSTS_PER_SECOND="fast")
    assert (error.name, error.source, error.value) == ("POSTS_PER_SECOND", CONFIG_SOURCE, "fast")


def test_matches_over_the_file_limit_are_refused_with_a_file_database():
    """With a database file, more matches than a backup commits in time are refused."""
    error = refusal({"MAX_MATCHES": str(MAX_MATCHES_FILE_LIMIT + 1)}, DB_PATH="r.db")
    assert (error.name, error.source) == ("MAX_MATCHES", "--matches")
    assert error.reason == f"more than {MAX_MATCHES_FILE_LIMIT:,} with the database file 'r.db' " \
                           "from config.py"
    assert validate_settings(config_values(MAX_MATCHES=MAX_MATCHES_FILE_LIMIT, DB_PATH="r.db"))


# -- main.py: parse_args and apply_settings ------------------------------------------------------

def test_every_flag_of_a_setting_is_on_the_command_line():
    """Each setting with a flag has it in main.py, and an absent flag leaves config.py's value."""
    args = parse_args([])
    for name, setting in SETTINGS.items():
        if setting.flag:
            assert getattr(args, name) is None
            switch = name in ("SHOW_DB_OUTPUT", "ALLOW_EVICTION")  # flags without a value
            assert parse_args([setting.flag] + ([] if switch else ["1"]))


def test_apply_settings_writes_checked_values_into_config():
    """apply_settings puts every flag, checked and parsed, over config.py's value."""
    apply_settings(parse_args([
        "--matches", "3", "--users", "7", "--rate", "0", "--seed", "4", "--db", "x.db",
        "--show-db", "--get-interval", "1.5", "--backup-interval", "2", "--duration", "9"]))
    assert (config.MAX_MATCHES, config.MAX_USERS, config.POSTS_PER_SECOND, config.RANDOM_SEED,
            config.DB_PATH, config.SHOW_DB_OUTPUT, config.GET_INTERVAL_SECONDS,
            config.BACKUP_INTERVAL_SECONDS, config.DURATION_SECONDS) == (
        3, 7, 0.0, 4, "x.db", True, 1.5, 2.0, 9.0)


def test_apply_settings_changes_nothing_when_refused():
    """A bad value leaves every config value as it was."""
    before = config_values()
    config.EMOTICON_TYPES = "heart"
    with pytest.raises(SettingsError):
        apply_settings(parse_args(["--matches", "3"]))
    assert config_values() == {**before, "EMOTICON_TYPES": "heart"}


def test_help_shows_config_defaults():
    """--help shows each flag's default as config.py has it."""
    result = subprocess.run([sys.executable, "main.py", "--help"], cwd=ROOT, text=True,
                            capture_output=True, timeout=RUN_TIMEOUT_SECONDS)
    assert result.returncode == 0
    help_text = " ".join(result.stdout.split())
    assert f"(default {config.MAX_MATCHES})" in help_text
    assert "(default ':memory:')" in help_text and "(default False)" in help_text


# -- main.py run with a copied, edited config.py -------------------------------------------------

def copy_with_setting(tmp_path, name, text):
    """The app's *.py files in ``tmp_path``, with ``name = text`` in its config.py."""
    program.copy_program(tmp_path)
    path = tmp_path / "config.py"
    edited, count = re.subn(rf"^{name} = .*$", f"{name} = {text}", path.read_text(), flags=re.M)
    assert count == 1
    path.write_text(edited)
    return tmp_path


def run_main(cwd, *flags):
    """Run main.py in ``cwd``: (exit status, stdout and stderr lines)."""
    result = subprocess.run([sys.executable, "main.py", *flags], cwd=cwd, text=True,
                            capture_output=True, timeout=RUN_TIMEOUT_SECONDS)
    return result.returncode, (result.stdout + result.stderr).splitlines()


@pytest.mark.parametrize("name, text", [
    ("POSTS_PER_SECOND", "-1"), ("POSTS_PER_SECOND", '"fast"'), ("GET_INTERVAL_SECONDS", "0"),
    ("GET_INTERVAL_SECONDS", "-1"), ("WEIGHTED_MEAN_DIVISOR", "0"),
    ("WEIGHTED_MEAN_DIVISOR", '"1000"'), ("WEIGHTED_MEAN_DIVISOR", "-5"),
    ("WEIGHTED_MEAN_DIVISOR", "1.5"), ("EMOTICON_TYPES", '"heart"'),
    ("EMOTICON_TYPES", '("heart", "heart")'), ("EMOTICON_TYPES", "()"), ("MAX_MATCHES", "0"),
    ("MAX_MATCHES", "3000000"), ("DB_PATH", "None"), ("SHOW_DB_OUTPUT", "1"),
])
def test_main_refuses_a_bad_config_value_in_one_line(tmp_path, name, text):
    """A bad config.py value: main.py exits 2, one line naming it and config.py, no traceback."""
    status, lines = run_main(copy_with_setting(tmp_path, name, text), "--duration", "1")
    assert status == 2, lines
    assert len(lines) == 1 and f" ERROR: config.py: {name} = " in lines[0], lines


def test_main_refuses_a_bad_config_value_even_with_its_flag(tmp_path):
    """POSTS_PER_SECOND = "fast" with --rate 5 is reported as config.py's, not as --rate."""
    status, lines = run_main(copy_with_setting(tmp_path, "POSTS_PER_SECOND", '"fast"'),
                             "--rate", "5", "--duration", "1")
    assert status == 2 and len(lines) == 1, lines
    assert "config.py: POSTS_PER_SECOND = 'fast' is not allowed (a str, not a number)" in lines[0]


def test_largest_matches_run_end_to_end():
    """--matches at its limit: a GET table of the busiest matches appears and the run ends OK."""
    status, lines = run_main(ROOT, "--matches", str(MAX_MATCHES_LIMIT), "--duration", "2",
                             "--get-interval", "0.5", "--backup-interval", "1")
    assert status == 0, lines
    assert any(f"the busiest 10 of {MAX_MATCHES_LIMIT:,} matches" in line for line in lines)
    assert lines[-1].endswith(" OK") and not any("Traceback" in line for line in lines)


def test_largest_matches_with_a_file_run_end_to_end(tmp_path):
    """--matches at its file limit with --db FILE: a GET table appears and the run ends OK."""
    # A few hundred events: each list is a commit on disk, and the disk's pace is not the point.
    status, lines = run_main(ROOT, "--matches", str(MAX_MATCHES_FILE_LIMIT), "--duration", "1",
                             "--rate", "300", "--get-interval", "0.5", "--db",
                             str(tmp_path / "r.db"))
    assert status == 0, lines
    assert any(f"the busiest 10 of {MAX_MATCHES_FILE_LIMIT:,} matches" in line for line in lines)
    assert lines[-1].endswith(" OK") and not any("Traceback" in line for line in lines)


@pytest.mark.parametrize("line, error", [("raise KeyboardInterrupt", "KeyboardInterrupt"),
                                         ("raise SystemExit(0)", "SystemExit")])
def test_main_refuses_a_config_that_raises_in_one_line(tmp_path, line, error):
    """A config.py raising KeyboardInterrupt or SystemExit: one line, exit 2, no traceback."""
    path = copy_with_setting(tmp_path, "MAX_USERS", "100") / "config.py"
    path.write_text(path.read_text() + f"\n{line}\n")
    status, lines = run_main(tmp_path, "--duration", "1")
    assert status == 2 and len(lines) == 1, lines
    assert lines[0].startswith(f"config.py cannot be loaded: {error}"), lines


def test_help_hides_a_password_in_config(tmp_path):
    """REDIS_URL with a password in config.py: --help shows it as ***."""
    cwd = copy_with_setting(tmp_path, "REDIS_URL", '"redis://u:s3cret@h:1/0?password=s3cret"')
    status, lines = run_main(cwd, "--help")
    assert status == 0 and "s3cret" not in "\n".join(lines)
    assert "u:***@h:1/0?password=***" in "".join(lines)


@pytest.mark.parametrize("text, error", [("(", "SyntaxError"), ("undefined_name", "NameError")])
def test_main_refuses_a_config_that_cannot_load_in_one_line(tmp_path, text, error):
    """A config.py Python cannot run: main.py exits 2, one line naming config.py and the error."""
    status, lines = run_main(copy_with_setting(tmp_path, "MAX_USERS", text), "--duration", "1")
    assert status == 2 and len(lines) == 1, lines
    assert lines[0].startswith(f"config.py cannot be loaded: {error}: "), lines
