"""redis_client and main.py's Redis flags: redis-py only when asked for, clear one-line errors."""

import subprocess
import sys

import pytest

import main
from foundation import redis_client
from foundation.redis_client import RedisUnavailableError, connect, redacted
from tests.redis_server import free_port
from tests.test_main import ROOT

WITHOUT_REDIS_PY = ("import sys, runpy; sys.modules['redis'] = None; "
                    "sys.argv = ['main.py'] + sys.argv[1:]; "
                    "runpy.run_path('main.py', run_name='__main__')")


def run(*args, code=None):
    """Run main.py (or ``code`` standing for it) with ``args``; (status, output)."""
    command = [sys.executable, "-c", code, *args] if code else [sys.executable, "main.py", *args]
    done = subprocess.run(command, cwd=ROOT, text=True, capture_output=True, timeout=120)
    return done.returncode, (done.stdout + done.stderr).strip()


def test_main_imports_no_redis_py():
    """The default run needs the standard library alone: main.py does not import redis-py."""
    status, output = run(code="import sys; import main; "
                              "print(sorted(m for m in sys.modules if m.split('.')[0] == 'redis'))")
    assert (status, output) == (0, "[]")


def test_missing_redis_py_is_one_line_and_exit_2():
    """--redis-url without redis-py: one line saying how to install it, exit status 2."""
    status, output = run("--redis-url", "redis://127.0.0.1:6379/0", "--role", "get",
                         code=WITHOUT_REDIS_PY)
    assert status == 2
    assert output.endswith(f"needs redis-py, which {sys.executable} does not have: "
                           f"{redis_client.install_hint()}")
    assert len(output.splitlines()) == 1


def test_install_hint_points_at_the_project_venv(tmp_path, monkeypatch):
    """Run by another Python while the test command's .venv exists: use that .venv."""
    venv = tmp_path / ".venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "python").touch()
    monkeypatch.setattr(redis_client, "PROJECT_VENV", venv)
    assert redis_client.install_hint() == (f"run it with {venv}/bin/python (the test "
                                           "command's virtual environment, which has it)")


def test_install_hint_on_an_externally_managed_python_makes_a_venv(tmp_path, monkeypatch):
    """Where pip install is refused (PEP 668), the hint makes a virtual environment first."""
    (tmp_path / "EXTERNALLY-MANAGED").touch()
    monkeypatch.setattr(redis_client, "PROJECT_VENV", tmp_path / "none")
    monkeypatch.setattr(redis_client.sysconfig, "get_paths", lambda: {"stdlib": str(tmp_path)})
    hint = redis_client.install_hint()
    assert hint.startswith(f"{sys.executable} -m venv --system-site-packages {tmp_path}/none")
    assert f"{tmp_path}/none/bin/python -m pip install redis" in hint


def test_install_hint_otherwise_is_pip_on_this_very_python(tmp_path, monkeypatch):
    """Else pip on the interpreter that ran main.py, named by its path (python3 may differ)."""
    monkeypatch.setattr(redis_client, "PROJECT_VENV", tmp_path / "none")
    monkeypatch.setattr(redis_client.sysconfig, "get_paths", lambda: {"stdlib": str(tmp_path)})
    assert redis_client.install_hint() == f"{sys.executable} -m pip install redis"


def test_unreachable_redis_is_one_line_and_exit_2():
    """A server that does not answer: one line naming it, exit status 2."""
    pytest.importorskip("redis", reason="redis-py missing (python3 -m pip install redis)")
    url = f"redis://127.0.0.1:{free_port()}/0"
    status, output = run("--redis-url", url, "--role", "post", "--duration", "1")
    assert status == 2 and f"cannot reach Redis at {url}" in output
    assert len(output.splitlines()) == 1


@pytest.mark.parametrize("role", ["post", "get", "backup"])
def test_role_needs_a_real_redis(role):
    """A role other than all with the in-memory server is refused with exit status 2."""
    status, output = run("--role", role, "--duration", "1")
    assert status == 2 and f"--role {role} needs --redis-url" in output


@pytest.mark.parametrize("role", ["all", "backup"])
def test_backup_role_on_a_real_redis_refuses_a_memory_database(role):
    """A process that backs up a shared Redis into :memory: would lose its events: exit 2."""
    status, output = run("--redis-url", "redis://127.0.0.1:1/0", "--role", role)
    assert status == 2 and len(output.splitlines()) == 1
    assert f"--role {role} with --redis-url needs --db FILE" in output


def test_reconcile_needs_a_redis_url_and_a_file():
    """--reconcile with the in-memory Redis or database has nothing to read: exit status 2."""
    status, output = run("--reconcile")
    assert status == 2 and ("--reconcile needs --redis-url URL (the Redis whose counters to "
                            "check) and --db FILE (the database to reconcile against)" in output)


@pytest.mark.parametrize("flags, named", [
    (["--key-prefix", "a1"], "KEY_PREFIX"), (["--ingest-batch", "0"], "INGEST_BATCH_EVENTS"),
    (["--ingest-flush", "0"], "INGEST_FLUSH_SECONDS"), (["--redis-url", "http://x"], "REDIS_URL"),
    (["--role", "reader"], "--role")])
def test_bad_redis_flags_exit_2(flags, named):
    """A bad value of the new flags stops the run before it starts: exit status 2, named."""
    status, output = run(*flags, "--duration", "1")
    assert status == 2 and named in output, output


def test_password_is_not_logged():
    """A URL's password is replaced by *** in what is logged."""
    assert redacted("redis://user:secret@host:6380/1") == "redis://user:***@host:6380/1"


@pytest.mark.parametrize("url, shown", [
    ("redis://127.0.0.1:6379/0?password=s3cret&db=1", "redis://127.0.0.1:6379/0?password=***&db=1"),
    ("redis://:s3cret@h/0", "redis://:***@h/0"),
    ("unix://:s3cret@/tmp/r.sock?db=0", "unix://:***@/tmp/r.sock?db=0"),
    ("http://user:s3cret@127.0.0.1:1/0", "http://user:***@127.0.0.1:1/0"),
])
def test_password_in_userinfo_or_query_is_not_logged(url, shown):
    """Both places redis-py reads a password from are redacted."""
    assert redacted(url) == shown


def test_connect_gives_a_client_that_answers(redis_server):
    """connect() returns a client answering bytes (the adapter decodes), no own retries."""
    client = connect(redis_server.url)
    assert client.ping() is True
    assert client.get_connection_kwargs()["decode_responses"] is False
    client.close()


def test_connect_refuses_a_malformed_url():
    """A URL redis-py cannot read raises RedisUnavailableError."""
    pytest.importorskip("redis", reason="redis-py missing (python3 -m pip install redis)")
    with pytest.raises(RedisUnavailableError, match="invalid Redis URL"):
        connect("http://localhost")


def test_reconcile_refuses_a_missing_database_file(tmp_path):
    """--reconcile never creates the database it is asked to check: exit status 2."""
    missing = tmp_path / "none.db"
    status, output = run("--reconcile", "--redis-url", "redis://127.0.0.1:1/0", "--db",
                         str(missing))
    assert status == 2 and "no database file" in output and not missing.exists()
