"""Helpers for tests that run real tmux with the sim agent."""

from __future__ import annotations

import errno
import json
import os
from collections import Counter
from pathlib import Path
from typing import Any

import msgspec

from bridge import (
    Book,
    Manifest,
    Message,
    RoleSpec,
    Tmux,
    TmuxPlace,
    as_dict,
    bridge_running,
    events_of,
    ids_in,
    write_manifest,
)
from pairloop.agents.claude import CLAUDE_RULES
from pairloop.runs.lifecycle import StartOptions, launch_bridge, send_message, start_run, wait_until_running
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


def bridge_pane_shows(tmux: Tmux, run: Run, *texts: str, history: int = 0) -> str:
    """The bridge pane's screen (with ``history`` lines of scrollback) once it shows every text: the bridge prints
    after it writes the ledger, and tmux draws what it printed on its own clock, so poll."""
    from tests.conftest import wait_for
    pane = run.manifest.bridge_pane

    def screen() -> str | None:
        shown = tmux.capture(pane, history=history)
        return shown if all(t in shown for t in texts) else None

    return wait_for(screen, what=f"the bridge pane to show {texts!r}")


def settle(run: Run, role: str) -> Message:
    """A last message to ``role`` (from its partner: nothing is mirrored), once delivered. The bridge delivers in
    order and hears every hook event before it pastes, so by then whatever was owed to ``role``, pasted into it
    or typed there before has reached it and been recorded: a count read afterwards is final, not early."""
    from tests.conftest import wait_for

    partner = "reviewer" if role == "worker" else "worker"
    probe = send_message(run, partner, (role,), f"the last word to the {role}")
    wait_for(lambda: delivered(run, probe.id, role), what=f"a last message to the {role}")
    return probe


def auto_summary_written(run: Run) -> bool:
    """The bridge's own `pairloop summarize` (started on agreement) has finished: it says "wrote" last, after
    PR_NOTES.md, PLAN.md and the report are written."""
    log = run.dir / "on-agreement.log"
    return log.exists() and "wrote " in log.read_text() and (run.dir / "PR_NOTES.md").exists()


def bridge_pid(run: Run) -> int:
    """The running bridge's pid (it writes it into its lock file right after taking the lock)."""
    from tests.conftest import wait_for

    text = wait_for(lambda: (run.dir / "bridge.lock").read_text().strip(), what="the bridge pid")
    return int(str(text))


def ids_received(run: Run, role: str) -> Counter[str]:
    """How many times each message id reached ``role`` (by the sim's receipts): every count must be 1."""
    return Counter(i for prompt in prompts(run, role) for i in ids_in(prompt))


def restart_bridge(tmux: Tmux, run: Run) -> None:
    """Start the bridge again in its pane, as `pairloop start` does (the old one gone), and wait until it holds
    the run's lock."""
    from tests.conftest import wait_for

    (run.dir / "bridge.lock").unlink(missing_ok=True)  # the pid read next must be the new bridge's
    launch_bridge(tmux, str(run.manifest.bridge_pane), run.dir)
    wait_for(lambda: bridge_running(run.dir), what="the bridge to start again")


def fill_disk(folder: Path) -> Path:
    """Fill the file system holding ``folder`` to the last byte with one file (remove it to free the space)."""
    filler = folder / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        for size in (1024 * 1024, 4096, 1):
            chunk = b"\0" * size
            try:
                while True:
                    os.write(fd, chunk)
            except OSError as exc:
                if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
                    raise
    finally:
        os.close(fd)
    return filler


def run_without_tmux(repo: Path, home: Path) -> Path:
    """A run directory (under the state root ``home``) for ``repo``, with its mailbox and no tmux session or
    bridge behind it: for what the command line does with the files alone."""
    run_dir = home / "runs" / "20250101-000000-abcd"
    run_dir.mkdir(parents=True)
    spec = RoleSpec(agent="claude", pane="%1", submit_key="Enter", screen=CLAUDE_RULES)
    mailbox = repo / ".pairloop" / "runs" / run_dir.name
    (mailbox / "outbox").mkdir(parents=True)
    write_manifest(run_dir, Manifest(id=run_dir.name, repo=str(repo), mailbox=str(mailbox), state="running",
                                     tmux=TmuxPlace(socket_path="/nonexistent", session="s"),
                                     roles={"worker": spec, "reviewer": msgspec.structs.replace(spec, pane="%2")}))
    return run_dir
