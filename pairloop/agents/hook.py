"""``python -m pairloop.agents.hook RUN_DIR ROLE KIND [PAYLOAD]``: what the agents' hooks run.

claude runs it from the per-run settings file (payload JSON on stdin); codex runs it as its ``notify`` program
(payload JSON as the last argument). It turns each payload into one small event file in
``events/<role>/`` for the bridge: ``prompt`` (a submitted prompt: a delivery receipt, or a human's own turn),
``stop`` (the turn ended), ``attention`` (the agent waits on a permission prompt), ``compacted`` (the agent
compacted its context). It must never get in the agent's way, so it always exits 0 and keeps quiet.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from bridge import (
    AgentEvent,
    InvalidManifest,
    mailbox_of,
    read_manifest,
    update_manifest,
    with_session_id,
    write_agent_event,
)

CODEX_TITLE_PROMPT = "Generate a concise"  # codex's internal title-generation turn also calls notify


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def events_from(kind: str, payload: dict[str, Any]) -> list[AgentEvent]:
    """The events one hook call stands for (none for calls the bridge should not hear about)."""
    session = _text(payload.get("session_id"))
    # Where claude keeps this conversation's transcript (every hook says): the bridge reads tokens and limits there.
    records = _text(payload.get("transcript_path")) or ""
    if kind == "prompt":
        return [AgentEvent(event="prompt", prompt=str(payload.get("prompt", "")), session_id=session, source=kind,
                           records=records)]
    if kind == "stop":
        return [AgentEvent(event="stop", session_id=session, source=kind, records=records)]
    if kind == "failed":  # claude's StopFailure: a turn ended by an API error (Stop does not fire then)
        said = " · ".join(t for t in (_text(payload.get("error")), _text(payload.get("last_assistant_message"))) if t)
        return [AgentEvent(event="stop", session_id=session, source=kind, records=records, message=said)]
    if kind == "session":  # claude's SessionStart: only a compaction is news (startup and resume are not)
        if payload.get("source") == "compact":
            return [AgentEvent(event="compacted", session_id=session, source=kind)]
        return []
    if kind == "notification":
        if payload.get("notification_type") == "permission_prompt":
            return [AgentEvent(event="attention", message=str(payload.get("message", "")), source=kind)]
        return []
    if kind == "notify":  # codex: one call at the end of each turn
        if payload.get("type") != "agent-turn-complete":
            return []
        inputs = payload.get("input-messages") or []
        latest = str(inputs[-1]) if inputs else ""
        if inputs and str(inputs[0]).startswith(CODEX_TITLE_PROMPT):
            return []
        thread = _text(payload.get("thread-id"))
        # The turn's own input is its receipt (late, but from the agent itself), then the turn's end.
        return [AgentEvent(event="prompt", prompt=latest, session_id=thread, late=True, source=kind),
                AgentEvent(event="stop", session_id=thread, source=kind, records=codex_rollout(thread))]
    return []


def codex_rollout(thread: str | None, env: dict[str, str] | None = None) -> str:
    """The rollout file codex keeps for ``thread`` ($CODEX_HOME/sessions/YYYY/MM/DD/rollout-<time>-<thread>.jsonl),
    where the bridge reads its token counts and limits: today's and yesterday's folders first, then all of them."""
    if not thread or "/" in thread or "*" in thread:
        return ""
    env = dict(os.environ) if env is None else env
    sessions = Path(env.get("CODEX_HOME") or Path(env.get("HOME", "~")).expanduser() / ".codex") / "sessions"
    pattern = f"rollout-*-{thread}.jsonl"
    now = time.time()
    for day in (now, now - 86400):
        found = sorted((sessions / time.strftime("%Y/%m/%d", time.localtime(day))).glob(pattern))
        if found:
            return str(found[-1])
    found = sorted(sessions.glob(f"*/*/*/{pattern}"))
    return str(found[-1]) if found else ""


def handle(run_dir: Path, role: str, kind: str, raw: str) -> None:
    payload = json.loads(raw) if raw.strip() else {}
    if not isinstance(payload, dict):
        return
    found = events_from(kind, payload)
    if not found:
        return
    try:
        mailbox = mailbox_of(read_manifest(run_dir), run_dir)
    except InvalidManifest:
        mailbox = run_dir
    for n, event in enumerate(found):
        write_agent_event(mailbox, role, event, n)
        if event.session_id:
            update_manifest(run_dir, with_session_id(role, event.session_id))


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    try:
        run_dir, role, kind = Path(args[0]), args[1], args[2]
        raw = args[3] if len(args) > 3 else ("" if sys.stdin.isatty() else sys.stdin.read())
        handle(run_dir, role, kind, raw)
    except Exception as exc:  # a hook must never break the agent's turn
        try:
            fd = os.open(Path(args[0]) / "hook-errors.log", os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            with os.fdopen(fd, "a", encoding="utf-8") as log:
                log.write(f"{time.strftime('%Y-%m-%dT%H:%M:%S')} {args[1:3]} {exc!r}\n")
        except Exception:
            pass
    return 0


if __name__ == "__main__":
    os.umask(0o077)
    sys.exit(main())
