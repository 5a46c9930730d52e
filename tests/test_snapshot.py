"""The ledger's snapshot: a restarted bridge begins from the views the one before it kept, and they are exactly the
fold of the whole ledger; every snapshot it cannot trust is refused, said why, and the whole ledger read instead."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import msgspec
import pytest

from bridge.book import DELIVERED, QUEUED, Book
from bridge.protocol.referee import Referee
from bridge.record import Record
from bridge.replay import PATIENCE_S, RETRY_S, SNAPSHOT_EVERY, Keeping, Recalled, Views, fold, recall
from bridge.rundir import snapshot
from bridge.rundir.events import (
    AnyEvent,
    Delivered,
    FindingClaims,
    HumanTurn,
    Received,
    Round,
    TokenUsage,
    Verdict,
    VerifyFinished,
    VerifyStarted,
)
from bridge.rundir.ledger import Ledger, append_once, read_ledger
from bridge.rundir.snapshot import MAGIC, snapshot_path
from tests.helpers import fill_disk
from tests.test_replay import history, manifest
from tests.typed_events import delivering_paste, delivery, received

KEY = bytes(range(32))
OTHER_KEY = bytes(range(1, 33))


def conversation(first_seq: int, n: int, prefix: str = "m") -> list[AnyEvent]:
    """``n`` messages back and forth, most delivered; some still queued, one being pasted, one failed."""
    events: list[AnyEvent] = []
    for i in range(n):
        sender, to = ("worker", "reviewer") if i % 2 else ("reviewer", "worker")
        msg_id = f"{prefix}{i:04d}"
        events.append(received(msg_id, first_seq + i, sender=sender, to=(to,), body=f"point {i} of {n}",
                               created=1.0 + i, note=f"n{i}" if i % 7 == 0 else ""))
        if i % 50 == 13:
            events.append(delivery("queued", to, msg_id, reason="the agent is busy"))
        elif i % 50 == 29:
            events.append(delivery("failed", to, msg_id, reason="the pane is gone"))
        elif i % 50 != 41:
            events.append(delivery("delivered", to, msg_id, via="receipt"))
    events.append(delivering_paste("reviewer", "point 41", (f"{prefix}0041",)))
    return events


def realistic() -> list[AnyEvent]:
    """A run's history: the protocol and a round with findings, the verify gate, a few hundred messages, hook
    events, what the agents spent, and messages still owed."""
    return [*history(), *conversation(10, 300),
            FindingClaims(fixed=("F1.1",)),
            Round(round=2, ref="refs/r2", commit="c2", tree="t2", phase="work"),
            VerifyStarted(round=2, ref="refs/r2", commit="c2", command="make test", log="verify-2.log"),
            VerifyFinished(round=2, ref="refs/r2", result="failed", commit="c2", exit_status=1, duration=1.5,
                           tail="1 failed"),
            Verdict(id="m0299", by="reviewer", kind="changes", round=2, checkpoint="refs/r2", tree="t2",
                    phase="work", findings=(("F2.1", "the test fails"), ("F2.2", "name it"))),
            HumanTurn(role="reviewer", text="look again", event_file="ev-31"),
            TokenUsage(role="reviewer", input=900, cached=100, output=40, files=("a.jsonl",)),
            received("h2", 400, sender="human", to=("worker", "reviewer"), body="both of you")]


def tail_events() -> list[AnyEvent]:
    """What a bridge records after the snapshot: deliveries of what was owed, new messages, a round."""
    return [delivery("delivered", "reviewer", "m0041"), delivery("delivered", "worker", "h2"),
            *conversation(401, 40, prefix="t"),
            Round(round=3, ref="refs/r3", commit="c3", tree="t3", phase="work"),
            HumanTurn(role="worker", text="thanks", event_file="ev-40"),
            TokenUsage(role="worker", input=50, output=9)]


@dataclass
class Started:
    """What a bridge starting on the run directory has: its views, the record, and its snapshot keeping."""

    record: Record
    recalled: Recalled
    keeping: Keeping


def start(run_dir: Path, ledger: Ledger, key: bytes | None = KEY) -> Started:
    """As the bridge starts (bridge.relay Bridge.start): recall, restore, fold the rest, keep on from there."""
    recalled = recall(run_dir, ledger.path, key)
    referee = Referee(manifest(run_dir), run_dir)
    referee.restore(recalled.protocol, recalled.protocol_started)
    record = Record(ledger, recalled.book, referee)
    fold(record, recalled.replay.events)
    ledger.read_up_to(recalled.replay.end)
    keeping = Keeping(run_dir, key, recalled.covered, recalled.damaged)
    return Started(record, recalled, keeping)


def encoded(record: Record) -> bytes:
    """The views as a snapshot keeps them: equal bytes, equal views (the book with its indexes, the protocol)."""
    return msgspec.msgpack.encode(Views(record.book.shelved(), record.referee.protocol,
                                        record.referee.protocol_started))


def full_fold(run_dir: Path) -> Record:
    """The whole ledger folded from its first line, as a bridge with no snapshot does."""
    record = Record(Ledger(run_dir / "full-fold.jsonl"), Book(), Referee(manifest(run_dir), run_dir))
    fold(record, read_ledger(run_dir / "ledger.jsonl").events)
    record.ledger.close()
    return record


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[Ledger]:
    with Ledger(tmp_path / "ledger.jsonl") as opened:
        yield opened


def kept(run_dir: Path, ledger: Ledger, events: list[AnyEvent]) -> Started:
    """``events`` in the ledger, a bridge started on it, and the snapshot it writes."""
    ledger.append_all(events)
    started = start(run_dir, ledger, KEY)
    assert started.recalled.why_not == "none yet"
    assert started.keeping.keep(started.record, started.record.referee.protocol,
                                started.record.referee.protocol_started) == ""
    assert snapshot_path(run_dir).is_file()
    return started


# ---- the round trip ------------------------------------------------------------------------------------------


def test_a_snapshot_gives_back_the_views_of_the_full_fold(tmp_path: Path, ledger: Ledger) -> None:
    events = realistic()
    first = kept(tmp_path, ledger, events)
    assert first.keeping.written == 1 and first.keeping.saved_events == len(events)

    again = start(tmp_path, ledger)
    assert (again.recalled.why_not, again.recalled.covered, again.recalled.replay.events) == ("", len(events), [])
    assert encoded(again.record) == encoded(first.record) == encoded(full_fold(tmp_path))
    book = again.record.book
    assert len(book.order) == 305 and book.human_turns == ["ev-7", "e1", "ev-31"]
    assert again.record.referee.protocol.round == 2 and again.record.referee.protocol_started
    assert set(again.record.referee.protocol.findings) == {"F1.1", "F2.1", "F2.2"}
    assert book.pastes["reviewer"].ids == ("m0041",)


def test_restored_entries_are_the_ones_the_owed_index_holds(tmp_path: Path, ledger: Ledger) -> None:
    kept(tmp_path, ledger, realistic())
    book = start(tmp_path, ledger).record.book
    owed = [e.message.id for e in book.pending("reviewer")]
    assert owed == ["h", *(f"m{i:04d}" for i in range(300) if i % 50 in (13, 41)), "h2"], "queued, being pasted"
    assert all(entry is book.entries[entry.message.id] for role in ("worker", "reviewer")
               for entry in book.pending(role)), "one entry, not a copy in each index"
    queued, delivered = book.count("reviewer", QUEUED), book.count("reviewer", DELIVERED)
    book.apply(Delivered(to="reviewer", ids=("m0113",)))
    assert [e.message.id for e in book.pending("reviewer")] == [i for i in owed if i != "m0113"]
    assert book.entries["m0113"].deliveries["reviewer"] == DELIVERED
    assert (book.count("reviewer", QUEUED), book.count("reviewer", DELIVERED)) == (queued - 1, delivered + 1)
    assert book.owed("reviewer") == len(owed) - 1


def test_the_ledger_after_the_snapshot_is_folded_on_top(tmp_path: Path, ledger: Ledger) -> None:
    events = realistic()
    kept(tmp_path, ledger, events)
    tail = tail_events()
    ledger.append_all(tail)
    again = start(tmp_path, ledger)
    assert again.recalled.why_not == "" and again.recalled.covered == len(events)
    assert len(again.recalled.replay.events) == len(tail)
    assert encoded(again.record) == encoded(full_fold(tmp_path))
    assert again.record.book.pending("reviewer")[0].message.id != "m0041", "delivered after the snapshot"
    assert again.keeping.events_now(again.record) == len(events) + len(tail)


def test_a_snapshot_kept_after_a_tail_covers_it_too(tmp_path: Path, ledger: Ledger) -> None:
    """A bridge that restored one, learnt more and kept another: the next start begins from the newer one."""
    kept(tmp_path, ledger, realistic())
    second = start(tmp_path, ledger)
    second.record.add(received("live", 500, sender="human", to=("worker",), body="typed live"))
    for event in tail_events():
        second.record.add(event)
    assert second.keeping.keep(second.record, second.record.referee.protocol, True) == ""
    third = start(tmp_path, ledger)
    assert third.recalled.covered == len(realistic()) + 1 + len(tail_events())
    assert third.recalled.replay.events == []
    assert encoded(third.record) == encoded(second.record) == encoded(full_fold(tmp_path))


# ---- what is refused ---------------------------------------------------------------------------------------------


def flip(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


def no_key(run_dir: Path) -> bytes | None:
    return None


def other_key(run_dir: Path) -> bytes | None:
    return OTHER_KEY


def body_byte(run_dir: Path) -> bytes | None:
    flip(snapshot_path(run_dir), len(snapshot_path(run_dir).read_bytes()) - 5)
    return KEY


def ledger_byte(run_dir: Path) -> bytes | None:
    path = run_dir / "ledger.jsonl"
    data = path.read_bytes()
    at = data.index(b"point 17 of 300")
    path.write_bytes(data[:at] + b"POINT" + data[at + 5:])  # still a valid line: only the check can tell
    return KEY


def ledger_cut(run_dir: Path) -> bytes | None:
    path = run_dir / "ledger.jsonl"
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(b"".join(lines[:len(lines) // 2]))
    return KEY


def header_cut(run_dir: Path) -> bytes | None:
    path = snapshot_path(run_dir)
    path.write_bytes(path.read_bytes()[:len(MAGIC) + 20])
    return KEY


def body_cut(run_dir: Path) -> bytes | None:
    path = snapshot_path(run_dir)
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 2])
    return KEY


def garbage(run_dir: Path) -> bytes | None:
    snapshot_path(run_dir).write_bytes(os.urandom(4096))
    return KEY


def missing(run_dir: Path) -> bytes | None:
    snapshot_path(run_dir).unlink()
    return KEY


def another_ledgers(run_dir: Path) -> bytes | None:
    """A snapshot of the same key over another ledger: as long, but not the same bytes."""
    other = run_dir / "other"
    other.mkdir()
    with Ledger(other / "ledger.jsonl") as ledger:
        ledger.append_all([*realistic()[:-1], received("h3", 400, sender="human", to=("worker", "reviewer"),
                                                        body="both of you")])
        started = start(other, ledger)
        assert started.keeping.keep(started.record, started.record.referee.protocol, True) == ""
    snapshot_path(other).replace(snapshot_path(run_dir))
    return KEY


NOT_MATCHING = "it does not match the ledger (the ledger or the snapshot was changed)"


@pytest.mark.parametrize(("damage", "why_not", "news"), [
    (no_key, "not started by a keeper", False),
    (other_key, "written by an earlier keeper of this run", False),
    (missing, "none yet", False),
    (body_byte, NOT_MATCHING, True),
    (ledger_byte, NOT_MATCHING, True),
    (another_ledgers, NOT_MATCHING, True),
    (ledger_cut, "the ledger is shorter than what it covers (cut back or replaced)", True),
    (header_cut, "cut short", True),
    (body_cut, NOT_MATCHING, True),
    (garbage, "not a snapshot of this version", True),
], ids=lambda p: p.__name__ if callable(p) else None)
def test_a_snapshot_that_cannot_be_trusted_is_not_used_and_nothing_is_lost(
        tmp_path: Path, ledger: Ledger, damage: Callable[[Path], bytes | None], why_not: str, news: bool) -> None:
    kept(tmp_path, ledger, realistic())
    key = damage(tmp_path)
    expected = full_fold(tmp_path)
    again = start(tmp_path, ledger, key)
    assert (again.recalled.why_not, again.recalled.news) == (why_not, news)
    assert again.recalled.covered == 0
    assert len(again.recalled.replay.events) == len(read_ledger(ledger.path).events), "the whole ledger is read"
    assert encoded(again.record) == encoded(expected)


def test_the_changed_ledger_is_what_a_refusal_reads(tmp_path: Path, ledger: Ledger) -> None:
    """The refusal above is worth something: the snapshot's views are not the fold of the changed ledger."""
    first = kept(tmp_path, ledger, realistic())
    ledger_byte(tmp_path)
    assert encoded(full_fold(tmp_path)) != encoded(first.record)
    assert full_fold(tmp_path).book.entries["m0017"].message.body == "POINT 17 of 300"


