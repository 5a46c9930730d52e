"""The relay's decisions, pure: what is owed to one target, what its screen reads and when it was last looked at
→ deliver now, submit our own interrupted paste, or hold (with the reason, and when to look again).

No I/O and no clock of its own: the relay passes ``now`` and the reading, and carries the returned schedule to
the next pass. Tested without tmux (tests/test_router.py)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace

from bridge.panes.screen import BUSY, DIALOG, DRAFT, EXITED, READY, STARTING, Reading

WAIT_REASONS = {
    BUSY: "target busy",
    DIALOG: "dialog on screen",
    DRAFT: "held: human draft in the input box",
    STARTING: "agent not ready yet",
    EXITED: "agent exited",
}
INPUT_OFF_HELD = "held: input to the pane is off (select-pane -d; `select-pane -e` turns it back on)"
# Between looks at a target that is not ready: 20 ms, doubling, at most this.
MAX_BACKOFF = 0.25
# With nothing to look for, the relay still wakes this often (the session may have gone).
HOUSEKEEPING_SECONDS = 30.0
_LINES = re.compile(r"\+(\d+) lines")


@dataclass(frozen=True)
class Schedule:
    """When to look at a target again, and the reason last given for why its messages wait."""

    next_check: float = 0.0
    reason: str = ""
    misses: int = 0  # looks in a row that found it not ready (for the backoff)


@dataclass(frozen=True)
class Owed:
    """One message owed to the target, as far as routing cares."""

    id: str
    delivering: bool = False  # a paste of it was made and not yet confirmed
    reason: str = ""  # the reason last recorded for it
    gate: str = ""  # why it may not go yet whatever the screen says (a review request being verified)


@dataclass(frozen=True)
class Paste:
    """The paste recorded as in flight, before it was made: the only text the bridge may later submit."""

    ids: tuple[str, ...]
    first_line: str
    lines: int


@dataclass(frozen=True)
class Situation:
    role: str
    owed: tuple[Owed, ...]
    schedule: Schedule
    now: float
    paused: str = ""  # why the relay is paused ("" when it runs)
    warming_up: bool = False  # the agent has not yet been seen ready since the bridge started
    reading: Reading | None = None  # None: not looked at during this pass yet
    paste: Paste | None = None
    paste_placeholder: str = ""  # what the TUI shows instead of a long paste (a regular expression)
    submit_passes_modes: bool = True  # the submit key reaches the agent even while the pane is in a mode


@dataclass(frozen=True)
class Wait:
    """Nothing to do before ``schedule.next_check``."""

    schedule: Schedule


@dataclass(frozen=True)
class Look:
    """Read the target's screen, then ask again with the reading."""


@dataclass(frozen=True)
class WarmUp:
    """Nothing is owed, but the agent is starting: the look itself was the point (settle time, dialogs)."""

    schedule: Schedule


@dataclass(frozen=True)
class Hold:
    """The messages wait; record ``reason`` for ``note`` (those not yet told this reason)."""

    reason: str
    note: tuple[str, ...]
    schedule: Schedule


@dataclass(frozen=True)
class Deliver:
    """Paste these, in order, as one batch."""

    ids: tuple[str, ...]
    schedule: Schedule = field(default_factory=Schedule)


@dataclass(frozen=True)
class SubmitOurs:
    """Our own paste sits unsubmitted in the box (the bridge was stopped between paste and submit)."""

    ids: tuple[str, ...]
    schedule: Schedule = field(default_factory=Schedule)


Decision = Wait | Look | WarmUp | Hold | Deliver | SubmitOurs


