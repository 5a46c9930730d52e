"""The lookout: what the bridge knows of each agent, from its screen and its hooks, and when to look again."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bridge.panes.delivery import read_target
from bridge.panes.screen import BUSY, DIALOG, READY, STARTING, Reading, choose_option
from bridge.panes.tmux import Tmux, TmuxError
from bridge.rundir.manifest import Target

# How long an idle-looking screen is overruled by a hook that said a turn started and never said it ended
# (claude runs no Stop hook when the user interrupts a turn).
HOOK_DOUBT_SECONDS = 10.0
# After the bridge starts, it watches agents that are not yet ready (to time their settle, answer allowed
# dialogs) for this long even with nothing to deliver; after that it only looks when a message waits.
STARTUP_WATCH_SECONDS = 60.0
HOOK_STATES = {"prompt": "busy", "stop": "idle", "attention": "attention"}


@dataclass
class TargetWatch:
    """What we last saw of one agent, and when to look again while messages wait for it."""

    state: str = ""
    reason: str = ""
    next_check: float = 0.0
    misses: int = 0
    first_ready: float = 0.0  # when the screen first looked ready (for the profile's settle time)
    ready_since: float = 0.0  # when the screen last became ready
    hook: str = ""  # what the agent's own hooks last said: "busy", "idle" or "attention"
    answered: float = 0.0  # when we last answered a dialog on the user's behalf
    looked_at: float = 0.0  # when we last read its screen


class Lookout:
    """Reads agents' screens and weighs them against what their hooks said; answers the dialogs it may."""

    def __init__(self, tmux: Tmux, targets: dict[str, Target], roles: dict[str, Any],
                 emit: Callable[[dict[str, Any]], dict[str, Any]], say: Callable[[str], None],
                 alert: Callable[[str], None]) -> None:
        self.tmux, self.targets, self.roles, self.emit, self.say = tmux, targets, roles, emit, say
        self.alert = alert
        self.watch = {role: TargetWatch() for role in targets}
        self.started_at = time.monotonic()

    def heard(self, role: str, kind: str) -> None:
        """An event from the agent's own hooks: it says what the agent is doing, and it is worth a look now."""
        watch = self.watch[role]
        watch.next_check = 0.0
        if kind in HOOK_STATES:
            watch.hook = HOOK_STATES[kind]

    def observe(self, role: str) -> Reading:
        reading = read_target(self.tmux, self.targets[role])
        watch = self.watch[role]
        if reading.state != watch.state:
            self.emit({"ev": "agent", "role": role, "state": reading.state, "detail": reading.detail})
            watch.state = reading.state
            watch.misses = 0
            if reading.state == DIALOG and reading.detail not in self.roles[role].get("answers", {}):
                self.alert(f"pairloop: the {role} waits for you: {reading.detail} (answer it in its pane)")
        return reading

    def starting_up(self) -> bool:
        return time.monotonic() - self.started_at < STARTUP_WATCH_SECONDS

    def judge(self, role: str) -> Reading:
        """The screen, corrected by what the agent's hooks said and by the profile's settle time."""
        watch, now = self.watch[role], time.monotonic()
        was_ready, last_look = watch.state == READY, watch.looked_at
        reading = self.observe(role)
        watch.looked_at = now
        if reading.state != READY:
            watch.ready_since = 0.0
            if reading.state == DIALOG:
                self.answer_dialog(role, reading.detail)
            return reading
        if not (was_ready and watch.ready_since and now - last_look < 1.0):
            watch.ready_since = now  # ready since we can vouch for it: not across a gap we did not watch
        watch.first_ready = watch.first_ready or now
        if watch.hook == "attention":
            return Reading(DIALOG, "permission prompt, says the agent's hook")
        if watch.hook == "busy" and now - watch.ready_since < HOOK_DOUBT_SECONDS:
            # The hook said a turn started and no turn-end has come: trust it over an idle-looking screen
            # for a while (codex hides its busy line while a reply streams), but not forever.
            return Reading(BUSY, "turn in progress, says the agent's hook")
        if now - watch.first_ready < self.targets[role].rules.settle:
            return Reading(STARTING, "settling after start")
        return reading

    def answer_dialog(self, role: str, dialog: str) -> None:
        """Answer the dialogs the user allowed us to (only folder trust, with --trust), at most every 2 s."""
        answer = self.roles[role].get("answers", {}).get(dialog)
        watch = self.watch[role]
        if not answer or time.monotonic() - watch.answered < 2.0:
            return
        watch.answered = time.monotonic()
        target = self.targets[role]
        try:
            keys = list(answer.get("keys") or []) or choose_option(self.tmux.capture(target.pane),
                                                                   str(answer.get("choose", "")))
            if not keys:
                self.say(f"{role}: cannot find the option to answer the \"{dialog}\" dialog")
                return
            self.tmux.send_keys(target.pane, *keys)
        except TmuxError:
            return
        self.emit({"ev": "answered", "role": role, "dialog": dialog, "keys": keys})
        self.say(f"{role}: answered the \"{dialog}\" dialog for you (--trust)")