def test_without_a_key_nothing_is_written(tmp_path: Path, ledger: Ledger) -> None:
    ledger.append_all(realistic())
    started = start(tmp_path, ledger, None)
    started.record.learned += 10 * SNAPSHOT_EVERY
    assert not started.keeping.due(started.record, 0, 0.0)
    assert not snapshot_path(tmp_path).exists()


# ---- damaged lines -------------------------------------------------------------------------------------------------


def append_raw(path: Path, data: bytes) -> None:
    with path.open("ab") as f:
        f.write(data)


def test_damaged_lines_are_said_again_with_the_same_numbers_before_and_after_the_snapshot(
        tmp_path: Path, ledger: Ledger) -> None:
    events = realistic()
    ledger.append_all(events[:40])
    append_raw(ledger.path, b'{"ev":"received","seq":99,"from":"worker"}\n')
    ledger.append_all(events[40:200])
    append_raw(ledger.path, b"\x00\xff not json at all\r\n")
    ledger.append_all(events[200:])
    first = start(tmp_path, ledger)
    before = read_ledger(ledger.path).damaged
    assert [d.line for d in before] == [41, 202] and first.recalled.damaged == before
    assert first.keeping.keep(first.record, first.record.referee.protocol, True) == ""

    ledger.append_all(tail_events()[:5])
    append_raw(ledger.path, b'{"ev":"no-such-kind"}\n')
    ledger.append_all(tail_events()[5:])
    again = start(tmp_path, ledger)
    assert again.recalled.why_not == "" and again.recalled.covered == len(events)
    full = read_ledger(ledger.path)
    assert len(full.damaged) == 3 and full.damaged[2].line == len(events) + 2 + 5 + 1
    assert again.recalled.damaged == full.damaged, "the same lines, numbers, offsets and reasons"
    assert encoded(again.record) == encoded(full_fold(tmp_path))


