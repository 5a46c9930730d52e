"""An agent that exits says why: its exit status, or the signal that killed it; in the bridge's reason for holding
its messages and in `pairloop status`."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from bridge.panes.delivery import read_target, unreaped, why_dead
from bridge.panes.tmux import PaneInfo, Tmux
from bridge.rundir.manifest import targets
from pairloop.views import run_status, status_lines
from tests.conftest import wait_for
from tests.helpers import human_says, queued_reason, start_sims


@pytest.mark.parametrize(("status", "sig", "why"), [
    ("3", "", "status 3"),
    ("0", "", "status 0"),
    ("", "9", "killed by signal 9, SIGKILL"),
    ("", "15", "killed by signal 15, SIGTERM"),
    ("", "200", "killed by signal 200"),
    ("", "", "no exit status: killed by a signal?"),  # a tmux older than 3.3 has no #{pane_dead_signal}
])
def test_why_a_pane_s_program_ended(status: str, sig: str, why: str) -> None:
    assert why_dead(PaneInfo("%1", 0, True, status, sig)) == why


@pytest.mark.parametrize(("how", "why"), [("kill", "killed by signal 9, SIGKILL"), ("exit", "status 3")])
def test_a_zombie_tmux_has_not_reaped_still_says_how_it_ended(how: str, why: str) -> None:
    """tmux 3.3a sometimes misses the SIGCHLD: a dead pane, no status, no signal, the process a zombie."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover (the child)
        if how == "exit":
            os._exit(3)
        signal.pause()
        os._exit(0)
    try:
        if how == "kill":
            os.kill(pid, signal.SIGKILL)
        wait_for(lambda: Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z",
                 what="the child to be a zombie")
        assert why_dead(unreaped(PaneInfo("%1", pid, True, "", ""))) == why
    finally:
        os.waitpid(pid, 0)
    assert why_dead(unreaped(PaneInfo("%1", pid, True, "", ""))) == "no exit status: killed by a signal?"


def _worker_pid(tmux: Tmux, pane: str) -> int:
    return int(tmux.run("display-message", "-p", "-t", pane, "#{pane_pid}")[0])


@pytest.mark.parametrize(("end", "detail"), [
    ("sigkill", "agent exited (killed by signal 9, SIGKILL)"),
    ("exit 3", "agent exited (status 3)"),
])
def test_an_exited_agent_s_state_names_why(tmux_server: Tmux, git_repo: Path, end: str, detail: str) -> None:
    run = start_sims(tmux_server, git_repo)
    target = targets(run.manifest)["worker"]
    if end == "sigkill":
        os.kill(_worker_pid(tmux_server, target.pane), signal.SIGKILL)
    else:  # the pane's program, whatever it is, exits with status 3
        tmux_server.respawn(target.pane, "sh -c 'exit 3'")
    wait_for(lambda: read_target(tmux_server, target).detail == detail, what=detail)
    held = human_says(run, "worker", "are you there?")
    wait_for(lambda: queued_reason(run, held.id, "worker") == detail, what="the held message's reason")
    status = run_status(run, tmux_server)
    assert status["agents"]["worker"]["state"] == "exited"
    assert status["agents"]["worker"]["detail"] == detail
    (line,) = [line for line in status_lines(status) if line.lstrip().startswith("worker")]
    assert line.endswith(f"({detail})")
    assert status["agents"]["reviewer"]["detail"] == ""
