"""``python3 -m tools.redis_py_tests SDIST_DIR``: redis-py's own tests on redis-server and on us.

Runs redis-py's ``tests/test_commands.py`` and ``tests/test_pipeline.py`` (from its source
distribution: ``pip download --no-binary :all: --no-deps redis`` and untar it; SDIST_DIR is the
untarred ``redis-X.Y.Z``) twice with pytest: against a redis-server this script starts on a free
loopback port, and against InMemoryRedis behind tools/resp_server.py. Then it counts, among the
tests that pass on redis-server, those that also pass on InMemoryRedis, and sorts the others by
cause: a command InMemoryRedis does not offer ("unknown command"), or a real difference (listed
by name). Not imported by the application; needs pytest and redis-py (and pytest-timeout, to
stop a test that waits forever).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ElementTree
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TEST_FILES = ["tests/test_commands.py", "tests/test_pipeline.py"]
RUN_TIMEOUT_SECONDS = 1800  # stops a hung run only
TEST_TIMEOUT_SECONDS = 20


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for(port: int) -> None:
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on port {port}")


def run_suite(sdist: Path, port: int, report: Path) -> dict[str, tuple[str, str]]:
    """Run the test files against 127.0.0.1:``port``; {test id: (outcome, message)}."""
    # A test waiting for a command that never answers as it expects (a blocking pop, say) is
    # stopped after TEST_TIMEOUT_SECONDS when pytest-timeout is installed, and counts as failed.
    timeout = [f"--timeout={TEST_TIMEOUT_SECONDS}"] if importlib.util.find_spec("pytest_timeout") \
        else []
    subprocess.run([sys.executable, "-m", "pytest", *TEST_FILES, "-q", "--tb=line",
                    "-p", "no:cacheprovider",
                    *timeout, f"--redis-url=redis://127.0.0.1:{port}/0", f"--junitxml={report}"],
                   cwd=sdist, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   timeout=RUN_TIMEOUT_SECONDS)
    results = {}
    for case in ElementTree.parse(report).iter("testcase"):
        test = f"{case.get('classname')}::{case.get('name')}"
        outcome, message = "passed", ""
        for child in case:
            if child.tag in ("failure", "error", "skipped"):
                outcome = "skipped" if child.tag == "skipped" else "failed"
                message = (child.get("message") or "") + "\n" + (child.text or "")
        results[test] = (outcome, message)
    return results


def cause(message: str) -> str:
    """Why a test that passes on redis-server fails on InMemoryRedis."""
    found = re.search(r"unknown command '([^' ]*)", message)
    if found:
        return f"command not offered: {found.group(1).upper()}"
    return "difference"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sdist", type=Path, help="the untarred redis-py source distribution")
    parser.add_argument("--list", action="store_true", help="name every differing test")
    args = parser.parse_args()
    server = shutil.which("redis-server")
    if server is None:
        print("redis-server is not installed", file=sys.stderr)
        return 2
    real_port, fake_port = free_port(), free_port()
    real = subprocess.Popen([server, "--port", str(real_port), "--bind", "127.0.0.1",
                             "--save", "", "--appendonly", "no"], stdout=subprocess.DEVNULL)
    fake = subprocess.Popen([sys.executable, "-m", "tools.resp_server", "--port", str(fake_port)],
                            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(real_port)
        wait_for(fake_port)
        with tempfile.TemporaryDirectory() as tmp:
            on_real = run_suite(args.sdist, real_port, Path(tmp, "real.xml"))
            on_fake = run_suite(args.sdist, fake_port, Path(tmp, "fake.xml"))
    finally:
        for process in (real, fake):
            process.terminate()
            process.wait(timeout=10)
    passing = [test for test, (outcome, _) in on_real.items() if outcome == "passed"]
    also = [test for test in passing if on_fake.get(test, ("missing",))[0] == "passed"]
    causes, missing = Counter(), Counter()
    differences = []
    for test in passing:
        outcome, message = on_fake.get(test, ("missing", ""))
        if outcome != "passed":
            why = cause(message)
            causes["command not offered" if why.startswith("command") else why] += 1
            if why == "difference":
                differences.append(test)
            else:
                missing[why.rsplit(": ", 1)[-1]] += 1
    print(f"redis-py tests ({', '.join(TEST_FILES)}): {len(on_real)} collected, "
          f"{len(passing)} pass on redis-server {version(server)}")
    print(f"of those, pass on InMemoryRedis: {len(also)}")
    for why, number in causes.most_common():
        print(f"of those, fail on InMemoryRedis, {why}: {number}")
    if args.list:
        print("  tests per first command not offered:",
              ", ".join(f"{name} {number}" for name, number in missing.most_common()))
        for test in differences:
            print("  difference:", test, "--", on_fake[test][1].strip().splitlines()[0][:160])
    return 0


def version(server: str) -> str:
    text = subprocess.run([server, "--version"], capture_output=True, text=True).stdout
    found = re.search(r"v=(\S+)", text)
    return found.group(1) if found else "?"


if __name__ == "__main__":
    sys.exit(main())
