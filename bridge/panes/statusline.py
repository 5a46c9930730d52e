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
    relay += verify_words(protocol)
    relay += protocol.spend.words(protocol.limits.max_tokens)
    trouble = f" · DISK: {problem}" if problem else ""
    return inert(f"{' · '.join(parts)} · round {protocol.round} ({protocol.phase}) · queued {queued} · {relay}"
                 f"{' · AGREED' if agreed else ''}{trouble}")


def verify_words(protocol: Protocol) -> str:
    """The verification gate's part: what runs now, else the latest result; a configuration change flagged."""
    gates = protocol.gates
    running = gates.running()
    words = ""
    if running is not None:
        words = f" · verifying round {running.round}…"
    elif gates.verifications:
        latest = gates.verifications[max(gates.verifications)]
        words = f" · verify round {latest.round}: {'passed' if latest.result == 'passed' else latest.result.upper()}"
    if gates.config_changes:
        words += f" · CONFIG CHANGED ({', '.join(sorted(gates.config_changes))}: ignored)"
    return words
