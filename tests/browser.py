"""Open a local HTML page in headless Chromium: the DOM after scripts ran, console errors, a screenshot.

Why the DevTools protocol and not Chromium's log: with ``--enable-logging=stderr --v=0`` Chromium 156
(Debian 12) prints every console message of a file:// page as
``[pid:tid:MMDD/HHMMSS.us:INFO:CONSOLE:9] "boom", source: file:///page.html (9)`` -- always at INFO, whether
it came from console.log, console.warn or console.error (only uncaught exceptions are recognisable, by their
"Uncaught" prefix) -- and it never mentions a failed resource load or a network request. So Chromium is
driven instead over ``--remote-debugging-pipe`` (JSON messages ending in NUL, read from fd 3 and written to
fd 4): standard library only, one Chromium process per page, the page left unchanged. Host names resolve to
nothing (``--host-resolver-rules``), so a page can never reach the network.
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import select
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"  # kept by CI; screenshots go here
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")
LOCAL_SCHEMES = ("file:", "data:", "blob:", "about:", "chrome-error:")
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-extensions",
    "--hide-scrollbars",
    "--host-resolver-rules=MAP * ~NOTFOUND",
    "--remote-debugging-pipe",
)
# After the load event: two animation frames and a short pause, for scripts that draw on load.
SETTLE_JS = "new Promise(r => requestAnimationFrame(() => requestAnimationFrame(() => setTimeout(r, 250))))"


class BrowserError(RuntimeError):
    """Chromium could not be started, exited early, timed out or failed to load the page."""


@dataclass
class PageResult:
    """What :func:`open_page` saw: ``dom`` is ``document.documentElement.outerHTML`` after the load event."""

    dom: str
    console_errors: list[str]
    screenshot: Path
    value: Any = None  # what ``script`` returned


def find_chromium() -> str | None:
    """The first of chromium, chromium-browser, google-chrome on PATH, or None."""
    for name in CHROMIUM_NAMES:
        if path := shutil.which(name):
            return path
    return None


def require_chromium() -> str:
    """Chromium's path; if there is none, fail the test when $CI is set (CI installs it), else skip it."""
    if path := find_chromium():
        return path
    reason = f"none of {', '.join(CHROMIUM_NAMES)} on PATH (install it with `make browser`)"
    if os.environ.get("CI", "").lower() not in ("", "0", "false"):
        pytest.fail(f"CI is set but {reason}")
    pytest.skip(reason)


