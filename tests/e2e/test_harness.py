"""The harness itself, without pairloop: the prepared homes start each real agent straight to an idle
prompt that talks to the scripted model server, and ``trust=False`` leaves the folder-trust question up.

When a scenario in test_real_pair.py fails, these say whether the world it ran in was sound."""

from __future__ import annotations

import re
import subprocess
import tempfile
from pathlib import Path

import pytest

from tests.e2e.agents_install import CLAUDE_VERSION, CODEX_VERSION, Agents, canary_requested, reported_version
from tests.e2e.driver import Pair
from tests.e2e.homes import shell_command

pytestmark = pytest.mark.e2e

# Idle screens (FINDINGS.md §5, §11): claude's input row is `❯` + U+00A0 between two rules; codex's input row
# holds its placeholder. Deliberately loose (no footer): this checks the homes, not pairloop's screen rules,
# and should keep working on a canary release whose footer changed.
CLAUDE_IDLE = re.compile(r"^─+\n❯\xa0\s*\n─+$", re.MULTILINE)
CODEX_IDLE = re.compile(r"^› Ask Codex to do anything\s*$", re.MULTILINE)
# First-run screens that must not appear with the full preparation.
FIRST_RUN = ("Quick safety check", "Do you want to use this API key?", "Trust this folder?", "Meet GPT",
             "Sign in", "Choose the text style", "Hooks need review")


def launch(pair: Pair, argv: list[str]) -> str:
    """Start an agent straight in a pane of the pair's private tmux server; return the pane id."""
    cmd = shell_command(pair.env, argv, pair.repo)
    out = pair.tmux("-f", "/dev/null", "new-session", "-d", "-x", "160", "-y", "40", "-P", "-F", "#{pane_id}",
                    cmd)
    pane = out.strip()
    pair.tmux("set-option", "-p", "-t", pane, "remain-on-exit", "on")
    return pane


def paste_and_submit(pair: Pair, pane: str, text: str, key: str) -> None:
    with tempfile.NamedTemporaryFile("w", suffix=".txt", dir=pair.root, delete=False) as f:
        f.write(text)
    pair.tmux("load-buffer", "-b", "e2e", f.name)
    pair.tmux("paste-buffer", "-p", "-d", "-b", "e2e", "-t", pane)
    Path(f.name).unlink()
    pair.tmux("send-keys", "-t", pane, key)


def screen(pair: Pair, pane: str) -> str:
    return pair.capture(pane)


def test_pinned_versions_are_installed(agents: Agents) -> None:
    assert agents.claude.is_file() and agents.codex.is_file()
    assert reported_version(agents.claude) == agents.claude_version
    assert reported_version(agents.codex) == agents.codex_version
    if not canary_requested():
        assert (agents.claude_version, agents.codex_version) == (CLAUDE_VERSION, CODEX_VERSION)


def test_claude_starts_idle_and_talks_to_the_model_server(pair: Pair) -> None:
    pane = launch(pair, [str(pair.agents.claude)])
    pair.wait(lambda: CLAUDE_IDLE.search(screen(pair, pane)), 30, "claude's idle prompt")
    s = screen(pair, pane)
    assert not [w for w in FIRST_RUN if w in s], s
    # An Enter within ~0.3 s of the prompt's first paint can be dropped (notes): the poll below retries it.
    paste_and_submit(pair, pane, "harness ping to claude", "Enter")
    try:
        pair.server.wait_for(lambda: "harness ping to claude" in pair.server.user_texts("anthropic"), 5)
    except TimeoutError:
        pair.tmux("send-keys", "-t", pane, "Enter")
    pair.wait(lambda: "harness ping to claude" in pair.server.user_texts("anthropic"), 20, "claude's request")
    pair.wait(lambda: "OK." in screen(pair, pane), 20, "claude showing the scripted reply")


def test_codex_starts_idle_and_talks_to_the_model_server(pair: Pair) -> None:
    pane = launch(pair, [str(pair.agents.codex)])
    pair.wait(lambda: CODEX_IDLE.search(screen(pair, pane)), 30, "codex's idle prompt")
    s = screen(pair, pane)
    assert not [w for w in FIRST_RUN if w in s], s
    # The clean-up's leftover check finds processes by the pair's tag: make sure it sees this agent at all.
    assert any("codex" in Path(f"/proc/{pid}/cmdline").read_text(errors="replace")
               for pid in pair.tagged_processes()), "the clean-up cannot see the agent's processes"
    paste_and_submit(pair, pane, "harness ping to codex", "Tab")
    try:
        pair.server.wait_for(lambda: "harness ping to codex" in pair.server.user_texts("openai"), 5)
    except TimeoutError:
        pair.tmux("send-keys", "-t", pane, "Tab")
    pair.wait(lambda: "harness ping to codex" in pair.server.user_texts("openai"), 20, "codex's request")
    pair.wait(lambda: "OK." in screen(pair, pane), 20, "codex showing the scripted reply")
    (req,) = [r for r in pair.server.requests("openai")]
    tools = {t.get("name") for t in req.body.get("tools", [])}
    assert "exec_command" in tools, f"codex offered no exec_command with model gpt-5.5: {sorted(map(str, tools))}"


def test_untrusted_homes_leave_the_folder_trust_dialogs_up(pair: Pair) -> None:
    pair.prepare(trust=False)
    claude = launch(pair, [str(pair.agents.claude)])
    codex = launch(pair, [str(pair.agents.codex)])
    pair.wait(lambda: "Yes, I trust this folder" in screen(pair, claude), 30, "claude's trust dialog")
    pair.wait(lambda: "Trust this folder?" in screen(pair, codex) or "Trust and continue" in screen(pair, codex),
              30, "codex's trust dialog")
    assert pair.server.requests("anthropic") == [] and pair.server.requests("openai") == []


def test_the_pairloop_console_script_is_on_the_prepared_path(pair: Pair) -> None:
    out = subprocess.run(["bash", "-c", "command -v pairloop && command -v node"], env=pair.env,
                         capture_output=True, text=True, check=True).stdout.split()
    assert out[0].endswith("/pairloop") and out[1].endswith("/node")
