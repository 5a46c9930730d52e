"""The bridge heals itself: its keeper starts it again when it dies while the session lives, backs off and calls
the human when it keeps dying, and lets a clean stop be a stop. (Real tmux, sim agents.)"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import pytest
from click.testing import CliRunner

from bridge import Tmux, bridge_running, published_bridge_down
from bridge.keeper import BACKOFF_S, CALL_AFTER, STEADY_S, after_death, pane_hook, why
from pairloop.cli import cli
from pairloop.runs.lifecycle import StartOptions
from pairloop.runs.store import Run
from tests.conftest import wait_for
from tests.helpers import (
    book,
    bridge_pane_shows,
    bridge_pid,
    delivered,
    human_says,
    ids_received,
    ledger,
    settle,
    start_sims,
)

BACK_WITHIN_S = 2.0  # the promise: a bridge that died is back within 2 s, nobody doing anything


def test_a_death_after_a_steady_run_restarts_at_once_and_quick_ones_back_off() -> None:
    assert after_death(0, STEADY_S + 1) == after_death(5, STEADY_S + 1)
    first = after_death(0, 0.1)
    assert (first.delay, first.quick, first.call) == (0.0, 1, False)
    steps, quick = [], 0
    for _ in range(len(BACKOFF_S) + 2):
        step = after_death(quick, 0.1)
        steps.append(step)
        quick = step.quick
    assert [s.delay for s in steps] == [*BACKOFF_S, BACKOFF_S[-1], BACKOFF_S[-1]], "later and later, then capped"
    assert [s.call for s in steps] == [n + 1 >= CALL_AFTER for n in range(len(steps))]


def test_why_says_status_or_signal() -> None:
    assert why(3) == "exit status 3"
    assert why(-9) == "killed by signal 9, SIGKILL"
    assert why(-200) == "killed by signal 200"


def test_the_pane_hook_respawns_only_a_pane_killed_by_a_signal() -> None:
    assert pane_hook("%7") == ("set-hook", "-p", "-t", "%7", "pane-died",
                               "if-shell -F '#{pane_dead_signal}' 'respawn-pane -t %7'")


def has_messages(run: Run, n: int) -> bool:
    return len(book(run).order) >= n


def settled(run: Run) -> bool:
    """Every message has reached each agent it was for."""
    return all(e.deliveries.get(role) == "delivered" for e in book(run).entries.values() for role in e.message.to
               if role != "human")


def new_bridge(run: Run, old: int) -> int | None:
    """The pid of a bridge other than ``old`` once it holds the run's lock."""
    try:
        pid = int((run.dir / "bridge.lock").read_text().strip() or 0)
    except (OSError, ValueError):
        return None
    return pid if pid != old and bridge_running(run.dir) else None


def log_text(run: Run) -> str:
    path = run.dir / "bridge.log"
    return path.read_text() if path.exists() else ""


@pytest.mark.tmux
def test_a_bridge_sigkilled_mid_loop_is_back_by_itself_and_the_loop_finishes_each_message_once(
        tmux_server: Tmux, git_repo: Path) -> None:
    task = "Add a greet(name) function.\nIt must be tested."
    run = start_sims(tmux_server, git_repo, task, StartOptions("sim", "sim", plan=True),
                     PAIRLOOP_SIM_MODE="pair", PAIRLOOP_SIM_WORK_SECONDS="0.1")
    kills = []
    for wanted in (2, 5):  # in the plan phase, and again in the middle of the review rounds
        wait_for(partial(has_messages, run, wanted), timeout=30, what=f"{wanted} messages")
        pid = bridge_pid(run)
        os.kill(pid, signal.SIGKILL)
        killed = time.monotonic()
        wait_for(partial(new_bridge, run, pid), timeout=BACK_WITHIN_S, what="the bridge back by itself")
        kills.append(time.monotonic() - killed)
    wait_for(lambda: book(run).run_state == "agreed", timeout=60, what="the pair to agree")
    wait_for(partial(settled, run), what="every message delivered (the last one, done, after the agreement)")

    entries = book(run).entries.values()
    assert len(entries) >= 9, "the whole loop: task, plan review, approve, work, review, changes, fix, approve, done"
    for role in ("worker", "reviewer"):
        got = ids_received(run, role)
        owed = {e.message.id for e in entries if role in e.message.to}
        assert set(got) == owed and set(got.values()) == {1}, f"each message reached the {role} exactly once"
    starts = [e for e in ledger(run) if e["ev"] == "bridge" and e["state"] == "started"]
    assert len(starts) == 1 + len(kills)
    said = log_text(run)
    assert said.count("keeper: bridge died (killed by signal 9, SIGKILL)") == 2
    # The reason is in the bridge pane too (tmux draws what the keeper printed on its own clock).
    bridge_pane_shows(tmux_server, run, "keeper: bridge died (killed by signal 9, SIGKILL)", history=500)


