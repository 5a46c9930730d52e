"""``pairloop replay``: play a pane's recording in the terminal, from its start or from a round's marker.

What to play is decided apart from playing it: :func:`prepare` cuts the recording at the marker asked for (what
came before is drawn at once, so the screen is as it stood there) and makes its output safe for the human's
terminal; :func:`frames` turns it into (delay, text) steps at the speed asked for, pauses shortened to the
recording's idle limit. asciinema plays the prepared recording when it is installed; otherwise :func:`play` does.

A recording is the pane's own output, which tmux drew once already; played raw to another terminal, some of it
would act on that terminal rather than draw: a clipboard write (OSC 52), a title, a notification, colours set for
good, a DCS passthrough to the terminal outside tmux, queries whose answers the terminal types back as input.
:class:`SafeOutput` drops those (every OSC but the colour resets, every DCS/SOS/PM/APC string, the query and
window-operation CSIs, 8-bit controls) and turns a full reset into a soft one; :data:`RESTORE` puts back the modes
a recording may leave on (mouse tracking, the alternate screen, a hidden cursor) when playing ends."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import termios
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

from bridge import Cast, CastEvent, CastHeader, InvalidCast, cast_path, encode_event, inert, read_cast, round_label
from pairloop.errors import MissingTool, PairloopError, UsageProblem
from pairloop.runs.store import Run

HELD_MAX = 64 * 1024  # an escape string never ended is dropped once it grows this long
KEPT_OSC = {"104", "110", "111", "112", "117", "119"}  # colour resets
SOFT_RESET = "\x1b[!p\x1b[0m\x1b[H\x1b[2J"  # for ESC c, which would reset the human's whole terminal
RESTORE = ("\x1b[0m\x1b[?1000l\x1b[?1002l\x1b[?1003l\x1b[?1005l\x1b[?1006l\x1b[?1015l\x1b[?1004l\x1b[?2004l"
           "\x1b[?1049l\x1b[?1l\x1b>\x1b[?25h\r\n")

_CSI = re.compile(r"\x1b\[([0-?]*)([ -/]*)([@-~])")
_OSC = re.compile(r"\x1b\]([^\x07\x1b]*)(?:\x07|\x1b\\)")
_STRING = re.compile(r"\x1b[PX^_](?:[^\x1b]|\x1b[^\\])*\x1b\\")  # DCS, SOS, PM, APC (ESC ESC inside: passthrough)
_OTHER = re.compile(r"\x1b[ -/]*[0-~]")
_C1 = re.compile(r"[\x80-\x9f]")


def _csi_kept(params: str, inter: str, final: str) -> bool:
    """CSIs that make the terminal answer (typed back as input), or act on its window, are dropped."""
    if final in "nctx":  # status reports, device attributes, window operations, DECREQTPARM
        return False
    if final == "p" and "$" in inter:  # DECRQM
        return False
    if final == "q" and params.startswith(">"):  # XTVERSION
        return False
    return not (final == "u" and params[:1] in ("<", "=", ">", "?"))  # the kitty keyboard protocol


class SafeOutput:
    """Recorded output made safe for the human's terminal, fed in pieces (a sequence may span two events)."""

    def __init__(self) -> None:
        self.held = ""

    def feed(self, text: str) -> str:
        text, self.held = self.held + text, ""
        out: list[str] = []
        i = 0
        while True:
            j = text.find("\x1b", i)
            if j < 0:
                out.append(_C1.sub("", text[i:]))
                return "".join(out)
            out.append(_C1.sub("", text[i:j]))
            kept, end = self._sequence(text, j)
            if end < 0:  # not ended yet: wait for the next piece
                rest = text[j:]
                self.held = rest if len(rest) < HELD_MAX else ""
                return "".join(out)
            out.append(kept)
            i = end

    @staticmethod
    def _sequence(text: str, at: int) -> tuple[str, int]:
        """What to write for the sequence starting at ``at`` and where it ends; end -1 when it may go on."""
        kind = text[at + 1: at + 2]
        if not kind:
            return "", -1
        if kind == "[":
            m = _CSI.match(text, at)
            if m:
                return (m[0] if _csi_kept(m[1], m[2], m[3]) else ""), m.end()
            return ("", -1) if re.fullmatch(r"\x1b\[[0-?]*[ -/]*", text[at:]) else ("", at + 2)
        if kind == "]":
            m = _OSC.match(text, at)
            if m:
                return (m[0] if m[1].split(";", 1)[0] in KEPT_OSC else ""), m.end()
            return "", -1
        if kind in "PX^_":
            m = _STRING.match(text, at)
            return ("", m.end()) if m else ("", -1)
        m = _OTHER.match(text, at)
        if m:
            if m[0] == "\x1bc":
                return SOFT_RESET, m.end()
            return ("" if m[0] == "\x1bZ" else m[0]), m.end()  # ESC Z asks the terminal who it is
        return ("", -1) if re.fullmatch(r"\x1b[ -/]*", text[at:]) else ("", at + 1)


class NoSuchRound(UsageProblem):
    pass


def round_time(cast: Cast, number: int) -> float:
    """Where round ``number`` opened in the recording (its marker)."""
    label = round_label(number)
    for event in cast.markers():
        if event.data == label or event.data.startswith(label + " "):
            return event.time
    rounds = sorted({int(m[1]) for e in cast.markers() if (m := re.match(r"round (\d+) opened", e.data))})
    seen = f"rounds in this recording: {', '.join(map(str, rounds))}" if rounds else "no round opened in it"
    raise NoSuchRound(f"round {number} is not in this recording ({seen})")