# ---- when one is due ---------------------------------------------------------------------------------------------


def keeping_on(run_dir: Path, ledger: Ledger, saved: int = 0) -> tuple[Record, Keeping]:
    """A bridge's record on an empty ledger it has read, whose last snapshot covered ``saved`` events."""
    ledger.read_up_to(0)
    record = Record(ledger, Book(), Referee(manifest(run_dir), run_dir))
    return record, Keeping(run_dir, KEY, saved, [])


def test_due_after_a_thousand_events_then_an_eighth_of_the_history(tmp_path: Path, ledger: Ledger) -> None:
    record, keeping = keeping_on(tmp_path, ledger)
    record.learned = SNAPSHOT_EVERY - 1
    assert not keeping.due(record, 0, 0.0)
    record.learned = SNAPSHOT_EVERY
    assert keeping.due(record, 0, 0.0)

    record, keeping = keeping_on(tmp_path, ledger, saved=16 * SNAPSHOT_EVERY)
    record.learned = 2 * SNAPSHOT_EVERY - 1
    assert not keeping.due(record, 0, 0.0), "an eighth of 16,000 events is 2,000"
    record.learned = 2 * SNAPSHOT_EVERY
    assert keeping.due(record, 0, 0.0)


def test_due_waits_while_messages_are_owed_but_not_for_ever(tmp_path: Path, ledger: Ledger) -> None:
    record, keeping = keeping_on(tmp_path, ledger)
    record.learned = SNAPSHOT_EVERY
    assert not keeping.due(record, 2, 100.0)
    assert not keeping.due(record, 2, 100.0 + PATIENCE_S - 0.01)
    assert keeping.due(record, 0, 100.0 + 1.0), "at once when nothing is owed"
    assert keeping.due(record, 2, 100.0 + PATIENCE_S)
    record.learned = SNAPSHOT_EVERY - 1  # (not due: the wait starts over once it is due again)
    assert not keeping.due(record, 2, 200.0)
    record.learned = SNAPSHOT_EVERY
    assert not keeping.due(record, 2, 200.0 + PATIENCE_S - 0.01)
    assert keeping.due(record, 2, 200.0 + 2 * PATIENCE_S)


