"""The referee applies the pair protocol to messages as they arrive: a checkpoint per review round, verdicts
and their findings, the done-consensus, mirroring what the human says, and the governor's limits.

It decides; the relay records and delivers. What it wants done comes back as Effects: ledger events, and the
messages it adds (a notice to an agent, context for the partner), which are delivered like any other."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import msgspec

from bridge.effects import Effects, Post
from bridge.notify import AGREED, PAUSED, Call
from bridge.protocol.checkpoint import CheckpointError, changes_between, current_tree, snapshot
from bridge.protocol.donegate import changes_since, refusal_text
from bridge.protocol.gates import CHANGED, VERIFY, Refusal
from bridge.protocol.state import PLAN, WORK, Protocol, parse_findings
from bridge.roles import is_agent, partner_of
from bridge.rundir.events import (
    AnyEvent,
    DoneRefused,
    FindingClaims,
    Overruled,
    PhaseChanged,
    ProtocolStarted,
    Round,
    RunState,
)
from bridge.rundir.events import Relay as RelayEvent
from bridge.rundir.events import Verdict as VerdictEvent
from bridge.rundir.files import PRIVATE_FILE, write_atomic
from bridge.rundir.manifest import Manifest
from bridge.rundir.message import Message

# What the bridge runs on agreement writes its output here; `pairloop stop` waits for the pid.
AGREEMENT_LOG, AGREEMENT_PID = "on-agreement.log", "on-agreement.pid"

VERBS = {
    "worker": "pairloop review [NOTE] when ready for review · pairloop done [NOTE] once approved · "
              "pairloop send TEXT to talk",
    "reviewer": "pairloop approve [NOTE] · pairloop changes TEXT (numbered findings) · pairloop send TEXT to talk",
}


class Topic:
    """What a notice from the bridge is about: carried in the envelope, so no reader parses its wording."""

    PLAN_APPROVED = "plan-approved"
    NOT_DONE = "not-done"
    VERIFIED = "verified"  # a checkpoint's verification passed (with the review request it was held with)
    VERIFY_FAILED = "verify-failed"  # it did not; or done refused because the approved one did not
    OVERRULED = "overruled"  # the human declared the work done over the done gate


class Referee:
    """Holds the protocol's state (folded from the ledger) and says what each arriving message means for it.
    Its answers are :class:`Effects` the relay records and carries out; it only does I/O for git checkpoints and
    for starting the summary."""

    def __init__(self, manifest: Manifest, run_dir: Path) -> None:
        self.protocol = Protocol()
        self.repo = Path(manifest.work_tree)  # the run's worktree when it has one
        self.run_id = manifest.id
        self.base = manifest.base_commit or ""
        self.settings = manifest.protocol
        self.on_agreement_argv = list(manifest.on_agreement)
        self.verify = manifest.verify  # the verification gate's command ("" or (): none)
        self.run_dir = run_dir
        self._seen_protocol = False

    def apply(self, event: AnyEvent) -> None:
        if isinstance(event, ProtocolStarted):
            self._seen_protocol = True
        self.protocol.apply(event)

    def restore(self, protocol: Protocol, protocol_started: bool) -> None:
        """Begin from the protocol a snapshot kept (bridge.replay), instead of a new one."""
        self.protocol, self._seen_protocol = protocol, protocol_started

    @property
    def protocol_started(self) -> bool:
        return self._seen_protocol

    def begin(self) -> Effects:
        """The run's first bridge start records the protocol it runs under."""
        if self._seen_protocol:
            return Effects()
        return Effects([ProtocolStarted(phase=PLAN if self.settings.plan else WORK, limits=self.settings.limits)])

    def footer(self, role: str) -> str:
        p = self.protocol
        paused = f" · relay paused: {p.paused}" if p.paused else ""
        return f"you are the {role} · {p.phase} phase · round {p.round}{paused} · {VERBS.get(role, '')}"

    # ---- before a message is recorded -------------------------------------------------------------------

    def check_bounce(self, msg: Message) -> bool:
        return is_agent(msg.sender) and msg.kind in ("message", "changes") and \
            self.protocol.is_bounce(msg.sender, msg.body)

    def before(self, msg: Message) -> tuple[str, Effects]:
        """The note the receiver gets with ``msg`` (taking the round's checkpoint for a review request), and what
        to record before the message itself."""
        p = self.protocol
        if msg.kind == "review" and msg.sender == "worker":
            return self._new_round(msg)
        if msg.kind == "changes":
            ids = p.finding_ids_for(len(parse_findings(msg.body)))
            who = "the human overrules the reviewer: " if msg.sender == "human" else ""
            return (f"{who}changes requested for round {p.round}; findings {', '.join(ids)}: say which you fixed "
                    "or dispute with `pairloop review --fixed ID --disputed ID`"), Effects()
        if msg.kind == "approve":
            who = "the human approves (overruling the reviewer) " if msg.sender == "human" else "approved: "
            what = "the plan" if p.phase == PLAN else f"round {p.round}"
            return f"{who}{what} ({p.checkpoint_ref() or 'no checkpoint yet'})", Effects()
        return "", Effects()

    def _new_round(self, msg: Message) -> tuple[str, Effects]:
        p = self.protocol
        n = p.round + 1
        phase = PLAN if p.phase == PLAN else WORK
        ref = f"refs/pairloop/{self.run_id}/round-{n}"
        try:
            snap = snapshot(self.repo, ref, f"pairloop round {n} ({p.phase} phase): {msg.body[:60]}")
        except CheckpointError as exc:
            return (f"round {n} ({p.phase} phase): no checkpoint ({exc})",
                    Effects([Round(round=n, phase=phase, error=str(exc))]))
        previous = p.checkpoints.get(p.round, {})
        unchanged = bool(previous) and previous.get("tree") == snap.tree
        old = previous.get("ref") or self.base
        fx = Effects([Round(round=n, ref=ref, commit=snap.commit, tree=snap.tree, phase=phase, unchanged=unchanged)])
        if msg.fixed or msg.disputed:
            fx.events.append(FindingClaims(fixed=msg.fixed, disputed=msg.disputed))
        lines = [f"round {n} ({p.phase} phase) · checkpoint {ref} ({snap.commit[:10]})"]
        if unchanged:
            lines.append(f"FLAGGED: nothing changed since round {n - 1}")
            fx.says.append(f"round {n}: nothing changed since round {n - 1} (flagged)")
        if old:
            lines.append(f"changes since {'round ' + str(n - 1) if previous else 'the start'} "
                         f"(git diff {old} {ref}):")
            lines.append(changes_between(self.repo, old, ref))
        if msg.fixed or msg.disputed:
            lines.append(f"the worker says fixed: {', '.join(msg.fixed) or '-'}; disputed: "
                         f"{', '.join(msg.disputed) or '-'}")
        return "\n".join(lines), fx

    # ---- after it is recorded ---------------------------------------------------------------------------

    def after(self, msg: Message) -> Effects:
        p = self.protocol
        fx = Effects()
        if msg.kind in ("approve", "changes") and msg.sender in ("reviewer", "human"):
            findings = parse_findings(msg.body) if msg.kind == "changes" else []
            ids = p.finding_ids_for(len(findings))  # the same ids before() announced: nothing was added since
            cp = p.checkpoints.get(p.round, {})
            fx.events.append(VerdictEvent(
                id=msg.id, by="human" if msg.sender == "human" else "reviewer",
                kind="approve" if msg.kind == "approve" else "changes", round=p.round,
                checkpoint=cp.get("ref", ""), tree=cp.get("tree", ""), phase=PLAN if p.phase == PLAN else WORK,
                findings=tuple(zip(ids, findings, strict=False))))
            if msg.kind == "approve" and p.phase == PLAN:
                fx.events.append(PhaseChanged(phase=WORK, by=msg.id))
                fx.posts.append(Post(f"{msg.id}-go", ("worker",), "The plan is approved: implement it now, then "
                                     "ask for review with `pairloop review`.", "notice", Topic.PLAN_APPROVED))
        agreed = False
        if msg.kind == "done" and msg.sender == "worker":
            agreed, done_fx = self._judge_done(msg)
            fx.add(done_fx)
        if msg.sender == "human" and msg.kind != "task" and self.settings.mirror:
            fx.add(self.mirror(msg.id, msg.to, msg.body, msg.kind))
        reason = "" if agreed else p.governor()
        if reason:
            fx.add(self.pause(reason))
        return fx

    def _judge_done(self, msg: Message) -> tuple[bool, Effects]:
        gate, blocker, paths = self.done_gate()
        if blocker:
            topic = Topic.VERIFY_FAILED if gate == VERIFY and "has not finished" not in blocker else Topic.NOT_DONE
            fx = Effects([DoneRefused(id=msg.id, reason=blocker, gate=gate, paths=paths)],
                         [Post(f"{msg.id}-not-yet", ("worker",), f"Not done yet: {blocker}.", "notice", topic)],
                         [f"worker says done, but {blocker}"])
            if gate in (CHANGED, VERIFY) and Refusal(gate, paths, blocker).same_as(self.protocol.gates.last_refusal):
                # Another round would end the same way: the human decides (`pairloop done --force` accepts it).
                fx.add(self.pause(f"done refused twice in a row for the same reason: {blocker}; decide (commit, "
                                  "ignore or remove what changed, or `pairloop done --force` to accept the work as "
                                  "it is), then `pairloop unpause`"))
            return False, fx
        verdict = self.protocol.latest_verdict
        return True, Effects([RunState(state="agreed", by=msg.id, round=self.protocol.round,
                                       approved_by=verdict.by if verdict else "")],
                             alerts=[Call(AGREED, "pairloop: the pair agreed the work is done")], start_summary=True)

    def done_gate(self) -> tuple[str, str, tuple[str, ...]]:
        """Which check refuses done now, why, and (for a changed tree) the paths: ("", "", ()) when it passes."""
        try:
            tree = current_tree(self.repo)
        except CheckpointError:
            tree = ""
        gate, blocker = self.protocol.done_check(tree, bool(self.verify))
        verdict = self.protocol.latest_verdict
        if gate != CHANGED or verdict is None:
            return gate, blocker, ()
        changes = changes_since(self.repo, verdict.checkpoint, verdict.tree, tree)
        return gate, refusal_text(verdict.round, changes), tuple(c.path for c in changes)

    def overrule_done(self, note: str = "") -> Effects:
        """The human accepts the work as it is (`pairloop done --force`): recorded as an overrule of what the done
        gate said at that moment, and the run is agreed."""
        p = self.protocol
        if p.run_state == "agreed":
            return Effects(says=["the human says done: the pair had agreed already"])
        _, blocker, _ = self.done_gate()
        verdict = p.latest_verdict
        events: list[AnyEvent] = [Overruled(gate="done", blocker=blocker or "nothing: the gate would have passed",
                                            note=note),
                                  RunState(state="agreed", by="human", round=p.round,
                                           approved_by=verdict.by if verdict and verdict.kind == "approve" else "")]
        fx = Effects(events, [Post(f"overrule-done-{len(p.gates.overrules) + 1}", ("worker", "reviewer"),
                                   "The human declared the work done, overruling the done gate"
                                   f"{' (' + blocker + ')' if blocker else ''}.", "notice", Topic.OVERRULED)],
                     alerts=[f"pairloop: the human overruled the done gate{': ' + blocker if blocker else ''}"],
                     start_summary=True)
        if p.paused:
            fx.add(self.unpause())
        return fx

    def start_summary(self) -> str:
        """Run what the run asked for on agreement (the summarizer), in the background, output to a log."""
        argv = self.on_agreement_argv
        if not argv:
            return ""
        try:
            fd = os.open(self.run_dir / AGREEMENT_LOG, os.O_WRONLY | os.O_APPEND | os.O_CREAT, PRIVATE_FILE)
            with os.fdopen(fd, "ab") as log:
                proc = subprocess.Popen(argv, stdout=log, stderr=log, stdin=subprocess.DEVNULL, cwd=self.repo,
                                        start_new_session=True)  # outlives the session; `stop` waits for it
            write_atomic(self.run_dir / AGREEMENT_PID, f"{proc.pid}\n".encode())
        except OSError as exc:
            return f"could not start the summary: {exc}"
        return "writing the summary: PLAN.md and PR notes (pairloop summarize)"

    def mirror(self, msg_id: str, to: tuple[str, ...], body: str, kind: str) -> Effects:
        """What the human says to one agent goes to the other as context, so it does not work from a stale
        picture."""
        if len(to) != 1 or not is_agent(to[0]):
            return Effects()
        verb = {"approve": "approved", "changes": "asked for changes"}.get(kind, "told the " + to[0])
        return Effects(posts=[Post(f"{msg_id}-context", (partner_of(to[0]),), f"For context, the human {verb}: {body}",
                                   "context")])

    def pause(self, reason: str, by: str = "governor") -> Effects:
        if self.protocol.paused:
            return Effects()
        fx = Effects([RelayEvent(state="paused", by=by, reason=reason)])
        if by == "governor":
            fx.alerts.append(Call(PAUSED, f"pairloop: relay paused: {reason}. Decide, then `pairloop unpause` (or "
                                  "stop)", reason=reason))
        else:
            fx.says.append(f"relay paused by the {by}: messages queue until `pairloop unpause`")
        return fx

    def unpause(self, by: str = "human") -> Effects:
        p = self.protocol
        if not p.paused:
            return Effects()
        event = RelayEvent(state="running", by=by)
        if p.paused_by == "governor":  # the human decided to go on: allow as much again before the next stop
            event = RelayEvent(state="running", by=by, rounds_allowed=p.round + p.limits.max_rounds,
                               messages_allowed=p.messages + p.limits.max_messages)
        if p.spend.over_budget(p.limits.max_tokens):  # past the token budget: as much again before the next stop
            event = msgspec.structs.replace(event, tokens_allowed=p.spend.total.total + p.limits.max_tokens)
        return Effects([event], says=[f"relay resumed by the {by}"])
