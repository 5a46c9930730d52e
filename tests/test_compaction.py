"""The role card comes back after a compaction: claude's SessionStart hook (source "compact") and the sim's
``/compact`` report a ``compacted`` event; the bridge sends that agent its role card again, once per event,
recorded in the ledger like any notice of its own."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import pytest

from bridge.compaction import CARD_INTERVAL, CARD_TOPIC, card_after_compaction, card_id
from bridge.panes.envelope import parse
from bridge.panes.tmux import Tmux
from bridge.protocol.state import Protocol
from bridge.relay import Bridge
from bridge.rundir.agent_events import AgentEvent, events_dir, write_agent_event
from bridge.rundir.events import Received
from bridge.rundir.ledger import ledger_path, read_ledger
from bridge.rundir.manifest import mailbox_of, read_manifest
from pairloop.agents.hook import events_from
from tests.conftest import wait_for
from tests.helpers import book, delivered, events, prompts, start_sims
from tests.test_relay_unit import started, stop, write_claude_manifest

# claude 2.1.332's SessionStart payload after `/compact` (measured against the scripted model server).
COMPACT_PAYLOAD = {"session_id": "4b49a700-737c-4bcd-b8f6-a6d73af666a1", "transcript_path": "/x/4b49a700.jsonl",
                   "cwd": "/repo", "prompt_id": "db46c912", "hook_event_name": "SessionStart", "source": "compact",
                   "model": "claude-opus-5-5"}


def cards(entries: Mapping[str, object]) -> list[str]:
    return [i for i in entries if i.startswith("card-")]


def hear(bridge: Bridge) -> None:
    """What the relay does with the agents' hook events (without looking at panes: there is no tmux here)."""
    bridge.carry_out(bridge.intake.agent_events(bridge.referee, bridge.book).effects)


# ---- the hook ------------------------------------------------------------------------------------------


def test_claudes_session_start_after_a_compaction_is_a_compacted_event() -> None:
    (event,) = events_from("session", COMPACT_PAYLOAD)
    assert (event.event, event.session_id, event.source) == ("compacted", COMPACT_PAYLOAD["session_id"], "session")


@pytest.mark.parametrize("source", ["startup", "resume", "clear", "", None])
def test_other_session_starts_are_not_news(source: str | None) -> None:
    assert events_from("session", {**COMPACT_PAYLOAD, "source": source}) == []


def test_the_hook_program_writes_the_event_file(tmp_path: Path) -> None:
    write_claude_manifest(tmp_path)
    subprocess.run([sys.executable, "-m", "pairloop.agents.hook", str(tmp_path), "reviewer", "session"],
                   input=json.dumps(COMPACT_PAYLOAD), text=True, check=True)
    mailbox = mailbox_of(read_manifest(tmp_path), tmp_path)
    (name,) = [p.name for p in events_dir(mailbox, "reviewer").iterdir()]
    assert name.endswith("-compacted.json")
    assert not (tmp_path / "hook-errors.log").exists()


# ---- the card ------------------------------------------------------------------------------------------


def test_the_card_names_the_role_the_phase_the_round_and_the_verbs() -> None:
    protocol = Protocol()
    protocol.phase, protocol.round = "work", 3
    fx = card_after_compaction("reviewer", "1796164989000000000-compacted.json", protocol)
    (post,) = fx.posts
    assert (post.id, post.to, post.kind, post.topic) == ("card-reviewer-1796164989000000000", ("reviewer",),
                                                         "notice", CARD_TOPIC)
    assert "compacted" in post.body
    assert "You are the reviewer of this pair (your partner is the worker); work phase, round 3." in post.body
    assert "pairloop approve" in post.body and "pairloop changes" in post.body
    worker = card_after_compaction("worker", "1-compacted.json", protocol).posts[0].body
    assert "pairloop review" in worker and "pairloop done" in worker


def test_the_cards_id_is_stable_and_fits_an_envelope_whatever_the_file_is_called() -> None:
    assert card_id("worker", "12-compacted.json") == card_id("worker", "12-compacted.json") == "card-worker-12"
    odd = card_id("worker", "not a number · id evil ·.json")
    assert odd == card_id("worker", "not a number · id evil ·.json")
    assert odd.startswith("card-worker-") and " " not in odd and "·" not in odd


# ---- the bridge, without tmux ----------------------------------------------------------------------------


