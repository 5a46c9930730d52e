"""A pane's screen as it stood at given moments, replayed from its asciicast v2 recording, rendered as HTML.

The recording is replayed in a VT emulator (pyte), once per recording whatever the number of moments, and each
screen is kept as rows of styled runs (text, foreground, background, bold…). What the pane's program wrote is
untrusted: every character reaches the page escaped, and the controls and bidi overrides a cell could hold are
shown as one mark."""

from __future__ import annotations

import bisect
import html
import itertools
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import pyte
from pyte import modes
from wcwidth import wcwidth

from bridge import Cast, round_label

# The 16 colours pyte names (SGR 30–37, 90–97): a class each, so the page's stylesheet holds the palette.
NAMED = ("black", "red", "green", "brown", "blue", "magenta", "cyan", "white")
_CLASS = {name: f"c{i}" for i, name in enumerate(NAMED)} | {f"bright{n}": f"c{i + 8}" for i, n in enumerate(NAMED)}
_CLASSES = {*_CLASS.values(), "dfg", "dbg"}
_HEX = re.compile(r"[0-9a-fA-F]{6}\Z")
# Characters a cell may hold that would change how the page reads (controls, bidi overrides): shown as one mark.
_UNSAFE_CELL = re.compile(r"[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069]")
MAX_SIZE = 500  # columns or rows: a recording asking for more is clamped (the emulator allocates per cell)


def _clamp(n: int) -> int:
    return max(1, min(MAX_SIZE, n))


def round_marks(cast: Cast, rounds: Iterable[int]) -> dict[int, float]:
    """Where each round's checkpoint is in the recording: its first "round N opened" marker."""
    wanted = {round_label(n): n for n in rounds}
    out: dict[int, float] = {}
    for e in cast.markers():
        label = e.data.split(" (", 1)[0]
        if label in wanted:
            out.setdefault(wanted[label], e.time)
    return out


@dataclass(frozen=True)
class Style:
    fg: str = ""  # a class (c0–c15) or a hex colour; "" is the default
    bg: str = ""
    bold: bool = False
    italic: bool = False
    underline: bool = False
    strike: bool = False


@dataclass(frozen=True)
class Screen:
    """A screen's rows, each a list of (text, style) runs, and its size."""

    width: int
    height: int
    rows: list[list[tuple[str, Style]]]
    partial: bool = False  # replayed from a window of the recording only: older lines may be missing

    def text(self) -> str:
        return "\n".join("".join(t for t, _ in row).rstrip() for row in self.rows)


def _colour(value: str) -> str:
    if value in _CLASS:
        return _CLASS[value]
    return value.lower() if _HEX.match(value) else ""


def _style(char: Any) -> Style:
    fg, bg = _colour(char.fg), _colour(char.bg)
    if char.reverse:
        fg, bg = bg or "dbg", fg or "dfg"  # a default colour swapped in: the stylesheet names it
    return Style(fg, bg, bool(char.bold), bool(char.italics), bool(char.underscore), bool(char.strikethrough))


_STYLES: dict[tuple[Any, ...], Style] = {}  # a cell's attributes (all but its character) -> its style


def snapshot(screen: pyte.Screen) -> Screen:
    rows = []
    blank = Style()
    for y in range(screen.lines):
        line = screen.buffer[y]
        runs: list[tuple[str, Style]] = []
        text: list[str] = []
        current: Style | None = None
        for x in range(screen.columns):
            char = line[x]
            if not char.data:  # the right half of a wide character
                continue
            key = tuple(char)[1:]
            style = _STYLES.get(key)
            if style is None:
                style = _STYLES.setdefault(key, _style(char))
            if style is current:
                text.append(char.data)
                continue
            if current is not None:
                runs.append((_UNSAFE_CELL.sub("\ufffd", "".join(text)), current))
            text, current = [char.data], style
        if current is not None:
            runs.append((_UNSAFE_CELL.sub("\ufffd", "".join(text)), current))
        if runs and runs[-1][1] == blank:  # trailing blanks carry nothing
            runs[-1] = (runs[-1][0].rstrip(" "), blank)
        rows.append(runs)
    return Screen(screen.columns, screen.lines, rows)


_WIDTH: dict[str, int] = {}


