"""What every agent profile is, and picking one by name.

A profile is the seam every agent comes through: the bridge only ever sees what a profile writes into run.json
(pane, submit key, screen rules, whether turn-end hooks report, which dialogs it may answer). This module holds
only what all of them share; each TUI's own command line and screen markers live in its own module (claude,
codex, sim, custom), so a new release of one TUI is a change to one file.
"""

from __future__ import annotations

import shlex
import shutil
import sys
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from bridge import ScreenRules
from pairloop.errors import MissingTool, UsageProblem

# The name every profile gives its folder-trust dialog, so that `pairloop start --trust` can answer it.
TRUST_DIALOG = "trust this folder"


@dataclass(frozen=True)
class LaunchContext:
    """What a profile needs to build one agent's command line for one role of one run."""

    run_dir: Path
    role: str
    brief: str
    brief_file: Path
    model: str | None = None
    extra_args: tuple[str, ...] = ()
    yolo: bool = False
    session_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    resume_id: str | None = None  # resume this conversation of the agent's instead of starting a new one


@dataclass(frozen=True)
class AgentProfile:
    """How to start one agent TUI, which key submits, how to read its screen, what its hooks report."""

    name: str
    command: tuple[str, ...]
    submit_key: str
    rules: ScreenRules
    build_args: Callable[[AgentProfile, LaunchContext], list[str]]
    env: dict[str, str] = field(default_factory=dict)
    turn_hooks: bool = False  # the agent reports each turn's end through hooks
    trust_keys: tuple[str, ...] = ()  # keys that answer its folder-trust dialog with "yes" (for --trust) ...
    trust_choice: str = ""  # ... or the "yes" option's text, which the bridge moves the cursor to
    yolo_flag: str = ""
    sets_session_id: bool = False  # pairloop chooses the agent's session id (claude --session-id)
    install_hint: str = ""  # how to install its program, for the error and for `pairloop doctor`
    resumable: bool = False  # can be started again on its own earlier conversation (LaunchContext.resume_id)
    records: str = ""  # the shape of its own records, where the bridge reads its tokens and limits (bridge.usage)
    resume_refused: tuple[str, ...] = ()  # what its screen says when it cannot resume that conversation

    def argv(self, ctx: LaunchContext) -> list[str]:
        return [*self.command, *self.build_args(self, ctx), *ctx.extra_args]

    def check_installed(self) -> None:
        """Fail before any pane opens: a missing program would otherwise show only as a pane that died."""
        program = self.command[0]
        if shutil.which(program) is None and not Path(program).is_file():
            hint = f" ({self.install_hint})" if self.install_hint else ""
            raise MissingTool(f"agent {self.name!r} needs {program!r}, which is not installed or not on PATH{hint}")


def hook_command(ctx: LaunchContext, kind: str) -> list[str]:
    """The command an agent's hook runs: the hook program, with this interpreter, for this run and role."""
    return [sys.executable, "-m", "pairloop.agents.hook", str(ctx.run_dir), ctx.role, kind]


def command_words(value: Any) -> list[str]:
    """A command from configuration, given as one shell-quoted string or as a list of words."""
    if isinstance(value, str):
        return shlex.split(value)
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return list(value)
    raise TypeError("a command is a string or a list of strings")


BUILTIN = ("claude", "codex", "sim")


def builtin(name: str) -> AgentProfile | None:
    """A built-in TUI's profile, or None for any other name."""
    # Imported here, not at the top: each TUI's module builds on this one.
    from pairloop.agents import claude, codex, sim

    return {p.name: p for p in (claude.PROFILE, codex.PROFILE, sim.PROFILE)}.get(name)


def profile(name: str, settings: dict[str, Any] | None = None) -> AgentProfile:
    """The profile for ``name``, with the command, arguments and environment from configuration applied."""
    from pairloop.agents.custom import custom_profile

    settings = settings or {}
    base = builtin(name)
    if base is None:
        if "input" not in settings and "command" not in settings:
            known = sorted(set(BUILTIN))
            raise UsageProblem(f"unknown agent {name!r}; available: {', '.join(known)} "
                               "(or declare it under [agents.NAME] in .pairloop.toml)")
        base = custom_profile(name, settings)
    elif "command" in settings:
        try:
            command = tuple(command_words(settings["command"]))
        except TypeError as exc:
            raise UsageProblem(f"agents.{name}.command: {exc}") from None
        base = replace(base, command=command)
    env = {str(k): str(v) for k, v in dict(settings.get("env", {})).items()}
    if env:
        base = replace(base, env={**base.env, **env})
    return base
