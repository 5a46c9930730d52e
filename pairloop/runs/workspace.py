"""The tmux layout: worker left, reviewer right, a short bridge pane underneath, each titled."""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import Path

from bridge import Tmux

BRIDGE_LINES = "8"
# Panes are created holding this, and get their real program once run.json names every pane: the bridge
# needs the pane ids at start, and remain-on-exit must be set before an agent could possibly exit.
PLACEHOLDER = "sleep 86400"


@dataclass(frozen=True)
class Panes:
    worker: str
    reviewer: str
    bridge: str

    def by_role(self) -> dict[str, str]:
        return {"worker": self.worker, "reviewer": self.reviewer, "bridge": self.bridge}


def open_workspace(tmux: Tmux, session: str, cwd: Path, titles: dict[str, str]) -> Panes:
    """Create the session and its three panes; panes stay on screen (dead) when their program exits."""
    worker = tmux.new_session(session, cwd, PLACEHOLDER)
    tmux.set_window_options(worker, {
        "remain-on-exit": "on",
        "pane-border-status": "top",
        # pairloop's own title only: what an agent sets as its terminal title (OSC 2) is never shown there.
        "pane-border-format": f" #{{{Tmux.TITLE_OPTION}}} ",
    })
    bridge = tmux.split(worker, PLACEHOLDER, cwd, horizontal=False, size=BRIDGE_LINES, full=True)
    reviewer = tmux.split(worker, PLACEHOLDER, cwd, horizontal=True, size="50%")
    panes = Panes(worker, reviewer, bridge)
    for role, pane in panes.by_role().items():
        tmux.set_title(pane, titles[role])  # agent names come from .pairloop.toml: shown literally
    tmux.run("select-pane", "-t", worker)
    return panes


def launch(tmux: Tmux, pane: str, argv: list[str]) -> None:
    tmux.respawn(pane, shlex.join(argv))
