"""The verification gate with the sim agents on real tmux: the verify command on each review checkpoint, its result
delivered with the review request, done refused while it fails, the human's overrule, the PR notes' facts, the
configuration changed mid-run, the timeout."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bridge.panes.envelope import parse
from bridge.panes.tmux import Tmux
from pairloop.runs.lifecycle import StartOptions, overrule_done, send_message
from pairloop.runs.store import Run
from pairloop.views import run_status
from tests.conftest import wait_for
from tests.helpers import book, bridge_pane_shows, ledger, prompts, queued_reason, start_sims

pytestmark = pytest.mark.tmux


def of(run: Run, ev: str) -> list[dict[str, object]]:
    return [e for e in ledger(run) if e["ev"] == ev]


def status_right(tmux: Tmux, run: Run) -> str:
    return "".join(tmux.run("show-options", "-v", "-t", f"={run.session}:", "status-right"))


def test_a_failing_checkpoint_reaches_the_reviewer_done_is_refused_and_the_notes_list_both_runs(
        tmux_server: Tmux, git_repo: Path) -> None:
    # The check: greet() must come with its test. The first checkpoint has no test; the fix adds it.
    options = StartOptions("sim", "sim", verify="test -f test_greeting.py && echo the test is there")
    run = start_sims(tmux_server, git_repo, "Add greet()", options, PAIRLOOP_SIM_MODE="pair",
                     PAIRLOOP_SIM_WORK_SECONDS="0.1", PAIRLOOP_SIM_LENIENT="1")
    wait_for(lambda: book(run).run_state == "agreed", timeout=60, what="the pair to agree")
    finished = [(e["round"], e["result"], e.get("exit_status")) for e in of(run, "verify_finished")]
    assert finished == [(1, "failed", 1), (2, "passed", 0)]
    assert [e["round"] for e in of(run, "verify_started")] == [1, 2]
    # The reviewer got round 1's request and its failure in one paste, and the request was held until then.
    review1 = next(e for e in book(run).entries.values() if e.message.kind == "review" and e.note.startswith("round 1"))
    assert queued_reason(run, review1.message.id, "reviewer").startswith("held: verifying round 1")
    paste = next(p for p in prompts(run, "reviewer") if f"id {review1.message.id}" in p)
    (request, result), _ = parse(paste)
    assert request.id == review1.message.id
    assert (result.sender, result.topic) == ("pairloop", "verify-failed")
    assert "round 1's checkpoint" in result.body and "FAILED (exit status 1)" in result.body
    assert "full log: " in result.body
    # The lenient reviewer approved it anyway: done was refused, saying why, and the worker fixed it.
    (refusal,) = of(run, "done_refused")
    assert refusal["gate"] == "verify" and "FAILED (exit status 1)" in str(refusal["reason"])
    told = next(m for p in prompts(run, "worker") for m in parse(p)[0] if m.topic == "verify-failed")
    assert told.body.startswith("Not done yet: the verification of round 1's checkpoint FAILED")
    # Both runs are facts in the PR notes, apart from what the agents said.
    notes_file = run.dir / "PR_NOTES.md"
    notes = str(wait_for(lambda: notes_file.is_file() and notes_file.read_text(), timeout=30, what="the PR notes"))
    assert "Run by pairloop on each review checkpoint, in a clean worktree of it:" in notes
    assert (f"- Round 1, checkpoint `refs/pairloop/{run.id}/round-1`") in notes
    assert "`test -f test_greeting.py && echo the test is there` — failed (exit status 1," in notes
    assert "— passed (exit status 0," in notes
    status = run_status(run, tmux_server)
    assert [(v["round"], v["result"]) for v in status["verifications"]] == [(1, "failed"), (2, "passed")]
    json.dumps(status)


def test_the_check_runs_on_the_checkpoint_while_the_live_tree_differs(tmux_server: Tmux, git_repo: Path) -> None:
    (git_repo / "marker.txt").write_text("checkpoint\n")
    check = 'sleep 1.5; cat marker.txt; pwd; test "$(cat marker.txt)" = checkpoint'
    run = start_sims(tmux_server, git_repo, options=StartOptions("sim", "sim", verify=check))
    review = send_message(run, "worker", ("reviewer",), "ready", "review")
    wait_for(lambda: of(run, "verify_started"), what="the verification to start")
    (git_repo / "marker.txt").write_text("live\n")  # the live tree moves on while the checkpoint is checked
    wait_for(lambda: "verifying round 1…" in status_right(tmux_server, run), what="the status line to say so")
    (done,) = wait_for(lambda: of(run, "verify_finished"), what="the result")
    assert done["result"] == "passed"
    log = Path(str(done["log"])).read_text()
    assert "checkpoint\n" in log and "live" not in log
    assert str(git_repo) not in log.split("\n")[3], "it ran in a worktree of its own, not the repository"
    paste = wait_for(lambda: [p for p in prompts(run, "reviewer") if f"id {review.id}" in p], what="the delivery")
    (_, result), _ = parse(paste[0])
    assert result.topic == "verified" and "passed in" in result.body
    # The request waited for its result: held while the check ran, pasted only after it finished (the ledger's
    # order says so whatever the machine's speed; the check's sleep is no deadline for the test).
    assert queued_reason(run, review.id, "reviewer").startswith("held: verifying round 1")
    order = [e["ev"] for e in ledger(run)
             if e["ev"] == "verify_finished" or (e["ev"] == "delivering" and review.id in e["ids"])]
    assert order[0] == "verify_finished" and "delivering" in order, order
    wait_for(lambda: "verify round 1: passed" in status_right(tmux_server, run), what="the result on the status line")
    wait_for(lambda: not any(Path(str(done["log"])).parent.glob("tree-*")), what="the worktree removed")


def test_the_configuration_changed_mid_run_is_flagged_and_changes_nothing(tmux_server: Tmux, git_repo: Path) -> None:
    (git_repo / ".pairloop.toml").write_text('verify = "echo the recorded command"\n')
    run = start_sims(tmux_server, git_repo)
    assert run.manifest.verify == "echo the recorded command"
    # An agent rewrites the configuration in its working tree: it would pass its own gate.
    (git_repo / ".pairloop.toml").write_text('verify = "echo an agent wrote this"\nnotify = ["sh", "-c", "x"]\n')
    flagged = wait_for(lambda: of(run, "config_changed") if len(of(run, "config_changed")) == 2 else None,
                       what="the change flagged")
    assert {(e["key"], e["now"]) for e in flagged} == {("verify", '"echo an agent wrote this"'),
                                                       ("notify", '["sh", "-c", "x"]')}
    wait_for(lambda: "CONFIG CHANGED (notify, verify: ignored)" in status_right(tmux_server, run),
             what="the status line to flag it")
    bridge_pane_shows(tmux_server, run, "changed verify during the run")
    assert run_status(run, tmux_server)["config_changes"]["verify"] == '"echo an agent wrote this"'
    send_message(run, "worker", ("reviewer",), "ready", "review")
    (done,) = wait_for(lambda: of(run, "verify_finished"), what="the verification")
    assert done["command"] == "echo the recorded command"
    log = Path(str(done["log"])).read_text()
    assert "the recorded command" in log and "an agent wrote this" not in log
    assert len(of(run, "config_changed")) == 2, "flagged once"


def test_a_command_past_its_timeout_is_killed_and_the_reviewer_told(tmux_server: Tmux, git_repo: Path,
                                                                    tmp_path: Path) -> None:
    pid_file = tmp_path / "child.pid"
    options = StartOptions("sim", "sim", verify=f"sleep 60 & echo $! > {pid_file}; wait", verify_timeout=1.0)
    run = start_sims(tmux_server, git_repo, options=options)
    review = send_message(run, "worker", ("reviewer",), "ready", "review")
    (done,) = wait_for(lambda: of(run, "verify_finished"), timeout=20, what="the timeout")
    assert done["result"] == "timed out" and "exit_status" not in done
    child = int(pid_file.read_text())
    wait_for(lambda: not Path(f"/proc/{child}").exists() or Path(f"/proc/{child}/stat").read_text().split()[2] == "Z",
             what="the command's process group killed")
    paste = wait_for(lambda: [p for p in prompts(run, "reviewer") if f"id {review.id}" in p], what="the delivery")
    assert "TIMED OUT after" in paste[0]


def test_the_human_overrules_a_failing_gate_and_the_ledger_says_so(tmux_server: Tmux, git_repo: Path) -> None:
    run = start_sims(tmux_server, git_repo, options=StartOptions("sim", "sim", verify="echo no; exit 4"))
    send_message(run, "worker", ("reviewer",), "ready", "review")
    wait_for(lambda: of(run, "verify_finished"), what="the verification")
    send_message(run, "reviewer", ("worker",), "fine by me", "approve")
    wait_for(lambda: run.protocol().verdicts, what="the approval")
    send_message(run, "worker", ("reviewer",), "done", "done")
    (refusal,) = wait_for(lambda: of(run, "done_refused"), what="the refusal")
    assert "FAILED (exit status 4)" in str(refusal["reason"])
    overrule_done(run, "the failure is a known flaky test")
    wait_for(lambda: book(run).run_state == "agreed", what="the overrule")
    (overruled,) = of(run, "overruled")
    assert overruled["gate"] == "done" and "FAILED (exit status 4)" in str(overruled["blocker"])
    assert overruled["note"] == "the failure is a known flaky test"
    assert of(run, "run")[-1]["by"] == "human"
    bridge_pane_shows(tmux_server, run, "overruled the done gate")
