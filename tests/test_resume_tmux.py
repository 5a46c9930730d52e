"""`pairloop resume` on real tmux with the sim agent: a dead server, a stopped run, one agent exited, the bridge
down, everything up, and a conversation that cannot be resumed."""

from __future__ import annotations

import os
import signal
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from bridge import bridge_running, parse_envelope
from bridge.panes.tmux import Tmux
from pairloop.agents.sim_agent import session_file
from pairloop.runs.lifecycle import StartOptions, process_alive, stop_run
from pairloop.runs.resume import resume_run, wait_until_ready
from pairloop.runs.store import Run, load_run
from tests.conftest import wait_for
from tests.helpers import book, bridge_pid, delivered, human_says, ids_received, ledger, prompts, start_sims

pytestmark = pytest.mark.tmux

PAIR = {"PAIRLOOP_SIM_MODE": "pair", "PAIRLOOP_SIM_WORK_SECONDS": "0.4"}
QUIET = {"PAIRLOOP_SIM_MODE": "quiet", "PAIRLOOP_SIM_WORK_SECONDS": "0"}
SIMS = StartOptions("sim", "sim")


def env(extra: dict[str, str]) -> dict[str, str]:
    return {**os.environ, **extra}


def of_kind(log: list[dict[str, Any]], ev: str) -> list[dict[str, Any]]:
    return [e for e in log if e["ev"] == ev]


def pane_pids(tmux: Tmux, run: Run) -> dict[str, int]:
    panes = {role: spec.pane for role, spec in run.manifest.roles.items()} | {"bridge": run.manifest.bridge_pane}
    out = {}
    for role, pane in panes.items():
        info = tmux.pane_info(pane)
        assert info is not None
        out[role] = info.pid
    return out


def kill_server(tmux: Tmux, run: Run) -> None:
    """What a reboot or `tmux kill-server` does to a run: every pane hung up, the bridge with them."""
    pids = list(pane_pids(tmux, run).values())
    tmux.kill_server()
    wait_for(lambda: all(not process_alive(p) for p in pids), what="the panes' processes to end")
    wait_for(lambda: not bridge_running(run.dir), what="the bridge to end")


def notices(run: Run, role: str, topic: str) -> list[str]:
    """The bridge's notices of ``topic`` that reached ``role`` (by the sim's receipts)."""
    return [m.body for p in prompts(run, role) for m in parse_envelope(p)[0]
            if m.sender == "pairloop" and m.topic == topic]


def delivered_once(run: Run) -> None:
    """Every message reached each of its agent recipients exactly once: one delivered record in the ledger, and
    one receipt from the agent (old and new processes alike)."""
    log = ledger(run)
    records = Counter((i, e["to"]) for e in of_kind(log, "delivered") for i in e["ids"])
    assert records and all(n == 1 for n in records.values()), records
    for role in ("worker", "reviewer"):
        received = ids_received(run, role)
        assert received and all(n == 1 for n in received.values()), (role, received)
        owed = {e["id"] for e in of_kind(log, "received") if role in e["to"]}
        assert owed == set(received), (role, owed ^ set(received))


def test_server_killed_mid_review_loop_then_resume_the_pair_agrees_each_message_once(
        tmux_server: Tmux, git_repo: Path) -> None:
    run = start_sims(tmux_server, git_repo, "Add a greet(name) function.", StartOptions("sim", "sim"), **PAIR)
    # In the middle of the loop: the reviewer asked for changes, the worker is on them.
    wait_for(lambda: [v for v in of_kind(ledger(run), "verdict") if v["kind"] == "changes"], timeout=30,
             what="the first changes request")
    kill_server(tmux_server, run)
    done = resume_run(tmux_server, load_run(run.dir), env(PAIR))
    assert done.reopened and done.bridge
    assert [(o.role, o.resumed) for o in done.outcomes] == [("worker", True), ("reviewer", True)]
    wait_for(lambda: book(run).run_state == "agreed", timeout=60, what="the pair to agree after the resume")
    wait_for(lambda: not any(book(run).owed(r) for r in ("worker", "reviewer")), what="the last notices delivered")
    log = ledger(run)
    # The reviewer went on with its own conversation: it asked for changes once, and approved the fix.
    assert [v["kind"] for v in of_kind(log, "verdict")] == ["changes", "approve"]
    for role in ("worker", "reviewer"):
        (notice,) = notices(run, role, "resumed")
        assert f"You are the {role} of this pair" in notice and "round" in notice
    delivered_once(run)
    # The session is the same one, opened again, with the manifest naming its new panes.
    run = load_run(run.dir)
    assert tmux_server.has_session(run.session)
    assert set(pane_pids(tmux_server, run)) == {"worker", "reviewer", "bridge"}


