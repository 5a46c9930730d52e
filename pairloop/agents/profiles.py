"""Agent profiles: how to start each agent TUI, which key submits, how to read its screen, what its hooks say.

A profile is the seam every agent comes through: the bridge only ever sees what a profile writes into run.json
(pane, submit key, screen rules, whether turn-end hooks report, which dialogs it may answer). Every screen
marker of a TUI lives here, in its profile, so a new TUI release is a one-place change."""

from __future__ import annotations

import json
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

TRUST_DIALOG = "trust this folder"

# The sim's screen; pairloop.agents.sim_agent paints exactly these strings.
SIM_RULES = ScreenRules(
    ready=(r"^  \? for shortcuts · enter to submit$",),
    busy=(r"^  ● working… \(\d+s · esc to interrupt\)$",),
    input=r"^› (?P<text>.*)$",
    dialogs={TRUST_DIALOG: r"^Do you trust the files in this folder\?$"},
)

# Claude Code (measured on 2.1.197). The input row is "❯" + U+00A0; every other "❯" (history, queued
# messages, dialog choices) has a plain space. Text in the box hides the footer, busy or not.
CLAUDE_RULES = ScreenRules(
    ready=(),
    # The footer may lead with a mode banner ("⏵⏵ auto mode on (shift+tab to cycle) · esc to interrupt").
    busy=(r"^\s*(?:\S[^\n]* · )?esc to interrupt\b", r"^\s+⎿\s+Running…"),
    input="^❯\u00a0(?P<text>.*)$",
    dialogs={
        "permission prompt": r"^\s*Do you want to proceed\?",
        TRUST_DIALOG: r"Is this a project you created or one you trust\?|Yes, I trust this folder",
        "use this API key?": r"Do you want to use this API key\?",
        "bypass permissions warning": r"Bypass Permissions mode",
        "sign-in": r"Unable to connect to Anthropic services|Select login method|Choose the text style",
    },
    placeholders=("Press up to edit queued messages",),
    # After a paste the footer says "paste again to expand" instead of "esc to interrupt", even while a reply
    # streams: a turn is open from a submitted prompt ("❯ " with a plain space) until "✻ <Verb> for Ns" or an
    # interruption follows it.
    turn=(r"^❯ ", r"^✻ \S+ for \d|^\s+⎿\s+Interrupted"),
    settle=0.5,
    paste_placeholder=r"^\[Pasted text #\d+",
    submit_after_paste_shows=True,
)

# Codex CLI (measured on 0.169.0). "›" marks history lines and the input row alike: the input row is the
# one just above the model/cwd line. While a reply streams the "Working" line is hidden; the turn is still
# open until a "Worked for" (or an error "■") line follows the last prompt.
CODEX_RULES = ScreenRules(
    ready=(r"for agents · \? for shortcuts",),
    # The spinner dot blinks between • and ◦.
    busy=(r"^[•◦] Working \(\d+.*esc to interrupt\)", r"^[•◦] Reconnecting\.\.\."),
    input=r"^› (?P<text>.*)$",
    input_anchor=r"^  \S[^\n]* · [~/][^\n]*$",
    dialogs={
        "approval": r"Would you like to run the following command\?",
        TRUST_DIALOG: r"Trust this folder\?|Do you trust the contents of this directory\?",
        "hooks need review": r"Hooks need review",
        "sign-in": r"Sign in with ChatGPT",
        "new model nudge": r"Try new model",
    },
    placeholders=("Ask Codex to do anything", "Ask a follow-up question"),
    turn=(r"^› ", r"^  Worked for |^■ "),
    settle=0.3,
)


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


@dataclass(frozen=True)
class AgentProfile:
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

    def argv(self, ctx: LaunchContext) -> list[str]:
        return [*self.command, *self.build_args(self, ctx), *ctx.extra_args]

    def check_installed(self) -> None:
        program = self.command[0]
        if shutil.which(program) is None and not Path(program).is_file():
            raise MissingTool(f"agent {self.name!r} needs {program!r}, which is not installed or not on PATH"
                              f"{INSTALL_HINTS.get(self.name, '')}")


INSTALL_HINTS = {
    "claude": " (npm install -g @anthropic-ai/claude-code)",
    "codex": " (npm install -g @openai/codex)",
}


def hook_command(ctx: LaunchContext, kind: str) -> list[str]:
    return [sys.executable, "-m", "pairloop.agents.hook", str(ctx.run_dir), ctx.role, kind]


def _sim_args(profile: AgentProfile, ctx: LaunchContext) -> list[str]:
    return ["--brief", str(ctx.brief_file)]


