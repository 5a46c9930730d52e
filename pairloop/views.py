"""What `pairloop status` and `pairloop log` show, as data first (for --json) and text second."""

from __future__ import annotations

import time
from typing import Any

from bridge.book import DELIVERED, FAILED, QUEUED, Book, Entry
from bridge.panes.delivery import read_target
from bridge.panes.tmux import Tmux, TmuxError
from bridge.rundir.manifest import targets
from pairloop.runs.lifecycle import bridge_running
from pairloop.runs.store import STOPPED, Run


def run_status(run: Run, tmux: Tmux | None) -> dict[str, Any]:
    book, protocol = run.replay()
    state = run.state_given(book)
    alive = False
    if tmux is not None and state != STOPPED:
        try:
            alive = tmux.has_session(run.session)
        except TmuxError:
            alive = False
    agents: dict[str, Any] = {}
    for role, target in targets(run.manifest).items():
        agent_state = "stopped"
        if alive and tmux is not None:
            agent_state = read_target(tmux, target).state
        elif state != STOPPED:
            agent_state = "session gone"
        agents[role] = {
            "agent": target.agent, "pane": target.pane, "state": agent_state,
            "queued": book.count(role, QUEUED) + book.count(role, "delivering"),
            "delivered": book.count(role, DELIVERED), "failed": book.count(role, FAILED),
        }
    return {
        "id": run.id, "state": state, "task": run.manifest.get("task", ""), "session": run.session,
        "socket": run.socket_path, "session_alive": alive,
        "bridge": "running" if bridge_running(run) else "not running",
        "messages": len(book.order), "rejected": book.rejected, "agents": agents,
        **protocol.summary(),
    }


def status_lines(status: dict[str, Any]) -> list[str]:
    lines = [f"run {status['id']}  {status['state']}  session {status['session']}"
             f"{'' if status['session_alive'] or status['state'] == STOPPED else ' (gone)'}"
             f"  bridge {status['bridge']}"]
    if status["task"]:
        lines.append(f"  task: {status['task'].splitlines()[0][:100]}")
    relay = f"PAUSED: {status['relay']['reason']}" if status["relay"]["paused"] else "running"
    gov = status["governor"]
    lines.append(f"  {status['phase']} phase · round {status['round']}/{gov['max_rounds']} · relay {relay} · "
                 f"{len(status['verdicts'])} verdict(s) · {gov['bounces_suppressed']} bounce(s) suppressed")
    for role, a in status["agents"].items():
        lines.append(f"  {role:<8} {a['agent']:<8} {a['state']:<12} queued {a['queued']}  "
                     f"delivered {a['delivered']}  failed {a['failed']}")
    if status["rejected"]:
        lines.append(f"  {status['rejected']} malformed message file(s) set aside (see `pairloop log`)")
    return lines


def message_record(entry: Entry) -> dict[str, Any]:
    msg = entry.message
    return {
        "id": msg.id, "seq": entry.seq, "from": msg.sender, "to": list(msg.to), "kind": msg.kind,
        "state": entry.state, "deliveries": dict(entry.deliveries), "reasons": dict(entry.reasons),
        "created": msg.created, "body": msg.body,
    }


def message_lines(entry: Entry) -> list[str]:
    msg = entry.message
    stamp = time.strftime("%H:%M:%S", time.localtime(msg.created))
    kind = "" if msg.kind == "message" else f" [{msg.kind}]"
    why = "; ".join(f"{to}: {r}" for to, r in entry.reasons.items() if entry.deliveries.get(to) != DELIVERED)
    state = entry.state + (f" ({why})" if why and entry.state != DELIVERED else "")
    head = f"#{entry.seq} {stamp} {msg.sender} → {', '.join(msg.to)}{kind}  {state}"
    return [head, *("    " + line for line in msg.body.splitlines())]


def conversation(book: Book) -> list[Entry]:
    return [book.entries[i] for i in book.order]
