"""What of the ledger becomes a marker in a pane's recording, and how the marker reads. Pure.

A pane's cast is marked where something happened to that pane's agent or to the pair: a message delivered to it
or sent by it, a round opened (its checkpoint), a verdict, a verification result, a refused done, the relay
paused, the run agreed or stopped. ``round N opened`` is the marker ``pairloop replay --from-round N`` jumps to.
Kinds this reader does not know by class (a verification result recorded by a newer bridge) are known by their
tag."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import msgspec

from bridge.rundir.events import (
    AnyEvent,
    Delivered,
    DoneRefused,
    Failed,
    Received,
    Relay,
    Round,
    RunState,
    Verdict,
    tag_of,
)

VERIFY_TAG_START = "verif"  # verification events, by tag: "verification", "verify_started", ...


def round_label(number: int) -> str:
    return f"round {number} opened"


def _short(text: str, width: int = 60) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


@dataclass
class Marks:
    """Follows the ledger for one pane's role; remembers what it needs to name the messages it marks."""

    role: str
    names: dict[str, str] = field(default_factory=dict)  # message id -> "#seq sender → to (kind)"

    def label(self, event: AnyEvent) -> str | None:
        """The marker for ``event`` in this role's recording, or None when it is not one to mark."""
        if isinstance(event, Received):
            name = f"#{event.seq} {event.sender} → {','.join(event.to)} ({event.kind})"
            self.names[event.id] = name
            return f"sent {name}" if event.sender == self.role else None
        if isinstance(event, Delivered | Failed):
            if event.to != self.role:
                return None
            what = ", ".join(self.names.get(i, i) for i in event.ids)
            return f"delivered {what}" if isinstance(event, Delivered) else f"delivery failed {what}"
        if isinstance(event, Round):
            unchanged = ", unchanged" if event.unchanged else ""
            checkpoint = f" (checkpoint {event.commit[:10]}{unchanged})" if event.commit else ""
            return f"{round_label(event.round)}{checkpoint}"
        if isinstance(event, Verdict):
            return f"verdict: {event.kind} by {event.by} (round {event.round})"
        if isinstance(event, DoneRefused):
            return f"done refused: {_short(event.reason)}"
        if isinstance(event, Relay):
            return f"relay {event.state}" + (f": {_short(event.reason)}" if event.reason else "")
        if isinstance(event, RunState):
            return f"run {event.state}"
        tag = tag_of(event)
        if tag.startswith(VERIFY_TAG_START):
            return verification_label(tag, msgspec.structs.asdict(event))
        return None


def verification_label(tag: str, fields: dict[str, Any]) -> str:
    """A verification event, whatever its exact fields: its tag and the facts it carries that a reader scans for
    (round, state, result, exit status, duration)."""
    parts = [tag.replace("_", " ")]
    for key in ("round", "state", "result", "passed", "status", "exit_status", "exit_code", "duration"):
        value = fields.get(key)
        if value not in (None, "", ()):
            parts.append(f"{key} {value:.1f}s" if key == "duration" and isinstance(value, float) else
                         f"{key} {value}")
    return " · ".join(parts)
