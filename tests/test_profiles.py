"""Agent profiles, configuration, the hook program and doctor: no tmux, no real agents."""

from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from bridge.rundir.agent_events import AgentEvent
from bridge.rundir.manifest import Manifest, RoleSpec, TmuxPlace, read_manifest, write_manifest
from pairloop.agents.claude import CLAUDE_RULES, claude_settings
from pairloop.agents.codex import CODEX_RULES
from pairloop.agents.hook import events_from, handle
from pairloop.agents.hook import main as hook_main
from pairloop.agents.profile import TRUST_DIALOG, LaunchContext, profile
from pairloop.cli import cli
from pairloop.errors import MissingTool, UsageProblem
from pairloop.runs.config import agent_settings, default_roles, read_config


def ctx(tmp_path: Path, **kw: object) -> LaunchContext:
    brief = tmp_path / "brief.md"
    brief.write_text("You are the WORKER.\nSay \"hi\" \\ bye")
    return LaunchContext(tmp_path, "worker", brief.read_text(), brief, **kw)  # type: ignore[arg-type]


# ---- claude ------------------------------------------------------------------------------------------


def test_claude_command_line(tmp_path: Path) -> None:
    c = ctx(tmp_path, model="opus", extra_args=("--verbose",))
    argv = profile("claude").argv(c)
    settings_file = tmp_path / "claude-settings-worker.json"
    assert argv == ["claude", "--settings", str(settings_file), "--append-system-prompt", c.brief,
                    "--session-id", c.session_id, "--model", "opus", "--verbose"]
    assert "--dangerously-skip-permissions" not in argv
    assert json.loads(settings_file.read_text()) == claude_settings(c)


def test_claude_settings_allow_only_pairloop_and_hook_every_event(tmp_path: Path) -> None:
    settings = claude_settings(ctx(tmp_path))
    assert settings["permissions"] == {"allow": ["Bash(pairloop:*)"]}
    hooks = settings["hooks"]
    assert set(hooks) == {"UserPromptSubmit", "Stop", "StopFailure", "Notification", "SessionStart"}
    assert hooks["StopFailure"][0]["hooks"][0]["command"].endswith(" worker failed")
    command = hooks["Stop"][0]["hooks"][0]["command"]
    assert command == f"{sys.executable} -m pairloop.agents.hook {tmp_path} worker stop"
    # SessionStart only for a compaction (startup and resume spawn nothing): the role card goes out again.
    (session_start,) = hooks["SessionStart"]
    assert session_start["matcher"] == "compact"
    assert session_start["hooks"][0]["command"] == f"{sys.executable} -m pairloop.agents.hook {tmp_path} worker session"
    assert "bypass" not in json.dumps(settings).lower()


def test_claudes_stop_failure_ends_the_turn_and_says_why() -> None:
    """claude 2.1.332 fires StopFailure, not Stop, when an API error (a 429) ends a turn: still a turn's end."""
    payload = {"session_id": "d7b86f8d", "transcript_path": "/x/d7b86f8d.jsonl", "hook_event_name": "StopFailure",
               "error": "rate_limit", "last_assistant_message": "API Error: Request rejected (429) · slow down"}
    (event,) = events_from("failed", payload)
    assert (event.event, event.session_id, event.records) == ("stop", "d7b86f8d", "/x/d7b86f8d.jsonl")
    assert event.message == "rate_limit · API Error: Request rejected (429) · slow down"


def test_yolo_passes_each_agents_own_bypass_flag(tmp_path: Path) -> None:
    assert profile("claude").argv(ctx(tmp_path, yolo=True))[-1] == "--dangerously-skip-permissions"
    assert profile("codex").argv(ctx(tmp_path, yolo=True))[-1] == "--dangerously-bypass-approvals-and-sandbox"


# ---- codex -------------------------------------------------------------------------------------------


def test_codex_command_line(tmp_path: Path) -> None:
    c = ctx(tmp_path, model="gpt-5.5")
    argv = profile("codex").argv(c)
    assert argv[:2] == ["codex", "--no-daemon"]
    overrides = [argv[i + 1] for i, a in enumerate(argv) if a == "-c"]
    assert "features.daemon_auto_start=false" in overrides
    assert "allow_login_shell=false" in overrides
    assert f"developer_instructions={json.dumps(c.brief)}" in overrides
    notify = next(o for o in overrides if o.startswith("notify="))
    assert json.loads(notify.removeprefix("notify=")) == [sys.executable, "-m", "pairloop.agents.hook", str(tmp_path),
                                                          "worker", "notify"]
    assert argv[-2:] == ["-m", "gpt-5.5"]
    assert not [a for a in argv if "dangerously" in a or "approval" in a or "sandbox" in a]


