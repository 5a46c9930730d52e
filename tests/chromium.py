"""A real headless Chromium for the report's tests: installed from the distribution's packages when missing,
driven over the DevTools protocol on a pipe (fds 3 and 4: no network listener), and a small PNG decoder to
look at its screenshots.

The set-up installs Chromium the way the end-to-end tests install the agents: once, under a lock, and a failure
to install is an error that says what to do, never a skip."""

from __future__ import annotations

import base64
import fcntl
import json
import os
import select
import shutil
import signal
import struct
import subprocess
import tempfile
import time
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

CHROMIUM = Path("/usr/bin/chromium")
INSTALL_LOCK = Path(tempfile.gettempdir()) / "pairloop-chromium-install.lock"
# The flags this machine's notes give for a headless Chromium with no network: without the background-networking
# ones it keeps trying (and failing) to reach Google's hosts.
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-extensions", "--disable-default-apps", "--no-default-browser-check", "--mute-audio",
         "--hide-scrollbars", "--password-store=basic", "--remote-debugging-pipe")


class BrowserError(Exception):
    """Chromium could not be installed, started, or did not answer; the message says what to do."""


def ensure_chromium() -> Path:
    """/usr/bin/chromium, installed with apt-get (Debian's chromium package) when it is not there."""
    if CHROMIUM.exists():
        return CHROMIUM
    apt = shutil.which("apt-get")
    if apt is None:
        raise BrowserError("Chromium is not installed and there is no apt-get: install the distribution's "
                           "chromium package (/usr/bin/chromium)")
    with INSTALL_LOCK.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not CHROMIUM.exists():
            env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
            for argv in ([apt, "update", "-qq"], [apt, "install", "-y", "-qq", "chromium"]):
                out = subprocess.run(argv, capture_output=True, text=True, env=env, check=False,
                                     stdin=subprocess.DEVNULL, timeout=900)
                if out.returncode != 0:
                    raise BrowserError(f"`{' '.join(argv)}` failed ({out.returncode}): "
                                       f"{(out.stderr or out.stdout).strip()[-600:]} — install the chromium "
                                       "package by hand (as root: apt-get install chromium)")
    if not CHROMIUM.exists():
        raise BrowserError("apt-get installed chromium but /usr/bin/chromium is not there")
    return CHROMIUM


class Page:
    """One tab, driven over the pipe: navigate, evaluate, screenshot, and every console error it logged."""

    def __init__(self, browser: Browser, session: str) -> None:
        self.browser = browser
        self.session = session
        self.errors: list[str] = []
        self.loaded = False

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        return self.browser.call(method, params, session=self.session)

    def goto(self, url: str, timeout: float = 20.0) -> None:
        self.loaded = False
        self.call("Page.navigate", url=url)
        self.browser.pump(lambda: self.loaded, timeout, f"the page {url} to load")

    def evaluate(self, expression: str) -> Any:
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        if "exceptionDetails" in result:
            raise BrowserError(f"{expression!r} threw: {result['exceptionDetails']}")
        return result["result"].get("value")

    def screenshot(self, path: Path, full_page: bool = False, width: int = 1400, height: int = 1000,
                   scale: float = 1.0) -> bytes:
        """The page in a ``width`` × ``height`` window (or all of it), ``scale`` < 1 for a smaller picture."""
        if full_page:
            size = self.call("Page.getLayoutMetrics")["cssContentSize"]
            height = min(int(size["height"]) + 1, 16000)
        self.call("Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1,
                  mobile=False)
        clip = {"x": 0, "y": 0, "width": width, "height": height, "scale": scale}
        data = base64.b64decode(self.call("Page.captureScreenshot", format="png", clip=clip)["data"])
        path.write_bytes(data)
        return data

    def screenshot_of(self, path: Path, selector: str, scale: float = 1.0) -> bytes:
        """A picture of the first element matching ``selector`` alone (``scale`` < 1 makes it smaller)."""
        box = self.evaluate(f"(() => {{ const r = document.querySelector({json.dumps(selector)})"
                            ".getBoundingClientRect(); return [r.x + scrollX, r.y + scrollY, r.width, r.height]; })()")
        x, y, w, h = box
        clip = {"x": x, "y": y, "width": w, "height": min(h, 8000), "scale": scale}
        data = base64.b64decode(self.call("Page.captureScreenshot", format="png", clip=clip,
                                          captureBeyondViewport=True)["data"])
        path.write_bytes(data)
        return data

    def on_event(self, method: str, params: dict[str, Any]) -> None:
        if method == "Page.loadEventFired":
            self.loaded = True
        elif method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            self.errors.append("console: " + " ".join(str(a.get("value", a.get("description", "")))
                                                      for a in params.get("args", [])))
        elif method == "Runtime.exceptionThrown":
            self.errors.append(f"exception: {params.get('exceptionDetails', {}).get('text', '')}")
        elif method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
            entry = params["entry"]
            self.errors.append(f"log ({entry.get('source')}): {entry.get('text')} {entry.get('url', '')}".strip())


