"""The lookout: what the bridge knows of each agent, from its screen and its hooks.

It owns that knowledge alone: others tell it what they heard (:meth:`heard`, :meth:`submitted`) and ask it what
it sees (:meth:`judge`); what it wants recorded or said comes back with the answer, as :class:`Effects`."""

from __future__ import annotations

from dataclasses import dataclass, replace

from bridge.effects import Effects
from bridge.notify import DIALOG as DIALOG_CALL
from bridge.notify import Call
from bridge.panes.delivery import read_target
from bridge.panes.screen import BUSY, DIALOG, EXITED, READY, STARTING, Reading, choose_option
from bridge.panes.tmux import Tmux, TmuxError
from bridge.rundir.events import AgentState, Answered
from bridge.rundir.manifest import Answer, Target

# How long an idle-looking screen is overruled by a hook that said a turn started and never said it ended
# (claude runs no Stop hook when the user interrupts a turn).
HOOK_DOUBT_SECONDS = 10.0
# After the bridge starts, it watches agents that are not yet ready (to time their settle, answer allowed
# dialogs) for this long even with nothing to deliver; after that it only looks when a message waits.
STARTUP_WATCH_SECONDS = 60.0
HOOK_STATES = {"prompt": "busy", "stop": "idle", "attention": "attention"}
ANSWER_EVERY_SECONDS = 2.0


@dataclass(frozen=True)
class AgentView:
    """What we last saw of one agent."""

    state: str = ""
    first_ready: float = 0.0  # when the screen first looked ready (for the profile's settle time)
    ready_since: float = 0.0  # when the screen last became ready
    hook: str = ""  # what the agent's own hooks last said: "busy", "idle" or "attention"
    answered: float = 0.0  # when we last answered a dialog on the user's behalf
    looked_at: float = 0.0  # when we last read its screen


@dataclass(frozen=True)
class Sight:
    reading: Reading
    effects: Effects


class Lookout:
    """Reads agents' screens and weighs them against what their hooks said; answers the dialogs it may."""

    def __init__(self, tmux: Tmux, targets: dict[str, Target], answers: dict[str, dict[str, Answer]],
                 started_at: float) -> None:
        self._tmux, self._targets, self._answers = tmux, targets, answers
        self._views = {role: AgentView() for role in targets}
        self._started_at = started_at

    def view(self, role: str) -> AgentView:
        return self._views[role]

    def heard(self, role: str, kind: str) -> None:
        """An event from the agent's own hooks: it says what the agent is doing."""
        if kind in HOOK_STATES:
            self._views[role] = replace(self._views[role], hook=HOOK_STATES[kind])

    def submitted(self, role: str, turn_hooks: bool) -> None:
        """We submitted a prompt: a turn starts, and (with turn hooks) its end-of-turn hook will end it."""
        if turn_hooks:
            self._views[role] = replace(self._views[role], hook="busy")

    def warming_up(self, role: str, now: float) -> bool:
        """Not yet seen ready, and the bridge started recently: worth a look even with nothing to deliver."""
        return not self._views[role].first_ready and now - self._started_at < STARTUP_WATCH_SECONDS

    def observe(self, role: str) -> Sight:
        """The screen as it is, and a record when the agent's state changed."""
        reading = read_target(self._tmux, self._targets[role])
        view, fx = self._views[role], Effects()
        if reading.state != view.state:
            fx.events.append(AgentState(role=role, state=reading.state, detail=reading.detail))
            # An agent that exited and is started again (`pairloop resume`) gets its settle time again.
            self._views[role] = replace(view, state=reading.state,
                                        first_ready=0.0 if reading.state == EXITED else view.first_ready)
            if reading.state == DIALOG and reading.detail not in self._answers.get(role, {}):
                fx.alerts.append(Call(DIALOG_CALL, f"pairloop: the {role} waits for you: {reading.detail} (answer it "
                                      "in its pane)", role=role, reason=reading.detail))
        return Sight(reading, fx)

    def judge(self, role: str, now: float) -> Sight:
        """The screen, corrected by what the agent's hooks said and by the profile's settle time."""
        before = self._views[role]
        sight = self.observe(role)
        reading, fx = sight.reading, sight.effects
        view = replace(self._views[role], looked_at=now)
        if reading.state != READY:
            self._views[role] = replace(view, ready_since=0.0)
            if reading.state == DIALOG and not reading.pane_mode and not reading.input_off:
                # The answer's keys (arrows, Enter) would go to the human's copy mode: answer once it ends.
                fx.add(self._answer_dialog(role, reading.detail, now))
            return Sight(reading, fx)
        if not (before.state == READY and view.ready_since and now - before.looked_at < 1.0):
            view = replace(view, ready_since=now)  # ready since we can vouch for it: not across a gap we missed
        view = replace(view, first_ready=view.first_ready or now)
        self._views[role] = view
        if view.hook == "attention":
            return Sight(Reading(DIALOG, "permission prompt, says the agent's hook"), fx)
        if view.hook == "busy" and now - view.ready_since < HOOK_DOUBT_SECONDS:
            # The hook said a turn started and no turn-end has come: trust it over an idle-looking screen
            # for a while (codex hides its busy line while a reply streams), but not forever.
            return Sight(Reading(BUSY, "turn in progress, says the agent's hook"), fx)
        if now - view.first_ready < self._targets[role].rules.settle:
            return Sight(Reading(STARTING, "settling after start"), fx)
        return Sight(reading, fx)

    def _answer_dialog(self, role: str, dialog: str, now: float) -> Effects:
        """Answer the dialogs the user allowed us to (only folder trust, with --trust), at most every 2 s."""
        answer = self._answers.get(role, {}).get(dialog)
        view = self._views[role]
        if answer is None or now - view.answered < ANSWER_EVERY_SECONDS:
            return Effects()
        self._views[role] = replace(view, answered=now)
        target = self._targets[role]
        try:
            keys = list(answer.keys) or choose_option(self._tmux.capture(target.pane), answer.choose)
            if not keys:
                return Effects(says=[f"{role}: cannot find the option to answer the \"{dialog}\" dialog"])
            self._tmux.send_keys(target.pane, *keys)
        except TmuxError:
            return Effects()
        return Effects([Answered(role=role, dialog=dialog, keys=tuple(keys))],
                       says=[f"{role}: answered the \"{dialog}\" dialog for you (--trust)"])
