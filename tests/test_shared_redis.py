"""A Redis shared with other applications and locked down by its operator: another
application's values under our names, and commands an ACL or rename-command refuses.

Each case runs main.py against a redis-server the test starts (tests/redis_server.py).
"""

import re

from db import ReactionsTable
from tests.redis_server import RedisServer, require_real_redis
from tests.test_main import finish, start
from tests.test_real_redis import distinct_rows, reconcile_command


def short_run(url, path, *flags):
    """main.py for a moment on ``url`` and database ``path``; (exit status, lines)."""
    return finish(start("--redis-url", url, "--db", str(path), "--rate", "500", "--duration",
                        "1.2", "--backup-interval", "0.3", "--get-interval", "0.3", *flags), [])


def test_a_foreign_counter_value_costs_that_counter_only(own_redis_server, tmp_path):
    """SET 5_heart abc: every GET table still appears, that cell shows unreadable, and one line
    names the key once (not every tick); no traceback."""
    own_redis_server.client().set("5_heart", "abc")
    status, lines = short_run(own_redis_server.url, tmp_path / "r.db")
    tables = [n for n, line in enumerate(lines) if " GET weighted" in line]
    assert len(tables) >= 2, "\n".join(lines)
    row = next(line for line in lines[tables[-1]:] if re.search(r"^\S+ +5  ", line))
    assert row.split()[2:4] == ["unreadable", "1"], row  # heart unreadable, sad read
    assert sum("5_heart" in line and "unreadable" in line for line in lines) == 1, lines
    assert not any("Traceback" in line for line in lines), "\n".join(lines)
    assert own_redis_server.client().get("5_heart") == "abc"


def test_another_apps_hash_at_a_generic_name_is_left_alone(own_redis_server, tmp_path):
    """A hash at reactions_source (our old dataset key's name): runs, backups and --reconcile
    go on without an error, and the hash is untouched."""
    own_redis_server.client().hset("reactions_source", "owner", "billing")
    path = tmp_path / "r.db"
    status, lines = short_run(own_redis_server.url, path)
    assert status == 0 and lines[-1].endswith(" OK"), "\n".join(lines)
    assert not any("WRONGTYPE" in line or "Traceback" in line for line in lines), lines
    status, output = reconcile_command(own_redis_server.url, path)
    assert status == 0 and " OK" in output and "Traceback" not in output, output
    assert own_redis_server.client().hgetall("reactions_source") == {"owner": "billing"}


OLD_ID = "0123456789abcdef0123456789abcdef"  # the previous version's ids: uuid4().hex


def test_a_run_on_a_redis_of_the_previous_naming_keeps_its_dataset(own_redis_server, tmp_path):
    """A Redis and a file left by the previous version (dataset id under reactions_source, a
    list staged by a backup that died): the run takes them over, nothing lost or doubled."""
    r = own_redis_server.client()
    path = tmp_path / "r.db"
    table = ReactionsTable(str(path))
    events = [{"user_id": n, "emoticon_type": "heart", "timestamp": 1000.0 + n, "match_id": 1}
              for n in range(1, 4)]
    table.insert_many(events[:2], batch="match_data_1:backup:0001", source=OLD_ID)
    table.forget_batch("match_data_1:backup:0001")
    table.close()
    r.set("reactions_source", OLD_ID)
    r.set("1_heart", 3)
    r.rpush("match_data_1:backup:0002", '{"user_id": 3, "emoticon_type": "heart", '
                                       '"timestamp": 1003.0, "match_id": 1}')
    status, lines = short_run(own_redis_server.url, path)
    assert status == 0 and lines[-1].endswith(" OK"), "\n".join(lines)
    rows, distinct = distinct_rows(path)
    assert rows == distinct and r.llen("match_data_1:backup:0002") == 0


def locked(*rules, extra=()):
    """A redis-server whose only user is app/pw with ``rules`` (ACL), and ``extra`` directives."""
    require_real_redis()
    return RedisServer(args=("--user", "default", "off", "--user", "app", "on", ">pw", "~*",
                             "&*", "+@all", *rules, *extra)).start()


def app_url(own_redis_server):
    return f"redis://app:pw@127.0.0.1:{own_redis_server.port}/0"


def run_locked(tmp_path, rules=(), flags=(), extra=()):
    """short_run, with ``flags``, on a locked() redis-server of its own (closed after):
    (exit status, lines)."""
    server = locked(*rules, extra=extra)
    try:
        return short_run(app_url(server), tmp_path / "r.db", *flags)
    finally:
        server.close()


def test_commands_an_acl_refuses_are_named_at_start(tmp_path):
    """An ACL without RENAME and SCAN: one line naming both, exit 2, no traceback."""
    status, lines = run_locked(tmp_path, rules=("-rename", "-scan"))
    assert status == 2 and len(lines) == 1, lines
    assert "RENAME" in lines[0] and "SCAN" in lines[0] and "app:***@" in lines[0], lines


def test_a_backup_without_unlink_is_refused_at_start(tmp_path):
    """An ACL without UNLINK (the backup's delete of a moved list): a backup process is refused
    in one line naming it, exit 2."""
    status, lines = run_locked(tmp_path, rules=("-unlink",), flags=("--role", "backup"))
    assert status == 2 and len(lines) == 1 and "UNLINK" in lines[0], lines


def test_a_renamed_command_is_named_at_start(tmp_path):
    """rename-command RENAME "" (disabled): one line naming it, exit 2."""
    status, lines = run_locked(tmp_path, flags=("--role", "backup"),
                               extra=("--rename-command", "RENAME", ""))
    assert status == 2 and len(lines) == 1 and "RENAME" in lines[0], lines


def test_reconcile_without_keys_says_not_checked(tmp_path):
    """--reconcile on an ACL without KEYS: NOT CHECKED in one line naming it, exit 5 (not the
    MISMATCH status), no traceback."""
    server = locked("-keys")
    path = tmp_path / "r.db"
    ReactionsTable(str(path)).close()
    try:
        status, output = reconcile_command(app_url(server), path)
    finally:
        server.close()
    assert status == 5 and "KEYS" in output and "NOT CHECKED" in output, output
    assert "Traceback" not in output and len(output.strip().splitlines()) == 1, output


def test_config_and_info_refused_are_said_and_the_run_goes_on(tmp_path):
    """No CONFIG and no INFO (a locked-down managed Redis): one line says the eviction policy
    and persistence could not be checked, and the run goes on, OK."""
    status, lines = run_locked(tmp_path, rules=("-config", "-info"))
    assert status == 0 and lines[-1].endswith(" OK"), "\n".join(lines)
    said = [line for line in lines if "could not be checked" in line]
    assert len(said) == 1 and "CONFIG" in said[0] and "INFO" in said[0], lines
