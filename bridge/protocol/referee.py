"""The referee applies the pair protocol to messages as they arrive: a checkpoint per review round, verdicts
and their findings, the done-consensus, mirroring what the human says, and the governor's limits.

It decides and records; the relay delivers. Everything it does goes through the ledger (``emit``), and every
message it adds (a notice to an agent, context for the partner) is delivered like any other."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bridge.protocol.checkpoint import CheckpointError, changes_between, current_tree, snapshot
from bridge.protocol.state import PLAN, WORK, Limits, Protocol, parse_findings
from bridge.rundir.message import Message

Emit = Callable[[dict[str, Any]], dict[str, Any]]
Post = Callable[[str, tuple[str, ...], str, str], None]  # (id, recipients, body, kind) from the bridge
Say = Callable[[str], None]

VERBS = {
    "worker": "pairloop review [NOTE] when ready for review · pairloop done [NOTE] once approved · "
              "pairloop send TEXT to talk",
    "reviewer": "pairloop approve [NOTE] · pairloop changes TEXT (numbered findings) · pairloop send TEXT to talk",
}


class Referee:
    def __init__(self, manifest: dict[str, Any], emit: Emit, post: Post, say: Say, alert: Say) -> None:
        self.protocol = Protocol()
        self.repo = Path(str(manifest.get("repo", ".")))
        self.run_id = str(manifest.get("id", "run"))
        self.base = str(manifest.get("base_commit") or "")
        self.settings: dict[str, Any] = dict(manifest.get("protocol", {}))
        self.settings_argv: list[str] = [str(a) for a in manifest.get("on_agreement", [])]
        self.run_dir = Path(str(manifest.get("run_dir", ".")))
        self.emit, self.post, self.say, self.alert = emit, post, say, alert
        self._seen_protocol = False

    def apply(self, event: dict[str, Any]) -> None:
        if event.get("ev") == "protocol":
            self._seen_protocol = True
        self.protocol.apply(event)

    def begin(self) -> None:
        """The run's first bridge start records the protocol it runs under."""
        if not self._seen_protocol:
            self.emit({"ev": "protocol", "phase": PLAN if self.settings.get("plan") else WORK,
                       "limits": Limits.from_json(self.settings.get("limits")).__dict__})

    def footer(self, role: str) -> str:
        p = self.protocol
        paused = f" · relay paused: {p.paused}" if p.paused else ""
        return f"you are the {role} · {p.phase} phase · round {p.round}{paused} · {VERBS.get(role, '')}"

    # ---- before a message is recorded -------------------------------------------------------------------

    def check_bounce(self, msg: Message) -> bool:
        return msg.sender in ("worker", "reviewer") and msg.kind in ("message", "changes") and \
            self.protocol.is_bounce(msg.sender, msg.body)

    def note_for(self, msg: Message) -> str:
        """Take the round's checkpoint for a review request, and say what the receiver needs to know."""
        p = self.protocol
        if msg.kind == "review" and msg.sender == "worker":
            return self._new_round(msg)
        if msg.kind == "changes":
            ids = p.finding_ids_for(len(parse_findings(msg.body)))
            who = "the human overrules the reviewer: " if msg.sender == "human" else ""
            return f"{who}changes requested for round {p.round}; findings {', '.join(ids)}: say which you fixed " \
                   "or dispute with `pairloop review --fixed ID --disputed ID`"
        if msg.kind == "approve":
            who = "the human approves (overruling the reviewer) " if msg.sender == "human" else "approved: "
            what = "the plan" if p.phase == PLAN else f"round {p.round}"
            return f"{who}{what} ({p.checkpoint_ref() or 'no checkpoint yet'})"
        return ""

    def _new_round(self, msg: Message) -> str:
        p = self.protocol
        n = p.round + 1
        ref = f"refs/pairloop/{self.run_id}/round-{n}"
        try:
            snap = snapshot(self.repo, ref, f"pairloop round {n} ({p.phase} phase): {msg.body[:60]}")
        except CheckpointError as exc:
            self.emit({"ev": "round", "round": n, "ref": "", "phase": p.phase, "error": str(exc)})
            return f"round {n} ({p.phase} phase): no checkpoint ({exc})"
        previous = p.checkpoints.get(p.round, {})
        unchanged = bool(previous) and previous.get("tree") == snap.tree
        old = previous.get("ref") or self.base
        self.emit({"ev": "round", "round": n, "ref": ref, "commit": snap.commit, "tree": snap.tree,
                   "phase": p.phase, "unchanged": unchanged})
        if msg.fixed or msg.disputed:
            self.emit({"ev": "findings", "fixed": list(msg.fixed), "disputed": list(msg.disputed)})
        lines = [f"round {n} ({p.phase} phase) · checkpoint {ref} ({snap.commit[:10]})"]
        if unchanged:
            lines.append(f"FLAGGED: nothing changed since round {n - 1}")
            self.say(f"round {n}: nothing changed since round {n - 1} (flagged)")
        if old:
            lines.append(f"changes since {'round ' + str(n - 1) if previous else 'the start'} "
                         f"(git diff {old} {ref}):")
            lines.append(changes_between(self.repo, old, ref))
        if msg.fixed or msg.disputed:
            lines.append(f"the worker says fixed: {', '.join(msg.fixed) or '-'}; disputed: "
                         f"{', '.join(msg.disputed) or '-'}")
        return "\n".join(lines)

    # ---- after it is recorded ---------------------------------------------------------------------------

    def after(self, msg: Message) -> None:
        p = self.protocol
        if msg.kind in ("approve", "changes") and msg.sender in ("reviewer", "human"):
            findings = parse_findings(msg.body) if msg.kind == "changes" else []
            ids = p.finding_ids_for(len(findings))  # the same ids note_for announced: nothing was added since
            cp = p.checkpoints.get(p.round, {})
            self.emit({"ev": "verdict", "id": msg.id, "by": msg.sender, "kind": msg.kind, "round": p.round,
                       "checkpoint": cp.get("ref", ""), "tree": cp.get("tree", ""), "phase": p.phase,
                       "findings": [[fid, text] for fid, text in zip(ids, findings, strict=False)]})
            if msg.kind == "approve" and p.phase == PLAN:
                self.emit({"ev": "phase", "phase": WORK, "by": msg.id})
                self.post(f"{msg.id}-go", ("worker",), "The plan is approved: implement it now, then ask for "
                          "review with `pairloop review`.", "notice")
        if msg.kind == "done" and msg.sender == "worker":
            self._judge_done(msg)
        if msg.sender == "human" and msg.kind != "task" and self.settings.get("mirror", True):
            self.mirror(msg.id, msg.to, msg.body, msg.kind)
        reason = p.governor()
        if reason:
            self.pause(reason)

    def _judge_done(self, msg: Message) -> None:
        try:
            tree = current_tree(self.repo)
        except CheckpointError:
            tree = ""
        blocker = self.protocol.done_blocker(tree)
        if blocker:
            self.emit({"ev": "done_refused", "id": msg.id, "reason": blocker})
            self.say(f"worker says done, but {blocker}")
            self.post(f"{msg.id}-not-yet", ("worker",), f"Not done yet: {blocker}.", "notice")
            return
        verdict = self.protocol.latest_verdict
        self.emit({"ev": "run", "state": "agreed", "by": msg.id, "round": self.protocol.round,
                   "approved_by": verdict.by if verdict else ""})
        self.alert("pairloop: the pair agreed the work is done")
        self.on_agreement()

    def on_agreement(self) -> None:
        """Run what the run asked for on agreement (the summarizer), in the background, output to a log."""
        argv = self.settings_argv
        if not argv:
            return
        try:
            with (self.run_dir / "on-agreement.log").open("ab") as log:
                proc = subprocess.Popen(argv, stdout=log, stderr=log, stdin=subprocess.DEVNULL, cwd=self.repo,
                                        start_new_session=True)  # outlives the session; `stop` waits for it
            (self.run_dir / "on-agreement.pid").write_text(f"{proc.pid}\n")
            self.say("writing the summary: PLAN.md and PR notes (pairloop summarize)")
        except OSError as exc:
            self.say(f"could not start the summary: {exc}")

    def mirror(self, msg_id: str, to: tuple[str, ...], body: str, kind: str) -> None:
        """What the human says to one agent goes to the other as context, so it does not work from a stale
        picture."""
        if len(to) != 1 or to[0] not in ("worker", "reviewer"):
            return
        partner = "reviewer" if to[0] == "worker" else "worker"
        verb = {"approve": "approved", "changes": "asked for changes"}.get(kind, "told the " + to[0])
        self.post(f"{msg_id}-context", (partner,), f"For context, the human {verb}: {body}", "context")

    def pause(self, reason: str, by: str = "governor") -> None:
        if self.protocol.paused:
            return
        self.emit({"ev": "relay", "state": "paused", "by": by, "reason": reason})
        if by == "governor":
            self.alert(f"pairloop: relay paused: {reason}. Decide, then `pairloop unpause` (or stop)")
        else:
            self.say(f"relay paused by the {by}: messages queue until `pairloop unpause`")

    def unpause(self, by: str = "human") -> None:
        p = self.protocol
        if not p.paused:
            return
        event: dict[str, Any] = {"ev": "relay", "state": "running", "by": by}
        if p.paused_by == "governor":  # the human decided to go on: allow as much again before the next stop
            event["rounds_allowed"] = p.round + p.limits.max_rounds
            event["messages_allowed"] = p.messages + p.limits.max_messages
        self.emit(event)
        self.say(f"relay resumed by the {by}")
