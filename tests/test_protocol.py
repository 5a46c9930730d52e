"""The pair protocol's bookkeeping, as pure functions of ledger events."""

from __future__ import annotations

from typing import Literal

from bridge.protocol.state import DISPUTED, FIXED, OPEN, PLAN, RESOLVED, WORK, Protocol, parse_findings
from bridge.rundir.events import (
    AnyEvent,
    FindingClaims,
    Limits,
    Phase,
    PhaseChanged,
    ProtocolStarted,
    Relay,
    Round,
    RunState,
    Suppressed,
    Verdict,
)
from tests.typed_events import received


def run(*events: AnyEvent) -> Protocol:
    p = Protocol()
    for event in events:
        p.apply(event)
    return p


def rnd(n: int, tree: str = "t", phase: Phase = WORK, unchanged: bool = False) -> Round:
    return Round(round=n, ref=f"refs/pairloop/r/round-{n}", commit=f"c{n}", tree=tree, phase=phase,
                 unchanged=unchanged)


def verdict(kind: Literal["approve", "changes"], n: int, tree: str = "t",
            by: Literal["reviewer", "human"] = "reviewer", phase: Phase = WORK,
            findings: tuple[tuple[str, str], ...] = ()) -> Verdict:
    return Verdict(id=f"v{n}{kind}", by=by, kind=kind, round=n, checkpoint=f"refs/pairloop/r/round-{n}", tree=tree,
                   phase=phase, findings=findings)


def started(max_rounds: int = 6, max_messages: int = 200, phase: Phase = WORK) -> ProtocolStarted:
    return ProtocolStarted(phase=phase, limits=Limits(max_rounds=max_rounds, max_messages=max_messages))


def says(sender: str, body: str, n: int = 1) -> AnyEvent:
    to = ("reviewer",) if sender == "worker" else ("worker",)
    return received(f"m{n}", n, sender=sender, to=to, body=body)


def test_parse_findings() -> None:
    assert parse_findings("1. add a test\n2) rename x\n   because y\n- and z") == [
        "add a test", "rename x because y", "and z"]
    assert parse_findings("Please add a test.") == ["Please add a test."]
    assert parse_findings("  \n") == []


def test_rounds_checkpoints_and_verdicts() -> None:
    p = run(started(), rnd(1, "t1"),
            verdict("changes", 1, "t1", findings=(("F1.1", "add a test"), ("F1.2", "rename"))),
            FindingClaims(fixed=("F1.1", "F9.9"), disputed=("F1.2",)), rnd(2, "t2"))
    assert p.round == 2 and p.checkpoint_ref() == "refs/pairloop/r/round-2"
    assert [(f.id, f.status, f.round) for f in p.findings.values()] == [("F1.1", FIXED, 1), ("F1.2", DISPUTED, 1)]
    assert [f.id for f in p.open_findings()] == ["F1.2"]
    p.apply(verdict("approve", 2, "t2"))
    assert [f.status for f in p.findings.values()] == [FIXED, RESOLVED]
    summary = p.summary()
    assert summary["round"] == 2 and len(summary["verdicts"]) == 2
    assert summary["checkpoints"]["1"]["ref"] == "refs/pairloop/r/round-1"


def test_finding_ids_are_stable_and_never_reused() -> None:
    p = run(rnd(3), verdict("changes", 3, findings=(("F3.1", "a"), ("F3.2", "b"))))
    assert p.finding_ids_for(2) == ["F3.3", "F3.4"]
    assert run(rnd(1)).finding_ids_for(1) == ["F1.1"]
    assert p.findings["F3.1"].status == OPEN


def test_done_needs_an_approval_of_the_current_state() -> None:
    assert "nothing has been approved" in run().done_blocker("t")
    assert "asked for changes in round 1" in run(rnd(1), verdict("changes", 1)).done_blocker("t")
    approved = run(rnd(1, "t1"), verdict("approve", 1, "t1"))
    assert approved.done_blocker("t1") == ""
    assert "the code changed since the approval of round 1" in approved.done_blocker("t2")
    human = run(rnd(1, "t1"), verdict("changes", 1, "t1"), verdict("approve", 1, "t1", by="human"))
    assert human.done_blocker("t1") == "", "the human's verdict overrules the reviewer's"
    assert "the human asked for changes" in run(rnd(1), verdict("changes", 1, by="human")).done_blocker("t")


def test_plan_phase() -> None:
    p = run(ProtocolStarted(phase=PLAN), rnd(1, phase=PLAN))
    assert p.limits == Limits()
    assert "the plan has not been approved" in p.done_blocker("t")
    p.apply(verdict("approve", 1, phase=PLAN))
    p.apply(PhaseChanged(phase=WORK, by="reviewer"))
    assert p.phase == WORK
    assert "only the plan is approved" in p.done_blocker("t")


def test_governor_limits_and_unpausing() -> None:
    p = run(started(max_rounds=2, max_messages=3), rnd(1), rnd(2))
    assert p.governor() == ""
    p.apply(rnd(3))
    assert p.governor() == "more than 2 review rounds without agreement"
    p.apply(Relay(state="paused", by="governor", reason=p.governor()))
    assert p.paused == "more than 2 review rounds without agreement" and p.paused_by == "governor"
    p.apply(Relay(state="running", by="human", rounds_allowed=5, messages_allowed=10))
    assert not p.paused and not p.paused_by and p.governor() == ""
    for n in range(11):
        p.apply(says("worker", "x", n))
    assert p.governor() == "10 messages in this run"
    human_only = run(started(max_rounds=2, max_messages=1), *[says("human", "x", n) for n in range(5)],
                     says("pairloop", "a notice", 9))
    assert human_only.governor() == "", "the governor counts what the agents say, not the human or the bridge"


def test_a_pause_without_a_reason_still_pauses() -> None:
    p = run(Relay(state="paused", by="human"))
    assert p.paused == "paused" and p.paused_by == "human"


def test_an_agreed_run_is_never_paused_for_rounds() -> None:
    p = run(started(max_rounds=1), rnd(1), rnd(2), RunState(state="agreed"))
    assert p.governor() == ""


def test_bounce_detection() -> None:
    p = run(says("worker", "Please  look again"))
    assert p.is_bounce("reviewer", "please look AGAIN")
    assert p.is_bounce("worker", "please look again")
    assert not p.is_bounce("reviewer", "looks good")
    assert not run().is_bounce("worker", "anything")


def test_no_change_rounds_are_counted() -> None:
    assert run(rnd(1), rnd(2, unchanged=True)).no_change_rounds == 1


def test_suppressed_deliveries_count_as_bounces() -> None:
    p = run(Suppressed(to="reviewer", ids=("a",), reason="bounce"), Suppressed(to="worker", ids=("b",)))
    assert p.bounces == 2
    assert p.summary()["governor"]["bounces_suppressed"] == 2
