"""Bridge decisions that need no tmux server."""

from __future__ import annotations

import io
from pathlib import Path

from bridge.book import DELIVERING, QUEUED, Entry
from bridge.panes.screen import DRAFT, Reading
from bridge.panes.tmux import Tmux
from bridge.relay import Bridge
from bridge.rundir.manifest import write_manifest
from bridge.rundir.message import Message
from pairloop.agents.profiles import CLAUDE_RULES


def claude_bridge(tmp_path: Path) -> Bridge:
    spec = {"agent": "claude", "pane": "%1", "submit_key": "Enter", "screen": CLAUDE_RULES.to_json()}
    write_manifest(tmp_path, {"tmux": {"session": "s", "socket_path": "/nonexistent"},
                              "roles": {"worker": spec, "reviewer": {**spec, "pane": "%2"}}})
    return Bridge(tmp_path, Tmux(socket_name="pairloop-test-never-started"), io.StringIO())


def entry(state: str) -> Entry:
    return Entry(Message("m1", "human", ("worker",), "body"), 1, "d", {"worker": state})


def test_claudes_paste_placeholder_is_ours_only_while_a_delivery_is_in_flight(tmp_path: Path) -> None:
    bridge = claude_bridge(tmp_path)
    placeholder = Reading(DRAFT, draft="[Pasted text #1 +3 lines]")
    assert bridge.our_paste("worker", placeholder, [entry(DELIVERING)])
    assert not bridge.our_paste("worker", placeholder, [entry(QUEUED)]), "then it is the human's paste"
    assert not bridge.our_paste("worker", Reading(DRAFT, draft="fix the bug"), [entry(DELIVERING)])
    assert bridge.our_paste("worker", Reading(DRAFT, draft="[pairloop] #1 message from human"), [entry(QUEUED)])
