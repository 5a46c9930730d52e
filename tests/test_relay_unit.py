"""The bridge's wiring without a tmux server: what it replays from the ledger (and says about damage), and the
situation it hands the router, with the paste it recorded before pasting."""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import msgspec
import pytest

from bridge.book import DELIVERING, QUEUED
from bridge.panes.envelope import render
from bridge.panes.screen import DRAFT, Reading
from bridge.panes.tmux import Tmux
from bridge.relay import Bridge
from bridge.report import BRIDGE_LOG
from bridge.router import Hold, Owed, Paste, SubmitOurs, route
from bridge.rundir.events import BridgeState, LedgerRepaired, encode
from bridge.rundir.ledger import Ledger, ledger_path, read_ledger
from bridge.rundir.manifest import Manifest, RoleSpec, TmuxPlace, write_manifest
from pairloop.agents.claude import CLAUDE_RULES
from tests.typed_events import delivering_paste, delivery, entry, received

TEXT = render([entry("m1", 1, body="please add tests\nfor the parser\nand run them")], {})  # four lines


def write_claude_manifest(run_dir: Path) -> None:
    spec = RoleSpec(agent="claude", pane="%1", submit_key="Enter", screen=CLAUDE_RULES)
    write_manifest(run_dir, Manifest(id="r1", repo=str(run_dir), tmux=TmuxPlace(socket_path="/nonexistent",
                                                                                 session="s"),
                                     roles={"worker": spec, "reviewer": msgspec.structs.replace(spec, pane="%2")}))


def started(run_dir: Path) -> tuple[Bridge, io.StringIO]:
    out = io.StringIO()
    bridge = Bridge(run_dir, Tmux(socket_name="pairloop-test-never-started"), out)
    bridge.start()
    return bridge, out


def stop(bridge: Bridge) -> None:
    bridge.record.ledger.close()
    bridge.report.close()
    if bridge._lock_fd is not None:
        os.close(bridge._lock_fd)


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    write_claude_manifest(tmp_path)
    return tmp_path


@pytest.fixture
def bridge(run_dir: Path) -> Iterator[Bridge]:
    started_bridge, _ = started(run_dir)
    yield started_bridge
    stop(started_bridge)


def test_claudes_paste_placeholder_is_ours_only_while_our_paste_is_in_flight(bridge: Bridge) -> None:
    bridge.add(received("m1", 1, sender="human", to=("worker",)))
    bridge.add(delivering_paste("worker", TEXT, ("m1",)), durable=True)
    placeholder = Reading(DRAFT, draft="[Pasted text #1 +3 lines]")

    def decide(reading: Reading) -> object:
        return route(replace(bridge.courier.situation("worker", 0.0), reading=reading))

    assert decide(placeholder) == SubmitOurs(("m1",))
    assert isinstance(decide(Reading(DRAFT, draft="[Pasted text #1 +12 lines]")), Hold), "not our line count"
    assert isinstance(decide(Reading(DRAFT, draft="fix the bug")), Hold)
    assert isinstance(decide(Reading(DRAFT, draft="[pairloop] #1 message from human")), Hold)
    bridge.add(delivery(QUEUED, "worker", "m1", reason="paste failed"))
    assert isinstance(decide(placeholder), Hold), "then it is the human's paste"


def test_the_situation_carries_the_recorded_paste_and_the_profiles_placeholder(bridge: Bridge) -> None:
    bridge.add(received("m1", 1, sender="human", to=("worker",)))
    assert bridge.courier.situation("worker", 0.0).paste is None
    bridge.add(delivering_paste("worker", TEXT, ("m1",)), durable=True)
    situation = bridge.courier.situation("worker", 0.0)
    assert situation.owed == (Owed("m1", delivering=True),)
    assert situation.paste == Paste(("m1",), TEXT.split("\n", 1)[0], 4)
    assert situation.paste_placeholder == CLAUDE_RULES.paste_placeholder
    assert bridge.courier.situation("reviewer", 0.0).paste is None


def test_a_restarted_bridge_still_knows_its_paste_in_flight(run_dir: Path) -> None:
    first, _ = started(run_dir)
    first.add(received("m1", 1, sender="human", to=("worker",)))
    first.add(delivering_paste("worker", TEXT, ("m1",)), durable=True)
    stop(first)  # killed between paste and submit
    second, _ = started(run_dir)
    try:
        assert second.book.entries["m1"].deliveries == {"worker": DELIVERING}
        situation = replace(second.courier.situation("worker", 0.0),
                            reading=Reading(DRAFT, draft="[Pasted text #1 +3 lines]"))
        assert route(situation) == SubmitOurs(("m1",))
    finally:
        stop(second)


def test_start_replays_past_damage_and_says_which_line_and_why(run_dir: Path) -> None:
    path = ledger_path(run_dir)
    with Ledger(path) as ledger:
        ledger.append(received("m1", 1, sender="human", to=("worker",)))
    intact = (path.read_bytes()
              + b'{"ev":"received","seq":2,"from":"human","to":["worker"],"kind":"message","body":"x"}\n'
              + b'{"ev":"\\u001b]2;owned\\u0007"}\n'
              + encode(received("m4", 4, sender="human", to=("worker",))) + b"\n")
    fragment = b'{"ev":"received","seq":3,"id":"m3"'  # a writer killed mid-line
    path.write_bytes(intact + fragment)
    bridge, out = started(run_dir)
    try:
        assert list(bridge.book.entries) == ["m1", "m4"]
        for text in (out.getvalue(), (run_dir / BRIDGE_LOG).read_text()):
            assert "ledger line 2 skipped: Object missing required field `id`" in text
            assert "ledger line 3 skipped: Invalid value '\\x1b]2;owned\\x07' - at `$.ev`" in text
            assert (f"ledger: cut off {len(fragment)} bytes of an unfinished line at offset {len(intact)} "
                    "(a write cut short)") in text
            assert "\x1b" not in text and "\x07" not in text  # shown inert, never acting on the terminal
        raw = path.read_bytes()
        assert raw.startswith(intact)
        assert fragment not in raw
        replay = read_ledger(path)
        assert [d.line for d in replay.damaged] == [2, 3]
        assert [e for e in replay.events if isinstance(e, LedgerRepaired)] == [
            LedgerRepaired(ts=replay.events[2].ts, offset=len(intact), cut_bytes=len(fragment),
                           reason="an unfinished line (a write cut short)")]
        assert isinstance(replay.events[3], BridgeState) and replay.events[3].state == "started"
    finally:
        stop(bridge)
