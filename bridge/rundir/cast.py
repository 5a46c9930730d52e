"""``worker.cast`` and ``reviewer.cast``: each agent pane's recording, in asciicast v2. The one owner of the format.

A cast is newline-delimited JSON: a header object (``version`` 2, the pane's ``width`` and ``height`` when the
recording began, ``timestamp``: the unix time it began, a whole second), then one ``[time, code, data]`` array per
line: ``"o"`` output the pane's program wrote, ``"r"`` a resize (``"WxH"``), ``"m"`` a marker (what the bridge did:
a message delivered, a round opened, a verdict, ...).

Times are real: an event's time is its unix time minus the header's ``timestamp``, so
``cast_offset(path, unix_time)`` is that subtraction and a ledger event's ``ts`` maps straight onto the cast. Idle
stretches are not cut out of the file; the header's ``idle_time_limit`` tells players to shorten them. A recording
that goes on later (the run resumed, the recorder restarted) appends to the same file and keeps its clock: times
stay offsets from the first header's ``timestamp``, and never go backwards (a clock set back is clamped).

Exactly one writer at a time: :class:`CastWriter` holds an exclusive lock on the file for as long as it writes."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CAST_SUFFIX = ".cast"
IDLE_TIME_LIMIT = 2.0  # seconds: what a player shortens longer pauses to
DEFAULT_LIMIT_BYTES = 50 * 1024 * 1024
LIMIT_LABEL = "recording stopped: size limit reached"
_TAIL_CHUNK = 64 * 1024


class InvalidCast(Exception):
    """A file that is not an asciicast v2 recording; ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def cast_path(run_dir: Path, role: str) -> Path:
    return run_dir / f"{role}{CAST_SUFFIX}"


@dataclass(frozen=True)
class Header:
    width: int
    height: int
    timestamp: int
    idle_time_limit: float = IDLE_TIME_LIMIT
    title: str = ""
    env: dict[str, str] = field(default_factory=dict)

    def encode(self) -> bytes:
        data: dict[str, Any] = {"version": 2, "width": self.width, "height": self.height,
                                "timestamp": self.timestamp, "idle_time_limit": self.idle_time_limit}
        if self.title:
            data["title"] = self.title
        if self.env:
            data["env"] = self.env
        return json.dumps(data, ensure_ascii=False).encode("utf-8") + b"\n"


@dataclass(frozen=True)
class CastEvent:
    time: float
    code: str  # "o", "r", "m" (and "i", which pairloop never writes)
    data: str


@dataclass
class Cast:
    header: Header
    events: list[CastEvent]
    damaged: list[int] = field(default_factory=list)  # line numbers skipped (a torn last line, say)

    def markers(self) -> list[CastEvent]:
        return [e for e in self.events if e.code == "m"]


def encode_event(t: float, code: str, data: str) -> bytes:
    return json.dumps([round(t, 6), code, data], ensure_ascii=False).encode("utf-8") + b"\n"


def parse_header(line: bytes) -> Header:
    try:
        data = json.loads(line)
    except ValueError as exc:
        raise InvalidCast(f"the header is not JSON ({exc})") from None
    if not isinstance(data, dict) or data.get("version") != 2:
        raise InvalidCast("not an asciicast v2 header (version must be 2)")
    width, height, stamp = data.get("width"), data.get("height"), data.get("timestamp", 0)
    if not (isinstance(width, int) and isinstance(height, int) and isinstance(stamp, int)) \
            or any(isinstance(v, bool) for v in (width, height, stamp)):
        raise InvalidCast("width, height and timestamp must be integers")
    limit = data.get("idle_time_limit", IDLE_TIME_LIMIT)
    if not isinstance(limit, int | float) or isinstance(limit, bool):
        raise InvalidCast("idle_time_limit must be a number")
    env = data.get("env", {})
    return Header(width, height, stamp, float(limit), str(data.get("title", "")),
                  {str(k): str(v) for k, v in env.items()} if isinstance(env, dict) else {})


def parse_event(line: bytes) -> CastEvent:
    try:
        data = json.loads(line)
    except ValueError as exc:
        raise InvalidCast(f"not JSON ({exc})") from None
    if not (isinstance(data, list) and len(data) == 3 and isinstance(data[0], int | float)
            and not isinstance(data[0], bool) and isinstance(data[1], str) and isinstance(data[2], str)):
        raise InvalidCast("an event is [time, code, data]")
    return CastEvent(float(data[0]), data[1], data[2])


def parse_cast(data: bytes) -> Cast:
    """A whole recording; a damaged event line (a torn tail) is skipped and numbered, a bad header raises."""
    lines = data.split(b"\n")
    if not lines or not lines[0].strip():
        raise InvalidCast("empty: no header")
    cast = Cast(parse_header(lines[0]), [])
    for number, raw in enumerate(lines[1:], start=2):
        if not raw.strip():
            continue
        try:
            cast.events.append(parse_event(raw))
        except InvalidCast:
            cast.damaged.append(number)
    return cast