class _DevTools:
    """A Chromium process and its DevTools pipe; events arriving between replies are kept in ``events``."""

    def __init__(self, chromium: str, profile: Path, deadline: float) -> None:
        self.deadline, self.next_id, self.buffer = deadline, 0, bytearray()
        self.events: list[dict[str, Any]] = []
        self.stderr_path = profile / "chromium.stderr"
        to_child_r, self.to_child = os.pipe()
        self.from_child, from_child_w = os.pipe()
        # Chromium wants the pipe on fds 3 and 4; bash moves it there (from fds >= 5: no clobbering).
        r, w = (fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 5) for fd in (to_child_r, from_child_w))
        for fd in (to_child_r, from_child_w):
            os.close(fd)
        argv = [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "about:blank"]
        with open(self.stderr_path, "wb") as stderr:
            self.proc = subprocess.Popen(
                ["bash", "-c", f'exec "$@" 3<&{r} 4>&{w} {r}<&- {w}>&-', "bash", *argv],
                stdin=subprocess.DEVNULL, stdout=stderr, stderr=stderr, pass_fds=(r, w),
            )  # fmt: skip
        os.close(r)
        os.close(w)

    def _fail(self, what: str) -> BrowserError:
        tail = self.stderr_path.read_text(errors="replace").splitlines()[-15:]
        return BrowserError(f"{what}; chromium stderr (tail):\n" + "\n".join(tail))

    def _receive(self) -> dict[str, Any]:
        while (end := self.buffer.find(b"\0")) < 0:
            remaining = self.deadline - time.monotonic()
            if remaining <= 0:
                raise self._fail("chromium timed out")
            if select.select([self.from_child], [], [], remaining)[0]:
                chunk = os.read(self.from_child, 1 << 20)
                if not chunk:
                    raise self._fail(f"chromium closed its DevTools pipe (exit status {self.proc.wait(5)})")
                self.buffer += chunk
        message = json.loads(self.buffer[:end])
        del self.buffer[: end + 1]
        return message

    def send(self, method: str, params: dict[str, Any] | None = None, session: str | None = None) -> Any:
        """Call ``method`` and return its result, keeping the events that arrive meanwhile."""
        self.next_id += 1
        message = {"id": self.next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        data = json.dumps(message).encode() + b"\0"
        try:
            while data:
                data = data[os.write(self.to_child, data) :]
        except OSError as exc:
            raise self._fail(f"chromium stopped reading its DevTools pipe ({exc})") from exc
        while "id" not in (reply := self._receive()) or reply["id"] != self.next_id:
            self.events.append(reply)
        if "error" in reply:
            raise BrowserError(f"DevTools {method} failed: {reply['error']}")
        return reply["result"]

    def wait_for(self, event: str) -> None:
        """Read until an event named ``event`` has arrived."""
        while not any(e.get("method") == event for e in self.events):
            self.events.append(self._receive())

    def close(self) -> None:
        """Ask Chromium to quit, kill it if it does not, and close the pipe."""
        try:
            if self.proc.poll() is None:
                self.send("Browser.close")
                self.proc.wait(10)
        except (BrowserError, subprocess.TimeoutExpired):
            self.proc.kill()
            self.proc.wait()
        finally:
            os.close(self.to_child)
            os.close(self.from_child)


def _errors(events: list[dict[str, Any]]) -> list[str]:
    """console.error/console.assert, uncaught exceptions, error-level log entries and non-local requests."""
    errors = []
    for event in events:
        method, p = event.get("method"), event.get("params", {})
        if method == "Runtime.consoleAPICalled" and p["type"] in ("error", "assert"):
            args = (str(a.get("value", a.get("description", a.get("type")))) for a in p["args"])
            errors.append(f"console.{p['type']}: " + " ".join(args))
        elif method == "Runtime.exceptionThrown":
            d = p["exceptionDetails"]
            desc = d.get("exception", {}).get("description", "").split("\n")[0]
            errors.append(f"{d['text']} {desc} ({d.get('url', '')}:{d.get('lineNumber', 0) + 1})".strip())
        elif method == "Log.entryAdded" and p["entry"]["level"] == "error":
            entry = p["entry"]
            errors.append(f"{entry['source']}: {entry['text']} ({entry.get('url', '')})")
        elif method == "Network.requestWillBeSent" and not p["request"]["url"].startswith(LOCAL_SCHEMES):
            errors.append(f"network request: {p['request']['url']}")
    return errors


def open_page(
    html_path: Path,
    screenshot: Path,
    *,
    width: int = 1280,
    height: int = 4000,
    timeout: float = 120,
    script: str | None = None,
) -> PageResult:
    """Load ``html_path`` (a file:// URL) in headless Chromium at ``width`` x ``height`` CSS pixels.

    Waits for the load event and a short settle, runs ``script`` (a JavaScript expression, awaited; what
    it returns comes back as ``value``), then returns the DOM, the console errors (see :func:`_errors`)
    and the path of a PNG screenshot of the viewport written to ``screenshot``. Raises
    :class:`BrowserError` if Chromium is missing, exits or fails to load the page, or if it all takes longer
    than ``timeout`` seconds.
    """
    chromium = find_chromium()
    if chromium is None:
        raise BrowserError(f"none of {', '.join(CHROMIUM_NAMES)} on PATH; install it with `make browser`")
    url = Path(html_path).resolve().as_uri()
    with tempfile.TemporaryDirectory(prefix="prompttune-chromium-") as profile:
        devtools = _DevTools(chromium, Path(profile), time.monotonic() + timeout)
        try:
            target = devtools.send("Target.createTarget", {"url": "about:blank"})["targetId"]
            attach = {"targetId": target, "flatten": True}
            session = devtools.send("Target.attachToTarget", attach)["sessionId"]
            for domain in ("Page", "Runtime", "Log", "Network"):
                devtools.send(f"{domain}.enable", session=session)
            metrics = {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False}
            devtools.send("Emulation.setDeviceMetricsOverride", metrics, session)
            devtools.events.clear()
            navigation = devtools.send("Page.navigate", {"url": url}, session)
            if "errorText" in navigation:
                raise BrowserError(f"chromium could not open {url}: {navigation['errorText']}")
            devtools.wait_for("Page.loadEventFired")
            devtools.send("Runtime.evaluate", {"expression": SETTLE_JS, "awaitPromise": True}, session)
            value = None
            if script is not None:
                run = {"expression": script, "awaitPromise": True, "returnByValue": True}
                value = devtools.send("Runtime.evaluate", run, session)["result"].get("value")
            dom_js = {"expression": "document.documentElement.outerHTML", "returnByValue": True}
            dom = devtools.send("Runtime.evaluate", dom_js, session)["result"]["value"]
            png = devtools.send("Page.captureScreenshot", {"format": "png"}, session)["data"]
        finally:
            devtools.close()
    screenshot.parent.mkdir(parents=True, exist_ok=True)
    screenshot.write_bytes(base64.b64decode(png))
    return PageResult(dom=dom, console_errors=_errors(devtools.events), screenshot=screenshot, value=value)