class Browser:
    """Chromium started in its own process group, its DevTools protocol on its fds 3 (in) and 4 (out)."""

    def __init__(self, pid: int, to_browser: int, from_browser: int) -> None:
        self.pid = pid
        self._out = to_browser
        self._in = from_browser
        self._buffer = b""
        self._next = 0
        self._replies: dict[int, dict[str, Any]] = {}
        self.pages: dict[str, Page] = {}

    def _send(self, message: dict[str, Any]) -> None:
        data = json.dumps(message).encode() + b"\0"
        while data:
            data = data[os.write(self._out, data):]

    def _read_one(self, deadline: float) -> dict[str, Any]:
        while b"\0" not in self._buffer:
            if time.monotonic() > deadline:
                raise BrowserError("Chromium did not answer in time")
            ready, _, _ = select.select([self._in], [], [], max(0.0, deadline - time.monotonic()))
            if ready:
                chunk = os.read(self._in, 1 << 20)
                if not chunk:
                    raise BrowserError("Chromium closed its pipe (it exited: see chromium-stderr.log)")
                self._buffer += chunk
        raw, _, self._buffer = self._buffer.partition(b"\0")
        message: dict[str, Any] = json.loads(raw)
        return message

    def _dispatch(self, message: dict[str, Any]) -> None:
        if "id" in message:
            self._replies[message["id"]] = message
        elif "method" in message:
            page = self.pages.get(message.get("sessionId", ""))
            if page is not None:
                page.on_event(message["method"], message.get("params", {}))

    def pump(self, until: Any, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not until():
            try:
                self._dispatch(self._read_one(deadline))
            except BrowserError as exc:
                raise BrowserError(f"waiting for {what}: {exc}") from None

    def call(self, method: str, params: dict[str, Any] | None = None, session: str | None = None,
             timeout: float = 20.0) -> dict[str, Any]:
        self._next += 1
        number = self._next
        message: dict[str, Any] = {"id": number, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        self._send(message)
        self.pump(lambda: number in self._replies, timeout, method)
        reply = self._replies.pop(number)
        if "error" in reply:
            raise BrowserError(f"{method}: {reply['error']}")
        result: dict[str, Any] = reply.get("result", {})
        return result

    def new_page(self) -> Page:
        target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        page = Page(self, session)
        self.pages[session] = page
        for domain in ("Page", "Runtime", "Log"):
            page.call(f"{domain}.enable")
        return page


@contextmanager
def chromium(tmp: Path) -> Iterator[Browser]:
    """A fresh headless Chromium (its own empty profile in ``tmp``), killed with its whole process group after."""
    binary = ensure_chromium()
    profile = tmp / "chromium-profile"
    profile.mkdir(parents=True, exist_ok=True)
    to_r, to_w = os.pipe()  # we write commands to to_w; Chromium reads them on fd 3
    from_r, from_w = os.pipe()  # Chromium writes on fd 4; we read from_r

    # Chromium's ends of the pipes onto its fds 3 and 4 (from numbers above both, so neither is overwritten
    # before it is moved), in a session of its own; posix_spawn: no preexec_fn, safe with threads.
    high_r, high_w = fcntl.fcntl(to_r, fcntl.F_DUPFD_CLOEXEC, 10), fcntl.fcntl(from_w, fcntl.F_DUPFD_CLOEXEC, 10)
    log = os.open(tmp / "chromium-stderr.log", os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    argv = [str(binary), *FLAGS, f"--user-data-dir={profile}"]
    try:
        pid = os.posix_spawn(str(binary), argv, {**os.environ, "HOME": str(tmp)}, setsid=True, file_actions=[
            (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0), (os.POSIX_SPAWN_DUP2, log, 1),
            (os.POSIX_SPAWN_DUP2, log, 2), (os.POSIX_SPAWN_DUP2, high_r, 3), (os.POSIX_SPAWN_DUP2, high_w, 4)])
    finally:
        for fd in (to_r, from_w, high_r, high_w, log):
            os.close(fd)
    browser = Browser(pid, to_w, from_r)
    try:
        browser.call("Browser.getVersion", timeout=30)
        yield browser
    finally:
        try:
            os.killpg(pid, signal.SIGKILL)  # its process group: the browser and every helper it started
        except ProcessLookupError:
            pass
        os.waitpid(pid, 0)
        os.close(to_w)
        os.close(from_r)


# ---- PNG -------------------------------------------------------------------------------------------------------


def png_pixels(data: bytes) -> tuple[int, int, list[bytes]]:
    """Width, height and the rows of an 8-bit RGB or RGBA PNG (what Chromium writes), each as RGB bytes."""
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError("not a PNG")
    pos, idat = 8, b""
    width = height = channels = 0
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            width, height, depth, colour = struct.unpack(">IIBB", body[:10])
            if depth != 8 or colour not in (2, 6):
                raise ValueError(f"unsupported PNG (bit depth {depth}, colour type {colour})")
            channels = 3 if colour == 2 else 4
        elif kind == b"IDAT":
            idat += body
        elif kind == b"IEND":
            break
    raw = zlib.decompress(idat)
    stride = width * channels
    rows: list[bytes] = []
    previous = bytearray(stride)
    for y in range(height):
        start = y * (stride + 1)
        kind, line = raw[start], bytearray(raw[start + 1:start + 1 + stride])
        for x in range(stride):
            a = line[x - channels] if x >= channels else 0
            b = previous[x]
            c = previous[x - channels] if x >= channels else 0
            if kind == 1:
                line[x] = (line[x] + a) & 0xFF
            elif kind == 2:
                line[x] = (line[x] + b) & 0xFF
            elif kind == 3:
                line[x] = (line[x] + (a + b) // 2) & 0xFF
            elif kind == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[x] = (line[x] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 0xFF
        previous = line
        rows.append(bytes(line) if channels == 3 else bytes(v for i, v in enumerate(line) if i % 4 != 3))
    return width, height, rows


def colour_census(data: bytes) -> tuple[int, float]:
    """How many distinct colours a screenshot holds, and the share of its pixels that differ from the most
    common one (the background): a blank page has 1 and 0.0."""
    _, _, rows = png_pixels(data)
    counts: dict[bytes, int] = {}
    for row in rows:
        for x in range(0, len(row), 3):
            px = row[x:x + 3]
            counts[px] = counts.get(px, 0) + 1
    total = sum(counts.values())
    return len(counts), 1 - max(counts.values()) / total if total else 0.0
