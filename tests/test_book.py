"""bridge.book: replaying ledger events into what each message is waiting for, indexed per recipient."""

from __future__ import annotations

import msgspec

from bridge.book import DELIVERED, DELIVERING, FAILED, QUEUED, SUPPRESSED, Book, Entry
from bridge.rundir.events import (
    AgentState,
    BridgeState,
    Delivering,
    Received,
    Rejected,
    RunState,
)
from bridge.rundir.message import Message
from tests.typed_events import delivery, received


def ids(entries: list[Entry]) -> list[str]:
    return [e.message.id for e in entries]


def test_received_makes_an_entry_queued_for_its_recipient() -> None:
    book = Book().apply_all([received("a", 1, body="hi", created=2.5, kind="task", sender="human")])
    entry = book.entries["a"]
    assert entry == Entry(Message("a", "human", ("reviewer",), "hi", "task", 2.5), 1, "d-a", {"reviewer": QUEUED})
    assert entry.state == QUEUED
    assert book.order == ["a"]
    assert book.next_seq == 2
    assert ids(book.pending("reviewer")) == ["a"]
    assert book.pending("worker") == []


def test_received_defaults_created_and_digest() -> None:
    event = Received(seq=1, id="a", sender="worker", to=("reviewer",), kind="message", body="b")
    entry = Book().apply_all([event]).entries["a"]
    assert entry.message.kind == "message"
    assert entry.message.created == 0.0
    assert entry.digest == ""


def test_received_carries_note_topic_and_finding_claims() -> None:
    event = msgspec.structs.replace(received("a", 1, note="checkpoint r1", topic="not-done"),
                                    fixed=("F1.1",), disputed=("F1.2",))
    entry = Book().apply_all([event]).entries["a"]
    assert (entry.note, entry.topic) == ("checkpoint r1", "not-done")
    assert (entry.message.fixed, entry.message.disputed) == (("F1.1",), ("F1.2",))


def test_a_repeated_received_event_is_ignored() -> None:
    book = Book().apply_all([received("a", 1, body="first"), received("a", 2, body="second")])
    assert book.order == ["a"]
    assert book.entries["a"].message.body == "first"
    assert book.entries["a"].seq == 1
    assert book.next_seq == 2
    assert book.count("reviewer", QUEUED) == 1  # counted once


def test_delivering_then_delivered() -> None:
    book = Book().apply_all([received("a", 1)])
    book.apply(delivery(DELIVERING, "reviewer", "a"))
    assert book.entries["a"].deliveries == {"reviewer": DELIVERING}
    assert book.entries["a"].state == QUEUED
    assert ids(book.pending("reviewer")) == ["a"]
    book.apply(delivery(DELIVERED, "reviewer", "a"))
    assert book.entries["a"].deliveries == {"reviewer": DELIVERED}
    assert book.entries["a"].state == DELIVERED
    assert book.pending("reviewer") == []


def test_delivering_can_fall_back_to_queued_with_a_reason() -> None:
    book = Book().apply_all([received("a", 1), delivery(DELIVERING, "reviewer", "a"),
                             delivery(QUEUED, "reviewer", "a", reason="target busy")])
    assert book.entries["a"].deliveries == {"reviewer": QUEUED}
    assert book.entries["a"].reasons == {"reviewer": "target busy"}
    assert ids(book.pending("reviewer")) == ["a"]


def test_a_queued_event_without_a_reason_keeps_the_last_one() -> None:
    book = Book().apply_all([received("a", 1), delivery(QUEUED, "reviewer", "a", reason="target busy"),
                             delivery(QUEUED, "reviewer", "a")])
    assert book.entries["a"].reasons == {"reviewer": "target busy"}


