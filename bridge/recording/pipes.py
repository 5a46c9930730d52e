"""Keep every live agent pane recorded: tmux pipes the pane's output into a recorder (bridge.recording.recorder).

``record_panes`` opens a pipe on each agent pane that has none. It is called when a run starts (before the agents
are launched, so their first output is recorded), by the bridge whenever it starts (a bridge restarted, a run
resumed), and may be called again at any time: a pane already piped is left alone. (``pipe-pane -o`` would not
do: on a pane that has a pipe, it closes it.) The pipe survives the pane's program being replaced
(``respawn-pane``); the recorder notices the new program by itself.

tmux expands formats in the command it pipes into: the recorder learns the pane's id, terminal, program and size
from them, at the moment the pipe opens, with no call of its own."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

from bridge.panes.tmux import Tmux, TmuxError
from bridge.rundir.manifest import Manifest

# Expanded by tmux when it opens the pipe (#{q:...}: quoted for the shell).
_PANE_FORMATS = ("--pane #{q:pane_id} --socket #{q:socket_path} --tty #{q:pane_tty} --pid #{pane_pid} "
                 "--size #{pane_width}x#{pane_height}")


def recorder_command(run_dir: Path, role: str, limit_bytes: int, title: str = "") -> str:
    """The shell command tmux pipes the pane into. Our own words are doubled '#' so tmux leaves them as written."""
    argv = [sys.executable, "-m", "bridge.recording.recorder", str(run_dir), role, "--limit", str(limit_bytes)]
    if title:
        argv += ["--title", title]
    return "exec " + shlex.join(argv).replace("#", "##") + " " + _PANE_FORMATS


def limit_bytes(manifest: Manifest) -> int:
    return max(1024, int(manifest.recording.limit_mb * 1024 * 1024))


def unpiped(tmux: Tmux, panes: dict[str, str]) -> list[str]:
    """The roles whose pane is alive and has no pipe open (one tmux call for all of them)."""
    args: list[str] = []
    for pane in panes.values():
        args += [*([";"] if args else []), "display-message", "-p", "-t", pane, "#{pane_id} #{pane_pipe} #{pane_dead}"]
    try:
        out = tmux.run(*args)
    except TmuxError:  # a pane is gone: ask one by one
        out = []
        for pane in panes.values():
            try:
                out += tmux.run("display-message", "-p", "-t", pane, "#{pane_id} #{pane_pipe} #{pane_dead}")
            except TmuxError:
                continue
    state = {line.split(" ")[0]: line.split(" ")[1:] for line in out if line.count(" ") == 2}
    return [role for role, pane in panes.items() if state.get(pane) == ["0", "0"]]


def record_panes(tmux: Tmux, run_dir: Path, manifest: Manifest) -> list[str]:
    """Open a recording pipe on each live agent pane that has none; return the roles it opened for."""
    if not manifest.recording.enabled:
        return []
    panes = {role: spec.pane for role, spec in manifest.roles.items() if spec.pane}
    opened = []
    for role in unpiped(tmux, panes):
        title = f"{role} · {manifest.roles[role].agent} · run {manifest.id}"
        try:
            tmux.run("pipe-pane", "-O", "-t", panes[role], recorder_command(run_dir, role, limit_bytes(manifest),
                                                                             title))
        except TmuxError:
            continue
        opened.append(role)
    return opened
