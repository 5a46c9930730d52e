"""What `pairloop status` and `pairloop log` show, as data first (for --json) and text second."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import Any

from bridge import DELIVERED, FAILED, QUEUED, Book, Entry, Tmux, TmuxError, follow_ledger, inert, read_target, targets
from pairloop.runs.lifecycle import bridge_running
from pairloop.runs.store import STOPPED, Run


def run_status(run: Run, tmux: Tmux | None) -> dict[str, Any]:
    replayed = run.replay()
    book, protocol = replayed.book, replayed.protocol
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
        "id": run.id, "state": state, "task": run.manifest.task, "session": run.session,
        "socket": run.socket_path, "session_alive": alive,
        "bridge": "running" if bridge_running(run) else "not running",
        "messages": len(book.order), "rejected": book.rejected, "agents": agents,
        "ledger": replayed.ledger_notes(),
        **protocol.summary(),
    }


def status_lines(status: dict[str, Any]) -> list[str]:
    lines = [f"run {status['id']}  {status['state']}  session {status['session']}"
             f"{'' if status['session_alive'] or status['state'] == STOPPED else ' (gone)'}"
             f"  bridge {status['bridge']}"]
    if status["task"]:
        lines.append(f"  task: {inert(status['task'].splitlines()[0][:100])}")
    relay = f"PAUSED: {inert(status['relay']['reason'])}" if status["relay"]["paused"] else "running"
    gov = status["governor"]
    lines.append(f"  {status['phase']} phase · round {status['round']}/{gov['max_rounds']} · relay {relay} · "
                 f"{len(status['verdicts'])} verdict(s) · {gov['bounces_suppressed']} bounce(s) suppressed")
    for role, a in status["agents"].items():
        lines.append(f"  {role:<8} {a['agent']:<8} {a['state']:<12} queued {a['queued']}  "
                     f"delivered {a['delivered']}  failed {a['failed']}")
    if status["rejected"]:
        lines.append(f"  {status['rejected']} malformed message file(s) set aside (see `pairloop log`)")
    lines += [f"  {inert(note)}" for note in status["ledger"]]
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
    # What a message says reaches the terminal inert: no escape sequence in a body can act on it.
    return [inert(head), *("    " + inert(line) for line in msg.body.split("\n"))]


def conversation(book: Book) -> list[Entry]:
    return [book.entries[i] for i in book.order]


def log_output(run: Run, *, follow: bool = False, as_json: bool = False, interval: float = 0.2,
               sleep: Callable[[float], None] = time.sleep) -> Iterator[str]:
    """What `pairloop log` prints: each message once; following, also each later change of a message's state.

    Following has no deadline: it reads on where it left off until the run is stopped (or the reader stops
    reading)."""
    book = Book()
    printed: dict[str, str] = {}  # message id -> the state last shown
    for part in follow_ledger(run.ledger_path):
        for event in part.events:
            book.apply(event)
        for damaged in part.damaged:
            yield json.dumps({"ledger": damaged.describe()}) if as_json else inert(damaged.describe())
        for entry in conversation(book):
            msg_id, state = entry.message.id, entry.state
            if printed.get(msg_id) == state:
                continue
            if as_json:
                yield json.dumps(message_record(entry), ensure_ascii=False)
            elif msg_id in printed:
                yield f"#{entry.seq} {state}"
            else:
                yield "\n".join(message_lines(entry))
            printed[msg_id] = state
        if not follow or book.run_state == STOPPED:
            return
        sleep(interval)
