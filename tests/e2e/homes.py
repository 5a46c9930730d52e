"""A fresh HOME and CODEX_HOME for the real `claude` and `codex` TUIs, pointed at the scripted model server.

Only what a user's machine would already hold after a first sign-in goes here: onboarding done, the custom
model endpoint and its key, the repo trusted (optional, so the dialog scenario can leave the folder-trust
question in place), codex's "Meet <newer model>" notice answered, no update checks, no background daemon.

Deliberately NOT here: permission/approval rules (claude `permissions.allow`, codex execpolicy rules), hooks,
codex `notify`, `developer_instructions`, `allow_login_shell`. pairloop must pass everything it needs on each
run (argv, -c overrides, a settings file of its own): that is what the end-to-end tests check. If a test only
passes with one of those added here, the product is missing it.

Facts behind each entry: /work/e2e-lab/FINDINGS.md (claude 2.1.197, codex 0.169.0).
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.e2e.agents_install import Agents
from tests.e2e.model_server import ModelServer

# A slug codex 0.169.0 knows whose catalog entry has no `tool_mode`, so the model is offered `exec_command`
# (gpt-6* / gpt-5.6* are `code_mode_only`: only a JavaScript `exec` tool). Its "Meet GPT-6 Sol" nudge is
# pre-answered below.
CODEX_MODEL = "gpt-5.5"
CODEX_MODEL_MIGRATIONS = {"gpt-5.5": "gpt-6-sol"}
CODEX_PROVIDER = "e2e"
CODEX_KEY_VAR = "PAIRLOOP_E2E_MODEL_KEY"
MODEL_KEY = "sk-e2e-0123456789abcdefghijklmnopqrstuvwxyz"  # any value: the model server ignores it
# What a user's terminal would say; the agents run inside tmux either way.
TERM = "xterm-256color"


@dataclass(frozen=True)
class Homes:
    """The prepared folders and the environment to run `pairloop` (and hence both agents) with."""

    home: Path
    codex_home: Path
    claude_json: Path
    codex_config: Path
    env: dict[str, str]


def _write_json(path: Path, obj: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=2) + "\n")


def _toml_str(s: str) -> str:
    return json.dumps(s)  # a JSON string literal is a valid TOML basic string


def _claude_json(repo: Path, *, trust: bool, api_key: bool) -> dict[str, Any]:
    data: dict[str, Any] = {
        "hasCompletedOnboarding": True,  # else: welcome, theme picker, then a sign-in dead end offline
        "lastOnboardingVersion": "2.1.197",
        "theme": "dark",
        "numStartups": 1,
        "projects": {},
    }
    if api_key:
        # ANTHROPIC_API_KEY asks "Do you want to use this API key?" unless its last 20 characters are approved.
        data["customApiKeyResponses"] = {"approved": [MODEL_KEY[-20:]], "rejected": []}
    if trust:
        data["projects"][str(repo)] = {"hasTrustDialogAccepted": True, "hasCompletedProjectOnboarding": True,
                                       "allowedTools": []}
    return data


def _codex_config(repo: Path, server: ModelServer, *, trust: bool, max_retries: int | None) -> str:
    lines = [
        f"model = {_toml_str(CODEX_MODEL)}",
        f"model_provider = {_toml_str(CODEX_PROVIDER)}",
        "check_for_update_on_startup = false",
        "",
        f"[model_providers.{CODEX_PROVIDER}]",
        'name = "pairloop e2e model server"',
        f"base_url = {_toml_str(server.openai_base_url)}",
        f"env_key = {_toml_str(CODEX_KEY_VAR)}",
        'wire_api = "responses"',  # the only wire API codex 0.169 accepts for a custom provider
    ]
    if max_retries is not None:
        # A retried request would consume the next scripted reply and desynchronise the script.
        lines += [f"request_max_retries = {max_retries}", f"stream_max_retries = {max_retries}"]
    if trust:
        lines += ["", f"[projects.{_toml_str(str(repo))}]", 'trust_level = "trusted"']
    lines += [
        "",
        "[features]",
        # Without it (and without --no-daemon) codex starts an app-server daemon that outlives the TUI.
        "daemon_auto_start = false",
        "",
        "[notice.model_migrations]",
        *(f"{_toml_str(k)} = {_toml_str(v)}" for k, v in CODEX_MODEL_MIGRATIONS.items()),
    ]
    return "\n".join(lines) + "\n"


def _path(*dirs: str) -> str:
    out: list[str] = []
    for d in [*dirs, "/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"]:
        if d and d not in out:
            out.append(d)
    return os.pathsep.join(out)


def venv_bin() -> Path:
    """The folder holding this interpreter's console scripts (`pairloop` among them)."""
    return Path(sys.executable).parent


