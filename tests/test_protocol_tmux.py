"""The pair protocol and human steering, with the sim agent on real tmux."""

from __future__ import annotations

from pathlib import Path

import pytest

from bridge.git import git_out
from bridge.panes.envelope import parse
from bridge.panes.tmux import Tmux
from pairloop.runs.lifecycle import StartOptions, request_control, send_message
from tests.conftest import wait_for
from tests.helpers import (
    book,
    bridge_pane_shows,
    delivered,
    human_says,
    ledger,
    prompts,
    queued_reason,
    settle,
    start_sims,
)

pytestmark = pytest.mark.tmux


def refs(repo: Path, run_id: str) -> list[str]:
    return git_out(repo, "for-each-ref", "--format=%(refname)", f"refs/pairloop/{run_id}/").split()


def events(run_ledger: list[dict[str, object]], ev: str) -> list[dict[str, object]]:
    return [e for e in run_ledger if e["ev"] == ev]


def test_full_loop_plan_work_review_changes_fix_review_approve_done(tmux_server: Tmux, git_repo: Path) -> None:
    task = "Add a greet(name) function.\nIt must be tested."
    run = start_sims(tmux_server, git_repo, task, StartOptions("sim", "sim", plan=True),
                     PAIRLOOP_SIM_MODE="pair", PAIRLOOP_SIM_WORK_SECONDS="0.1")
    wait_for(lambda: book(run).run_state == "agreed", timeout=60, what="the pair to agree")
    log = ledger(run)
    assert [(e["kind"], e["by"], e["round"], e["phase"]) for e in events(log, "verdict")] == [
        ("approve", "reviewer", 1, "plan"), ("changes", "reviewer", 2, "work"), ("approve", "reviewer", 3, "work")]
    assert [e["phase"] for e in events(log, "phase")] == ["work"]
    assert refs(git_repo, run.id) == [f"refs/pairloop/{run.id}/round-{n}" for n in (1, 2, 3)]
    rounds = {e["round"]: e for e in events(log, "round")}
    shown = git_out(git_repo, "show", "--stat", "--format=%s", str(rounds[3]["ref"]))
    assert "test_greeting.py" in shown, "round 3's checkpoint holds the fix"
    # The reviewer was shown what changed since the last reviewed checkpoint.
    reviewer_prompts = prompts(run, "reviewer")
    round3 = next(m for p in reviewer_prompts for m in parse(p)[0] if "round 3" in m.note)
    assert f"git diff refs/pairloop/{run.id}/round-2 refs/pairloop/{run.id}/round-3" in round3.note
    assert "test_greeting.py" in round3.note
    assert "the worker says fixed: F2.1" in round3.note
    protocol = run.protocol()
    assert [(f.id, f.status) for f in protocol.findings.values()] == [("F2.1", "fixed")]
    agreed = events(log, "run")[-1]
    assert agreed["state"] == "agreed" and agreed["round"] == 3
    plan = git_out(git_repo, "log", "--format=%s").split("\n")
    assert plan[:3] == ["Add a test for greet()", "Add greet()", "Plan the greeting feature"]


def test_done_before_approval_is_refused_and_the_worker_told_why(tmux_server: Tmux, git_repo: Path) -> None:
    run = start_sims(tmux_server, git_repo)
    done = send_message(run, "worker", ("reviewer",), "all done", "done")
    wait_for(lambda: events(ledger(run), "done_refused"), what="the refusal")
    notice = wait_for(lambda: [p for p in prompts(run, "worker") if "Not done yet" in p], what="the notice")
    (msg,), _ = parse(notice[0])
    assert (msg.sender, msg.label, msg.topic) == ("pairloop", "notice (not-done)", "not-done")
    assert msg.body == "Not done yet: nothing has been approved yet: ask for review with `pairloop review`."
    assert book(run).run_state == "running"
    wait_for(lambda: delivered(run, done.id, "reviewer"), what="the done still reaching the reviewer")


def test_the_governor_pauses_a_pair_that_never_converges(tmux_server: Tmux, git_repo: Path) -> None:
    run = start_sims(tmux_server, git_repo, "Add greet()", StartOptions("sim", "sim", max_rounds=2),
                     PAIRLOOP_SIM_MODE="pair", PAIRLOOP_SIM_WORK_SECONDS="0.1", PAIRLOOP_SIM_STUBBORN="1")
    wait_for(lambda: run.protocol().paused, timeout=60, what="the governor to pause the relay")
    protocol = run.protocol()
    assert protocol.paused == "more than 2 review rounds without agreement"
    assert protocol.paused_by == "governor" and protocol.round == 3
    bridge_pane_shows(tmux_server, run, "relay paused: more than 2 review rounds without agreement")
    (review3,) = [e for e in book(run).entries.values() if e.message.kind == "review" and "round 3" in e.note]
    wait_for(lambda: queued_reason(run, review3.message.id, "reviewer").startswith("relay paused"),
             what="round 3 held for the human")
    assert book(run).run_state == "running"
    wait_for(lambda: "PAUSED (more than 2 review rounds without agreement)" in "".join(tmux_server.run(
        "show-options", "-v", "-t", f"={run.session}:", "status-right")), what="the status line to say so")