def test_never_with_a_backlog(tmp_path: Path, ledger: Ledger) -> None:
    record, keeping = keeping_on(tmp_path, ledger)
    record.learned = SNAPSHOT_EVERY
    record.backlog.append(HumanTurn(role="worker", text="not in the ledger yet"))
    assert not keeping.due(record, 0, 0.0), "the views hold an event the ledger does not"
    record.backlog.clear()
    assert keeping.due(record, 0, 0.0)


def test_never_after_another_writer_came_in(tmp_path: Path, ledger: Ledger) -> None:
    ledger.append_all(realistic())
    started = start(tmp_path, ledger)
    record, keeping = started.record, started.keeping
    record.add(received("own", 600, sender="human", to=("worker",)))
    assert ledger.prefix() == ledger.path.read_bytes(), "its own records follow on from what it read"
    record.learned += SNAPSHOT_EVERY
    assert keeping.due(record, 0, 0.0)
    append_once(ledger.path, received("stop", 601, sender="human", to=("worker",)))  # `pairloop stop`, say
    record.add(received("own2", 602, sender="human", to=("worker",)))
    assert ledger.prefix() is None and ledger.foreign
    assert not keeping.due(record, 0, 0.0)
    assert keeping.keep(record, record.referee.protocol, True) == ""
    assert not snapshot_path(tmp_path).exists(), "the views are not the fold of the ledger: nothing is kept"


