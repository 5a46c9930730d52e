"""What the gates of the protocol know, folded from the ledger: each round's verification, which review request
belongs to which round, the done gate's last refusal, the configuration changes flagged. Pure.

The verification gate: a review request reaches the reviewer only with its checkpoint's verification result, and
``done`` needs the approved checkpoint's verification to have passed. The done gate's refusals: the same refusal
twice in a row (the same gate, the same paths) goes to the human instead of another round."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from bridge.rundir.events import (
    AnyEvent,
    ConfigChanged,
    DoneRefused,
    Overruled,
    Received,
    RunState,
    VerifyFinished,
    VerifyStarted,
)

PASSED = "passed"
CHANGED, VERIFY = "changed", "verify"  # the done gate's checks that name what they saw


@dataclass
class Verification:
    round: int
    ref: str
    commit: str = ""
    command: str = ""
    log: str = ""
    result: str = ""  # "" while it runs; then passed, failed, timed out, error or interrupted
    exit_status: int | None = None
    duration: float = 0.0
    tail: str = ""
    detail: str = ""
    started: float = 0.0
    attempts: int = 1

    @property
    def running(self) -> bool:
        return not self.result

    def outcome(self) -> str:
        """A few words: "passed in 1.2 s", "FAILED (exit status 1) after 0.3 s", "timed out after 600 s"."""
        took = f"{self.duration:.1f} s"
        if self.result == PASSED:
            return f"passed in {took}"
        if self.result == "failed":
            return f"FAILED (exit status {self.exit_status}) after {took}"
        if self.result == "timed out":
            return f"TIMED OUT after {took} (the command was killed)"
        if self.result == "interrupted":
            return "interrupted (the bridge stopped while it ran)"
        return f"could not run ({self.detail})" if self.result == "error" else "running"


@dataclass
class Refusal:
    gate: str
    paths: tuple[str, ...]
    reason: str

    def same_as(self, other: Refusal | None) -> bool:
        """The same refusal: the same check, and the same paths (or, for a check without paths, the same words)."""
        if other is None or other.gate != self.gate:
            return False
        return self.paths == other.paths if self.gate == CHANGED else self.reason == other.reason


@dataclass
class Gates:
    verifications: dict[int, Verification] = field(default_factory=dict)  # round -> its latest attempt
    requests: dict[str, int] = field(default_factory=dict)  # review request id -> its round
    last_refusal: Refusal | None = None
    repeats: int = 0  # refusals in a row that were the same as the one before
    config_changes: dict[str, str] = field(default_factory=dict)  # key -> what the file says now
    overrules: list[Overruled] = field(default_factory=list)
    failures_in_a_row: int = 0  # verifications that did not pass, one after the other (interrupted ones aside)

    def apply(self, event: AnyEvent, current_round: int) -> None:
        if isinstance(event, Received):
            if event.kind == "review" and event.sender == "worker":
                self.requests[event.id] = current_round  # recorded right after its round
        elif isinstance(event, VerifyStarted):
            before = self.verifications.get(event.round)
            self.verifications[event.round] = Verification(
                event.round, event.ref, event.commit, event.command, event.log, started=event.ts,
                attempts=before.attempts + 1 if before else 1)
        elif isinstance(event, VerifyFinished):
            v = self.verifications.setdefault(event.round, Verification(event.round, event.ref))
            v.result, v.exit_status, v.duration = event.result, event.exit_status, event.duration
            v.tail, v.detail = event.tail, event.detail
            v.commit, v.command, v.log = event.commit or v.commit, event.command or v.command, event.log or v.log
            if event.result != "interrupted":
                self.failures_in_a_row = 0 if event.result == PASSED else self.failures_in_a_row + 1
        elif isinstance(event, DoneRefused):
            refusal = Refusal(event.gate, tuple(event.paths), event.reason)
            self.repeats = self.repeats + 1 if refusal.same_as(self.last_refusal) else 0
            self.last_refusal = refusal
        elif isinstance(event, RunState) and event.state == "agreed":
            self.last_refusal, self.repeats = None, 0
        elif isinstance(event, ConfigChanged):
            if event.now == event.was:  # changed back
                self.config_changes.pop(event.key, None)
            else:
                self.config_changes[event.key] = event.now
        elif isinstance(event, Overruled):
            self.overrules.append(event)

    # ---- questions -------------------------------------------------------------------------------------

    def running(self) -> Verification | None:
        return next((v for v in self.verifications.values() if v.running), None)

    def to_start(self, rounds: list[int]) -> int | None:
        """The oldest of ``rounds`` (those that need verifying) whose verification has not run, or was cut short
        by a bridge that stopped; None when each has its result."""
        for n in sorted(rounds):
            v = self.verifications.get(n)
            if v is None or v.result == "interrupted":
                return n
        return None

    def gate(self, msg_id: str, needs: set[int]) -> str:
        """Why a message may not reach the reviewer yet: a review request whose checkpoint is being verified."""
        n = self.requests.get(msg_id)
        if n is None or n not in needs:
            return ""
        v = self.verifications.get(n)
        if v is not None and v.result and v.result != "interrupted":
            return ""
        return f"held: verifying round {n}'s checkpoint (the result goes with it)"

    def done_blocker(self, round_: int) -> str:
        """Why done is refused for an approval of ``round_``, as far as its verification goes ("" when it passed)."""
        v = self.verifications.get(round_)
        if v is None or v.running or v.result == "interrupted":
            return (f"the verification of round {round_}'s checkpoint has not finished yet: wait for its result, "
                    "then say done again")
        if v.result == PASSED:
            return ""
        return (f"the verification of round {round_}'s checkpoint {v.outcome()} (`{v.command}`, full log: {v.log}): "
                "fix it and ask for review again with `pairloop review`")

    def summary(self) -> dict[str, Any]:
        return {
            "verifications": [{"round": v.round, "checkpoint": v.ref, "commit": v.commit, "command": v.command,
                               "result": v.result or "running", "exit_status": v.exit_status,
                               "duration": round(v.duration, 3), "log": v.log, "attempts": v.attempts}
                              for _, v in sorted(self.verifications.items())],
            "config_changes": dict(self.config_changes),
            "overrules": [{"gate": o.gate, "by": o.by, "blocker": o.blocker, "note": o.note} for o in self.overrules],
        }
