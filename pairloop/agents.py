"""Agent profiles: how to start each agent TUI, which key submits, how to read its screen.

A profile is the seam every agent comes through: the bridge only ever sees what a profile writes into
run.json (pane, submit key, screen rules)."""

from __future__ import annotations

import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

from bridge.screen import ScreenRules
from pairloop.errors import MissingTool, UsageProblem

# The sim's screen, in one place; pairloop.sim_agent paints exactly these strings.
SIM_RULES = ScreenRules(
    ready=(r"^  \? for shortcuts · enter to submit$",),
    busy=(r"^  ● working… \(\d+s · esc to interrupt\)$",),
    input=r"^› (?P<text>.*)$",
    dialogs={"trust this folder": r"^Do you trust the files in this folder\?$"},
)


@dataclass(frozen=True)
class AgentProfile:
    name: str
    program: str  # what must be on PATH
    submit_key: str
    rules: ScreenRules
    base_argv: tuple[str, ...] = ()
    brief_flag: str = ""  # the option that takes the role brief (file path for the sim)
    env: dict[str, str] = field(default_factory=dict)

    def argv(self, brief_file: Path) -> list[str]:
        args = list(self.base_argv)
        if self.brief_flag:
            args += [self.brief_flag, str(brief_file)]
        return args

    def check_installed(self) -> None:
        if shutil.which(self.program) is None and not Path(self.program).is_file():
            raise MissingTool(f"agent {self.name!r} needs {self.program!r}, which is not installed or not on PATH")


def sim_profile() -> AgentProfile:
    return AgentProfile(
        name="sim",
        program=sys.executable,
        submit_key="Enter",
        rules=SIM_RULES,
        base_argv=(sys.executable, "-m", "pairloop.sim_agent"),
        brief_flag="--brief",
    )


PROFILES = {"sim": sim_profile}


def profile(name: str) -> AgentProfile:
    try:
        return PROFILES[name]()
    except KeyError:
        raise UsageProblem(f"unknown agent {name!r}; available: {', '.join(sorted(PROFILES))}") from None