class FastScreen(pyte.Screen):
    """pyte's screen, drawing text several times faster: pyte makes a new cell per character (and measures its
    width each time); this one makes one cell per distinct character of a run and remembers widths. Wide,
    combining and unprintable characters, insert mode and no auto-wrap go to pyte's own draw."""

    def draw(self, data: str) -> None:
        if modes.IRM in self.mode or modes.DECAWM not in self.mode:
            super().draw(data)
            return
        data = data.translate(self.g1_charset if self.charset else self.g0_charset)
        cursor = self.cursor
        attrs = cursor.attrs
        if data.isascii() and data.isprintable():  # the common case: every character one cell wide
            cells = {c: attrs._replace(data=c) for c in set(data)}
            while data:
                if cursor.x == self.columns:
                    self.dirty.add(cursor.y)
                    self.carriage_return()
                    self.linefeed()
                part, data = data[: self.columns - cursor.x], data[self.columns - cursor.x:]
                self.buffer[cursor.y].update(zip(range(cursor.x, cursor.x + len(part)), map(cells.__getitem__, part),
                                                 strict=True))
                cursor.x += len(part)
            self.dirty.add(cursor.y)
            return
        cells = {}
        for char in data:
            width = _WIDTH.get(char)
            if width is None:
                width = _WIDTH.setdefault(char, wcwidth(char))
            if width != 1:
                if width == 2 or (width == 0 and unicodedata.combining(char)):
                    super().draw(char)  # translating an already translated character changes nothing
                    continue
                break  # as pyte does: an unprintable character ends the run
            if cursor.x == self.columns:
                self.dirty.add(cursor.y)
                self.carriage_return()
                self.linefeed()
            cell = cells.get(char)
            if cell is None:
                cell = cells[char] = attrs._replace(data=char)
            self.buffer[cursor.y][cursor.x] = cell
            cursor.x += 1
        self.dirty.add(cursor.y)


def _resize(data: str) -> tuple[int, int] | None:
    m = re.fullmatch(r"(\d+)x(\d+)", data.strip())
    return (_clamp(int(m[1])), _clamp(int(m[2]))) if m else None


# How much of a recording's output is replayed for one screen, at most (pyte draws about 0.6 MB a second here).
# Within it, a full clear (or reset, or the alternate screen) is where the screen is known to start afresh.
WINDOW = 1024 * 1024
_FRESH = ("\x1b[2J", "\x1bc", "\x1b[?1049h")


def _start(cast: Cast, end: int) -> tuple[int, bool]:
    """Where to replay from for the screen after event ``end`` (exclusive): the last full clear within a window's
    worth of output before it; else the start, when all of it fits the window; else the window's edge
    (``True``: partial, older lines may be missing)."""
    size, i = 0, end
    while i > 0:
        e = cast.events[i - 1]
        if e.code == "o":
            size += len(e.data)
            if any(mark in e.data for mark in _FRESH):
                return i - 1, False
            if size > WINDOW:
                return i, True
        i -= 1
    return 0, False


def screens_at(cast: Cast, moments: Sequence[float]) -> list[Screen]:
    """The screen after every output up to each moment (seconds on the recording's clock). A replay goes on from
    moment to moment, or starts again nearer to the next one when that replays less (from a full clear: exact;
    from a window's edge only when going on would replay more than a window: then the screen is ``partial``)."""
    times = [e.time for e in cast.events]
    sizes = [0, *itertools.accumulate(len(e.data) if e.code == "o" else 0 for e in cast.events)]
    out: dict[int, Screen] = {}
    screen: FastScreen | None = None
    stream: pyte.Stream | None = None
    fed = 0  # events replayed so far
    partial = False
    for i in sorted(range(len(moments)), key=lambda i: moments[i]):
        end = bisect.bisect_right(times, moments[i])
        start, cut = _start(cast, end)
        going_on = sizes[end] - sizes[fed] if screen is not None and start <= fed else None
        if going_on is None or (sizes[end] - sizes[start] < going_on and (not cut or going_on > WINDOW)):
            width, height = _size_before(cast, start)
            screen = FastScreen(width, height)
            stream = pyte.Stream(screen)
            fed, partial = start, cut
        assert screen is not None and stream is not None
        for e in cast.events[fed:end]:
            if e.code == "o":
                stream.feed(e.data)
            elif e.code == "r":
                size = _resize(e.data)
                if size:
                    screen.resize(size[1], size[0])
        fed = max(fed, end)
        out[i] = _marked(snapshot(screen), partial)
    return [out[i] for i in range(len(moments))]


def _size_before(cast: Cast, index: int) -> tuple[int, int]:
    """The pane's size just before event ``index``: its last resize, else the header's."""
    for e in reversed(cast.events[:index]):
        if e.code == "r":
            size = _resize(e.data)
            if size:
                return size
    return _clamp(cast.header.width), _clamp(cast.header.height)


def _marked(screen: Screen, partial: bool) -> Screen:
    return Screen(screen.width, screen.height, screen.rows, partial) if partial else screen


# ---- HTML ----------------------------------------------------------------------------------------------------


def _attrs(style: Style) -> str:
    classes, css = [], []
    for prefix, value in (("f", style.fg), ("b", style.bg)):
        if value in _CLASSES:
            classes.append(f"{prefix}{value}")
        elif value:
            css.append(f"{'color' if prefix == 'f' else 'background'}:#{value}")
    classes += [name for name, on in (("bo", style.bold), ("it", style.italic), ("ul", style.underline),
                                      ("sk", style.strike)) if on]
    out = f' class="{" ".join(classes)}"' if classes else ""
    return out + (f' style="{";".join(css)}"' if css else "")


def screen_html(screen: Screen) -> str:
    """The screen as the inside of a <pre>: styled runs as spans, every character escaped."""
    lines = []
    for row in screen.rows:
        parts = []
        for text, style in row:
            escaped = html.escape(text, quote=True)
            attrs = _attrs(style)
            parts.append(f"<span{attrs}>{escaped}</span>" if attrs else escaped)
        lines.append("".join(parts))
    return "\n".join(lines)

