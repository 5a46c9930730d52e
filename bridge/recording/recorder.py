"""``python -m bridge.recording.recorder RUN_DIR ROLE ...``: records one agent pane into ``<role>.cast``.

tmux starts it with ``pipe-pane -O`` (see bridge.recording.pipes): its standard input is everything the pane's
program writes, and it stamps each read with the time it arrived. It also follows the ledger, so the bridge's
events become markers at their own times, written in order with the output (a ledger line that lands a moment
after output it preceded is clamped to that output's time). It is its cast's one writer (the file's lock), and
costs nothing while the pane is quiet but one look at the ledger's size a second.

The pane's size is read from its terminal (TIOCGWINSZ: no tmux call) when output arrives, so a resize is recorded
before the redraw that follows it. When the pane's program is replaced (respawned: the run resumed an agent), the
pipe stays open; the recorder asks tmux once for the new terminal, and resets the screen the player shows, as the
new terminal starts blank."""

from __future__ import annotations

import argparse
import codecs
import contextlib
import fcntl
import os
import select
import signal
import struct
import sys
import termios
import time
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

from bridge.recording.marks import Marks
from bridge.rundir.cast import DEFAULT_LIMIT_BYTES, LIMIT_LABEL, CastBusy, CastWriter, cast_path
from bridge.rundir.events import Recording
from bridge.rundir.ledger import LedgerWriteError, append_once, ledger_path, read_ledger

READ_BYTES = 64 * 1024
LEDGER_LOOK_S = 1.0  # how often a quiet pane looks for new ledger events
NAMES_FROM_START_BYTES = 4 * 1024 * 1024  # a ledger up to this size is read at start to name earlier messages
RESET = "\x1bc"  # a new terminal starts blank: so does the player's screen
SNAPSHOT_AFTER_S = 1.0  # a program running longer than this when recording starts has a screen worth taking
RELEARN_S = 0.2  # after a fruitless ask of tmux (output from a program that just died), not again this soon


@dataclass
class Pane:
    """The recorded pane: its tmux id, and its terminal and program as last learned."""

    pane: str
    socket: str
    tty: str
    pid: int

    def size(self) -> tuple[int, int] | None:
        """The terminal's size (columns, rows), or None when its program is gone (the terminal may be reused)."""
        if not _alive(self.pid):
            return None
        try:
            fd = os.open(self.tty, os.O_RDONLY | os.O_NOCTTY | os.O_NONBLOCK)
        except OSError:
            return None
        try:
            rows, cols, _, _ = struct.unpack("HHHH", fcntl.ioctl(fd, termios.TIOCGWINSZ, b"\0" * 8))
        except OSError:
            return None
        finally:
            os.close(fd)
        return (cols, rows) if cols and rows else None

    def relearn(self) -> bool:
        """Ask tmux for the pane's terminal and program now; True when they changed (a respawned pane)."""
        from bridge.panes.tmux import Tmux, TmuxError

        try:
            out = Tmux(socket_path=self.socket).run("display-message", "-p", "-t", self.pane,
                                                    "#{pane_tty}\t#{pane_pid}\t#{pane_dead}")
        except TmuxError:
            self.pid = 0
            return False
        tty, pid, dead = ([*out[0].split("\t"), "", "", ""] if out else ["", "", "", ""])[:3]
        new_pid = int(pid) if pid.isdigit() and dead != "1" else 0
        changed = new_pid != self.pid and new_pid > 0
        self.tty, self.pid = tty, new_pid
        return changed

    def screen(self) -> str:
        """What the pane shows now, with its colours, as output that draws it on a blank screen."""
        from bridge.panes.tmux import Tmux, TmuxError

        try:
            out = Tmux(socket_path=self.socket).run("display-message", "-p", "-t", self.pane,
                                                    "#{cursor_x} #{cursor_y}", ";",
                                                    "capture-pane", "-e", "-p", "-t", self.pane)
        except TmuxError:
            return ""
        x, _, y = out[0].partition(" ") if out else ("0", "", "0")
        rows = out[1:]
        if not any(r.strip() for r in rows):
            return ""
        cursor = f"\x1b[{int(y) + 1 if y.isdigit() else 1};{int(x) + 1 if x.isdigit() else 1}H"
        return RESET + "\r\n".join(rows) + "\x1b[0m" + cursor


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def running_for(pid: int) -> float:
    """Seconds the process has been running (0 when that cannot be read)."""
    try:
        start_ticks = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19])
        uptime = float(Path("/proc/uptime").read_text().split()[0])
    except (OSError, IndexError, ValueError):
        return 0.0
    return max(0.0, uptime - start_ticks / os.sysconf("SC_CLK_TCK"))


class Follower:
    """The ledger's new events as markers for one role."""

    def __init__(self, run_dir: Path, role: str) -> None:
        self.path = ledger_path(run_dir)
        self.marks = Marks(role)
        self.offset, self.line = 0, 1
        size = self._size()
        if size > NAMES_FROM_START_BYTES:
            self.offset = size  # a long ledger: earlier messages are named by their ids alone
        else:
            self.new()  # learn the names of the messages so far; their markers are not this recording's

    def _size(self) -> int:
        try:
            return os.stat(self.path).st_size
        except OSError:
            return 0

    def new(self) -> list[tuple[float, str]]:
        if self._size() == self.offset:
            return []
        part = read_ledger(self.path, self.offset, self.line)
        self.offset, self.line = part.end, self.line + part.lines
        out = []
        for event in part.events:
            label = self.marks.label(event)
            if label is not None:
                out.append((event.ts, label))
        return out