def test_submit_keys_and_hooks() -> None:
    assert (profile("claude").submit_key, profile("codex").submit_key, profile("sim").submit_key) == (
        "Enter", "Tab", "Enter")
    assert profile("claude").turn_hooks and profile("codex").turn_hooks
    assert profile("claude").rules is CLAUDE_RULES and profile("codex").rules is CODEX_RULES
    assert TRUST_DIALOG in CLAUDE_RULES.dialogs and TRUST_DIALOG in CODEX_RULES.dialogs


# ---- configuration -----------------------------------------------------------------------------------


def test_config_from_pairloop_toml_with_env_overrides(tmp_path: Path) -> None:
    (tmp_path / ".pairloop.toml").write_text(
        'worker = "codex"\nreviewer = "claude"\n[agents.claude]\ncommand = "/opt/claude --flag"\n'
        'args = ["--verbose"]\nmodel = "opus"\nenv = { X = "1" }\n')
    config = read_config(tmp_path)
    assert default_roles(config, {}) == ("codex", "claude")
    assert default_roles(config, {"PAIRLOOP_WORKER": "sim"}) == ("sim", "claude")
    settings = agent_settings(config, "claude", {})
    assert settings == {"command": "/opt/claude --flag", "args": ["--verbose"], "model": "opus", "env": {"X": "1"}}
    overridden = agent_settings(config, "claude", {"PAIRLOOP_CLAUDE_COMMAND": "/x/claude",
                                                   "PAIRLOOP_CLAUDE_ARGS": "--a 'b c'",
                                                   "PAIRLOOP_CLAUDE_MODEL": "sonnet"})
    assert overridden["command"] == "/x/claude" and overridden["args"] == ["--a", "b c"]
    assert overridden["model"] == "sonnet"
    prof = profile("claude", settings)
    assert prof.command == ("/opt/claude", "--flag") and prof.env == {"X": "1"}


