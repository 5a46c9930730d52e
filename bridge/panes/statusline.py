"""The tmux status line's text. Pure."""

from __future__ import annotations

from bridge.panes.lookout import AgentView
from bridge.panes.sanitize import inert
from bridge.protocol.state import Protocol
from bridge.rundir.manifest import Target

HOOK_WORDS = {"busy": "working", "attention": "waiting for you"}
SCREEN_WORDS = {"ready": "idle", "dialog": "dialog", "draft": "human typing", "busy": "working"}


def status_text(targets: dict[str, Target], watch: dict[str, AgentView], protocol: Protocol, queued: int,
                agreed: bool, problem: str = "") -> str:
    """Each role's agent and state, the round and phase, what is queued, whether the relay is paused."""
    parts = []
    for role, target in targets.items():
        w = watch[role]
        state = HOOK_WORDS.get(w.hook, "") or SCREEN_WORDS.get(w.state, w.state or "starting")
        parts.append(f"{role} {target.agent} {state}")
    relay = f"PAUSED ({protocol.paused})" if protocol.paused else "relay on"
    trouble = f" · DISK: {problem}" if problem else ""
    return inert(f"{' · '.join(parts)} · round {protocol.round} ({protocol.phase}) · queued {queued} · {relay}"
                 f"{' · AGREED' if agreed else ''}{trouble}")
