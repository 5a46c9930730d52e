"""Agent state from screen text. Pure: the rules come from the agent profile (via run.json)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

STARTING, READY, BUSY, DIALOG, DRAFT, EXITED = "starting", "ready", "busy", "dialog", "draft", "exited"

# Every line the bridge writes into a paste starts with this; body lines that do are quoted (envelope.neutralize).
ENVELOPE_MARK = "[pairloop]"


@dataclass(frozen=True)
class ScreenRules:
    """Regular expressions over the visible screen, kept per agent profile so a TUI release is a one-place change.

    ``input`` matches the input line and has a group named ``text``. Where the same prompt glyph also marks
    history lines, ``input_anchor`` names the line the input box sits just above (the nearest ``input`` match
    above the last anchor line is the live one). ``turn`` = (a line that opens a turn, a line that closes one):
    a turn whose opening line is the last of the two on screen is still running even if no busy marker shows
    (codex hides its busy line while a reply streams). ``settle`` is how long a freshly started TUI must have
    looked ready before keys reach it (claude drops an Enter sent too soon after its prompt first paints)."""

    ready: tuple[str, ...]
    busy: tuple[str, ...]
    input: str
    dialogs: dict[str, str] = field(default_factory=dict)  # name -> pattern
    placeholders: tuple[str, ...] = ()  # input text that means "empty" (a hint the TUI paints there)
    input_anchor: str = ""
    turn: tuple[str, str] | None = None
    settle: float = 0.0
    paste_placeholder: str = ""  # what the box shows instead of a long paste (claude: "[Pasted text #1 +3 lines]")
    submit_after_paste_shows: bool = False  # claude drops a submit key that arrives with the paste itself
    limits: tuple[str, ...] = ()  # a line saying the agent hit a usage or rate limit (see limit_shown)

    def to_json(self) -> dict[str, Any]:
        return {"ready": list(self.ready), "busy": list(self.busy), "input": self.input,
                "dialogs": dict(self.dialogs), "placeholders": list(self.placeholders),
                "input_anchor": self.input_anchor, "turn": list(self.turn) if self.turn else None,
                "settle": self.settle, "paste_placeholder": self.paste_placeholder,
                "submit_after_paste_shows": self.submit_after_paste_shows, "limits": list(self.limits)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ScreenRules:
        turn = data.get("turn")
        return cls(tuple(data["ready"]), tuple(data["busy"]), str(data["input"]),
                   dict(data.get("dialogs", {})), tuple(data.get("placeholders", ())),
                   str(data.get("input_anchor", "")), (str(turn[0]), str(turn[1])) if turn else None,
                   float(data.get("settle", 0.0)), str(data.get("paste_placeholder", "")),
                   bool(data.get("submit_after_paste_shows", False)), tuple(data.get("limits", ())))


@dataclass(frozen=True)
class Reading:
    state: str
    detail: str = ""
    draft: str = ""
    screen: str = field(default="", compare=False, repr=False)  # what it was read from
    # The pane around the screen (tmux's word, not the agent's): a mode the human has it in ("copy-mode" while
    # reading back; the screen read is still the agent's), and whether its input is turned off.
    pane_mode: str = ""
    input_off: bool = False


def _input_line(screen: str, rules: ScreenRules) -> re.Match[str] | None:
    """The live input line: the last ``input`` match (above the last anchor line, when there is an anchor)."""
    limit = len(screen)
    if rules.input_anchor:
        anchors = list(re.finditer(rules.input_anchor, screen, re.MULTILINE))
        if not anchors:
            return None
        limit = anchors[-1].start()
    found = None
    for found in re.finditer(rules.input, screen[:limit], re.MULTILINE):  # noqa: B007 - the last one wins
        pass
    return found


def input_text(screen: str, rules: ScreenRules) -> str | None:
    """What sits in the input box, or None when no input box is visible. Placeholders count as empty."""
    line = _input_line(screen, rules)
    if line is None:
        return None
    text = line.group("text").replace("\u00a0", " ").strip()
    return "" if text in rules.placeholders else text


def _turn_running(above_input: str, rules: ScreenRules) -> bool:
    """Above the input line, a turn's opening line comes after the last line that closes a turn."""
    if rules.turn is None:
        return False
    opened, closed = rules.turn
    last_open = max((m.start() for m in re.finditer(opened, above_input, re.MULTILINE)), default=-1)
    last_close = max((m.start() for m in re.finditer(closed, above_input, re.MULTILINE)), default=-1)
    return last_open > last_close


def classify(screen: str, rules: ScreenRules) -> Reading:
    """Dialogs first (they eat keys), then busy, then the input box: text in it is a draft; empty is ready
    once every ready marker shows."""
    for name, pattern in rules.dialogs.items():
        if re.search(pattern, screen, re.MULTILINE):
            return Reading(DIALOG, name)
    for pattern in rules.busy:
        if re.search(pattern, screen, re.MULTILINE):
            return Reading(BUSY)
    line = _input_line(screen, rules)
    text = input_text(screen, rules)
    if line is None or text is None:
        return Reading(STARTING)
    if text:
        return Reading(DRAFT, draft=text)
    if _turn_running(screen[: line.start()], rules):
        return Reading(BUSY, "a reply is still streaming")
    if not all(re.search(p, screen, re.MULTILINE) for p in rules.ready):
        return Reading(STARTING)
    return Reading(READY)


def limits_on_screen(screen: str, rules: ScreenRules) -> int:
    """How many limit lines show above the input line (a new one, identical to the last, is one more)."""
    line = _input_line(screen, rules)
    above = screen[: line.start()] if line is not None else screen
    return sum(len(re.findall(pattern, above, re.MULTILINE)) for pattern in rules.limits)


def limit_shown(screen: str, rules: ScreenRules) -> str:
    """The line saying the agent's latest turn ended at a usage or rate limit ("" when none does): the last
    ``limits`` match above the input line, with no turn opened after it (an older limit scrolled up with the
    history is not news)."""
    if not rules.limits:
        return ""
    line = _input_line(screen, rules)
    above = screen[: line.start()] if line is not None else screen
    found = None
    for pattern in rules.limits:
        for m in re.finditer(pattern, above, re.MULTILINE):
            if found is None or m.start() > found.start():
                found = m
    if found is None:
        return ""
    if rules.turn is not None and re.search(rules.turn[0], above[found.end():], re.MULTILINE):
        return ""
    start = above.rfind("\n", 0, found.start()) + 1
    end = above.find("\n", found.end())
    return " ".join(above[start: end if end >= 0 else len(above)].split())


CURSORS = "❯›>"


def choose_option(screen: str, option: str) -> list[str]:
    """Keys that move a menu's cursor (a line starting with ❯, › or >) to the line holding ``option`` and
    select it; [] when either is not on screen."""
    if not option:
        return []
    lines = screen.split("\n")
    targets = [i for i, line in enumerate(lines) if option in line]
    cursors = [i for i, line in enumerate(lines) if line.strip()[:1] in CURSORS and line.strip()[1:2] == " "]
    if not targets or not cursors:
        return []
    target = targets[-1]
    cursor = min(cursors, key=lambda i: abs(i - target))
    steps = target - cursor
    return ["Down"] * steps + ["Up"] * -steps + ["Enter"]