def test_pause_holds_everything_and_unpause_releases_it_in_order(tmux_server: Tmux, git_repo: Path) -> None:
    run = start_sims(tmux_server, git_repo, options=StartOptions("sim", "sim", mirror=False))
    request_control(run, "pause")
    wait_for(lambda: run.protocol().paused == "paused by the human", what="the pause")
    sent = [human_says(run, "reviewer", f"while paused {i}") for i in range(3)]
    wait_for(lambda: all(queued_reason(run, m.id, "reviewer").startswith("relay paused") for m in sent),
             what="all three held")
    assert prompts(run, "reviewer") == []
    request_control(run, "unpause")
    wait_for(lambda: all(delivered(run, m.id, "reviewer") for m in sent), what="release after unpause")
    (batch,) = prompts(run, "reviewer")
    assert [m.body for m in parse(batch)[0]] == ["while paused 0", "while paused 1", "while paused 2"]
    relay = [(e["state"], e["by"]) for e in events(ledger(run), "relay")]
    assert relay == [("paused", "human"), ("running", "human")]


def test_a_human_verdict_overrules_the_reviewer(tmux_server: Tmux, git_repo: Path) -> None:
    run = start_sims(tmux_server, git_repo)
    send_message(run, "worker", ("reviewer",), "ready", "review")
    wait_for(lambda: run.protocol().round == 1, what="round 1")
    send_message(run, "reviewer", ("worker",), "1. no", "changes")
    wait_for(lambda: len(run.protocol().verdicts) == 1, what="the reviewer's verdict")
    approval = send_message(run, "human", ("worker",), "Good enough, ship it", "approve")
    wait_for(lambda: delivered(run, approval.id, "worker"), what="the human's approval delivered")
    send_message(run, "worker", ("reviewer",), "done", "done")
    wait_for(lambda: book(run).run_state == "agreed", what="agreement on the human's approval")
    verdicts = [(v.by, v.kind, v.round) for v in run.protocol().verdicts]
    assert verdicts == [("reviewer", "changes", 1), ("human", "approve", 1)]
    assert events(ledger(run), "run")[-1]["approved_by"] == "human"
    worker_saw = next(m for p in prompts(run, "worker") for m in parse(p)[0] if m.id == approval.id)
    assert worker_saw.note.startswith("the human approves (overruling the reviewer) round 1")
    context = wait_for(lambda: [m for p in prompts(run, "reviewer") for m in parse(p)[0] if m.label == "context"],
                       what="the reviewer told of the human's verdict")
    assert context[0].body == "For context, the human approved: Good enough, ship it"


def test_what_the_human_tells_one_agent_is_mirrored_to_the_other(tmux_server: Tmux, git_repo: Path) -> None:
    run = start_sims(tmux_server, git_repo)
    msg = human_says(run, "worker", "Use the stdlib only.")
    wait_for(lambda: delivered(run, f"{msg.id}-context", "reviewer"), what="the mirrored context")
    (got,) = prompts(run, "reviewer")
    (context,), _ = parse(got)
    assert (context.sender, context.label, context.body) == (
        "pairloop", "context", "For context, the human told the worker: Use the stdlib only.")
    pane = run.manifest.roles["reviewer"].pane
    tmux_server.send_keys(pane, "typed straight into the reviewer", literal=True)
    tmux_server.send_keys(pane, "Enter")
    wait_for(lambda: [p for p in prompts(run, "worker") if "typed straight into the reviewer" in p],
             what="a human turn typed into one pane mirrored to the other")


def test_the_addressee_gets_the_message_before_the_partner_gets_its_context(tmux_server: Tmux,
                                                                           git_repo: Path) -> None:
    """Each paste waits for its receipt, so the order of pastes is the order of the wait: the message's own
    recipient first, then the context copy posted for the partner after it (whichever role the message is for)."""
    run = start_sims(tmux_server, git_repo)
    for to, partner in (("reviewer", "worker"), ("worker", "reviewer")):
        msg = human_says(run, to, f"for the {to} first")
        wait_for(lambda: delivered(run, f"{msg.id}-context", partner), what="the mirrored context")  # noqa: B023
        pastes = [(e["to"], e["ids"]) for e in ledger(run) if e["ev"] == "delivering"]
        assert pastes.index((to, [msg.id])) < pastes.index((partner, [f"{msg.id}-context"]))


def test_mirroring_can_be_turned_off(tmux_server: Tmux, git_repo: Path) -> None:
    run = start_sims(tmux_server, git_repo, options=StartOptions("sim", "sim", mirror=False))
    msg = human_says(run, "worker", "only for you")
    wait_for(lambda: delivered(run, msg.id, "worker"), what="delivery")
    other = human_says(run, "reviewer", "and this only for you")
    wait_for(lambda: delivered(run, other.id, "reviewer"), what="delivery")
    settle(run, "worker")  # a context mirrored from the second message would have reached the worker by now
    assert all("For context" not in p for p in prompts(run, "reviewer") + prompts(run, "worker"))


def test_a_bounce_is_suppressed_and_an_unchanged_round_flagged(tmux_server: Tmux, git_repo: Path) -> None:
    run = start_sims(tmux_server, git_repo)
    first = send_message(run, "worker", ("reviewer",), "Can you check the README?")
    wait_for(lambda: delivered(run, first.id, "reviewer"), what="delivery")
    echo = send_message(run, "reviewer", ("worker",), "can you check the  README?")
    wait_for(lambda: echo.id in book(run).entries and book(run).entries[echo.id].state == "suppressed",
             what="the bounce suppressed")
    assert all(echo.id not in p for p in prompts(run, "worker"))
    send_message(run, "worker", ("reviewer",), "round one", "review")
    wait_for(lambda: run.protocol().round == 1, what="round 1")
    second = send_message(run, "worker", ("reviewer",), "round two", "review")
    wait_for(lambda: delivered(run, second.id, "reviewer"), what="round 2 delivered")
    assert run.protocol().no_change_rounds == 1
    assert "FLAGGED: nothing changed since round 1" in book(run).entries[second.id].note
    assert run.protocol().bounces == 1