def prepare(cast: Cast, start: float = 0.0) -> Cast:
    """The recording from ``start`` on, its times counted from there, made safe: what came before is one output
    at time 0 (the screen as it stood), and the size is the one in force at ``start``."""
    safe = SafeOutput()
    width, height = cast.header.width, cast.header.height
    before: list[str] = []
    events: list[CastEvent] = []
    for event in cast.events:
        if event.time < start:
            if event.code == "o":
                before.append(safe.feed(event.data))
            elif event.code == "r" and (size := _size(event.data)):
                width, height = size
            continue
        if event.code == "o":
            events.append(replace(event, time=event.time - start, data=safe.feed(event.data)))
        elif event.code in ("r", "m"):
            events.append(replace(event, time=event.time - start))
    if before:
        events.insert(0, CastEvent(0.0, "o", "".join(before)))
    return Cast(replace(cast.header, width=width, height=height), events)


def _size(data: str) -> tuple[int, int] | None:
    m = re.fullmatch(r"(\d+)x(\d+)", data)
    return (int(m[1]), int(m[2])) if m else None


@dataclass(frozen=True)
class Frame:
    delay: float  # seconds to wait before writing it
    text: str


def frames(cast: Cast, speed: float = 1.0, idle_limit: float | None = None) -> list[Frame]:
    """Output steps of a prepared recording: each pause at most ``idle_limit`` (the recording's own when None;
    0 for none), divided by ``speed``."""
    limit = cast.header.idle_time_limit if idle_limit is None else idle_limit
    out: list[Frame] = []
    last = 0.0
    for event in cast.events:
        if event.code != "o":
            continue
        gap = max(0.0, event.time - last)
        last = event.time
        if limit > 0:
            gap = min(gap, limit)
        out.append(Frame(gap / speed, event.data))
    return out


def play(steps: list[Frame], write: Callable[[str], None], sleep: Callable[[float], None] = time.sleep) -> None:
    """Write each step after its delay; the terminal's modes are put back at the end, or on Ctrl-C."""
    try:
        for step in steps:
            if step.delay > 0:
                sleep(step.delay)
            write(step.text)
    except KeyboardInterrupt:
        pass
    finally:
        write(RESTORE)


def write_cast(cast: Cast, path: Path) -> None:
    header: CastHeader = cast.header
    data = header.encode() + b"".join(encode_event(e.time, e.code, e.data) for e in cast.events)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


@dataclass(frozen=True)
class ReplayPlan:
    path: Path
    cast: Cast  # prepared: cut and made safe
    start: float
    note: str  # what is played, for the human (shown inert)


def plan_replay(run: Run, role: str, from_round: int | None = None) -> ReplayPlan:
    path = cast_path(run.dir, role)
    if not path.exists():
        raise PairloopError(f"run {run.id} has no recording of the {role} pane ({path.name}): it was started with "
                            "recording off, or before pairloop recorded panes")
    try:
        cast = read_cast(path)
    except InvalidCast as exc:
        raise PairloopError(f"{path} is not a recording pairloop can play: {exc.reason}") from None
    start = round_time(cast, from_round) if from_round is not None else 0.0
    where = f" from round {from_round} ({start:.0f} s in)" if from_round is not None else ""
    note = f"run {run.id}, the {role} pane ({cast.header.width}x{cast.header.height}){where}"
    return ReplayPlan(path, prepare(cast, start), start, note)


def _terminal_write(text: str) -> None:
    data = text.encode("utf-8", "replace")
    fd = sys.stdout.fileno()
    while data:
        data = data[os.write(fd, data):]


def replay(plan: ReplayPlan, speed: float, player: str, say: Callable[[str], None]) -> None:
    """Play a prepared recording: with asciinema (``player`` "asciinema", or "auto" and installed), else here."""
    if speed <= 0:
        raise UsageProblem("--speed must be more than 0")
    asciinema = shutil.which("asciinema")
    if player == "asciinema" and asciinema is None:
        raise MissingTool("asciinema is not installed (`pipx install asciinema`), or use --player builtin")
    say(inert(f"replaying {plan.note} at {speed:g}x: Ctrl-C stops"))
    if asciinema is not None and player in ("auto", "asciinema"):
        with tempfile.TemporaryDirectory(prefix="pairloop-replay-") as folder:
            prepared = Path(folder) / plan.path.name
            write_cast(plan.cast, prepared)
            try:
                subprocess.run([asciinema, "play", "-s", f"{speed:g}", str(prepared)], check=False)
            except KeyboardInterrupt:
                pass
            _terminal_write(RESTORE)
        return
    with _quiet_keyboard():
        play(frames(plan.cast, speed), _terminal_write)


@contextlib.contextmanager
def _quiet_keyboard() -> Iterator[None]:
    """Keys typed while it plays are not echoed into the picture (Ctrl-C still stops it)."""
    if not sys.stdin.isatty():
        yield
        return
    fd = sys.stdin.fileno()
    saved = termios.tcgetattr(fd)
    quiet = termios.tcgetattr(fd)
    quiet[3] &= ~(termios.ECHO | termios.ICANON)
    termios.tcsetattr(fd, termios.TCSANOW, quiet)
    try:
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)
