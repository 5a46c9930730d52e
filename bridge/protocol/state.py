"""The pair protocol: rounds, checkpoints, verdicts, findings, the done-consensus and the governor. Pure.

The bridge feeds it ledger events (replay and live alike) and asks it questions; it never does I/O."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from bridge.protocol.gates import Gates
from bridge.protocol.spend import Spend
from bridge.roles import is_agent, partner_of
from bridge.rundir.events import (
    AgentState,
    Answered,
    AnyEvent,
    BridgeState,
    Delivered,
    Delivering,
    Failed,
    FindingClaims,
    HumanTurn,
    LedgerRepaired,
    Limits,
    Phase,
    PhaseChanged,
    ProtocolStarted,
    Queued,
    Received,
    Recording,
    Rejected,
    Relay,
    Round,
    RunState,
    Suppressed,
)
from bridge.rundir.events import Verdict as VerdictEvent

PLAN: Phase = "plan"
WORK: Phase = "work"
OPEN, FIXED, DISPUTED, RESOLVED = "open", "fixed", "disputed", "resolved"
_NUMBERED = re.compile(r"^\s*(?:\d+[.)]|[-*•])\s+(.*\S)")
# The events the protocol (its gates and spend included) has no use for: deliveries, the agents' states, hook
# events, the bridge's own. By exact type, so a kind of event added later is folded until it is listed here.
PASSES_BY: frozenset[type] = frozenset({Queued, Delivering, Delivered, Failed, AgentState, BridgeState, HumanTurn,
                                        Answered, Recording, LedgerRepaired, Rejected})


def parse_findings(text: str) -> list[str]:
    """Numbered or bulleted lines are one finding each (continuation lines join the one above); text without
    any is a single finding."""
    items: list[str] = []
    for line in text.splitlines():
        m = _NUMBERED.match(line)
        if m:
            items.append(m.group(1))
        elif items and line.strip():
            items[-1] += " " + line.strip()
    return items or ([" ".join(text.split())] if text.strip() else [])


def normalise(body: str) -> str:
    return " ".join(body.lower().split())


@dataclass
class Finding:
    id: str
    text: str
    round: int
    by: str
    status: str = OPEN
    note: str = ""


@dataclass
class Verdict:
    id: str
    by: str  # reviewer, or human when the human overrules
    kind: str  # approve or changes
    round: int
    checkpoint: str  # the ref of the round's checkpoint ("" before any review request)
    tree: str
    phase: str


@dataclass
class Protocol:
    phase: Phase = WORK
    round: int = 0
    checkpoints: dict[int, dict[str, str]] = field(default_factory=dict)  # round -> ref, commit, tree, phase
    verdicts: list[Verdict] = field(default_factory=list)
    findings: dict[str, Finding] = field(default_factory=dict)
    paused: str = ""  # why the relay is paused ("" when it runs)
    paused_by: str = ""
    no_change_rounds: int = 0
    bounces: int = 0
    messages: int = 0
    limits: Limits = field(default_factory=Limits)
    rounds_allowed: int = 0  # the governor pauses when a review would pass this (0: limits.max_rounds)
    messages_allowed: int = 0
    last_body: dict[str, str] = field(default_factory=dict)  # sender -> normalised body of its latest message
    run_state: str = ""
    gates: Gates = field(default_factory=Gates)  # verifications, done refusals, configuration changes
    spend: Spend = field(default_factory=Spend)  # tokens, the token budget, usage limits

    def apply(self, event: AnyEvent) -> None:
        if type(event) in PASSES_BY:  # most of a ledger: a replay of 10,000 messages skips them at one look
            return
        self.gates.apply(event, self.round)
        self.spend.apply(event)
        if isinstance(event, Received):
            if is_agent(event.sender):  # the governor counts what the agents say
                self.messages += 1
                self.last_body[event.sender] = normalise(event.body)
        elif isinstance(event, Round):
            self.round = event.round
            self.checkpoints[self.round] = {"ref": event.ref, "commit": event.commit, "tree": event.tree,
                                            "phase": event.phase}
            if event.unchanged:
                self.no_change_rounds += 1
        elif isinstance(event, VerdictEvent):
            self.verdicts.append(Verdict(event.id, event.by, event.kind, event.round, event.checkpoint, event.tree,
                                         event.phase))
            for fid, text in event.findings:
                self.findings[fid] = Finding(fid, text, event.round, event.by)
            if event.kind == "approve":  # an approval settles whatever was still open or disputed
                for finding in self.findings.values():
                    if finding.status in (OPEN, DISPUTED):
                        finding.status = RESOLVED
        elif isinstance(event, FindingClaims):
            for fid in event.fixed:
                if fid in self.findings:
                    self.findings[fid].status = FIXED
            for fid in event.disputed:
                if fid in self.findings:
                    self.findings[fid].status = DISPUTED
        elif isinstance(event, PhaseChanged):
            self.phase = event.phase
        elif isinstance(event, Relay):
            paused = event.state == "paused"
            self.paused = (event.reason or "paused") if paused else ""
            self.paused_by = event.by if paused else ""
            self.rounds_allowed = event.rounds_allowed or self.rounds_allowed
            self.messages_allowed = event.messages_allowed or self.messages_allowed
        elif isinstance(event, Suppressed):
            self.bounces += 1
        elif isinstance(event, RunState):
            self.run_state = event.state
        elif isinstance(event, ProtocolStarted):
            self.phase = event.phase
            self.limits = event.limits

    # ---- questions -------------------------------------------------------------------------------------

    @property
    def latest_verdict(self) -> Verdict | None:
        return self.verdicts[-1] if self.verdicts else None

    def checkpoint_ref(self, round_: int | None = None) -> str:
        cp = self.checkpoints.get(self.round if round_ is None else round_)
        return cp["ref"] if cp else ""

    def finding_ids_for(self, count: int) -> list[str]:
        """Stable ids for a new set of findings in the current round: F<round>.<n>, never reused."""
        taken = {f for f in self.findings if f.startswith(f"F{self.round}.")}
        ids: list[str] = []
        n = 1
        while len(ids) < count:
            fid = f"F{self.round}.{n}"
            if fid not in taken:
                ids.append(fid)
            n += 1
        return ids

    def open_findings(self) -> list[Finding]:
        return [f for f in self.findings.values() if f.status in (OPEN, DISPUTED)]

    def done_blocker(self, current_tree: str, verify: bool = False) -> str:
        """Why the worker cannot be done yet ("" when the pair agrees)."""
        return self.done_check(current_tree, verify)[1]

    def verify_rounds(self, verify: bool) -> set[int]:
        """The rounds whose checkpoint the verify command runs on: every work-phase round with a checkpoint."""
        return {n for n, cp in self.checkpoints.items() if cp.get("ref") and cp.get("phase") == WORK} \
            if verify else set()

    def done_check(self, current_tree: str, verify: bool = False) -> tuple[str, str]:
        """Which check refuses done, and why (("", "") when the pair agrees). ``verify``: the run has a verify
        command, so the approved checkpoint's verification must have passed."""
        reason = self._verdict_blocker(current_tree)
        if reason:
            return ("changed" if reason.startswith("the code changed") else "verdict"), reason
        verdict = self.latest_verdict
        if verify and verdict is not None and verdict.round in self.verify_rounds(verify):
            reason = self.gates.done_blocker(verdict.round)
            if reason:
                return "verify", reason
        return "", ""

    def _verdict_blocker(self, current_tree: str) -> str:
        if self.phase == PLAN:
            return "the plan has not been approved yet: ask for review of PLAN.md with `pairloop review`"
        verdict = self.latest_verdict
        if verdict is None:
            return "nothing has been approved yet: ask for review with `pairloop review`"
        if verdict.kind != "approve":
            who = "the human" if verdict.by == "human" else "the reviewer"
            return f"{who} asked for changes in round {verdict.round}: address them and ask for review again"
        if verdict.phase == PLAN:
            return "only the plan is approved: implement it and ask for review with `pairloop review`"
        if verdict.tree and current_tree and verdict.tree != current_tree:
            return (f"the code changed since the approval of round {verdict.round}: ask for review of the "
                    "current state with `pairloop review`")
        return ""

    def governor(self) -> str:
        """A limit the run has passed, as a reason to pause ("" when within limits)."""
        rounds_allowed = self.rounds_allowed or self.limits.max_rounds
        if self.round > rounds_allowed and self.run_state != "agreed":
            return f"more than {rounds_allowed} review rounds without agreement"
        messages_allowed = self.messages_allowed or self.limits.max_messages
        if self.messages > messages_allowed:
            return f"{messages_allowed} messages in this run"
        return ""

    def is_bounce(self, sender: str, body: str) -> bool:
        """The same text back and forth: a repeat of the partner's last message, or of one's own."""
        text = normalise(body)
        partner = partner_of(sender)
        return bool(text) and text in (self.last_body.get(partner), self.last_body.get(sender))

    def summary(self) -> dict[str, Any]:
        return {
            "phase": self.phase, "round": self.round,
            "checkpoints": {str(r): cp for r, cp in sorted(self.checkpoints.items())},
            "verdicts": [v.__dict__ for v in self.verdicts],
            "findings": [f.__dict__ for f in self.findings.values()],
            "relay": {"paused": bool(self.paused), "reason": self.paused, "by": self.paused_by},
            "governor": {"rounds": self.round, "max_rounds": self.rounds_allowed or self.limits.max_rounds,
                         "messages": self.messages,
                         "max_messages": self.messages_allowed or self.limits.max_messages,
                         "no_change_rounds": self.no_change_rounds, "bounces_suppressed": self.bounces},
            **self.gates.summary(),
            **self.spend.summary(self.limits.max_tokens),
        }
