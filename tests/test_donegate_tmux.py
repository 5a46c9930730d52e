"""The done gate explains itself, with the sim pair on real tmux: a file that a program outside the pair keeps
rewriting is named in the refusal, and the same refusal twice in a row goes to the human instead of another
round (found while testing: a sim pair cycled review → approve → done → refused six times, never told why)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from bridge.panes.tmux import Tmux
from pairloop.runs.lifecycle import StartOptions
from tests.conftest import wait_for
from tests.helpers import bridge_pane_shows, ledger, prompts, start_sims

pytestmark = pytest.mark.tmux


@pytest.fixture
def busy_writer(git_repo: Path) -> Iterator[Path]:
    """A program outside the pair that keeps rewriting an untracked file in the repository."""
    path = git_repo / "scratch.log"
    stop = threading.Event()

    def write() -> None:
        n = 0
        while not stop.wait(0.05):
            n += 1
            path.write_text(f"tick {n}\n")

    thread = threading.Thread(target=write, daemon=True)
    thread.start()
    yield path
    stop.set()
    thread.join()


def test_an_outside_program_rewriting_a_file_is_named_and_the_repeat_goes_to_the_human(
        tmux_server: Tmux, git_repo: Path, busy_writer: Path) -> None:
    run = start_sims(tmux_server, git_repo, "Add greet()", StartOptions("sim", "sim", max_rounds=10),
                     PAIRLOOP_SIM_MODE="pair", PAIRLOOP_SIM_WORK_SECONDS="0.1")
    wait_for(lambda: run.protocol().paused, timeout=60, what="the relay paused for the human")
    log = ledger(run)
    refusals = [e for e in log if e["ev"] == "done_refused"]
    assert len(refusals) == 2, "the second identical refusal goes to the human, not to another round"
    for refusal in refusals:
        assert refusal["paths"] == ["scratch.log"]
        assert "scratch.log" in str(refusal["reason"])
        assert "not in a commit of the pair" in str(refusal["reason"])
    protocol = run.protocol()
    assert protocol.paused_by == "governor"
    assert "scratch.log" in protocol.paused
    rounds_at_pause = protocol.round
    # The worker was told which path changed, and whose change it was.
    told = wait_for(lambda: [p for p in prompts(run, "worker") if "Not done yet" in p], what="the worker told")
    assert "scratch.log" in told[0] and "untracked" in told[0]
    bridge_pane_shows(tmux_server, run, "scratch.log")
    assert run.protocol().round == rounds_at_pause, "no further round once the human is called"
