"""The meter: what each agent spends, and whether it hit a usage or rate limit, from its own records and its
screen; and the token budget. What it finds comes back as Effects (token counts for the ledger, a paused relay,
a call to the human) for the relay to carry out.

A limit never lets the pair go on by itself: the relay is paused and holds until the human unpauses it, whatever
the agent does when the limit resets (claude's own automatic continue is also turned off for the run)."""

from __future__ import annotations

import time

from bridge.effects import Effects
from bridge.notify import BUDGET, USAGE_LIMIT, Call
from bridge.panes.sanitize import inert
from bridge.panes.screen import limit_shown, limits_on_screen
from bridge.panes.tmux import Tmux, TmuxError
from bridge.protocol.referee import Referee
from bridge.rundir.events import TokenUsage, UsageLimit
from bridge.rundir.manifest import RecordsRoot, Target
from bridge.usage import FORMATS, RecordFile, Tokens, refusal

LOOK_SECONDS = 5.0  # how often the agents' screens and records are looked at when nothing else wakes the bridge
SAME_LIMIT_SECONDS = 30.0  # a limit seen on the screen and in the records is one call to the human
RECAPTURE_SECONDS = 60.0  # a screen tmux calls unchanged is still captured this often (a clock set back, say)
_ACTIVITY = "#{window_activity}"  # when the pane's window last had output, whole seconds of the wall clock


class Meter:
    def __init__(self, tmux: Tmux, targets: dict[str, Target], formats: dict[str, str]) -> None:
        self.tmux, self.targets = tmux, targets
        self.formats = {role: fmt for role, fmt in formats.items() if fmt in FORMATS}
        self.files: dict[str, dict[str, RecordFile]] = {}  # role -> path -> that file, read on from its offset
        self.shown: dict[str, tuple[str, int]] = {}  # role -> the limit line on its screen, and how many, last look
        self.called: dict[str, float] = {}  # role -> when its last limit called the human
        self.captured: dict[str, tuple[int, float]] = {}  # role -> its last capture: wall second, monotonic
        self.next_look = 0.0
        self._started = False
        self.roots: dict[str, tuple[RecordsRoot, ...]] = {}  # role -> where its records may be (run.json)
        self.refused: set[tuple[str, str]] = set()  # (role, path) refused and said once: never read

    def due(self, now: float) -> float | None:
        """When the meter wants a look (None: it has nothing to watch)."""
        watched = self.files or any(t.rules.limits for t in self.targets.values())
        return self.next_look if watched else None

    def read(self, paths: dict[str, list[str]], referee: Referee, now: float | None = None) -> Effects:
        """New tokens and limits from the records (each look), and limits on the screens (every LOOK_SECONDS).
        An agent's count is over every record file it reported (and those the ledger says were counted)."""
        now = time.monotonic() if now is None else now
        spend = referee.protocol.spend
        if not self._started:  # what the ledger says was on screen already is not news after a restart
            self._started = True
            for role in self.targets:
                last = spend.last_limit(role)
                if last is not None and last.source == "screen":
                    self.shown[role] = (last.reason, 1 << 30)  # at most as many as now: only a new text is news
        fx = Effects()
        for role, fmt in self.formats.items():
            files = self.files.setdefault(role, {})
            for path in (*spend.files.get(role, ()), *paths.get(role, ())):
                if path not in files and self.admit(role, path, fx):
                    files[path] = RecordFile(path, fmt)
            fresh = [record for record in files.values() if record.read()]
            if not fresh:
                continue
            used = Tokens()
            for record in files.values():
                used = used + record.tally.tokens
            if used != spend.tokens.get(role):
                fx.events.append(TokenUsage(role=role, input=used.input, cached=used.cached, output=used.output,
                                            files=tuple(files)))
            handled = max((e.at for e in spend.limits if e.role == role and e.source == "records"), default="")
            for record in fresh:
                for hit in record.tally.limits:
                    if not hit.at or hit.at > handled:
                        fx.add(self.limit(role, hit.reason, "records", hit.at, referee, now))
                record.tally.limits.clear()
        if now >= self.next_look:
            self.next_look = now + LOOK_SECONDS
            fx.add(self.look(referee, now))
        return fx

    def admit(self, role: str, path: str, fx: Effects) -> bool:
        """Whether a record path the agent's event named may be read: under the role's roots, and not a file
        another role's count holds (bridge.usage.refusal). A refused path is said once (bridge.log), then passed
        over."""
        if (role, path) in self.refused:
            return False
        others = [other for other, files in self.files.items() if other != role and path in files]
        reason = f"counted for the {others[0]} already" if others else refusal(path, self.roots.get(role, ()))
        if not reason:
            return True
        self.refused.add((role, path))
        fx.says.append(f"ignored the {role}'s record file {inert(path)}: {reason}")
        return False

    def unchanged(self, roles: list[str], now: float) -> set[str]:
        """The screens with nothing new since their last capture, from one tmux call for all of them: the pane's
        window had no output since the second that capture was taken in (an idle pair costs no captures)."""
        args: list[str] = []
        for role in roles:
            args += [*((";",) if args else ()), "display-message", "-p", "-t", self.targets[role].pane, _ACTIVITY]
        try:
            stamps = self.tmux.run(*args)
        except TmuxError:
            return set()  # in doubt, every screen is captured
        out = set()
        for role, stamp in zip(roles, stamps, strict=False):
            last = self.captured.get(role)
            if last is not None and stamp.isdigit() and int(stamp) < last[0] and now - last[1] < RECAPTURE_SECONDS:
                out.add(role)
        return out

    def look(self, referee: Referee, now: float) -> Effects:
        fx = Effects()
        watched = [role for role, target in self.targets.items() if target.rules.limits]
        same = self.unchanged(watched, now) if self.captured else set()
        for role, target in self.targets.items():
            if not target.rules.limits or role in same:
                continue
            taken = (int(time.time()), now)  # before the capture: output during it is seen at the next look
            try:
                screen = self.tmux.capture(target.pane)
            except TmuxError:
                continue
            self.captured[role] = taken
            line, count = limit_shown(screen, target.rules), limits_on_screen(screen, target.rules)
            before, seen = self.shown.get(role, ("", 0))
            if line and (line != before or count > seen):  # a new limit: another text, or one more of the same
                fx.add(self.limit(role, line, "screen", "", referee, now))
            self.shown[role] = (line, count if line else 0)
        return fx

    def limit(self, role: str, reason: str, source: str, at: str, referee: Referee, now: float) -> Effects:
        fx = Effects([UsageLimit(role=role, reason=reason, source="screen" if source == "screen" else "records",
                                 at=at)])
        fx.add(referee.pause(f"the {role} hit a usage or rate limit", by="usage limit"))
        if now - self.called.get(role, -SAME_LIMIT_SECONDS) >= SAME_LIMIT_SECONDS:
            self.called[role] = now
            fx.alerts.append(Call(USAGE_LIMIT, f"pairloop: the {role} hit a usage or rate limit ({reason}): the "
                                  "relay holds until you `pairloop unpause`, even after the limit resets",
                                  role=role, reason=reason))
        return fx

    @staticmethod
    def judge(referee: Referee) -> Effects:
        """The token budget: crossed, the relay pauses and the human is called."""
        p = referee.protocol
        reason = p.spend.over_budget(p.limits.max_tokens)
        if not reason or p.paused:
            return Effects()
        fx = referee.pause(reason, by="budget")
        fx.alerts.append(Call(BUDGET, f"pairloop: relay paused: {reason}. Decide, then `pairloop unpause` (allows "
                              "as much again) or stop", reason=reason))
        return fx
