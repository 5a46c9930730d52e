"""The bridge's start-up replay: the same views as learning each event in turn, in less time."""

from __future__ import annotations

import copy
import gc
import typing
from collections.abc import Iterator
from pathlib import Path

import pytest

from bridge.book import Book
from bridge.protocol import state
from bridge.protocol.referee import Referee
from bridge.protocol.state import PASSES_BY, Protocol
from bridge.record import Record
from bridge.replay import collector_paused, fold
from bridge.rundir.events import (
    AgentState,
    Answered,
    AnyEvent,
    BridgeState,
    HumanTurn,
    LedgerRepaired,
    ProtocolStarted,
    Recording,
    Rejected,
    Relay,
    Round,
    TokenUsage,
    Verdict,
)
from bridge.rundir.ledger import Ledger
from bridge.rundir.manifest import Manifest, TmuxPlace
from tests.typed_events import delivering_paste, delivery, received


def passing_by() -> list[AnyEvent]:
    """One event of each kind the protocol skips."""
    return [delivery("queued", "worker", "a"), delivering_paste("worker", "hi", ("a",)),
            delivery("delivered", "worker", "a"), delivery("failed", "worker", "a", reason="x"),
            AgentState(role="worker", state="busy"), BridgeState(state="started", pid=1),
            HumanTurn(role="worker", text="hi", event_file="e1"), Answered(role="worker", dialog="trust"),
            Recording(role="worker", state="limit"), LedgerRepaired(offset=1, cut_bytes=2),
            Rejected(file="f", reason="r")]


def history() -> list[AnyEvent]:
    """A small run: the protocol, a round, messages, deliveries, a verdict, hook and bridge events."""
    return [ProtocolStarted(phase="work"), BridgeState(state="started", pid=1),
            received("t", 1, sender="human", to=("worker",), kind="task"), delivery("delivered", "worker", "t"),
            Round(round=1, ref="refs/r1", commit="c1", tree="t1", phase="work"),
            received("r1", 2, sender="worker", kind="review", body="ready"),
            delivering_paste("reviewer", "ready", ("r1",)), delivery("delivered", "reviewer", "r1"),
            received("ch", 3, sender="reviewer", to=("worker",), kind="changes", body="1. fix it"),
            Verdict(id="ch", by="reviewer", kind="changes", round=1, checkpoint="refs/r1", tree="t1",
                    phase="work", findings=(("F1.1", "fix it"),)),
            HumanTurn(role="worker", text="hurry", event_file="ev-7"), AgentState(role="worker", state="busy"),
            TokenUsage(role="worker", input=10, output=2), Relay(state="paused", by="human", reason="lunch"),
            received("h", 4, sender="human", to=("reviewer",), body="wait"), *passing_by()]


def manifest(tmp_path: Path) -> Manifest:
    return Manifest(id="r1", repo=str(tmp_path), tmux=TmuxPlace(socket_path="/nonexistent", session="s"))


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[Ledger]:
    with Ledger(tmp_path / "ledger.jsonl") as opened:
        yield opened


def test_every_kind_the_protocol_skips_is_one_it_has_no_use_for(monkeypatch: pytest.MonkeyPatch) -> None:
    """With the shortcut off, each skipped kind changes nothing: the protocol, its gates and its spend."""
    assert set(typing.get_args(AnyEvent)) >= PASSES_BY
    assert {type(e) for e in passing_by()} == PASSES_BY
    monkeypatch.setattr(state, "PASSES_BY", frozenset())
    protocol = Protocol()
    for event in history():
        protocol.apply(event)
    before = copy.deepcopy(protocol)
    for event in passing_by():
        protocol.apply(event)
    assert protocol == before


def test_skipped_kinds_are_not_looked_at(monkeypatch: pytest.MonkeyPatch) -> None:
    protocol = Protocol()

    def looked(*args: object) -> None:
        raise AssertionError("the gates were asked about an event the protocol skips")

    monkeypatch.setattr(protocol.gates, "apply", looked)
    for event in passing_by():
        protocol.apply(event)


def test_fold_is_learning_each_event_in_turn(tmp_path: Path, ledger: Ledger) -> None:
    events = history()
    one_by_one = Record(ledger, Book(), Referee(manifest(tmp_path), tmp_path))
    for event in events:
        one_by_one.learn(event)
    folded = Record(ledger, Book(), Referee(manifest(tmp_path), tmp_path))
    fold(folded, events)
    assert folded.book == one_by_one.book
    assert folded.referee.protocol == one_by_one.referee.protocol
    assert folded.book.human_turns == ["ev-7", "e1"], "a restarted bridge does not hear these again"
    assert folded.book.pending("reviewer")[0].message.id == "h"
    assert folded.referee.protocol.paused == "lunch"


def test_the_collector_is_paused_then_what_lived_is_frozen() -> None:
    assert gc.isenabled()
    frozen = gc.get_freeze_count()
    try:
        with pytest.raises(RuntimeError), collector_paused():
            kept = [[i] for i in range(1000)]
            assert not gc.isenabled()
            raise RuntimeError("a replay that fails still gives the collector back")
        assert gc.isenabled()
        assert gc.get_freeze_count() >= frozen + len(kept)
    finally:
        gc.unfreeze()