def test_the_bridge_sends_the_card_once_per_compaction_and_records_it(tmp_path: Path) -> None:
    write_claude_manifest(tmp_path)
    bridge, _ = started(tmp_path)
    try:
        write_agent_event(bridge.intake.mailbox, "reviewer", AgentEvent(event="compacted", source="session"))
        hear(bridge)
        (card,) = cards(bridge.book.entries)
        entry = bridge.book.entries[card]
        assert (entry.message.sender, entry.message.to, entry.topic) == ("pairloop", ("reviewer",), CARD_TOPIC)
        assert "You are the reviewer" in entry.message.body
        hear(bridge)  # nothing new heard: nothing new sent
        assert cards(bridge.book.entries) == [card]
    finally:
        stop(bridge)
    # A restarted bridge reads the same event file again: the card is in the ledger already, not sent twice.
    bridge, _ = started(tmp_path)
    try:
        hear(bridge)
        assert cards(bridge.book.entries) == [card]
        write_agent_event(bridge.intake.mailbox, "reviewer", AgentEvent(event="compacted", source="session"))
        hear(bridge)  # a second compaction: a second card
        assert len(cards(bridge.book.entries)) == 2
    finally:
        stop(bridge)
    recorded = [e for e in read_ledger(ledger_path(tmp_path)).events
                if isinstance(e, Received) and e.id.startswith("card-")]
    assert [(e.sender, e.to, e.topic) for e in recorded] == [("pairloop", ("reviewer",), CARD_TOPIC)] * 2


def test_a_worker_compaction_goes_to_the_worker_only(tmp_path: Path) -> None:
    write_claude_manifest(tmp_path)
    bridge, _ = started(tmp_path)
    try:
        write_agent_event(bridge.intake.mailbox, "worker", AgentEvent(event="compacted"))
        hear(bridge)
        (card,) = cards(bridge.book.entries)
        assert bridge.book.entries[card].message.to == ("worker",)
    finally:
        stop(bridge)


# ---- the sim on real tmux ----------------------------------------------------------------------------------


@pytest.mark.tmux
def test_a_sim_that_compacts_gets_its_role_card_delivered(tmux_server: Tmux, git_repo: Path) -> None:
    run = start_sims(tmux_server, git_repo)
    pane = run.manifest.roles["reviewer"].pane
    tmux_server.send_keys(pane, "/compact", literal=True)
    tmux_server.send_keys(pane, "Enter")
    wait_for(lambda: events(run, "reviewer", "compacted"), what="the sim's compacted event")
    card = wait_for(lambda: cards(book(run).entries), what="the role card")[0]
    wait_for(lambda: delivered(run, card, "reviewer"), what="the card delivered to the reviewer")
    (msg,), _ = parse(next(p for p in prompts(run, "reviewer") if card in p))
    assert (msg.sender, msg.topic) == ("pairloop", CARD_TOPIC)
    assert "You are the reviewer" in msg.body and "pairloop approve" in msg.body
    assert "/compact" not in prompts(run, "reviewer"), "a command to the TUI is not a prompt (no human turn)"
    assert not delivered(run, card, "worker") and book(run).entries[card].message.to == ("reviewer",)


def test_a_stream_of_forged_compactions_gets_one_card_per_interval_not_one_each(tmp_path: Path) -> None:
    """The event files are in the agents' workspace: the worker can write fifty into the reviewer's folder. The
    reviewer gets one card, not fifty prompts; another only once the interval has passed."""
    write_claude_manifest(tmp_path)
    bridge, _ = started(tmp_path)
    try:
        for n in range(50):
            write_agent_event(bridge.intake.mailbox, "reviewer", AgentEvent(event="compacted"), n)
        hear(bridge)
        assert len(cards(bridge.book.entries)) == 1
        write_agent_event(bridge.intake.mailbox, "reviewer", AgentEvent(event="compacted"))
        hear(bridge)
        assert len(cards(bridge.book.entries)) == 1, "within the interval: no second card"
        bridge.intake._card_at["reviewer"] -= CARD_INTERVAL  # the interval has passed
        write_agent_event(bridge.intake.mailbox, "reviewer", AgentEvent(event="compacted"))
        hear(bridge)
        assert len(cards(bridge.book.entries)) == 2
        write_agent_event(bridge.intake.mailbox, "worker", AgentEvent(event="compacted"))
        hear(bridge)  # each role has its own interval
        assert [bridge.book.entries[c].message.to for c in cards(bridge.book.entries)].count(("worker",)) == 1
    finally:
        stop(bridge)


def test_the_card_carries_nothing_of_the_event_file() -> None:
    """A hostile event (its name, its text) never reaches the card: the body is the bridge's own words."""
    protocol = Protocol()
    fx = card_after_compaction("reviewer", "\x1b]0;pwn\x07-$(rm -rf ~)-compacted.json", protocol)
    (post,) = fx.posts
    assert "\x1b" not in post.body and "rm -rf" not in post.body and "rm -rf" not in post.id
    assert post.id.startswith("card-reviewer-") and post.id.isascii()