def test_a_foreign_write_seen_only_when_keeping_is_caught_too(tmp_path: Path, ledger: Ledger) -> None:
    ledger.append_all(realistic())
    started = start(tmp_path, ledger)
    append_once(ledger.path, received("stop", 601, sender="human", to=("worker",)))
    assert not ledger.foreign, "not known until the writer looks"
    assert started.keeping.keep(started.record, started.record.referee.protocol, True) == ""
    assert ledger.foreign and not snapshot_path(tmp_path).exists()


def test_a_failed_write_is_said_once_and_tried_again_later(tmp_path: Path, ledger: Ledger,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    ledger.append_all(realistic())
    started = start(tmp_path, ledger)
    record, keeping = started.record, started.keeping
    protocol = record.referee.protocol
    record.learned += SNAPSHOT_EVERY  # (as if it had learnt that many: due)
    assert keeping.due(record, 0, 0.0)
    monkeypatch.setattr(snapshot, "FREE_MARGIN", 1 << 62)
    problem = keeping.keep(record, protocol, True)
    assert problem == "ledger snapshot not written: too little free space to spare for it (the ledger is not affected)"
    assert not snapshot_path(tmp_path).exists() and keeping.written == 0
    retry_at = keeping.retry_at
    assert retry_at >= time.monotonic() + RETRY_S - 5
    assert not keeping.due(record, 0, retry_at - 0.01), "not tried again at once"
    assert keeping.due(record, 0, retry_at)
    assert keeping.keep(record, protocol, True) == "", "said once"
    monkeypatch.undo()
    assert keeping.keep(record, protocol, True) == ""
    assert keeping.written == 1 and keeping.saved_events == keeping.events_now(record)
    assert not keeping.due(record, 0, retry_at + RETRY_S), "the count starts over from the one written"
    again = start(tmp_path, ledger)
    assert again.recalled.why_not == "" and encoded(again.record) == encoded(full_fold(tmp_path))


# ---- a disk with no room to spare ----------------------------------------------------------------------------------


@pytest.mark.parametrize("full", [False, True], ids=["too-little-room", "no-room-at-all"])
def test_on_a_full_disk_the_snapshot_gives_way_to_the_ledger(tiny_disk: Path, full: bool,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """The margin refuses it on a disk with less than 64 MiB to spare; with no margin, the write itself fails on
    a disk filled to the last byte. Either way nothing is left behind and the ledger is as it was."""
    with Ledger(tiny_disk / "ledger.jsonl") as ledger:
        ledger.append_all(realistic())
        started = start(tiny_disk, ledger)
        before = ledger.path.read_bytes()
        filler = None
        if full:  # past the margin (a negative one), to the write itself
            monkeypatch.setattr(snapshot, "FREE_MARGIN", -1 << 40)
            filler = fill_disk(tiny_disk)
        problem = started.keeping.keep(started.record, started.record.referee.protocol, True)
        reason = "No space left on device" if full else "too little free space to spare for it"
        assert problem == f"ledger snapshot not written: {reason} (the ledger is not affected)"
        assert sorted(p.name for p in tiny_disk.iterdir()) == sorted(["ledger.jsonl", *(["filler"] if full else [])])
        assert ledger.path.read_bytes() == before
        if filler is not None:
            filler.unlink()
        started.record.add(received("after", 700, sender="human", to=("worker",)))
        last = read_ledger(ledger.path).events[-1]
        assert ledger.path.read_bytes().startswith(before) and isinstance(last, Received) and last.id == "after"


# ---- a snapshot of ours that breaks: the bridge goes on from the whole ledger -----------------------------------


def test_a_snapshot_that_cannot_be_restored_is_said_and_the_whole_ledger_read(
        tmp_path: Path, ledger: Ledger, monkeypatch: pytest.MonkeyPatch) -> None:
    kept(tmp_path, ledger, realistic())

    def broken(shelf: object) -> Book:
        raise KeyError("m0041")

    monkeypatch.setattr(Book, "restored", staticmethod(broken))
    again = start(tmp_path, ledger)
    assert again.recalled.news and again.recalled.why_not == "cannot be restored (KeyError: 'm0041')"
    assert again.recalled.covered == 0 and len(again.recalled.replay.events) == len(realistic())
    assert encoded(again.record) == encoded(full_fold(tmp_path))


def test_a_snapshot_that_cannot_be_made_stops_nothing(tmp_path: Path, ledger: Ledger,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    ledger.append_all(realistic())
    started = start(tmp_path, ledger)

    def unencodable(*args: object) -> None:
        raise TypeError("Encoding objects of type frozenset is unsupported")

    monkeypatch.setattr("bridge.replay.write_snapshot", unencodable)
    problem = started.keeping.keep(started.record, started.record.referee.protocol, True)
    assert problem == ("ledger snapshot not written: Encoding objects of type frozenset is unsupported "
                       "(the ledger is not affected)")
    assert not snapshot_path(tmp_path).exists()
    assert not started.keeping.due(started.record, 0, time.monotonic()), "tried again only after a while"