def read_cast(path: Path) -> Cast:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InvalidCast(f"cannot read {path.name}: {exc.strerror}") from None
    return parse_cast(data)


def read_header(path: Path) -> Header:
    try:
        with path.open("rb") as f:
            return parse_header(f.readline())
    except OSError as exc:
        raise InvalidCast(f"cannot read {path.name}: {exc.strerror}") from None


def cast_offset(path: Path, unix_time: float) -> float:
    """Where in the recording at ``path`` something that happened at ``unix_time`` (a ledger event's ``ts``) is:
    seconds from the start of the file's clock (the events' own times). Never negative."""
    return max(0.0, unix_time - read_header(path).timestamp)


def _last_time(fd: int, size: int) -> float:
    """The time of the last complete event in the file (0 when there is none)."""
    pos = size
    tail = b""
    while pos > 0:
        start = max(0, pos - _TAIL_CHUNK)
        tail = os.pread(fd, pos - start, start) + tail
        lines = tail.split(b"\n")
        for raw in reversed(lines[1:-1] if start > 0 else lines[:-1]):
            with contextlib.suppress(InvalidCast):
                return parse_event(raw).time
        if start == 0:
            break
        pos = start
    return 0.0


class CastBusy(Exception):
    """Another recorder writes this cast."""


class CastWriter:
    """The one writer of a cast. Opening takes an exclusive lock on the file (waiting up to ``wait`` seconds for a
    recorder that is finishing); a new file gets its header, an existing one is appended to on its own clock.

    Each event is one ``write`` of a whole line to a file opened for appending. Once the file would grow past
    ``limit`` bytes, a last marker (:data:`LIMIT_LABEL`) is written and everything after it is dropped."""

    def __init__(self, path: Path, width: int, height: int, *, limit: int = DEFAULT_LIMIT_BYTES,
                 wait: float = 5.0, now: float | None = None, title: str = "", env: dict[str, str] | None = None,
                 idle_time_limit: float = IDLE_TIME_LIMIT) -> None:
        self.path = path
        self.limit = limit
        self._fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            self._lock(wait)
            size = self._cut_torn_tail(os.fstat(self._fd).st_size)
            now = time.time() if now is None else now
            if size == 0:
                self.header = Header(width, height, int(now), idle_time_limit, title, env or {})
                self._write(self.header.encode())
                self.size = os.fstat(self._fd).st_size
                self.last = 0.0
                self.appended = False
            else:
                with open(path, "rb") as f:
                    self.header = parse_header(f.readline())
                self.size = os.fstat(self._fd).st_size
                self.last = _last_time(self._fd, self.size)
                self.appended = True
        except BaseException:
            os.close(self._fd)
            raise
        self.full = self.size >= limit
        self.width, self.height = width, height

    def _lock(self, wait: float) -> None:
        deadline = time.monotonic() + wait
        while True:
            try:
                fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except OSError as exc:
                if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN) or time.monotonic() >= deadline:
                    raise CastBusy(f"another recorder is writing {self.path.name}") from None
            time.sleep(0.02)

    def _cut_torn_tail(self, size: int) -> int:
        """A recorder killed mid-line leaves a fragment; the next line must not be glued to it. Returns the size
        left (0 when not even the header was whole: the file starts again)."""
        if size == 0 or os.pread(self._fd, 1, size - 1) == b"\n":
            return size
        pos = size
        while pos > 0:
            start = max(0, pos - _TAIL_CHUNK)
            cut = os.pread(self._fd, pos - start, start).rfind(b"\n")
            if cut >= 0:
                size = start + cut + 1
                break
            pos = start
        else:
            size = 0
        os.ftruncate(self._fd, size)
        return size

    def clock(self, unix_time: float) -> float:
        """The event time for ``unix_time`` on this file's clock: never before the last event written."""
        return max(self.last, round(unix_time - self.header.timestamp, 6))

    def _write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            written = os.write(self._fd, view)
            if written <= 0:
                raise OSError(errno.EIO, "write made no progress")
            view = view[written:]

    def event(self, unix_time: float, code: str, data: str) -> bool:
        """Append one event; False when the size limit stopped the recording (now, or before)."""
        if self.full:
            return False
        t = self.clock(unix_time)
        line = encode_event(t, code, data)
        if self.size + len(line) > self.limit:
            self.full = True
            line = encode_event(t, "m", LIMIT_LABEL)
            self._write(line)
            self.size += len(line)
            self.last = t
            return False
        self._write(line)
        self.size += len(line)
        self.last = t
        return True

    def output(self, unix_time: float, text: str) -> bool:
        return self.event(unix_time, "o", text)

    def resize(self, unix_time: float, width: int, height: int) -> bool:
        self.width, self.height = width, height
        return self.event(unix_time, "r", f"{width}x{height}")

    def marker(self, unix_time: float, label: str) -> bool:
        return self.event(unix_time, "m", label)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self._fd)
