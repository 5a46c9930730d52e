"""What `pairloop status` and `pairloop log` show, as data first (for --json) and text second."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterator
from typing import Any

from bridge import (
    DELIVERED,
    EXITED,
    FAILED,
    QUEUED,
    SENDERS,
    Book,
    Entry,
    MalformedMessage,
    Message,
    Tmux,
    TmuxError,
    follow_ledger,
    inert,
    published_bridge_down,
    published_problem,
    read_message_file,
    read_target,
    targets,
)
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
        agent_state, detail = "stopped", ""
        if alive and tmux is not None:
            reading = read_target(tmux, target)
            agent_state, detail = reading.state, reading.detail if reading.state == EXITED else ""
        elif state != STOPPED:
            agent_state = "session gone"
        agents[role] = {
            "agent": target.agent, "pane": target.pane, "state": agent_state, "detail": detail,
            "queued": book.count(role, QUEUED) + book.count(role, "delivering"),
            "delivered": book.count(role, DELIVERED), "failed": book.count(role, FAILED),
        }
    bridge = bridge_running(run)
    # The bridge keeps what it cannot write (a full disk) on its tmux session: the ledger may be what fails.
    problem = published_problem(tmux, run.session) if alive and bridge and tmux is not None else ""
    # A bridge that keeps dying: its keeper says so on the session while it tries again.
    bridge_down = published_bridge_down(tmux, run.session) if alive and tmux is not None else ""
    return {
        "id": run.id, "state": state, "task": run.manifest.task, "session": run.session,
        "socket": run.socket_path, "session_alive": alive,
        "bridge": "running" if bridge else "not running", "problem": problem, "bridge_down": bridge_down,
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
        # Agent names come from .pairloop.toml and an exit's detail from the pane: both shown inert.
        why = f"  ({inert(a['detail'])})" if a.get("detail") else ""
        lines.append(f"  {role:<8} {inert(a['agent']):<8} {a['state']:<12} queued {a['queued']}  "
                     f"delivered {a['delivered']}  failed {a['failed']}{why}")
    lines += verify_lines(status)
    lines += spending_lines(status)
    if status.get("problem"):
        lines.append(f"  DISK: {inert(status['problem'])} (the bridge keeps trying; nothing is lost)")
    if status.get("bridge_down"):
        lines.append(f"  BRIDGE: {inert(status['bridge_down'])} (messages wait in the outbox; nothing is lost)")
    if status["rejected"]:
        lines.append(f"  {status['rejected']} outbox file(s) refused: malformed messages set aside, or temp files "
                     f"a crashed writer left, removed (see bridge.log)")
    lines += [f"  {inert(note)}" for note in status["ledger"]]
    return lines


def spending_lines(status: dict[str, Any]) -> list[str]:
    """Each agent's tokens, from its own records, against the budget; the usage limits the agents hit."""
    tokens = status.get("tokens") or {}
    lines = []
    if tokens.get("roles"):
        each = " · ".join(f"{role} {t['total']:,}" for role, t in tokens["roles"].items())
        budget = f" of the budget of {tokens['max_tokens']:,}" if tokens.get("max_tokens") else ""
        lines.append(f"  tokens: {each} · total {tokens['total']['total']:,}{budget}")
    elif tokens.get("max_tokens"):
        lines.append(f"  tokens: none counted yet (budget {tokens['max_tokens']:,})")
    for limit in (status.get("usage_limits") or [])[-2:]:
        lines.append(f"  usage limit: the {limit['role']} hit one ({inert(limit['reason'][:100])}; seen on its "
                     f"{'screen' if limit['source'] == 'screen' else 'records'})")
    return lines


def verify_lines(status: dict[str, Any]) -> list[str]:
    """The verification gate: each round's latest result; a configuration change the bridge ignored."""
    lines = []
    for v in status.get("verifications", []):
        took = f", {v['duration']:.1f} s" if v["result"] != "running" else ""
        code = f", exit status {v['exit_status']}" if v["exit_status"] is not None else ""
        lines.append(f"  verify round {v['round']}: {v['result']}{code}{took}  (`{inert(v['command'])}`, "
                     f"log {inert(v['log'])})")
    for key, now in status.get("config_changes", {}).items():
        lines.append(f"  CONFIG CHANGED: {key} in the working tree is now {inert(now) or 'unset'}: ignored, the "
                     "bridge runs what was recorded at start")
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


# json.dumps escapes C0 controls; with ensure_ascii=False it writes DEL, the C1 controls (8-bit CSI and OSC among
# them) and the Unicode line separators raw. Those are escaped too: the exact text, and nothing a terminal acts on.
_RAW_IN_JSON = re.compile("[\x7f-\x9f\u2028\u2029]")


def json_line(data: Any) -> str:
    """One JSON document on one line, readable (UTF-8 stays as it is) and inert on a terminal."""
    return _RAW_IN_JSON.sub(lambda m: f"\\u{ord(m[0]):04x}", json.dumps(data, ensure_ascii=False))


def conversation(book: Book) -> list[Entry]:
    return [book.entries[i] for i in book.order]


WAITING = "waiting"
WAITING_NOTE = "not yet picked up by the bridge"


def waiting_messages(run: Run, book: Book) -> list[Message]:
    """Messages in the outbox the ledger does not have yet (the bridge is down, or has not looked yet), oldest
    first. The outbox is anyone's to write: files that are not plainly messages are not shown."""
    found = []
    for sender in SENDERS:
        folder = run.outbox / sender
        try:
            names = sorted(n for n in (p.name for p in folder.iterdir()) if not n.startswith("."))
        except OSError:
            continue
        for name in names:
            try:
                message = read_message_file(folder / name, run.outbox)
            except (MalformedMessage, OSError):  # refused, or claimed meanwhile
                continue
            if message.id not in book.entries:
                found.append(message)
    return sorted(found, key=lambda m: (m.created, m.id))


def waiting_record(msg: Message) -> dict[str, Any]:
    return {"id": msg.id, "seq": None, "from": msg.sender, "to": list(msg.to), "kind": msg.kind, "state": WAITING,
            "waiting": WAITING_NOTE, "deliveries": {}, "reasons": {}, "created": msg.created, "body": msg.body}


def waiting_lines(msg: Message) -> list[str]:
    stamp = time.strftime("%H:%M:%S", time.localtime(msg.created))
    kind = "" if msg.kind == "message" else f" [{msg.kind}]"
    head = f"#- {stamp} {msg.sender} → {', '.join(msg.to)}{kind}  {WAITING}: {WAITING_NOTE}"
    return [inert(head), *("    " + inert(line) for line in msg.body.split("\n"))]


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
                yield json_line(message_record(entry))
            elif msg_id in printed:
                yield f"#{entry.seq} {state}"
            else:
                yield "\n".join(message_lines(entry))
            printed[msg_id] = state
        for msg in waiting_messages(run, book):
            if msg.id not in printed:
                yield json_line(waiting_record(msg)) if as_json else "\n".join(waiting_lines(msg))
                printed[msg.id] = WAITING
        if not follow or book.run_state == STOPPED:
            return
        sleep(interval)