def prepare_homes(
    root: Path,
    *,
    repo: Path,
    server: ModelServer,
    agents: Agents,
    trust: bool = True,
    claude_trust: bool | None = None,
    codex_trust: bool | None = None,
    claude_api_key: bool = False,
    codex_max_retries: int | None = 0,
) -> Homes:
    """Create `root/home` (HOME, with claude's ~/.claude.json) and `root/home/.codex` (CODEX_HOME) afresh.

    `trust=False` leaves the folder-trust question of both agents unanswered (`claude_trust` / `codex_trust`
    override it per agent). `claude_api_key` passes the key as ANTHROPIC_API_KEY (pre-approved) instead of
    ANTHROPIC_AUTH_TOKEN. `codex_max_retries=None` keeps codex's default retries.
    """
    repo = repo.resolve()
    home = root / "home"
    if home.exists():
        shutil.rmtree(home)
    codex_home = home / ".codex"
    codex_home.mkdir(parents=True)
    (home / ".claude").mkdir()
    tmp = root / "tmp"
    tmp.mkdir(exist_ok=True)

    claude_json = home / ".claude.json"
    _write_json(claude_json, _claude_json(repo, trust=trust if claude_trust is None else claude_trust,
                                          api_key=claude_api_key))
    codex_config = codex_home / "config.toml"
    codex_config.write_text(_codex_config(repo, server, trust=trust if codex_trust is None else codex_trust,
                                          max_retries=codex_max_retries))

    node = shutil.which("node")
    env = {
        "HOME": str(home),
        "CODEX_HOME": str(codex_home),
        # pairloop must find its own console script inside the agents' shells; codex's launcher needs node.
        "PATH": _path(str(venv_bin()), str(Path(node).parent) if node else ""),
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "TERM": TERM,
        "USER": os.environ.get("USER", "root"),
        "SHELL": "/bin/bash",
        "TMPDIR": str(tmp),
        "GIT_AUTHOR_NAME": "E2E", "GIT_AUTHOR_EMAIL": "e2e@example.invalid",
        "GIT_COMMITTER_NAME": "E2E", "GIT_COMMITTER_EMAIL": "e2e@example.invalid",
        # claude
        "ANTHROPIC_BASE_URL": server.base_url,
        "DISABLE_AUTOUPDATER": "1",
        "DISABLE_TELEMETRY": "1",
        "DISABLE_ERROR_REPORTING": "1",
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "CLAUDE_CODE_MAX_RETRIES": "0",  # a retry would consume the next scripted reply
        "ANTHROPIC_API_KEY" if claude_api_key else "ANTHROPIC_AUTH_TOKEN": MODEL_KEY,
        # codex
        CODEX_KEY_VAR: MODEL_KEY,
        # which binaries pairloop runs
        "PAIRLOOP_CLAUDE_COMMAND": str(agents.claude),
        "PAIRLOOP_CODEX_COMMAND": str(agents.codex),
    }
    if os.environ.get("TMUX_TMPDIR"):
        env["TMUX_TMPDIR"] = os.environ["TMUX_TMPDIR"]  # the tests look for the tmux socket there
    return Homes(home, codex_home, claude_json, codex_config, env)


def shell_command(env: dict[str, str], argv: list[str], cwd: Path) -> str:
    """A `sh -c` line that runs `argv` in `cwd` with exactly `env` (for launching an agent straight into a
    tmux pane, without pairloop: the harness's own smoke tests)."""
    assigns = " ".join(f"{k}={shlex.quote(v)}" for k, v in sorted(env.items()))
    return f"cd {shlex.quote(str(cwd))} && exec env -i {assigns} {shlex.join(argv)}"