def test_config_from_pyproject_table(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text('[tool.pairloop]\nworker = "sim"\n')
    assert default_roles(read_config(tmp_path), {}) == ("sim", "codex")
    assert default_roles(read_config(tmp_path / "nowhere"), {}) == ("claude", "codex")


def test_a_broken_config_is_a_usage_problem(tmp_path: Path) -> None:
    (tmp_path / ".pairloop.toml").write_text("worker = \n")
    with pytest.raises(UsageProblem, match="cannot read the pairloop configuration"):
        read_config(tmp_path)
    with pytest.raises(UsageProblem, match="args must be a list of strings"):
        agent_settings({"agents": {"claude": {"args": [1]}}}, "claude", {})


def test_custom_agent_from_config(tmp_path: Path) -> None:
    spec = {"command": ["my-tui", "--x"], "input": "^> (?P<text>.*)$", "busy": ["thinking"], "submit_key": "C-m",
            "brief_arg": "--system"}
    prof = profile("mytui", spec)
    c = ctx(tmp_path)
    assert prof.argv(c) == ["my-tui", "--x", "--system", c.brief]
    assert prof.submit_key == "C-m" and prof.rules.busy == ("thinking",)
    with pytest.raises(UsageProblem, match="unknown agent 'nope'"):
        profile("nope")
    with pytest.raises(UsageProblem, match="needs at least 'command' and 'input'"):
        profile("half", {"command": "x"})


def test_an_agent_that_is_not_installed_is_a_missing_tool() -> None:
    with pytest.raises(MissingTool, match="npm install -g @openai/codex"):
        profile("codex", {"command": "/nonexistent/codex"}).check_installed()


# ---- the hook program ----------------------------------------------------------------------------------


def test_claude_hook_payloads() -> None:
    assert events_from("prompt", {"prompt": "hi", "session_id": "s1"}) == [
        AgentEvent(event="prompt", prompt="hi", session_id="s1", source="prompt")]
    assert events_from("stop", {"session_id": "s1"}) == [AgentEvent(event="stop", session_id="s1", source="stop")]
    assert events_from("notification", {"notification_type": "permission_prompt", "message": "m"}) == [
        AgentEvent(event="attention", message="m", source="notification")]
    assert events_from("prompt", {"prompt": "hi", "session_id": ["not", "a", "string"]})[0].session_id is None
    assert events_from("notification", {"notification_type": "idle_prompt"}) == []


def test_codex_notify_payloads_skip_the_title_turn() -> None:
    turn = {"type": "agent-turn-complete", "thread-id": "t1", "input-messages": ["first", "[pairloop] #2 …"]}
    assert events_from("notify", turn) == [
        AgentEvent(event="prompt", prompt="[pairloop] #2 …", session_id="t1", late=True, source="notify"),
        AgentEvent(event="stop", session_id="t1", source="notify")]
    title = {"type": "agent-turn-complete", "thread-id": "t2",
             "input-messages": ["Generate a concise, single-line task title for …"]}
    assert events_from("notify", title) == []
    assert events_from("notify", {"type": "something-else"}) == []


def test_hook_writes_events_and_records_the_session_once(tmp_path: Path) -> None:
    run_dir, mailbox = tmp_path / "run", tmp_path / "repo" / ".pairloop" / "runs" / "r"
    run_dir.mkdir()
    write_manifest(run_dir, Manifest(id="r", repo=str(tmp_path), tmux=TmuxPlace(socket_path="", session=""),
                                     mailbox=str(mailbox),
                                     roles={"reviewer": RoleSpec(agent="codex", pane="%1", submit_key="Tab",
                                                                 screen=CODEX_RULES)}))
    payload = json.dumps({"type": "agent-turn-complete", "thread-id": "thread-9", "input-messages": ["x"]})
    assert hook_main([str(run_dir), "reviewer", "notify", payload]) == 0
    assert not (run_dir / "events").exists(), "hook events go to the mailbox, not the run directory"
    files = sorted(p.name for p in (mailbox / "events" / "reviewer").iterdir())
    assert [f.split("-", 1)[1] for f in files] == ["prompt.json", "stop.json"]
    assert read_manifest(run_dir).roles["reviewer"].session_id == "thread-9"
    handle(run_dir, "reviewer", "notify", payload.replace("thread-9", "thread-10"))
    assert read_manifest(run_dir).roles["reviewer"].session_id == "thread-9"


def test_hook_never_fails_the_agent(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    assert hook_main([str(run_dir), "worker", "prompt", "{not json"]) == 0
    assert "JSONDecodeError" in (run_dir / "hook-errors.log").read_text()
    assert hook_main([]) == 0


# ---- doctor --------------------------------------------------------------------------------------------


def fake(bin_dir: Path, name: str, output: str, code: int = 0) -> None:
    path = bin_dir / name
    path.write_text(f"#!/bin/sh\necho '{output}'\nexit {code}\n")
    path.chmod(path.stat().st_mode | stat.S_IEXEC)


def test_doctor_reports_what_is_missing_and_how_to_fix_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake(bin_dir, "tmux", "tmux 3.3a")
    fake(bin_dir, "git", "git version 2.39.5")
    fake(bin_dir, "codex", "codex-cli 0.169.0")
    monkeypatch.setenv("PATH", str(bin_dir))
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli, ["doctor"])
    assert result.exit_code == 4
    lines = result.output.splitlines()
    assert lines[0].startswith("tmux     ok       tmux 3.3a")
    assert "claude   MISSING  'claude' not found on PATH" in lines
    assert any(line.strip() == "fix: npm install -g @anthropic-ai/claude-code" for line in lines)
    assert any(line.startswith("codex    ok       codex-cli 0.169.0") for line in lines)
    assert lines[-1] == "the default pair cannot run: fix what is MISSING above"

    fake(bin_dir, "claude", "2.1.197 (Claude Code)")
    result = CliRunner().invoke(cli, ["doctor"])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[-1] == "the default pair can run"


def test_doctor_flags_an_agent_that_does_not_start_and_an_old_tmux(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake(bin_dir, "tmux", "tmux 2.9")
    fake(bin_dir, "git", "git version 2.39.5")
    fake(bin_dir, "claude", "segfault", code=139)
    fake(bin_dir, "codex", "codex-cli 0.169.0")
    monkeypatch.setenv("PATH", str(bin_dir) + os.pathsep + "/usr/bin")
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli, ["doctor"])
    assert result.exit_code == 4
    assert "tmux     MISSING  tmux 2.9" in result.output
    assert "did not start: segfault" in result.output
