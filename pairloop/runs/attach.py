"""Showing a run's session to the user who started it: switch their tmux client, attach their terminal, or
print the command that does it."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from typing import Literal

from bridge import Tmux, child_env

How = Literal["switch", "attach", "print"]


def how_to_show(socket_path: str, env: Mapping[str, str], *, wanted: bool, terminal: bool) -> How:
    """Inside a client of the run's own tmux server: switch that client (nesting would be confusing).
    Anywhere else with a terminal (outside tmux, or inside another tmux server, nested): attach it.
    Asked not to, or without a terminal to attach: print the command."""
    if not wanted or not terminal:
        return "print"
    inside = env.get("TMUX", "").split(",")[0]
    if inside and os.path.realpath(inside) == os.path.realpath(socket_path):
        return "switch"
    return "attach"


def show(tmux: Tmux, session: str, how: How, env: Mapping[str, str]) -> None:
    """Do what :func:`how_to_show` chose; "attach" replaces this process with tmux's client."""
    if how == "switch":
        tmux.run("switch-client", "-t", f"={session}")
    elif how == "attach":
        sys.stdout.flush()
        # Without $TMUX, tmux attaches even from inside another tmux server (nested) instead of refusing.
        os.execvpe("tmux", tmux.attach_argv(session), child_env(env))


def attach_command(tmux: Tmux, session: str) -> str:
    return " ".join(tmux.attach_argv(session))
