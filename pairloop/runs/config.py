"""Configuration: `.pairloop.toml` (or `[tool.pairloop]` in pyproject.toml), then environment, then flags.

    worker = "claude"            # default roles
    reviewer = "codex"

    [agents.claude]
    command = "claude"           # a string (split like a shell would) or a list
    args = ["--verbose"]         # extra arguments, after pairloop's own
    model = "opus"
    env = { SOME_VAR = "1" }

    [agents.aider]               # a custom agent: any TUI with a command, an input line and a submit key
    command = "aider"
    submit_key = "Enter"
    input = '^> (?P<text>.*)$'
    busy = ['Waiting for']
    ready = []

Environment: PAIRLOOP_<AGENT>_COMMAND, PAIRLOOP_<AGENT>_ARGS (split like a shell would), PAIRLOOP_<AGENT>_MODEL,
PAIRLOOP_WORKER, PAIRLOOP_REVIEWER. Flags on `pairloop start` win over both.
"""

from __future__ import annotations

import os
import re
import shlex
import tomllib
from pathlib import Path
from typing import Any

from pairloop.errors import UsageProblem

CONFIG_FILE = ".pairloop.toml"
DEFAULT_WORKER, DEFAULT_REVIEWER = "claude", "codex"


def read_config(repo: Path) -> dict[str, Any]:
    """The repo's pairloop configuration, or {} when there is none."""
    path = repo / CONFIG_FILE
    try:
        if path.is_file():
            return tomllib.loads(path.read_text(encoding="utf-8"))
        pyproject = repo / "pyproject.toml"
        if pyproject.is_file():
            table = tomllib.loads(pyproject.read_text(encoding="utf-8")).get("tool", {}).get("pairloop", {})
            return table if isinstance(table, dict) else {}
    except tomllib.TOMLDecodeError as exc:
        raise UsageProblem(f"cannot read the pairloop configuration in {repo}: {exc}") from None
    return {}


def env_key(agent: str) -> str:
    return "PAIRLOOP_" + re.sub(r"[^A-Za-z0-9]", "_", agent).upper()


def agent_settings(config: dict[str, Any], agent: str, env: dict[str, str]) -> dict[str, Any]:
    """One agent's settings: the file's table, with the environment's overrides applied."""
    table = config.get("agents", {}).get(agent, {})
    if not isinstance(table, dict):
        raise UsageProblem(f"agents.{agent} in the configuration must be a table")
    settings = dict(table)
    prefix = env_key(agent)
    if env.get(f"{prefix}_COMMAND"):
        settings["command"] = env[f"{prefix}_COMMAND"]
    if env.get(f"{prefix}_ARGS"):
        settings["args"] = shlex.split(env[f"{prefix}_ARGS"])
    if env.get(f"{prefix}_MODEL"):
        settings["model"] = env[f"{prefix}_MODEL"]
    args = settings.get("args", [])
    if isinstance(args, str):
        settings["args"] = shlex.split(args)
    elif not (isinstance(args, list) and all(isinstance(a, str) for a in args)):
        raise UsageProblem(f"agents.{agent}.args must be a list of strings")
    return settings


def default_roles(config: dict[str, Any], env: dict[str, str] | None = None) -> tuple[str, str]:
    env = dict(os.environ) if env is None else env
    worker = env.get("PAIRLOOP_WORKER") or str(config.get("worker", DEFAULT_WORKER))
    reviewer = env.get("PAIRLOOP_REVIEWER") or str(config.get("reviewer", DEFAULT_REVIEWER))
    return worker, reviewer


DEFAULT_VERIFY_TIMEOUT = 600.0


def verify_settings(config: dict[str, Any]) -> tuple[str | tuple[str, ...], float]:
    """The verification gate's command (a string runs through the shell, a list as it is; "" for none) and its
    timeout in seconds, from the configuration as it stands now (at start: the run records it)."""
    command = config.get("verify", "")
    if isinstance(command, list) and all(isinstance(a, str) for a in command):
        command = tuple(command)
    elif not isinstance(command, str):
        raise UsageProblem("verify in the configuration must be a command: a string, or a list of strings")
    timeout = config.get("verify_timeout", DEFAULT_VERIFY_TIMEOUT)
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0:
        raise UsageProblem("verify_timeout in the configuration must be a number of seconds above 0")
    return command, float(timeout)


def spending_settings(config: dict[str, Any]) -> tuple[tuple[str, ...], int]:
    """The ``notify`` command (a list of words, or a string split like a shell would; () for none), which gets one
    JSON object per call to the human on stdin, and the token budget ``max_tokens`` (0: none), from the
    configuration as it stands now (at start: the run records both)."""
    notify = config.get("notify", ())
    if isinstance(notify, str):
        notify = shlex.split(notify)
    if not (isinstance(notify, list | tuple) and all(isinstance(a, str) for a in notify)):
        raise UsageProblem("notify in the configuration must be a command: a list of strings")
    max_tokens = config.get("max_tokens", 0)
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 0:
        raise UsageProblem("max_tokens in the configuration must be a whole number of tokens (0: no budget)")
    return tuple(notify), max_tokens
