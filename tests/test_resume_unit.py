"""`pairloop resume` and `attach` without tmux: the notices' text (bridge/rolecard.py), how a refusal to resume is
read from a screen, and every error that stops a resume before it touches tmux."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import msgspec
import pytest
from click.testing import CliRunner

from bridge import AnyEvent, Book, Delivered, Received, Round, Verdict, read_manifest, write_manifest
from bridge.protocol.state import Protocol
from bridge.rolecard import recap, resume_notice, role_card, unanswered
from pairloop.agents import claude, codex, sim
from pairloop.agents.profile import LaunchContext
from pairloop.cli import cli
from pairloop.runs.resume import refusal
from tests.helpers import run_without_tmux


def invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    return result.exit_code, result.output


def received(seq: int, msg_id: str, sender: str, to: str, body: str, kind: str = "message") -> Received:
    return Received(seq=seq, id=msg_id, sender=sender, to=(to,), kind=kind, body=body)


def a_run_so_far() -> tuple[Book, Protocol]:
    events: list[AnyEvent] = [received(1, "t", "human", "worker", "Add greet(name)\nwith a test", "task"),
              Delivered(to="worker", ids=("t",)),
              received(2, "r1", "worker", "reviewer", "Ready for review", "review"),
              Round(round=1, phase="work", ref="refs/pairloop/x/round-1"),
              Delivered(to="reviewer", ids=("r1",)),
              received(3, "c1", "reviewer", "worker", "1. greet() has no test", "changes"),
              Verdict(id="c1", by="reviewer", kind="changes", round=1, phase="work",
                      findings=(("F1.1", "greet() has no test"),)),
              Delivered(to="worker", ids=("c1",)),
              received(4, "h1", "human", "reviewer", "be strict")]
    book, protocol = Book(), Protocol()
    for event in events:
        book.apply(event)
        protocol.apply(event)
    return book, protocol


def test_the_role_card_names_the_role_partner_phase_round_and_verbs() -> None:
    card = role_card("reviewer", "work", 2)
    assert "You are the reviewer of this pair (your partner is the worker); work phase, round 2." in card
    assert "pairloop approve" in card and "pairloop changes" in card and "pairloop review" not in card
    assert "paused" in role_card("worker", "plan", 0, paused="too many rounds")


def test_the_resume_notice_says_what_waits_and_which_turn_was_cut_off() -> None:
    book, protocol = a_run_so_far()
    worker = resume_notice("worker", protocol, book)
    assert "The pair session was resumed" in worker and "round 1" in worker
    # The worker said nothing since the changes request reached it: its turn on it may have been lost.
    assert "You had not answered the last message you received (#3 changes from reviewer" in worker
    reviewer = resume_notice("reviewer", protocol, book)
    assert "Waiting for you: 1 message(s)" in reviewer and "#4" in reviewer
    assert unanswered("reviewer", book) is None  # it answered #2 with #3


def test_the_recap_holds_the_task_rounds_findings_and_last_messages() -> None:
    book, protocol = a_run_so_far()
    text = recap("worker", protocol, book, "no conversation id was recorded for it yet")
    assert "could not be (no conversation id was recorded for it yet): you start afresh" in text
    assert "  Add greet(name)" in text and "  with a test" in text
    assert "round 1 (work phase): checkpoint refs/pairloop/x/round-1; changes by the reviewer" in text
    assert "F1.1 (open): greet() has no test" in text
    assert "#4 message from human: be strict" in text


def test_resume_command_lines_keep_the_conversation(tmp_path: Path) -> None:
    ctx = LaunchContext(tmp_path, "worker", "brief", tmp_path / "brief", resume_id="abc-123")
    args = claude.PROFILE.argv(ctx)
    assert args[args.index("--resume") + 1] == "abc-123" and "--session-id" not in args
    assert "--settings" in args and "--append-system-prompt" in args  # the same hooks and brief as at start
    assert codex.PROFILE.argv(ctx)[:3] == ["codex", "resume", "abc-123"]
    assert sim.PROFILE.argv(ctx)[-2:] == ["--resume", "abc-123"]
    fresh = LaunchContext(tmp_path, "worker", "brief", tmp_path / "brief")
    assert "resume" not in codex.PROFILE.argv(fresh) and "--resume" not in claude.PROFILE.argv(fresh)
    assert claude.PROFILE.argv(fresh)[claude.PROFILE.argv(fresh).index("--session-id") + 1] == fresh.session_id


def test_a_refusal_is_read_from_the_screen() -> None:
    # As printed by claude 2.1.332 and codex 0.171.0 for an id they do not know.
    assert refusal("No conversation found with session ID: 1111", claude.PROFILE)
    assert refusal("ERROR: No saved session found with ID 1111. Run `codex resume` …", codex.PROFILE)
    assert refusal("  🔒  This conversation is open in another app          r to retry", codex.PROFILE)
    assert not refusal("❯ \u00a0\n? for shortcuts", claude.PROFILE)


@pytest.fixture
def state_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "state"
    monkeypatch.setenv("PAIRLOOP_HOME", str(home))
    return home


def test_resume_of_an_unknown_run_is_exit_3(git_repo: Path, state_home: Path) -> None:
    code, out = invoke("resume", "nope")
    assert code == 3 and "no run 'nope'" in out and "Traceback" not in out
    code, out = invoke("attach", "nope")
    assert code == 3


def test_resume_of_a_run_whose_repository_moved_says_so(git_repo: Path, state_home: Path, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    run_dir = run_without_tmux(git_repo, state_home)
    moved = tmp_path / "elsewhere"
    shutil.move(str(git_repo), moved)
    monkeypatch.chdir(moved)
    code, out = invoke("resume", run_dir.name)
    assert code == 1 and "Traceback" not in out
    assert f"its repository was at {git_repo} and is not there any more (moved or deleted)" in out


def test_resume_without_tmux_or_an_agent_is_exit_4(git_repo: Path, state_home: Path, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    run_dir = run_without_tmux(git_repo, state_home)  # its agents are claude
    empty = tmp_path / "bin"
    empty.mkdir()
    old_path = os.environ["PATH"]
    monkeypatch.setenv("PATH", str(empty))
    code, out = invoke("resume", run_dir.name)
    assert code == 4 and "tmux is not installed" in out
    monkeypatch.setenv("PATH", old_path)
    monkeypatch.setenv("PAIRLOOP_CLAUDE_COMMAND", str(empty / "claude"))
    code, out = invoke("resume", run_dir.name)
    assert code == 4 and "agent 'claude' needs" in out


def test_an_old_manifest_still_decodes_and_records_no_extra_args(git_repo: Path, state_home: Path) -> None:
    run_dir = run_without_tmux(git_repo, state_home)
    manifest = read_manifest(run_dir)
    assert manifest.roles["worker"].args == ()
    write_manifest(run_dir, msgspec.structs.replace(manifest, roles={
        r: msgspec.structs.replace(s, args=("--verbose",)) for r, s in manifest.roles.items()}))
    assert read_manifest(run_dir).roles["reviewer"].args == ("--verbose",)
