"""Helpers for tests that run real tmux with the sim agent."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from bridge import Book, Message, Tmux, as_dict, events_of
from pairloop.runs.lifecycle import StartOptions, send_message, start_run, wait_until_running
from pairloop.runs.store import Run


def start_sims(tmux: Tmux, repo: Path, task: str = "", options: StartOptions | None = None, **env: str) -> Run:
    """A run with two sim agents that only record what they receive (unless env says otherwise)."""
    full_env = {**os.environ, "PAIRLOOP_SIM_MODE": "quiet", "PAIRLOOP_SIM_WORK_SECONDS": "0", **env}
    run = start_run(tmux, repo, task, options or StartOptions("sim", "sim"), full_env)
    wait_until_running(tmux, run)
    return run


def events(run: Run, role: str, kind: str) -> list[dict[str, Any]]:
    """The sim's receipts (kind "prompt") or turn ends (kind "stop"), oldest first."""
    folder = run.events_dir(role)
    names = sorted((p for p in folder.glob(f"*-{kind}.json")), key=lambda p: int(p.name.split("-")[0]))
    return [json.loads(p.read_text()) | {"file": p.name} for p in names]


def prompts(run: Run, role: str) -> list[str]:
    return [str(e["prompt"]) for e in events(run, role, "prompt")]


def ledger(run: Run) -> list[dict[str, Any]]:
    return [as_dict(e) for e in events_of(run.ledger_path)]


def book(run: Run) -> Book:
    return run.book()


def human_says(run: Run, to: str, body: str) -> Message:
    return send_message(run, "human", (to,), body)


def delivered(run: Run, msg_id: str, to: str) -> bool:
    entry = book(run).entries.get(msg_id)
    return entry is not None and entry.deliveries.get(to) == "delivered"


def queued_reason(run: Run, msg_id: str, to: str) -> str:
    for event in ledger(run):
        if event.get("ev") == "queued" and msg_id in event.get("ids", []) and event.get("to") == to:
            return str(event.get("reason", ""))
    return ""


def bridge_pid(run: Run) -> int:
    """The running bridge's pid (it writes it into its lock file right after taking the lock)."""
    from tests.conftest import wait_for

    text = wait_for(lambda: (run.dir / "bridge.lock").read_text().strip(), what="the bridge pid")
    return int(str(text))