class Recorder:
    def __init__(self, writer: CastWriter, pane: Pane, follower: Follower, run_dir: Path, role: str) -> None:
        self.writer, self.pane, self.follower = writer, pane, follower
        self.run_dir, self.role = run_dir, role
        self.size = (writer.width, writer.height)
        self.decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self.noted_limit = False
        self.relearn_at = 0.0  # asking tmux is a fork: see RELEARN_S

    def begin(self, now: float, *, snapshot: bool) -> None:
        if self.writer.appended:
            self.writer.marker(now, "recording resumed")
            self.writer.resize(now, *self.size)
        screen = self.pane.screen() if snapshot else ""
        if screen:
            self.writer.output(now, screen)
        elif self.writer.appended:
            self.writer.output(now, RESET)
        self._check_limit()

    def markers(self) -> None:
        for ts, label in self.follower.new():
            self.writer.marker(ts, label)
        self._check_limit()

    def resized(self, now: float) -> None:
        size = self.pane.size()
        if size is None and not _alive(self.pane.pid) and now >= self.relearn_at:
            if self.pane.relearn():  # a new program in the pane: a new, blank terminal
                self.writer.output(now, self.decoder.decode(b"", final=True) + RESET)
                self.decoder.reset()
                size = self.pane.size()
            else:  # nothing new there yet: asking again at once would only cost forks
                self.relearn_at = now + RELEARN_S
        if size is not None and size != self.size:
            self.size = size
            self.writer.resize(now, *size)

    def output(self, data: bytes) -> None:
        now = time.time()
        if self.writer.full:
            return
        self.markers()
        self.resized(now)
        text = self.decoder.decode(data)
        if text:
            self.writer.output(now, text)
        self._check_limit()

    def finish(self) -> None:
        if not self.writer.full:
            rest = self.decoder.decode(b"", final=True)
            if rest:
                self.writer.output(time.time(), rest)
            self.markers()

    def _check_limit(self) -> None:
        """At the limit: said once, in the ledger (the cast's last line already says so)."""
        if self.writer.full and not self.noted_limit:
            self.noted_limit = True
            detail = f"{LIMIT_LABEL} ({self.writer.limit} bytes); the pane is no longer recorded"
            with contextlib.suppress(LedgerWriteError, OSError):
                append_once(ledger_path(self.run_dir), Recording(role=self.role, state="limit", detail=detail))


def _drain(fd: int) -> None:
    """Read the pipe to its end, keeping nothing: the pane's program must never block on a full pipe."""
    while True:
        try:
            if not os.read(fd, READ_BYTES):
                return
        except InterruptedError:
            continue
        except OSError:
            return


def record(recorder: Recorder, fd: int, stop: list[bool]) -> None:
    poller = select.poll()
    poller.register(fd, select.POLLIN | select.POLLHUP)
    while not stop:
        try:
            ready = poller.poll(LEDGER_LOOK_S * 1000)
        except InterruptedError:
            continue
        if not ready:
            if not recorder.writer.full:
                recorder.markers()
            continue
        try:
            data = os.read(fd, READ_BYTES)
        except InterruptedError:
            continue
        if not data:
            break
        recorder.output(data)
        if recorder.writer.full:
            _drain(fd)
            break
    recorder.finish()


def _size_arg(text: str) -> tuple[int, int]:
    cols, _, rows = text.partition("x")
    return max(1, int(cols or 80)), max(1, int(rows or 24))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bridge.recording.recorder", description=__doc__)
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("role")
    parser.add_argument("--pane", required=True)
    parser.add_argument("--socket", required=True)
    parser.add_argument("--tty", default="")
    parser.add_argument("--pid", type=int, default=0)
    parser.add_argument("--size", type=_size_arg, default=(80, 24))
    parser.add_argument("--limit", type=int, default=DEFAULT_LIMIT_BYTES)
    parser.add_argument("--title", default="")
    args = parser.parse_args(argv)
    stop: list[bool] = []

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.append(True)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    fd = sys.stdin.fileno()
    width, height = args.size
    try:
        writer = CastWriter(cast_path(args.run_dir, args.role), width, height, limit=args.limit, title=args.title,
                            env={"TERM": "tmux-256color"})
    except CastBusy as exc:  # another recorder has this cast: closing this pipe lets the bridge open it again
        print(f"recorder: {exc}", file=sys.stderr)
        return 0
    pane = Pane(args.pane, args.socket, args.tty, args.pid)
    try:
        recorder = Recorder(writer, pane, Follower(args.run_dir, args.role), args.run_dir, args.role)
        recorder.begin(time.time(), snapshot=running_for(args.pid) > SNAPSHOT_AFTER_S)
        if writer.full:
            _drain(fd)
        else:
            record(recorder, fd, stop)
    finally:
        writer.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