def route(s: Situation) -> Decision:
    if s.now < s.schedule.next_check:
        return Wait(s.schedule)
    if not s.owed:
        if not s.warming_up:
            return Wait(Schedule(s.now + HOUSEKEEPING_SECONDS))
        if s.reading is None:
            return Look()
        return WarmUp(Schedule(s.now + MAX_BACKOFF))
    if s.paused:
        reason = f"relay paused: {s.paused}"
        # Unpausing wakes the relay, so there is no need to look before then.
        return Hold(reason, _to_note(s.owed, reason, s.schedule), Schedule(s.now + HOUSEKEEPING_SECONDS, reason))
    gated = next((i for i, o in enumerate(s.owed) if o.gate and not o.delivering), None)
    if gated == 0:  # it and what came after it wait, in order; its gate opening wakes the relay
        reason = s.owed[0].gate
        return Hold(reason, _to_note(s.owed, reason, s.schedule), Schedule(s.now + HOUSEKEEPING_SECONDS, reason))
    if gated is not None:  # what came before it goes now
        s = replace(s, owed=s.owed[:gated])
    if s.reading is None:
        return Look()
    reading = s.reading
    inflight = [o.id for o in s.owed if o.delivering]
    paste = s.paste
    # A mode the human has the pane in (copy mode, a selection) holds nothing: the paste and the submit key are
    # written to the agent past it, the human's view untouched. Only a submit key that cannot be holds.
    blocked = INPUT_OFF_HELD if reading.input_off else "" if s.submit_passes_modes else mode_held(reading.pane_mode)
    if blocked:
        return _hold(s, blocked)
    if reading.state == DRAFT and paste is not None and ours_in_box(reading.draft, inflight, paste,
                                                                     s.paste_placeholder):
        return SubmitOurs(paste.ids)
    if reading.state != READY:
        return _hold(s, hold_reason(reading, s.role))
    return Deliver(tuple(o.id for o in s.owed))


def serving_order(oldest: dict[str, int | None]) -> list[str]:
    """The targets in the order to serve them in a pass: the one whose oldest owed message came first goes first,
    those owed nothing last (in their own order). Each delivery waits for its receipt, so a message's addressee
    must not wait behind the context copy the bridge posted to the partner after it."""
    order = list(oldest)
    return sorted(order, key=lambda role: (oldest[role] is None, oldest[role] or 0, order.index(role)))


def _hold(s: Situation, reason: str) -> Hold:
    """Look again soon, backing off while the reason stays the same."""
    misses = s.schedule.misses + 1 if reason == s.schedule.reason else 1
    later = Schedule(s.now + min(0.02 * 2 ** (misses - 1), MAX_BACKOFF), reason, misses)
    return Hold(reason, _to_note(s.owed, reason, s.schedule), later)


def mode_held(mode: str) -> str:
    """Why messages wait while the pane is in ``mode`` ("" when it is in none)."""
    if not mode:
        return ""
    if mode == "copy-mode":
        return "held: the human is reading back in the pane (copy mode)"
    return f"held: the human has the pane in {mode.replace('-', ' ')}"


def hold_reason(reading: Reading, role: str) -> str:
    reason = WAIT_REASONS.get(reading.state, reading.state)
    if reading.state == DIALOG:
        return f"{reason} ({reading.detail}): answer it in the {role} pane"
    if reading.state == EXITED:
        return reading.detail or reason
    return f"{reason} ({reading.detail})" if reading.detail else reason


def _to_note(owed: tuple[Owed, ...], reason: str, schedule: Schedule) -> tuple[str, ...]:
    """Say why once per message, and again whenever the reason changes; not on every look."""
    return tuple(o.id for o in owed if reason != schedule.reason or o.reason != reason)


def proves_our_paste(draft: str, paste: Paste | None, placeholder: str = "") -> bool:
    """The text in the box is the paste we recorded before making it, not anything that merely looks like ours
    (a human's draft holding "[pairloop]", an old envelope, a copy of a message). Where the TUI shows a long
    paste as a placeholder, its line count must be ours."""
    if paste is None or not paste.ids or not draft:
        return False
    if placeholder and re.match(placeholder, draft):
        count = _LINES.search(draft)
        return count is not None and int(count[1]) in (paste.lines - 1, paste.lines)
    shown = draft.strip()
    head = paste.first_line.strip()
    same_start = shown.startswith(head) or (len(shown) > 0 and head.startswith(shown))
    return same_start and f"id {paste.ids[0]}" in shown


def ours_in_box(draft: str, inflight: list[str], paste: Paste | None, placeholder: str = "") -> bool:
    """Our paste is in the box only while the messages it carried are still in flight: once they were delivered
    or queued again, the same text (or a copy of it) in the box is the human's."""
    if paste is None or not set(paste.ids) <= set(inflight):
        return False
    return proves_our_paste(draft, paste, placeholder)


def inflight_outcome(inflight: list[str], reading: Reading, history: str, paste: Paste | None,
                     placeholder: str = "") -> tuple[list[str], list[str]]:
    """After a restart, a batch marked delivering either reached the agent (its id on the screen: seen) or did
    not (lost: deliver it again). Our own paste still in the box is neither: the router submits it."""
    if reading.state == DRAFT and ours_in_box(reading.draft, inflight, paste, placeholder):
        return [], []
    seen = [i for i in inflight if f"id {i}" in history]
    return seen, [i for i in inflight if i not in seen]
