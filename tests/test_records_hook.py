"""Where the agents keep their records, as the hook program tells the bridge; claude's automatic continue at a
usage limit turned off for the run; the budget and notify command from the configuration."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from pairloop.agents.claude import PROFILE as CLAUDE
from pairloop.agents.claude import claude_settings
from pairloop.agents.codex import PROFILE as CODEX
from pairloop.agents.hook import codex_rollout, events_from
from pairloop.agents.profile import LaunchContext
from pairloop.agents.sim import PROFILE as SIM
from pairloop.errors import UsageProblem
from pairloop.runs.config import spending_settings

THREAD = "01a233c3-9ddd-77b0-a3d6-bdefb9e08b39"


def test_claudes_hooks_report_its_transcript_with_each_prompt_and_turn_end() -> None:
    payload = {"session_id": "s1", "transcript_path": "/home/u/.claude/projects/-repo/s1.jsonl", "prompt": "hi"}
    (prompt,) = events_from("prompt", payload)
    (stop,) = events_from("stop", payload)
    assert prompt.records == stop.records == "/home/u/.claude/projects/-repo/s1.jsonl"
    assert events_from("stop", {"session_id": "s1"})[0].records == ""


def test_codex_reports_the_rollout_of_its_thread(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sessions = tmp_path / "codex" / "sessions"
    today = sessions / time.strftime("%Y/%m/%d")
    today.mkdir(parents=True)
    rollout = today / f"rollout-2026-12-01T22-39-47-{THREAD}.jsonl"
    rollout.write_text("")
    (today / "rollout-2026-12-01T22-00-00-another-thread.jsonl").write_text("")
    monkeypatch.setenv("CODEX_HOME", str(tmp_path / "codex"))
    assert codex_rollout(THREAD) == str(rollout)
    assert codex_rollout("no-such-thread") == "" and codex_rollout("../x") == "" and codex_rollout(None) == ""
    old = sessions / "2025/01/02"
    old.mkdir(parents=True)
    older = old / "rollout-2025-01-02T10-00-00-old-thread.jsonl"
    older.write_text("")
    assert codex_rollout("old-thread") == str(older), "a resumed thread from long ago is found too"
    turn = {"type": "agent-turn-complete", "thread-id": THREAD, "turn-id": "t", "input-messages": ["hi"]}
    assert events_from("notify", turn)[-1].records == str(rollout)
    assert codex_rollout(THREAD, {"HOME": str(tmp_path / "nobody")}) == "", "default: ~/.codex"
    assert os.environ["CODEX_HOME"]


def test_claude_never_continues_by_itself_when_a_limit_resets(tmp_path: Path) -> None:
    ctx = LaunchContext(tmp_path, "worker", "brief", tmp_path / "brief.md")
    assert claude_settings(ctx)["autoContinueAtUsageLimit"] is False
    assert (CLAUDE.records, CODEX.records, SIM.records) == ("claude-transcript", "codex-rollout", "claude-transcript")
    assert CLAUDE.rules.limits and CODEX.rules.limits and SIM.rules.limits


def test_the_budget_and_the_notify_command_from_the_configuration() -> None:
    assert spending_settings({}) == ((), 0)
    assert spending_settings({"notify": ["ntfy", "send"], "max_tokens": 2_000_000}) == (("ntfy", "send"), 2_000_000)
    assert spending_settings({"notify": "notify-me --json"})[0] == ("notify-me", "--json")
    for bad in ({"notify": 3}, {"notify": ["a", 1]}, {"max_tokens": -1}, {"max_tokens": "lots"},
                {"max_tokens": True}):
        with pytest.raises(UsageProblem):
            spending_settings(bad)