def test_an_agent_killed_is_relaunched_alone_on_its_conversation(tmux_server: Tmux, git_repo: Path) -> None:
    run = start_sims(tmux_server, git_repo, "", SIMS, **QUIET)
    first = human_says(run, "reviewer", "before")
    wait_for(lambda: delivered(run, first.id, "reviewer"), what="the first message")
    before = pane_pids(tmux_server, run)
    bridge = bridge_pid(run)
    os.kill(before["reviewer"], signal.SIGKILL)
    wait_for(lambda: (i := tmux_server.pane_info(run.manifest.roles["reviewer"].pane)) is not None and i.dead,
             what="the reviewer's pane to die")
    done = resume_run(tmux_server, run, env(QUIET))
    assert not done.reopened and not done.bridge
    assert [(o.role, o.resumed) for o in done.outcomes] == [("reviewer", True)]
    after = pane_pids(tmux_server, load_run(run.dir))
    assert after["worker"] == before["worker"] and after["bridge"] == before["bridge"]
    assert after["reviewer"] != before["reviewer"]
    assert bridge_pid(run) == bridge
    (notice,) = wait_for(lambda: notices(run, "reviewer", "resumed"), what="the resume notice")
    assert "You are the reviewer of this pair" in notice
    assert not notices(run, "worker", "resumed")
    later = human_says(run, "reviewer", "after")
    wait_for(lambda: delivered(run, later.id, "reviewer"), what="a message after the resume")
    screen = tmux_server.capture(run.manifest.roles["reviewer"].pane)
    assert "(resumed the earlier conversation)" in screen
    assert ids_received(run, "reviewer")[first.id] == 1


def test_only_the_bridge_down_restarts_only_the_bridge(tmux_server: Tmux, git_repo: Path) -> None:
    run = start_sims(tmux_server, git_repo, "", SIMS, **QUIET)
    before = pane_pids(tmux_server, run)
    os.kill(bridge_pid(run), signal.SIGTERM)  # a clean exit: its keeper ends too, and nothing restarts it
    wait_for(lambda: not bridge_running(run.dir), what="the bridge to end")
    wait_for(lambda: (i := tmux_server.pane_info(run.manifest.bridge_pane)) is not None and i.dead,
             what="the bridge pane to die")
    waiting = human_says(run, "worker", "sent while the bridge was down")
    done = resume_run(tmux_server, run, env(QUIET))
    assert done.bridge and not done.reopened and done.outcomes == []
    wait_for(lambda: delivered(run, waiting.id, "worker"), what="the waiting message")
    after = pane_pids(tmux_server, run)
    assert after["worker"] == before["worker"] and after["reviewer"] == before["reviewer"]
    assert after["bridge"] != before["bridge"]


def test_everything_up_is_left_alone(tmux_server: Tmux, git_repo: Path) -> None:
    run = start_sims(tmux_server, git_repo, "", SIMS, **QUIET)
    before = pane_pids(tmux_server, run)
    done = resume_run(tmux_server, run, env(QUIET))
    assert done.nothing_to_do and "everything is running" in done.lines()[0]
    assert pane_pids(tmux_server, run) == before


def test_a_stopped_run_resumed_runs_again(tmux_server: Tmux, git_repo: Path) -> None:
    run = start_sims(tmux_server, git_repo, "", SIMS, **QUIET)
    first = human_says(run, "worker", "one")
    wait_for(lambda: delivered(run, first.id, "worker"), what="the first message")
    assert stop_run(tmux_server, run)
    assert load_run(run.dir).stopped
    done = resume_run(tmux_server, load_run(run.dir), env(QUIET))
    run = load_run(run.dir)
    assert done.reopened and not run.stopped and book(run).run_state == "running"
    assert of_kind(ledger(run), "run")[-1]["state"] == "running"
    wait_until_ready(tmux_server, run)
    second = human_says(run, "worker", "two")
    wait_for(lambda: delivered(run, second.id, "worker"), what="a message after the resume")
    assert ids_received(run, "worker")[first.id] == 1


def test_a_conversation_that_cannot_be_resumed_starts_afresh_with_a_recap_and_says_so(
        tmux_server: Tmux, git_repo: Path) -> None:
    run = start_sims(tmux_server, git_repo, "Add a greet(name) function.", SIMS, **QUIET)
    wait_for(lambda: prompts(run, "worker"), what="the task")
    kill_server(tmux_server, run)
    worker_session = str(run.manifest.roles["worker"].session_id)
    session_file(run.dir, worker_session).unlink()  # its conversation is lost: the sim refuses, as claude does
    done = resume_run(tmux_server, load_run(run.dir), env(QUIET))
    outcomes = {o.role: o for o in done.outcomes}
    assert outcomes["reviewer"].resumed and not outcomes["worker"].resumed
    assert "No conversation found with session ID" in outcomes["worker"].reason
    assert any("worker (sim): could not resume its conversation" in line and "started afresh" in line
               for line in done.lines())
    (recap,) = wait_for(lambda: notices(run, "worker", "recap"), what="the recap")
    assert "you start afresh" in recap and "No conversation found" in recap and "Add a greet(name)" in recap
    # Said in the ledger too, and the worker is on a new conversation of its own.
    assert any(e.get("topic") == "recap" and "worker" in e["to"] for e in of_kind(ledger(run), "received"))
    assert load_run(run.dir).manifest.roles["worker"].session_id not in (None, worker_session)
    wait_for(lambda: notices(run, "reviewer", "resumed"), what="the reviewer's resume notice")
