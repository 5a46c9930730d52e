"""The verification gate without tmux: the runner on real git checkpoints and real processes, the gates folded
from events, the done gate's paths, the configuration guard, the suggested command, the configuration keys."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from bridge.effects import Effects
from bridge.git import git, git_out
from bridge.guard import Guard, changes, config_fingerprint, fingerprint
from bridge.protocol.checkpoint import current_tree, snapshot
from bridge.protocol.donegate import changes_since, refusal_text
from bridge.protocol.gates import Refusal
from bridge.protocol.referee import Topic
from bridge.protocol.state import Protocol
from bridge.router import Hold, Owed, Schedule, Situation, route
from bridge.rundir.events import (
    AnyEvent,
    ConfigChanged,
    DoneRefused,
    ProtocolStarted,
    Received,
    Round,
    RunState,
    Verdict,
    VerifyFinished,
    VerifyStarted,
)
from bridge.rundir.manifest import Manifest, TmuxPlace
from bridge.verify import Verifier, command_argv, log_path, tree_dir
from pairloop.errors import UsageProblem
from pairloop.runs.config import verify_settings
from pairloop.runs.suggest import suggest_verify
from tests.conftest import wait_for

# ---- the runner ------------------------------------------------------------------------------------------------


def _protocol_with_round(repo: Path, n: int = 1, phase: str = "work") -> Protocol:
    snap = snapshot(repo, f"refs/pairloop/r/round-{n}", f"round {n}")
    p = Protocol()
    p.apply(ProtocolStarted(phase="work"))
    p.apply(Round(round=n, phase=phase, ref=f"refs/pairloop/r/round-{n}", commit=snap.commit,  # type: ignore[arg-type]
                  tree=snap.tree))
    return p


def _verifier(repo: Path, run_dir: Path, command: str | tuple[str, ...], timeout: float = 30.0) -> Verifier:
    manifest = Manifest(id="r", repo=str(repo), tmux=TmuxPlace(socket_path="/x", session="s"), verify=command,
                        verify_timeout=timeout)
    return Verifier(manifest, run_dir)


def _run_to_end(verifier: Verifier, protocol: Protocol, timeout: float = 20.0) -> Effects:
    """Poll as the relay does, feeding back what it records, until a result comes out."""
    seen = Effects()

    def step() -> Effects | None:
        fx = verifier.poll(protocol)
        for event in fx.events:
            protocol.apply(event)
        seen.add(fx)
        return seen if any(isinstance(e, VerifyFinished) for e in fx.events) else None

    return wait_for(step, timeout=timeout, what="the verification to finish")


def test_it_runs_on_the_checkpoint_not_the_live_tree_and_cleans_up(git_repo: Path, tmp_path: Path) -> None:
    (git_repo / "marker.txt").write_text("checkpoint\n")  # uncommitted: a checkpoint holds it all the same
    protocol = _protocol_with_round(git_repo)
    (git_repo / "marker.txt").write_text("live\n")  # the live tree moves on after the checkpoint
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    verifier = _verifier(git_repo, run_dir, "cat marker.txt; pwd; test \"$(cat marker.txt)\" = checkpoint")
    fx = _run_to_end(verifier, protocol)
    finished = next(e for e in fx.events if isinstance(e, VerifyFinished))
    assert finished.result == "passed" and finished.exit_status == 0
    log = log_path(run_dir, 1).read_text()
    assert "checkpoint\n" in log and "live" not in log
    assert str(tree_dir(run_dir, 1)) in log, "it ran in the temporary worktree"
    wait_for(lambda: not tree_dir(run_dir, 1).exists(), what="the worktree removed")
    assert str(tree_dir(run_dir, 1)) not in git_out(git_repo, "worktree", "list")
    (post,) = fx.posts
    assert post.to == ("reviewer",) and post.topic == Topic.VERIFIED
    assert "passed" in post.body and str(log_path(run_dir, 1)) in post.body
    assert protocol.gates.verifications[1].result == "passed"
    assert verifier.poll(protocol).events == [], "a round is verified once"


def test_a_failure_reports_its_exit_status_and_tail(git_repo: Path, tmp_path: Path) -> None:
    protocol = _protocol_with_round(git_repo)
    verifier = _verifier(git_repo, tmp_path, ("sh", "-c", "echo one; echo 'E  assert \x1b[31mred\x1b[0m'; exit 3"))
    fx = _run_to_end(verifier, protocol)
    finished = next(e for e in fx.events if isinstance(e, VerifyFinished))
    assert (finished.result, finished.exit_status) == ("failed", 3)
    assert "E  assert" in finished.tail
    (post,) = fx.posts
    assert post.topic == Topic.VERIFY_FAILED
    assert "FAILED (exit status 3)" in post.body and "the last lines of its output" in post.body


def test_a_verification_failing_twice_in_a_row_calls_the_human(git_repo: Path, tmp_path: Path) -> None:
    from bridge.notify import VERIFY_FAILED, Call

    def calls(fx: Effects) -> list[Call]:
        return [a for a in fx.alerts if isinstance(a, Call) and a.kind == VERIFY_FAILED]

    protocol = _protocol_with_round(git_repo, 1)
    verifier = _verifier(git_repo, tmp_path, "test -f fixed.txt")
    assert calls(_run_to_end(verifier, protocol)) == [], "one failure is the reviewer's business"
    snap = snapshot(git_repo, "refs/pairloop/r/round-2", "round 2")
    protocol.apply(Round(round=2, phase="work", ref="refs/pairloop/r/round-2", commit=snap.commit, tree=snap.tree))
    (second,) = calls(_run_to_end(verifier, protocol))
    assert "round 2" in second.text and "FAILED" in second.reason
    (git_repo / "fixed.txt").write_text("yes\n")
    snap = snapshot(git_repo, "refs/pairloop/r/round-3", "round 3")
    protocol.apply(Round(round=3, phase="work", ref="refs/pairloop/r/round-3", commit=snap.commit, tree=snap.tree))
    fx = _run_to_end(verifier, protocol)
    assert calls(fx) == [] and protocol.gates.failures_in_a_row == 0, "a pass ends the streak"


def test_a_command_past_its_timeout_has_its_process_group_killed(git_repo: Path, tmp_path: Path) -> None:
    protocol = _protocol_with_round(git_repo)
    pid_file = tmp_path / "child.pid"
    verifier = _verifier(git_repo, tmp_path, f"sleep 60 & echo $! > {pid_file}; wait", timeout=0.5)
    began = time.monotonic()
    fx = _run_to_end(verifier, protocol)
    finished = next(e for e in fx.events if isinstance(e, VerifyFinished))
    assert finished.result == "timed out" and finished.exit_status is None
    assert time.monotonic() - began < 10
    child = int(pid_file.read_text())
    wait_for(lambda: not Path(f"/proc/{child}").exists() or "Z" in Path(f"/proc/{child}/stat").read_text().split()[2],
             what="the command's child killed with its group")


def test_a_bridge_restart_marks_an_unfinished_run_interrupted_and_runs_it_again(git_repo: Path,
                                                                                tmp_path: Path) -> None:
    protocol = _protocol_with_round(git_repo)
    verifier = _verifier(git_repo, tmp_path, "sleep 30")
    def running() -> bool:
        for event in verifier.poll(protocol).events:
            protocol.apply(event)
        return verifier.job is not None and verifier.job.stage == "run"

    wait_for(running, what="the command running")
    assert protocol.gates.running() is not None
    abandoned = verifier.job
    assert abandoned is not None
    fresh = _verifier(git_repo, tmp_path, "true")  # a new bridge: the old one's command and worktree are litter
    fx = fresh.clean_stale(protocol)
    for event in fx.events:
        protocol.apply(event)
    assert [e.result for e in fx.events if isinstance(e, VerifyFinished)] == ["interrupted"]
    wait_for(lambda: abandoned.proc.poll() is not None, what="the old command ended")
    assert not tree_dir(tmp_path, 1).exists()
    assert protocol.gates.to_start([1]) == 1
    fx = _run_to_end(fresh, protocol)
    assert protocol.gates.verifications[1].result == "passed" and protocol.gates.verifications[1].attempts == 2
    assert log_path(tmp_path, 1, 2).exists()


def test_a_string_runs_through_the_shell_and_a_list_as_it_is() -> None:
    assert command_argv("pytest -q && echo ok") == ["/bin/sh", "-c", "pytest -q && echo ok"]
    assert command_argv(("pytest", "-q")) == ["pytest", "-q"]


# ---- the gates, folded from the ledger -------------------------------------------------------------------------


def _approved(verify_result: str | None) -> Protocol:
    p = Protocol()
    start: list[AnyEvent] = [ProtocolStarted(phase="work"),
                             Round(round=1, phase="work", ref="refs/r1", commit="c", tree="t1"),
                             Received(seq=1, id="rv1", sender="worker", to=("reviewer",), kind="review", body="ready")]
    for event in start:
        p.apply(event)
    if verify_result is not None:
        p.apply(VerifyStarted(round=1, ref="refs/r1", command="pytest", log="/l"))
        if verify_result:
            p.apply(VerifyFinished(round=1, ref="refs/r1", result=verify_result, exit_status=1,  # type: ignore[arg-type]
                                   command="pytest", log="/l"))
    p.apply(Verdict(id="v1", by="reviewer", kind="approve", round=1, phase="work", checkpoint="refs/r1", tree="t1"))
    return p


def test_the_review_request_waits_for_its_verification() -> None:
    p = _approved("")
    needs = p.verify_rounds(True)
    assert needs == {1}
    assert "verifying round 1" in p.gates.gate("rv1", needs)
    p.apply(VerifyFinished(round=1, ref="refs/r1", result="failed", exit_status=1))
    assert p.gates.gate("rv1", needs) == "", "a failure is a result: it goes to the reviewer"
    assert p.gates.gate("rv1", p.verify_rounds(False)) == "", "no verify command: no gate"


def test_the_router_holds_a_gated_message_and_what_follows_it() -> None:
    owed = (Owed("a"), Owed("rv", gate="held: verifying round 1"), Owed("b"))
    first = route(Situation("reviewer", owed[1:], Schedule(), 1.0))
    assert isinstance(first, Hold) and first.reason == "held: verifying round 1" and first.note == ("rv", "b")
    before = route(Situation("reviewer", owed, Schedule(), 1.0))
    assert not isinstance(before, Hold), "what came before the gated message still goes"


@pytest.mark.parametrize(("result", "words"), [
    (None, "has not finished yet"), ("", "has not finished yet"), ("failed", "FAILED (exit status 1)"),
    ("timed out", "TIMED OUT"), ("passed", "")])
def test_done_needs_the_approved_checkpoints_verification_to_pass(result: str | None, words: str) -> None:
    gate, reason = _approved(result).done_check("t1", verify=True)
    assert (gate == "verify") == bool(words)
    assert words in reason
    assert _approved(result).done_check("t1", verify=False) == ("", ""), "without a command, no verification gate"


def test_the_same_refusal_twice_in_a_row_is_a_repeat() -> None:
    p = _approved("passed")
    first = Refusal("changed", ("a.log",), "x")
    assert not first.same_as(p.gates.last_refusal)
    p.apply(DoneRefused(id="d1", reason="x", gate="changed", paths=("a.log",)))
    assert Refusal("changed", ("a.log",), "other words").same_as(p.gates.last_refusal)
    assert not Refusal("changed", ("a.log", "b"), "x").same_as(p.gates.last_refusal)
    assert not Refusal("verify", (), "x").same_as(p.gates.last_refusal)
    p.apply(RunState(state="agreed"))
    assert p.gates.last_refusal is None


# ---- the done gate names paths ---------------------------------------------------------------------------------


def test_the_refusal_names_each_changed_path_and_whose_change_it_is(git_repo: Path) -> None:
    (git_repo / "code.py").write_text("x = 1\n")
    (git_repo / "notes.txt").write_text("a\n")
    git(git_repo, "add", "code.py", "notes.txt", check=True)
    git(git_repo, "commit", "-q", "-m", "work", check=True)
    snap = snapshot(git_repo, "refs/pairloop/r/round-1", "round 1")
    (git_repo / "code.py").write_text("x = 2\n")  # the pair's: committed after the approval
    git(git_repo, "commit", "-q", "-am", "more work", check=True)
    (git_repo / "notes.txt").write_text("b\n")  # tracked, changed, not committed
    (git_repo / "build.log").write_text("tick\n")  # untracked: a program writing into the repository
    found = {c.path: c for c in changes_since(git_repo, "refs/pairloop/r/round-1", snap.tree,
                                              current_tree(git_repo))}
    assert set(found) == {"code.py", "notes.txt", "build.log"}
    assert found["code.py"].committed and not found["notes.txt"].committed and not found["build.log"].committed
    assert found["notes.txt"].tracked and not found["build.log"].tracked
    text = refusal_text(1, list(found.values()))
    assert "code.py (modified, in a commit made since the approval: the pair's)" in text
    assert "build.log (untracked, not in a commit of the pair" in text
    assert "notes.txt (modified, not in a commit of the pair: an uncommitted edit" in text
    assert ".gitignore" in text


# ---- the configuration: recorded at start, guarded during the run ----------------------------------------------


def test_a_change_of_a_guarded_setting_is_flagged_once_and_never_obeyed(tmp_path: Path) -> None:
    (tmp_path / ".pairloop.toml").write_text('verify = "pytest -q"\n')
    at_start = config_fingerprint(tmp_path)
    assert at_start["verify"] == '"pytest -q"' and at_start["notify"] == ""
    guard = Guard(tmp_path, at_start)
    assert guard.look({}, force=True).events == []
    (tmp_path / ".pairloop.toml").write_text('verify = "true"\nnotify = ["x"]\n')
    fx = guard.look({}, force=True)
    assert {(e.key, e.was, e.now) for e in fx.events if isinstance(e, ConfigChanged)} == {
        ("verify", '"pytest -q"', '"true"'), ("notify", "", '["x"]')}
    assert any("ignored" in str(a) for a in fx.alerts)
    flagged = {"verify": '"true"', "notify": '["x"]'}
    assert guard.look(flagged, force=True).events == [], "said once"
    assert changes(at_start, fingerprint({"verify": "pytest -q"}), flagged, ".pairloop.toml")[0].now == '"pytest -q"'
    (tmp_path / ".pairloop.toml").write_text("verify = [unclosed\n")
    unreadable = [e.key for e in guard.look(flagged, force=True).events if isinstance(e, ConfigChanged)]
    assert "verify" in unreadable, "an unreadable file is a change"


def test_pyproject_is_read_when_there_is_no_pairloop_toml(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text('[tool.pairloop]\nverify = ["pytest", "-x"]\n')
    assert config_fingerprint(tmp_path)["verify"] == '["pytest", "-x"]'


def test_the_configuration_keys() -> None:
    assert verify_settings({}) == ("", 600.0)
    assert verify_settings({"verify": "make test", "verify_timeout": 30}) == ("make test", 30.0)
    assert verify_settings({"verify": ["pytest", "-q"]}) == (("pytest", "-q"), 600.0)
    for bad in ({"verify": 3}, {"verify": ["a", 1]}, {"verify_timeout": 0}, {"verify_timeout": "x"}):
        with pytest.raises(UsageProblem):
            verify_settings(bad)


def test_an_old_run_json_without_the_new_fields_still_reads() -> None:
    from bridge.rundir.manifest import parse_manifest

    m = parse_manifest(b'{"id": "r", "repo": "/x", "tmux": {"socket_path": "/s", "session": "s"}}')
    assert (m.verify, m.verify_timeout, m.config_at_start) == ("", 600.0, {})


# ---- a command to suggest ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("files", "expected"), [
    ({"Makefile": "all:\n\ntest: build\n\tpytest\n", "pyproject.toml": "[tool.pytest.ini_options]\n"}, "make test"),
    ({"Makefile": "all:\n\techo\n", "pyproject.toml": "[tool.pytest.ini_options]\n"}, "python -m pytest"),
    ({"package.json": '{"scripts": {"test": "jest"}}'}, "npm test"),
    ({"package.json": '{"scripts": {"test": "echo \\"Error: no test specified\\" && exit 1"}}'}, ""),
    ({"package.json": "not json"}, ""),
    ({"Cargo.toml": None}, "cargo test"),
    ({"go.mod": None}, "go test ./..."),
    ({"pyproject.toml": "[project]\n", "tests": None}, "python -m pytest"),
    ({"setup.cfg": "[tool:pytest]\n"}, "python -m pytest"),
    ({"justfile": "test:\n  cargo test\n"}, "just test"),
    ({"pom.xml": None}, "mvn test"),
    ({"README.md": None}, ""),
    ({}, ""),
])
def test_a_command_is_suggested_from_what_the_repository_holds(files: dict[str, str | None], expected: str) -> None:
    assert suggest_verify(files) == expected


def test_the_verify_env_keeps_nothing_that_speaks_as_an_agent(monkeypatch: pytest.MonkeyPatch, git_repo: Path,
                                                             tmp_path: Path) -> None:
    monkeypatch.setenv("PAIRLOOP_ROLE", "worker")
    monkeypatch.setenv("PAIRLOOP_RUN_DIR", "/somewhere")
    monkeypatch.setenv("HUMAN_SETTING", "kept")
    protocol = _protocol_with_round(git_repo)
    verifier = _verifier(git_repo, tmp_path, "env")
    _run_to_end(verifier, protocol)
    log = log_path(tmp_path, 1).read_text()
    assert "HUMAN_SETTING=kept" in log
    assert "PAIRLOOP_ROLE=" not in log and "PAIRLOOP_RUN_DIR=" not in log
    assert os.environ["PAIRLOOP_ROLE"] == "worker"


# ---- the human's overrule, from the command line ---------------------------------------------------------------


def test_done_force_is_the_humans_alone_and_goes_to_control(git_repo: Path, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    from click.testing import CliRunner

    from bridge.rundir.control import control_dir, read_control
    from pairloop.cli import cli
    from tests.helpers import run_without_tmux

    monkeypatch.setenv("PAIRLOOP_HOME", str(tmp_path / "state"))
    monkeypatch.setattr("pairloop.cli.relay_note", lambda run, waits: "")  # no tmux here: no bridge to ask
    run_dir = run_without_tmux(git_repo, tmp_path / "state")
    agent = CliRunner().invoke(cli, ["done", "--force", "ship it"],
                               env={"PAIRLOOP_ROLE": "worker", "PAIRLOOP_RUN_DIR": str(run_dir)})
    assert agent.exit_code == 2 and "only the human overrules the done gate" in agent.output
    assert not control_dir(run_dir).exists() or not list(control_dir(run_dir).iterdir())
    human = CliRunner().invoke(cli, ["done", "--force", "ship it"])
    assert human.exit_code == 0, human.output
    assert "recorded as the human's overrule" in human.output
    (request,) = list(control_dir(run_dir).iterdir())
    control = read_control(request)
    assert (control.action, control.note) == ("done", "ship it")


def test_the_notes_list_the_bridges_runs_as_facts_apart_from_what_the_agents_said() -> None:
    from pairloop.summary.notes import check_line, left_open

    failed = {"round": 1, "checkpoint": "refs/pairloop/r/round-1", "commit": "abc1234567", "command": "pytest -q",
              "result": "failed", "exit_status": 1, "duration": 0.42, "log": "/l"}
    timed_out = {**failed, "round": 2, "result": "timed out", "exit_status": None, "duration": 600.0}
    assert check_line(failed) == ("- Round 1, checkpoint `refs/pairloop/r/round-1` (abc1234567): `pytest -q` — "
                                  "failed (exit status 1, 0.4 s)")
    assert "timed out (no exit status, 600.0 s)" in check_line(timed_out)
    digest = {"findings": [], "open": [], "paused": "", "state": "agreed", "checks": [failed, timed_out]}
    assert left_open(digest) == ["- The last verification (round 2, `refs/pairloop/r/round-1`) did not pass: "
                                 "timed out."]
