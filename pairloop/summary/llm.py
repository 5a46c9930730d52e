"""`summarize --llm claude|codex`: an agent's non-interactive mode writes the summary's prose from the digest.

Only the digest goes in (never a transcript). claude: `-p --tools ""`, its request offers no tools at all. codex:
`exec` with its shell (exec_command, write_stdin) and web search turned off (`-c features.…=false`, which a codex
without such a feature ignores, unlike `--disable`) in a read-only sandbox that never asks for approval; what it
still offers (apply_patch, view_image, goals) cannot write anything there. Both are told not to use any tool;
codex's last message is taken from a file. Measured on claude 2.1.197 and codex 0.169.0
(tests/e2e/test_summarize_llm.py)."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from bridge import RUN_VARS, TMUX_VARS, child_env
from pairloop.runs.config import agent_settings, read_config

TIMEOUT = 120.0
# codex exec offers the model exec_command / write_stdin (a shell) and web_search by default; turn them off.
CODEX_NO_TOOLS = ("-c", "features.shell_tool=false", "-c", "features.unified_exec=false",
                  "-c", 'web_search="disabled"')
PROMPT = """Write the summary paragraph of a pull request description for a human reviewer, 3 to 6 sentences of
plain prose, no headings, no lists, no code blocks. Use ONLY the facts in the JSON below (a digest of a
pair-programming session: the task, review rounds, findings and how they ended, commits and the diff size, the
human's interventions, the commands the agents said they ran). Do not invent anything that is not in it. Do not
run any command or use any tool.

FACTS:
"""


class LlmFailed(Exception):
    pass


def _prompt(facts: dict[str, Any]) -> str:
    slim = {k: v for k, v in facts.items() if k not in ("plan_text",)}
    return PROMPT + json.dumps(slim, indent=1, ensure_ascii=False)


def _command(agent: str, repo: Path) -> list[str]:
    settings = agent_settings(read_config(repo), agent, dict(os.environ))
    command = settings.get("command", agent)
    return shlex.split(command) if isinstance(command, str) else list(command)


def ask_agent(agent: str, facts: dict[str, Any], repo: Path | None = None) -> str:
    repo = repo or Path.cwd()
    prompt = _prompt(facts)
    with tempfile.TemporaryDirectory(prefix="pairloop-llm-") as tmp:
        if agent == "claude":
            argv = [*_command("claude", repo), "-p", "--tools", "", "--no-session-persistence",
                    "--output-format", "text"]
            out_file = None
        elif agent == "codex":
            out_file = Path(tmp) / "last.txt"
            argv = [*_command("codex", repo), "exec", "--sandbox", "read-only", *CODEX_NO_TOOLS,
                    "--skip-git-repo-check", "--ephemeral", "--output-last-message", str(out_file), "-"]
        else:
            raise LlmFailed(f"unknown agent {agent!r} (use claude or codex)")
        try:
            # Not an agent of any run, nor in anyone's tmux pane, even when summarize runs inside one.
            proc = subprocess.run(argv, input=prompt, capture_output=True, text=True, timeout=TIMEOUT,
                                  check=False, cwd=tmp, env=child_env(drop=(*TMUX_VARS, *RUN_VARS)))
        except FileNotFoundError:
            raise LlmFailed(f"{argv[0]} is not installed") from None
        except subprocess.TimeoutExpired:
            raise LlmFailed(f"{agent} did not answer within {TIMEOUT:.0f} s") from None
        if proc.returncode != 0:
            detail = (proc.stderr or proc.stdout).strip().splitlines()
            raise LlmFailed(f"{agent} exited with status {proc.returncode}: {detail[-1][:200] if detail else ''}")
        text = out_file.read_text(encoding="utf-8") if out_file and out_file.exists() else proc.stdout
    text = text.strip()
    if not text:
        raise LlmFailed(f"{agent} gave an empty answer")
    return text
