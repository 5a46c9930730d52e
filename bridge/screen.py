"""Agent state from screen text. Pure: the rules come from the agent profile (via run.json)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

STARTING, READY, BUSY, DIALOG, DRAFT, EXITED = "starting", "ready", "busy", "dialog", "draft", "exited"

# Our own envelope starts with this: text in an input box that carries it was pasted by us, not typed by a human.
ENVELOPE_MARK = "[pairloop]"


@dataclass(frozen=True)
class ScreenRules:
    """Regular expressions over the visible screen. ``input`` must have a group named ``text``."""

    ready: tuple[str, ...]
    busy: tuple[str, ...]
    input: str
    dialogs: dict[str, str] = field(default_factory=dict)  # name -> pattern
    placeholders: tuple[str, ...] = ()  # input text that means "empty" (a hint the TUI paints there)

    def to_json(self) -> dict[str, Any]:
        return {"ready": list(self.ready), "busy": list(self.busy), "input": self.input,
                "dialogs": dict(self.dialogs), "placeholders": list(self.placeholders)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ScreenRules:
        return cls(tuple(data["ready"]), tuple(data["busy"]), str(data["input"]),
                   dict(data.get("dialogs", {})), tuple(data.get("placeholders", ())))


@dataclass(frozen=True)
class Reading:
    state: str
    detail: str = ""
    draft: str = ""

    @property
    def ours(self) -> bool:
        """The input box holds a paste of ours (say, from before a crash), not a human's draft."""
        return ENVELOPE_MARK in self.draft


def input_text(screen: str, rules: ScreenRules) -> str | None:
    """What sits in the input box, or None when no input box is visible. Placeholders count as empty."""
    found: str | None = None
    for m in re.finditer(rules.input, screen, re.MULTILINE):
        found = m.group("text")  # the last input line on screen is the live one
    if found is None:
        return None
    text = found.replace("\u00a0", " ").strip()
    return "" if text in rules.placeholders else text


def classify(screen: str, rules: ScreenRules) -> Reading:
    """Dialogs first (they eat keys), then busy, then an input box: empty is ready, non-empty is a draft."""
    for name, pattern in rules.dialogs.items():
        if re.search(pattern, screen, re.MULTILINE):
            return Reading(DIALOG, name)
    for pattern in rules.busy:
        if re.search(pattern, screen, re.MULTILINE):
            return Reading(BUSY)
    if not all(re.search(p, screen, re.MULTILINE) for p in rules.ready):
        return Reading(STARTING)
    text = input_text(screen, rules)
    if text is None:
        return Reading(STARTING)
    if text:
        return Reading(DRAFT, draft=text)
    return Reading(READY)
