"""A small W3C WebDriver client on http.client: headless Chromium driven through chromedriver.

chromedriver (Debian package chromium-driver) speaks the W3C WebDriver protocol: JSON over plain
HTTP, one request per command (``POST /session``, ``POST /session/{id}/url``, ``POST
/session/{id}/element``, ...). These few commands are all the live page's test needs, so it
needs no Python dependency beyond the standard library. Every wait is bounded and says what it
waited for when it gives up.
"""

from __future__ import annotations

import base64
import http.client
import json
import shutil
import socket
import subprocess
import tempfile
import time
from typing import Any, Callable

__all__ = ["Browser", "WebDriverError", "missing_browser", "ELEMENT_KEY"]

ELEMENT_KEY = "element-6066-11e4-a52e-4f735466cecf"
"""The key of a web element reference in W3C WebDriver's JSON."""
DRIVER_START_SECONDS = 30.0
"""The longest wait for chromedriver to answer /status, and for a new session (a cold start)."""
COMMAND_SECONDS = 60.0
"""The longest wait for one WebDriver command's answer."""
CHROMIUM_FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                  "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync")
"""Headless, as root in a container (no sandbox, no /dev/shm), and quiet: nothing fetched."""


class WebDriverError(Exception):
    """chromedriver answered an error (``error`` and ``message`` of W3C WebDriver), or did not
    answer in time."""


def missing_browser() -> str | None:
    """Why no browser can be driven here (None if chromedriver and Chromium are installed)."""
    if shutil.which("chromedriver") is None:
        return "chromedriver missing: apt-get install chromium chromium-driver"
    if _chromium() is None:
        return "Chromium missing: apt-get install chromium chromium-driver"
    return None


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path is not None:
            return path
    return None


class Browser:
    """One headless Chromium (a chromedriver process and one session), closed by ``close()``.

    ``width`` x ``height``: the window's size in CSS pixels (screenshots are that size).
    """

    def __init__(self, width: int = 1200, height: int = 1000) -> None:
        self._profile = tempfile.TemporaryDirectory(prefix="live-page-chromium-")
        self._port = _free_port()
        self._driver = subprocess.Popen(["chromedriver", f"--port={self._port}"],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.session: str | None = None
        try:
            wait_until(self._driver_ready, DRIVER_START_SECONDS, "chromedriver to answer /status")
            args = [*CHROMIUM_FLAGS, f"--user-data-dir={self._profile.name}",
                    f"--window-size={width},{height}"]
            answer = self._command("POST", "/session", {"capabilities": {"alwaysMatch": {
                "browserName": "chrome",
                "goog:chromeOptions": {"binary": _chromium(), "args": args}}}})
            self.session = answer["sessionId"]
        except BaseException:
            self.close()
            raise

    # -- the commands --------------------------------------------------------------------------

    def get(self, url: str) -> None:
        """Load ``url`` and wait for its load event (chromedriver's default page-load strategy)."""
        self._session("POST", "/url", {"url": url})

    def find(self, css: str) -> str:
        """The element matching the CSS selector ``css`` (its WebDriver reference)."""
        found = self._session("POST", "/element", {"using": "css selector", "value": css})
        return found[ELEMENT_KEY]

    def find_all(self, css: str) -> list[str]:
        """Every element matching ``css``, in document order (maybe none)."""
        found = self._session("POST", "/elements", {"using": "css selector", "value": css})
        return [element[ELEMENT_KEY] for element in found]

    def text(self, element: str) -> str:
        """The element's rendered text, as a person reads it."""
        return self._session("GET", f"/element/{element}/text")

    def click(self, element: str) -> None:
        """Click the element as a person would (it must be visible and enabled)."""
        self._session("POST", f"/element/{element}/click", {})

    def type_into(self, element: str, text: str) -> None:
        """Clear an input and type ``text`` into it, key by key."""
        self._session("POST", f"/element/{element}/clear", {})
        self._session("POST", f"/element/{element}/value", {"text": text})

    def execute(self, script: str, *args: Any) -> Any:
        """Run ``script`` (a function body; ``arguments`` holds ``args``) and return its value."""
        return self._session("POST", "/execute/sync", {"script": script, "args": list(args)})

    def screenshot(self) -> bytes:
        """The viewport as PNG bytes."""
        return base64.b64decode(self._session("GET", "/screenshot"))

    def close(self) -> None:
        """End the session and chromedriver (and with them Chromium); safe to call twice."""
        if self.session is not None:
            try:
                self._command("DELETE", f"/session/{self.session}", timeout=DRIVER_START_SECONDS)
            except (WebDriverError, OSError):
                pass
            self.session = None
        if self._driver.poll() is None:
            self._driver.terminate()
            try:
                self._driver.wait(DRIVER_START_SECONDS)
            except subprocess.TimeoutExpired:
                self._driver.kill()
                self._driver.wait()
        self._profile.cleanup()

    # -- the protocol ----------------------------------------------------------------------------

    def _session(self, method: str, path: str, body: Any = None) -> Any:
        return self._command(method, f"/session/{self.session}{path}", body)

    def _command(self, method: str, path: str, body: Any = None,
                 timeout: float = COMMAND_SECONDS) -> Any:
        """Send one WebDriver command; its ``value``. Raises WebDriverError."""
        connection = http.client.HTTPConnection("127.0.0.1", self._port, timeout=timeout)
        try:
            data = None if body is None else json.dumps(body).encode()
            connection.request(method, path, body=data,
                               headers={"content-type": "application/json; charset=utf-8"})
            response = connection.getresponse()
            answer = json.loads(response.read() or b"{}")
        except (OSError, ValueError) as error:
            raise WebDriverError(f"{method} {path}: no answer from chromedriver ({error})"
                                 ) from None
        finally:
            connection.close()
        value = answer.get("value")
        if response.status != 200:
            error = value.get("error") if isinstance(value, dict) else None
            message = value.get("message") if isinstance(value, dict) else value
            raise WebDriverError(f"{method} {path}: {response.status} {error}: {message}")
        return value

    def _driver_ready(self) -> bool:
        if self._driver.poll() is not None:
            raise WebDriverError(f"chromedriver exited with status {self._driver.returncode}")
        try:
            return bool(self._command("GET", "/status", timeout=2).get("ready"))
        except WebDriverError:
            return False


def wait_until(condition: Callable[[], Any], seconds: float, what: str,
               every: float = 0.05) -> Any:
    """Call ``condition`` until it returns something true, and return that; at most ``seconds``
    seconds, then AssertionError naming ``what`` was waited for."""
    deadline = time.monotonic() + seconds
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up after {seconds:g}s waiting for {what}")
        time.sleep(every)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
