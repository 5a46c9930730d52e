"""Budgets, usage limits and notifications with the sim agent on real tmux: the token budget pauses the relay
and calls the human, the notify command gets its JSON, a usage limit on an agent's screen holds the relay."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

from bridge.panes.tmux import Tmux
from pairloop.runs.lifecycle import StartOptions, request_control
from pairloop.runs.store import Run
from pairloop.views import run_status, status_lines
from tests.conftest import wait_for
from tests.helpers import ledger, queued_reason, start_sims

pytestmark = pytest.mark.tmux


def notify_config(repo: Path, tmp_path: Path, extra: str = "") -> Path:
    """A .pairloop.toml whose notify command appends what it gets on stdin to a file; returns that file."""
    got = tmp_path / "notified.jsonl"
    script = tmp_path / "notify.py"
    script.write_text(f"import sys\nwith open({str(got)!r}, 'a') as f:\n    f.write(sys.stdin.read())\n")
    (repo / ".pairloop.toml").write_text(f"notify = {json.dumps([sys.executable, str(script)])}\n{extra}")
    return got


def notified(got: Path, kind: str) -> list[dict[str, Any]]:
    if not got.exists():
        return []
    return [c for c in (json.loads(line) for line in got.read_text().splitlines() if line.strip())
            if c["kind"] == kind]


def pauses(run: Run, by: str) -> list[dict[str, Any]]:
    return [e for e in ledger(run) if e["ev"] == "relay" and e["state"] == "paused" and e.get("by") == by]


def status_right(tmux: Tmux, run: Run) -> str:
    return "".join(tmux.run("show-options", "-v", "-t", f"={run.session}:", "status-right"))


def test_the_token_budget_pauses_the_relay_and_calls_the_human(tmux_server: Tmux, git_repo: Path,
                                                               tmp_path: Path) -> None:
    got = notify_config(git_repo, tmp_path, "max_tokens = 8000\n")
    # Each sim turn reports 4,000 tokens in and 1,000 out in its transcript: the worker's first turn (5,000)
    # stays within 8,000, the reviewer's first answer crosses it.
    run = start_sims(tmux_server, git_repo, "Add a greet(name) function.", StartOptions("sim", "sim"),
                     PAIRLOOP_SIM_MODE="pair", PAIRLOOP_SIM_WORK_SECONDS="0.1", PAIRLOOP_SIM_TOKENS="4000,1000")
    assert run.manifest.protocol.limits.max_tokens == 8000
    (paused,) = wait_for(lambda: pauses(run, "budget"), timeout=30, what="the budget to pause the relay")
    assert paused["reason"] == "10,000 tokens used, over the budget of 8,000"
    counted = {e["role"]: (e["input"], e["output"]) for e in ledger(run) if e["ev"] == "tokens"}
    assert counted == {"worker": (4000, 1000), "reviewer": (4000, 1000)}

    # The human is called: the notify command got one JSON object for it.
    (call,) = wait_for(lambda: notified(got, "budget"), what="the notify command's call")
    assert call == {"kind": "budget", "run": run.id, "role": "", "round": 1,
                    "reason": "10,000 tokens used, over the budget of 8,000", "text": call["text"], "ts": call["ts"]}
    assert "pairloop unpause" in call["text"]

    # The reviewer's changes wait: the relay holds them, and says why in status, the status line and --json.
    status = run_status(run, tmux_server)
    assert status["relay"] == {"paused": True, "reason": paused["reason"], "by": "budget"}
    assert status["tokens"]["roles"]["worker"]["total"] == 5000
    assert status["tokens"]["total"]["total"] == 10000 and status["tokens"]["max_tokens"] == 8000
    text = "\n".join(status_lines(status))
    assert "tokens: worker 5,000 · reviewer 5,000 · total 10,000 of the budget of 8,000" in text
    assert "relay PAUSED: 10,000 tokens used" in text
    wait_for(lambda: "tokens 10k/8k" in status_right(tmux_server, run), what="the tokens on the status line")
    # The reviewer's sim counts its turn's tokens before it sends its changes: they may arrive after the pause.
    changes = wait_for(lambda: next((e for e in ledger(run) if e["ev"] == "received" and e["kind"] == "changes"),
                                    None), what="the reviewer's changes recorded")
    wait_for(lambda: queued_reason(run, str(changes["id"]), "worker").startswith("relay paused"),
             what="the changes held by the pause")
    assert not any(e["ev"] == "delivered" and changes["id"] in e["ids"] for e in ledger(run))

    # The human lets it go on: as much again before the next stop, and the changes go out.
    request_control(run, "unpause")
    resumed = wait_for(lambda: [e for e in ledger(run) if e["ev"] == "relay" and e["state"] == "running"],
                       what="the relay to run again")
    assert resumed[0]["tokens_allowed"] == 18000
    wait_for(lambda: any(e["ev"] == "delivered" and changes["id"] in e["ids"] for e in ledger(run)),
             what="the held changes to be delivered")


def test_a_usage_limit_on_an_agents_screen_holds_the_relay_until_the_human(tmux_server: Tmux, git_repo: Path,
                                                                          tmp_path: Path) -> None:
    got = notify_config(git_repo, tmp_path)
    # Each sim works one turn, then shows a usage limit on its screen (and writes nothing about it elsewhere).
    run = start_sims(tmux_server, git_repo, "Add a greet(name) function.", StartOptions("sim", "sim"),
                     PAIRLOOP_SIM_MODE="pair", PAIRLOOP_SIM_WORK_SECONDS="0.1", PAIRLOOP_SIM_LIMIT_AFTER="1")
    (limit,) = wait_for(lambda: [e for e in ledger(run) if e["ev"] == "usage_limit"], timeout=30,
                        what="the usage limit on the worker's screen")
    assert (limit["role"], limit["source"]) == ("worker", "screen")
    assert limit["reason"].startswith("· ⚠ usage limit reached")
    (paused,) = wait_for(lambda: pauses(run, "usage limit"), what="the relay paused for it")  # the next record
    assert paused["reason"] == "the worker hit a usage or rate limit"
    (call,) = wait_for(lambda: notified(got, "usage-limit"), what="the notify command's call")
    assert (call["role"], call["run"]) == ("worker", run.id) and call["reason"].startswith("· ⚠ usage limit")

    # The relay holds whatever comes next: a message to the worker waits, however long the limit lasts.
    status = run_status(run, tmux_server)
    assert status["relay"]["by"] == "usage limit"
    assert status["usage_limits"][0]["source"] == "screen"
    assert "usage limit: the worker hit one" in "\n".join(status_lines(status))
    # The same limit still on the screen is not called again, nor does it pause the relay again once the
    # human lets it go on.
    request_control(run, "unpause")
    wait_for(lambda: [e for e in ledger(run) if e["ev"] == "relay" and e["state"] == "running"],
             what="the relay to run again")
    assert len([e for e in ledger(run) if e["ev"] == "usage_limit" and e["role"] == "worker"]) == 1