def test_failed_is_final_and_wins() -> None:
    book = Book().apply_all([received("a", 1),
                             delivery(FAILED, "reviewer", "a", reason="composer did not clear")])
    assert book.entries["a"].state == FAILED
    assert book.entries["a"].reasons == {"reviewer": "composer did not clear"}
    for state in (QUEUED, DELIVERING, DELIVERED, SUPPRESSED):
        book.apply(delivery(state, "reviewer", "a", reason="late"))
    assert book.entries["a"].deliveries == {"reviewer": FAILED}
    assert book.entries["a"].reasons == {"reviewer": "composer did not clear"}
    assert book.pending("reviewer") == []
    assert book.count("reviewer", FAILED) == 1
    assert book.count("reviewer", DELIVERED) == 0


def test_delivered_is_final() -> None:
    book = Book().apply_all([received("a", 1), delivery(DELIVERED, "reviewer", "a")])
    for state in (QUEUED, DELIVERING, FAILED):
        book.apply(delivery(state, "reviewer", "a", reason="stale"))
    assert book.entries["a"].deliveries == {"reviewer": DELIVERED}
    assert book.entries["a"].reasons == {}
    assert book.entries["a"].state == DELIVERED
    assert book.pending("reviewer") == []


def test_suppressed_is_final_and_never_owed() -> None:
    book = Book().apply_all([received("a", 1), delivery(SUPPRESSED, "reviewer", "a", reason="bounce")])
    assert book.entries["a"].state == SUPPRESSED
    assert book.pending("reviewer") == []
    assert book.owed("reviewer") == 0
    book.apply(delivery(DELIVERED, "reviewer", "a"))
    assert book.entries["a"].state == SUPPRESSED


def test_state_events_for_unknown_ids_are_harmless() -> None:
    book = Book().apply_all([received("a", 1), delivery(DELIVERED, "reviewer", "zzz"),
                             delivery(DELIVERED, "reviewer")])
    assert set(book.entries) == {"a"}
    assert book.entries["a"].deliveries == {"reviewer": QUEUED}
    assert book.count("reviewer", DELIVERED) == 0


def test_a_state_event_for_a_recipient_not_addressed_is_ignored() -> None:
    book = Book().apply_all([received("a", 1, to=("reviewer",)), delivery(QUEUED, "worker", "a"),
                             delivery(DELIVERED, "worker", "a")])
    assert book.entries["a"].deliveries == {"reviewer": QUEUED}
    assert book.pending("worker") == []
    assert book.count("worker", DELIVERED) == 0


def test_one_event_moves_a_whole_batch() -> None:
    book = Book().apply_all([received("a", 1), received("b", 2), received("c", 3),
                             delivery(DELIVERED, "reviewer", "a", "c")])
    assert ids(book.pending("reviewer")) == ["b"]
    assert book.count("reviewer", DELIVERED) == 2
    assert book.count("reviewer", QUEUED) == 1


def test_pending_keeps_ledger_order_per_recipient() -> None:
    """The bridge numbers messages as it records them, so the ledger's order is their order."""
    book = Book().apply_all([received("a", 1), received("b", 2), received("other", 3, to=("worker",),
                                                                          sender="reviewer"),
                             received("c", 4), delivery(DELIVERING, "reviewer", "b"),
                             delivery(QUEUED, "reviewer", "b", reason="paste failed")])
    assert book.order == ["a", "b", "other", "c"]
    assert ids(book.pending("reviewer")) == ["a", "b", "c"]  # falling back to queued keeps its place
    assert ids(book.pending("worker")) == ["other"]


def test_owed_is_indexed_and_agrees_with_pending() -> None:
    events = [received(f"m{n}", n) for n in range(1, 1001)]
    book = Book().apply_all(events)
    book.apply_all([delivery(DELIVERED, "reviewer", *[f"m{n}" for n in range(1, 998)])])
    assert ids(book.pending("reviewer")) == ["m998", "m999", "m1000"]
    assert book.owed("reviewer") == 3
    assert book.owed("worker") == 0
    assert book.count("reviewer", DELIVERED) == 997


