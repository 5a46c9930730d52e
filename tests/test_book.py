"""bridge.book: replaying ledger events into what each message is waiting for."""

from __future__ import annotations

from typing import Any

from bridge.book import DELIVERED, DELIVERING, FAILED, QUEUED, Book, Entry
from bridge.rundir.message import Message


def received(msg_id: str, seq: int, sender: str = "worker", to: tuple[str, ...] = ("reviewer",),
             kind: str = "message", body: str = "body", created: float = 1.0) -> dict[str, Any]:
    return {"ts": 5.0, "ev": "received", "seq": seq, "digest": f"d-{msg_id}", "file": f"{msg_id}.json",
            "id": msg_id, "from": sender, "to": list(to), "kind": kind, "created": created, "body": body}


def state(ev: str, to: str, *ids: str, reason: str | None = None) -> dict[str, Any]:
    event: dict[str, Any] = {"ev": ev, "to": to, "ids": list(ids)}
    if reason is not None:
        event["reason"] = reason
    return event


def test_received_makes_an_entry_queued_for_its_recipient() -> None:
    book = Book().apply_all([received("a", 1, body="hi", created=2.5, kind="task", sender="human")])
    entry = book.entries["a"]
    assert entry == Entry(Message("a", "human", ("reviewer",), "hi", "task", 2.5), 1, "d-a", {"reviewer": QUEUED})
    assert entry.state == QUEUED
    assert book.order == ["a"]
    assert book.next_seq == 2
    assert [e.message.id for e in book.pending("reviewer")] == ["a"]
    assert book.pending("worker") == []


def test_received_defaults_kind_and_created() -> None:
    event = received("a", 1)
    del event["kind"], event["created"], event["digest"]
    entry = Book().apply_all([event]).entries["a"]
    assert entry.message.kind == "message"
    assert entry.message.created == 0.0
    assert entry.digest == ""


def test_a_repeated_received_event_is_ignored() -> None:
    book = Book().apply_all([received("a", 1, body="first"), received("a", 2, body="second")])
    assert book.order == ["a"]
    assert book.entries["a"].message.body == "first"
    assert book.entries["a"].seq == 1
    assert book.next_seq == 2


def test_delivering_then_delivered() -> None:
    book = Book().apply_all([received("a", 1)])
    book.apply(state(DELIVERING, "reviewer", "a"))
    assert book.entries["a"].deliveries == {"reviewer": DELIVERING}
    assert book.entries["a"].state == QUEUED
    assert [e.message.id for e in book.pending("reviewer")] == ["a"]
    book.apply(state(DELIVERED, "reviewer", "a"))
    assert book.entries["a"].deliveries == {"reviewer": DELIVERED}
    assert book.entries["a"].state == DELIVERED
    assert book.pending("reviewer") == []


def test_delivering_can_fall_back_to_queued_with_a_reason() -> None:
    book = Book().apply_all([received("a", 1), state(DELIVERING, "reviewer", "a"),
                             state(QUEUED, "reviewer", "a", reason="target busy")])
    assert book.entries["a"].deliveries == {"reviewer": QUEUED}
    assert book.entries["a"].reasons == {"reviewer": "target busy"}
    assert [e.message.id for e in book.pending("reviewer")] == ["a"]


def test_failed_is_final_and_wins() -> None:
    book = Book().apply_all([received("a", 1), state(FAILED, "reviewer", "a", reason="composer did not clear")])
    assert book.entries["a"].state == FAILED
    assert book.entries["a"].reasons == {"reviewer": "composer did not clear"}
    for ev in (QUEUED, DELIVERING, DELIVERED):
        book.apply(state(ev, "reviewer", "a", reason="late"))
    assert book.entries["a"].deliveries == {"reviewer": FAILED}
    assert book.entries["a"].reasons == {"reviewer": "composer did not clear"}
    assert book.pending("reviewer") == []


def test_delivered_is_final() -> None:
    book = Book().apply_all([received("a", 1), state(DELIVERED, "reviewer", "a")])
    for ev in (QUEUED, DELIVERING, FAILED):
        book.apply(state(ev, "reviewer", "a", reason="stale"))
    assert book.entries["a"].deliveries == {"reviewer": DELIVERED}
    assert book.entries["a"].reasons == {}
    assert book.entries["a"].state == DELIVERED


