"""A child process whose output a test reads line by line, never waiting on it for ever.

Tests run main.py as a user runs it, read its console until the line they wait for, send it a
signal, then wait for its end. A read on a pipe blocks until the child writes, so a child that
never prints the awaited line (on Python 3.10 the backups once failed and "backup moved" never
came) would hang the test and CI with it. Here every wait has a deadline, a safety net against
a hung child, not a performance bound: past it the child is killed and the test fails with every
line the child printed. conftest.py kills any child still running when its test ends, so a
failed test leaves no main.py behind.

The pipe is read with selectors and os.read, not through the file object: a line already in the
file object's buffer would be invisible to select, and a thread blocked in readline could not be
stopped.
"""

from __future__ import annotations

import os
import selectors
import subprocess
import time
from typing import Callable

__all__ = ["RUN_TIMEOUT_SECONDS", "Child", "kill_leftovers"]

RUN_TIMEOUT_SECONDS = 120  # a safety net against a hung child, not a performance bound

_children: list[Child] = []  # held until kill_leftovers: a test's locals are gone by then


class Child(subprocess.Popen):
    """``args`` as a child process, stdout (and stderr, unless told otherwise) on a pipe.

    Takes subprocess.Popen's keyword arguments; text mode always, stderr merged into stdout by
    default. Read it with read_until and finish only (not through ``stdout``), so that each
    line is seen once.
    """

    def __init__(self, args, **kwargs) -> None:
        kwargs.setdefault("stderr", subprocess.STDOUT)
        super().__init__(args, text=True, stdout=subprocess.PIPE, **kwargs)
        self._unread = b""  # the bytes after the last line break read so far
        self._lines: list[str] = []  # complete lines read but not yet handed out
        self._eof = False
        _children.append(self)

    def read_until(self, predicate: Callable[[str], object],
                   timeout: float = RUN_TIMEOUT_SECONDS) -> list[str]:
        """The child's lines, without line breaks, up to the first that satisfies ``predicate``.

        Raises AssertionError, with the lines, if the child ends first or ``timeout`` seconds
        pass (the child is killed then).
        """
        deadline = time.monotonic() + timeout
        lines: list[str] = []
        while True:
            while self._lines:
                lines.append(self._lines.pop(0))
                if predicate(lines[-1]):
                    return lines
            if self._eof:
                raise AssertionError(f"{self._name()} ended before the awaited line:\n"
                                     + "\n".join(lines))
            if not self._read(deadline):
                self._kill()
                raise AssertionError(f"{self._name()} printed no awaited line in {timeout}s "
                                     "(a safety net, not a time limit); killed it. Its lines:\n"
                                     + "\n".join(lines))

    def finish(self, timeout: float = RUN_TIMEOUT_SECONDS) -> tuple[int, list[str]]:
        """Wait for the child to end: (exit status, the lines not yet read). Raises
        AssertionError, with the lines, if it has not ended after ``timeout`` seconds (the child
        is killed then)."""
        deadline = time.monotonic() + timeout
        while not self._eof:
            if not self._read(deadline):
                break
        try:
            status = self.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            self._kill()
            raise AssertionError(f"{self._name()} did not end in {timeout}s (a safety net, not "
                                 "a time limit); killed it. Its lines:\n"
                                 + "\n".join(self._lines)) from None
        self._close_pipes()
        lines, self._lines = self._lines, []
        return status, lines

    def _read(self, deadline: float) -> bool:
        """Read what the pipe holds into complete lines, waiting until ``deadline`` at most;
        False if nothing came by then."""
        fd = self.stdout.fileno()
        with selectors.DefaultSelector() as selector:
            selector.register(fd, selectors.EVENT_READ)
            if not selector.select(max(0.0, deadline - time.monotonic())):
                return False
        chunk = os.read(fd, 65536)
        if not chunk:
            self._eof = True
            chunk = b"\n" if self._unread else b""  # a last line without a line break
        *complete, self._unread = (self._unread + chunk).split(b"\n")
        encoding = self.stdout.encoding
        self._lines += [line.decode(encoding, "replace") for line in complete]
        return True

    def _kill(self) -> None:
        self.kill()
        try:
            self.wait(timeout=RUN_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            pass  # unkillable (stuck in the kernel): nothing more a test can do about it
        self._close_pipes()

    def _close_pipes(self) -> None:
        for pipe in (self.stdout, self.stderr):
            if pipe is not None and not pipe.closed:
                pipe.close()

    def _name(self) -> str:
        """The command without its interpreter, as in "main.py --db x.db"."""
        return " ".join(str(arg) for arg in self.args[1:])


def kill_leftovers() -> None:
    """Kill every Child still running, close their pipes, and forget them all."""
    for child in _children:
        if child.poll() is None:
            child._kill()
        child._close_pipes()
    _children.clear()