@pytest.mark.tmux
def test_a_bridge_that_keeps_dying_backs_off_and_calls_the_human(tmux_server: Tmux, git_repo: Path) -> None:
    run = start_sims(tmux_server, git_repo)
    pid = bridge_pid(run)
    lock_file = run.dir / "bridge.lock"
    lock_file.unlink()
    lock_file.mkdir()  # a lock the bridge cannot open: every start crashes at once
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: published_bridge_down(tmux_server, run.session), timeout=10, what="the human called")
    said = log_text(run)
    assert said.count("keeper: bridge died") >= CALL_AFTER
    assert "keeper: bridge died (exit status 1) after" in said and "starting it again in 0.5 s" in said
    bridge_pane_shows(tmux_server, run, "IsADirectoryError", history=500)  # the crash shows
    word = published_bridge_down(tmux_server, run.session)
    assert word.startswith("the bridge keeps dying (exit status 1, ") and "see bridge.log" in word
    status_right = tmux_server.run("show-options", "-qv", "-t", f"={run.session}:", "status-right")[0]
    assert status_right.startswith("BRIDGE DOWN: the bridge keeps dying")
    shown = CliRunner().invoke(cli, ["status"], catch_exceptions=False).output
    assert "bridge not running" in shown and "BRIDGE: the bridge keeps dying (exit status 1" in shown
    # Backing off: the starts come later and later, not as fast as the bridge can die.
    deaths = said.count("keeper: bridge died")
    time.sleep(1.0)
    assert log_text(run).count("keeper: bridge died") - deaths <= 2

    msg = human_says(run, "reviewer", "sent while the bridge kept dying")
    lock_file.rmdir()  # repaired: the next try (at most the longest backoff later) stays up
    wait_for(lambda: delivered(run, msg.id, "reviewer"), timeout=BACKOFF_S[-1] + 10, what="the waiting message")
    probe = settle(run, "reviewer")  # a second paste of it would have come before this one
    assert ids_received(run, "reviewer") == {msg.id: 1, probe.id: 1}
    wait_for(lambda: not published_bridge_down(tmux_server, run.session), timeout=STEADY_S + 10,
             what="the call taken back once the bridge runs steadily")
    assert "keeper: bridge running steadily again" in log_text(run)


def pane_state(tmux: Tmux, run: Run) -> tuple[bool, str]:
    """Whether the bridge pane's process ended, and the signal that ended it ("" for none)."""
    info = tmux.pane_info(run.manifest.bridge_pane)
    assert info is not None
    return info.dead, info.dead_signal


def stays(predicate: Callable[[], bool], seconds: float) -> bool:
    """True when ``predicate()`` holds throughout ``seconds`` (what is proved here is that nothing happens)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not predicate():
            return False
        time.sleep(0.05)
    return True


@pytest.mark.tmux
def test_a_clean_stop_is_not_restarted(tmux_server: Tmux, git_repo: Path) -> None:
    run = start_sims(tmux_server, git_repo)
    wait_for(lambda: any(e["ev"] == "bridge" for e in ledger(run)), what="the bridge started")
    os.kill(bridge_pid(run), signal.SIGTERM)  # what a stop asks of it: it exits 0, and so does its keeper
    # The keeper exits 0 (tmux may not have reaped it yet, but no signal ended it: the pane's hook leaves it)
    wait_for(lambda: pane_state(tmux_server, run) == (True, ""), what="the bridge pane to end cleanly")
    assert stays(lambda: not bridge_running(run.dir), 2 * BACK_WITHIN_S), "a clean exit is not restarted"
    assert "keeper: bridge died" not in log_text(run)
    assert [e["state"] for e in ledger(run) if e["ev"] == "bridge"] == ["started", "stopped"]


@pytest.mark.tmux
def test_a_killed_keeper_is_started_again_by_its_pane(tmux_server: Tmux, git_repo: Path) -> None:
    run = start_sims(tmux_server, git_repo)
    old = bridge_pid(run)
    keeper = int(tmux_server.run("display-message", "-p", "-t", run.manifest.bridge_pane, "#{pane_pid}")[0])
    assert keeper != old
    os.kill(keeper, signal.SIGKILL)
    wait_for(lambda: new_bridge(run, old), timeout=5, what="a new keeper and bridge in the pane")
    dead, _ = pane_state(tmux_server, run)
    assert not dead
    msg = human_says(run, "worker", "after the keeper came back")
    wait_for(lambda: delivered(run, msg.id, "worker"), what="delivery by the new bridge")
    probe = settle(run, "worker")  # a second paste of it (by a bridge of the old keeper, say) would come first
    assert ids_received(run, "worker") == {msg.id: 1, probe.id: 1}


def proc_fds(pid: int) -> dict[int, str]:
    fd_dir = Path(f"/proc/{pid}/fd")
    return {int(fd.name): os.readlink(fd) for fd in fd_dir.iterdir()}


@pytest.mark.tmux
def test_the_bridge_is_forked_from_its_keeper_with_its_modules_loaded_and_none_of_its_files(
        tmux_server: Tmux, git_repo: Path) -> None:
    run = start_sims(tmux_server, git_repo)
    wait_for(lambda: any(e["ev"] == "bridge" for e in ledger(run)), what="the bridge started")
    keeper = int(tmux_server.run("display-message", "-p", "-t", run.manifest.bridge_pane, "#{pane_pid}")[0])
    for _ in range(2):  # the first bridge, and one started again after a SIGKILL (the keeper has said things)
        pid = bridge_pid(run)
        status = Path(f"/proc/{pid}/status").read_text()
        assert f"\nPPid:\t{keeper}\n" in status
        # A fork, not a new python: the keeper's command line (a python of its own would say `-m bridge`).
        assert Path(f"/proc/{pid}/cmdline").read_bytes() == Path(f"/proc/{keeper}/cmdline").read_bytes()
        keeper_fds, bridge_fds = proc_fds(keeper), proc_fds(pid)
        assert {fd: bridge_fds.get(fd) for fd in (0, 1, 2)} == {fd: keeper_fds[fd] for fd in (0, 1, 2)}
        kept = {target for fd, target in keeper_fds.items() if fd > 2}
        assert kept and not kept & set(bridge_fds.values()), "the keeper's wake-up pipe stays the keeper's"
        assert not any(str(run.dir) in target for target in kept), "nor does it hold a file of the run"
        os.kill(pid, signal.SIGKILL)
        wait_for(partial(new_bridge, run, pid), timeout=BACK_WITHIN_S, what="the bridge back by itself")
    assert "keeper: bridge died (killed by signal 9, SIGKILL)" in log_text(run)