def test_state_events_for_unknown_ids_are_harmless() -> None:
    book = Book().apply_all([received("a", 1), state(DELIVERED, "reviewer", "zzz"),
                             {"ev": DELIVERED, "to": "reviewer"}])
    assert set(book.entries) == {"a"}
    assert book.entries["a"].deliveries == {"reviewer": QUEUED}


def test_a_state_event_for_a_recipient_not_addressed_is_ignored() -> None:
    book = Book().apply_all([received("a", 1, to=("reviewer",)), state(QUEUED, "worker", "a")])
    assert book.entries["a"].deliveries == {"reviewer": QUEUED}
    assert book.pending("worker") == []


def test_one_event_moves_a_whole_batch() -> None:
    book = Book().apply_all([received("a", 1), received("b", 2), received("c", 3),
                             state(DELIVERED, "reviewer", "a", "c")])
    assert [e.message.id for e in book.pending("reviewer")] == ["b"]
    assert book.count("reviewer", DELIVERED) == 2
    assert book.count("reviewer", QUEUED) == 1


def test_pending_is_ordered_by_seq_not_arrival_in_the_ledger() -> None:
    book = Book().apply_all([received("late", 3), received("early", 1), received("mid", 2),
                             received("other", 4, to=("worker",), sender="reviewer")])
    assert book.order == ["late", "early", "mid", "other"]
    assert [e.message.id for e in book.pending("reviewer")] == ["early", "mid", "late"]
    assert [e.message.id for e in book.pending("worker")] == ["other"]


def test_count_per_recipient_and_state() -> None:
    book = Book().apply_all([
        received("a", 1), received("b", 2), received("c", 3), received("d", 4),
        received("w", 5, sender="reviewer", to=("worker",)),
        state(DELIVERED, "reviewer", "a"), state(FAILED, "reviewer", "b"), state(DELIVERING, "reviewer", "c"),
    ])
    assert book.count("reviewer", DELIVERED) == 1
    assert book.count("reviewer", FAILED) == 1
    assert book.count("reviewer", DELIVERING) == 1
    assert book.count("reviewer", QUEUED) == 1
    assert book.count("worker", QUEUED) == 1
    assert book.count("worker", DELIVERED) == 0
    assert book.count("human", QUEUED) == 0


def test_a_message_to_two_recipients_is_tracked_per_recipient() -> None:
    book = Book().apply_all([received("t", 1, sender="human", to=("worker", "reviewer"), kind="task")])
    entry = book.entries["t"]
    assert entry.deliveries == {"worker": QUEUED, "reviewer": QUEUED}
    book.apply(state(DELIVERED, "worker", "t"))
    assert entry.deliveries == {"worker": DELIVERED, "reviewer": QUEUED}
    assert entry.state == QUEUED  # still on its way to the reviewer
    assert book.pending("worker") == []
    assert book.pending("reviewer") == [entry]
    book.apply(state(FAILED, "reviewer", "t", reason="agent exited"))
    assert entry.state == FAILED
    assert entry.reasons == {"reviewer": "agent exited"}
    assert entry.deliveries == {"worker": DELIVERED, "reviewer": FAILED}


def test_a_message_to_two_recipients_is_delivered_only_when_both_are() -> None:
    book = Book().apply_all([received("t", 1, sender="human", to=("worker", "reviewer")),
                             state(DELIVERED, "reviewer", "t")])
    assert book.entries["t"].state == QUEUED
    book.apply(state(DELIVERED, "worker", "t"))
    assert book.entries["t"].state == DELIVERED


def test_run_agent_and_rejected_events() -> None:
    book = Book()
    assert book.run_state == "running"
    book.apply_all([{"ev": "run", "state": "stopping"}, {"ev": "agent", "role": "worker", "state": "busy"},
                    {"ev": "agent", "role": "worker", "state": "ready"}, {"ev": "rejected", "file": "x"},
                    {"ev": "rejected", "file": "y"}, {"ev": "bridge", "state": "started"}, {"no": "ev"}])
    assert book.run_state == "stopping"
    assert book.agent_states == {"worker": "ready"}
    assert book.rejected == 2
    book.apply({"ev": "run"})
    assert book.run_state == "stopping"


def test_a_repeated_received_keeps_the_first() -> None:
    book = Book().apply_all([received("1", 1, sender="worker", kind="done"),
                             received("1", 3, sender="worker", kind="message")])
    assert book.entries["1"].message.kind == "done"
    assert book.entries["1"].seq == 1
    assert book.order == ["1"]