def test_count_per_recipient_and_state() -> None:
    book = Book().apply_all([
        received("a", 1), received("b", 2), received("c", 3), received("d", 4),
        received("w", 5, sender="reviewer", to=("worker",)),
        delivery(DELIVERED, "reviewer", "a"), delivery(FAILED, "reviewer", "b"),
        delivery(DELIVERING, "reviewer", "c"),
    ])
    assert book.count("reviewer", DELIVERED) == 1
    assert book.count("reviewer", FAILED) == 1
    assert book.count("reviewer", DELIVERING) == 1
    assert book.count("reviewer", QUEUED) == 1
    assert book.count("worker", QUEUED) == 1
    assert book.count("worker", DELIVERED) == 0
    assert book.count("human", QUEUED) == 0
    assert book.owed("reviewer") == 2  # queued and delivering


def test_a_message_to_two_recipients_is_tracked_per_recipient() -> None:
    book = Book().apply_all([received("t", 1, sender="human", to=("worker", "reviewer"), kind="task")])
    entry = book.entries["t"]
    assert entry.deliveries == {"worker": QUEUED, "reviewer": QUEUED}
    book.apply(delivery(DELIVERED, "worker", "t"))
    assert entry.deliveries == {"worker": DELIVERED, "reviewer": QUEUED}
    assert entry.state == QUEUED  # still on its way to the reviewer
    assert book.pending("worker") == []
    assert book.pending("reviewer") == [entry]
    book.apply(delivery(FAILED, "reviewer", "t", reason="agent exited"))
    assert entry.state == FAILED
    assert entry.reasons == {"reviewer": "agent exited"}
    assert entry.deliveries == {"worker": DELIVERED, "reviewer": FAILED}


def test_a_message_to_two_recipients_is_delivered_only_when_both_are() -> None:
    book = Book().apply_all([received("t", 1, sender="human", to=("worker", "reviewer")),
                             delivery(DELIVERED, "reviewer", "t")])
    assert book.entries["t"].state == QUEUED
    book.apply(delivery(DELIVERED, "worker", "t"))
    assert book.entries["t"].state == DELIVERED


def test_the_latest_paste_to_each_recipient_is_kept() -> None:
    first = Delivering(to="reviewer", ids=("a",), paste_first_line="[pairloop] #1 …", paste_lines=3)
    second = Delivering(to="reviewer", ids=("b", "c"), paste_first_line="[pairloop] #2 …", paste_lines=9)
    to_worker = Delivering(to="worker", ids=("w",), paste_first_line="[pairloop] #4 …", paste_lines=2)
    book = Book().apply_all([received("a", 1), received("b", 2), received("c", 3),
                             received("w", 4, sender="reviewer", to=("worker",)), first])
    assert book.pastes == {"reviewer": first}
    book.apply_all([delivery(DELIVERED, "reviewer", "a"), second, to_worker, delivery(DELIVERED, "reviewer", "b")])
    assert book.pastes == {"reviewer": second, "worker": to_worker}  # settling a paste does not forget it


def test_run_agent_and_rejected_events() -> None:
    book = Book()
    assert book.run_state == "running"
    book.apply_all([RunState(state="agreed"), AgentState(role="worker", state="busy"),
                    AgentState(role="worker", state="ready"), Rejected(file="x", reason="r"),
                    Rejected(file="y", reason="r"), BridgeState(state="started")])
    assert book.run_state == "agreed"
    assert book.agent_states == {"worker": "ready"}
    assert book.rejected == 2
    book.apply(RunState(state="stopped", by="human"))
    assert book.run_state == "stopped"


def test_a_repeated_received_keeps_the_first() -> None:
    book = Book().apply_all([received("1", 1, sender="worker", kind="done"),
                             received("1", 3, sender="worker", kind="message")])
    assert book.entries["1"].message.kind == "done"
    assert book.entries["1"].seq == 1
    assert book.order == ["1"]