def claude_settings(ctx: LaunchContext) -> dict[str, Any]:
    """Per-run settings, passed with --settings: the user's own settings files are never touched."""
    def hook(kind: str) -> list[dict[str, Any]]:
        return [{"hooks": [{"type": "command", "command": shlex.join(hook_command(ctx, kind))}]}]

    return {
        # pairloop's own commands run without asking; every other tool keeps claude's usual permission checks.
        "permissions": {"allow": ["Bash(pairloop:*)"]},
        "hooks": {"UserPromptSubmit": hook("prompt"), "Stop": hook("stop"), "Notification": hook("notification")},
    }


def _claude_args(profile: AgentProfile, ctx: LaunchContext) -> list[str]:
    settings = ctx.run_dir / f"claude-settings-{ctx.role}.json"
    settings.write_text(json.dumps(claude_settings(ctx), indent=2))
    args = ["--settings", str(settings), "--append-system-prompt", ctx.brief, "--session-id", ctx.session_id]
    if ctx.model:
        args += ["--model", ctx.model]
    if ctx.yolo:
        args.append(profile.yolo_flag)
    return args


def toml_string(text: str) -> str:
    """A TOML basic string (JSON's string escapes are all valid TOML ones)."""
    return json.dumps(text)


def _codex_args(profile: AgentProfile, ctx: LaunchContext) -> list[str]:
    notify = "[" + ", ".join(toml_string(a) for a in hook_command(ctx, "notify")) + "]"
    args = [
        "--no-daemon",  # otherwise an app-server daemon outlives the pane
        "-c", "features.daemon_auto_start=false",
        # The brief is added to codex's own instructions, not put in their place.
        "-c", f"developer_instructions={toml_string(ctx.brief)}",
        # A login shell resets PATH, and `pairloop` would not be found by the agent's shell tool.
        "-c", "allow_login_shell=false",
        "-c", f"notify={notify}",
    ]
    if ctx.model:
        args += ["-m", ctx.model]
    if ctx.yolo:
        args.append(profile.yolo_flag)
    return args


def _custom_args(profile: AgentProfile, ctx: LaunchContext, brief_arg: str, brief_file_arg: str) -> list[str]:
    args: list[str] = []
    if brief_arg:
        args += [brief_arg, ctx.brief]
    if brief_file_arg:
        args += [brief_file_arg, str(ctx.brief_file)]
    return args


def builtin(name: str) -> AgentProfile | None:
    if name == "sim":
        return AgentProfile("sim", (sys.executable, "-m", "pairloop.agents.sim_agent"), "Enter", SIM_RULES, _sim_args,
                            turn_hooks=True, trust_keys=("Enter",))
    if name == "claude":
        # Chosen by its text: newer releases list "No, exit" first, unnumbered, with the cursor on it.
        return AgentProfile("claude", ("claude",), "Enter", CLAUDE_RULES, _claude_args, turn_hooks=True,
                            trust_choice="Yes, I trust this folder", yolo_flag="--dangerously-skip-permissions",
                            sets_session_id=True)
    if name == "codex":
        return AgentProfile("codex", ("codex",), "Tab", CODEX_RULES, _codex_args, turn_hooks=True,
                            trust_choice="Trust and continue", yolo_flag="--dangerously-bypass-approvals-and-sandbox")
    return None


BUILTIN = ("claude", "codex", "sim")


def custom_profile(name: str, spec: dict[str, Any]) -> AgentProfile:
    """An agent declared in configuration: any TUI with a command line, screen markers and a submit key."""
    try:
        rules = ScreenRules(
            ready=tuple(spec.get("ready", ())), busy=tuple(spec.get("busy", ())), input=str(spec["input"]),
            dialogs=dict(spec.get("dialogs", {})), placeholders=tuple(spec.get("placeholders", ())),
            input_anchor=str(spec.get("input_anchor", "")), settle=float(spec.get("settle", 0.3)),
        )
        brief_arg, brief_file_arg = str(spec.get("brief_arg", "")), str(spec.get("brief_file_arg", ""))
        return AgentProfile(
            name, tuple(_words(spec["command"])), str(spec.get("submit_key", "Enter")), rules,
            lambda p, c: _custom_args(p, c, brief_arg, brief_file_arg),
            trust_keys=tuple(spec.get("trust_keys", ())), yolo_flag=str(spec.get("yolo_flag", "")),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise UsageProblem(f"agent {name!r} in the configuration is incomplete: {exc} "
                           "(a custom agent needs at least 'command' and 'input')") from None


def _words(value: Any) -> list[str]:
    if isinstance(value, str):
        return shlex.split(value)
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return list(value)
    raise TypeError("a command is a string or a list of strings")


def profile(name: str, settings: dict[str, Any] | None = None) -> AgentProfile:
    """The profile for ``name``, with the command, arguments and environment from configuration applied."""
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
            command = tuple(_words(settings["command"]))
        except TypeError as exc:
            raise UsageProblem(f"agents.{name}.command: {exc}") from None
        base = replace(base, command=command)
    env = {str(k): str(v) for k, v in dict(settings.get("env", {})).items()}
    if env:
        base = replace(base, env={**base.env, **env})
    return base
