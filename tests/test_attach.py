"""Attaching a real terminal (a pty driven by pexpect): from outside tmux, from inside it, and the demo."""

from __future__ import annotations

import sys
from pathlib import Path

import pexpect
import pytest

from bridge.childenv import child_env
from bridge.panes.tmux import Tmux
from tests.conftest import wait_for

pytestmark = pytest.mark.tmux
PAIRLOOP = str(Path(sys.executable).parent / "pairloop")


def clients(tmux: Tmux) -> list[str]:
    try:
        return tmux.run("list-clients", "-F", "#{client_session}")
    except Exception:
        return []


def spawn(argv: list[str], cwd: Path | None = None) -> pexpect.spawn:
    child = pexpect.spawn(argv[0], argv[1:], cwd=str(cwd) if cwd else None, env=child_env(), encoding="utf-8",
                          dimensions=(40, 160), timeout=60)
    return child


def test_demo_from_a_terminal_attaches_and_exits_zero(tmp_path: Path) -> None:
    child = spawn([PAIRLOOP, "demo"], cwd=tmp_path)
    try:
        child.expect("worker · sim")  # the tmux client is drawing the session
        child.expect("the pair agreed: done")
        child.expect(pexpect.EOF)
    finally:
        child.close()
    assert child.exitstatus == 0


def test_start_from_outside_tmux_attaches_the_terminal(tmux_server: Tmux, git_repo: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PAIRLOOP_SIM_MODE", "quiet")
    socket = str(tmux_server.server.socket_name)
    child = spawn([PAIRLOOP, "start", "a task", "--worker", "sim", "--reviewer", "sim", "--socket", socket],
                  cwd=git_repo)
    try:
        child.expect("reviewer · sim")
        session = wait_for(lambda: clients(tmux_server), what="an attached client")
        assert str(session[0]).startswith("pairloop-repo-")
        child.sendcontrol("b")
        child.send("d")  # detach: pairloop's job was to attach, the session lives on
        child.expect(pexpect.EOF)
    finally:
        child.close()
    assert child.exitstatus == 0
    assert tmux_server.has_session(str(session[0]))


def test_start_from_inside_the_same_tmux_switches_the_client(tmux_server: Tmux, git_repo: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PAIRLOOP_SIM_MODE", "quiet")
    socket = str(tmux_server.server.socket_name)
    tmux_server.new_session("home", git_repo, "bash --norc --noprofile")
    child = spawn(["tmux", "-L", socket, "attach", "-t", "=home"])
    try:
        wait_for(lambda: clients(tmux_server) == ["home"], what="the client on the home session")
        command = f"{PAIRLOOP} start 'a task' --worker sim --reviewer sim --socket {socket}; echo started-$?"
        tmux_server.send_keys("=home:", command, "Enter")
        switched = wait_for(lambda: [c for c in clients(tmux_server) if c.startswith("pairloop-repo-")],
                            what="the client switched to the run's session")
        assert len(clients(tmux_server)) == 1, "switched, not a second (nested) client"
        wait_for(lambda: "started-0" in tmux_server.capture("=home:"), what="pairloop start to exit 0")
        assert switched
    finally:
        child.terminate(force=True)
        child.close()
