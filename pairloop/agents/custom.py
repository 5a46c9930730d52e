"""An agent declared in configuration (``[agents.NAME]`` in .pairloop.toml): any TUI with a command line, screen
markers and a submit key, so a TUI pairloop does not know yet needs no code."""

from __future__ import annotations

from typing import Any

from bridge import ScreenRules
from pairloop.agents.profile import AgentProfile, LaunchContext, command_words
from pairloop.errors import UsageProblem


def _custom_args(profile: AgentProfile, ctx: LaunchContext, brief_arg: str, brief_file_arg: str) -> list[str]:
    args: list[str] = []
    if brief_arg:
        args += [brief_arg, ctx.brief]
    if brief_file_arg:
        args += [brief_file_arg, str(ctx.brief_file)]
    return args


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
            name, tuple(command_words(spec["command"])), str(spec.get("submit_key", "Enter")), rules,
            lambda p, c: _custom_args(p, c, brief_arg, brief_file_arg),
            trust_keys=tuple(spec.get("trust_keys", ())), yolo_flag=str(spec.get("yolo_flag", "")),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise UsageProblem(f"agent {name!r} in the configuration is incomplete: {exc} "
                           "(a custom agent needs at least 'command' and 'input')") from None
