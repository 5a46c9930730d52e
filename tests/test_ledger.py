"""bridge.rundir.ledger: append-only typed records, each complete and durable or an error the caller sees;
damaged lines reported (which, why) while the rest replays; fragments cut off, never glued to the next record.
And bridge.record.Record, which keeps the run's views right when the ledger cannot be written."""

from __future__ import annotations

import errno
import os
import stat
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bridge.book import DELIVERED, Book
from bridge.protocol.referee import Referee
from bridge.record import Record
from bridge.rundir.events import (
    AnyEvent,
    BridgeState,
    LedgerRepaired,
    RunState,
    encode,
    stamped,
)
from bridge.rundir.ledger import (
    Damaged,
    Ledger,
    LedgerWriteError,
    append_once,
    events_of,
    follow,
    read_ledger,
)
from bridge.rundir.manifest import Manifest, TmuxPlace
from tests.typed_events import delivery, received

TS = 1700000000.123457  # the fixed clock, as the ledger rounds it
TORN = "an unfinished line (a write cut short)"


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "ledger.jsonl"


@pytest.fixture
def fixed_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(time, "time", lambda: 1700000000.1234567)


def line(event: AnyEvent, ts: float = TS) -> bytes:
    return encode(stamped(event, ts)) + b"\n"


def one(n: int) -> BridgeState:
    return BridgeState(state="started", pid=n)


def write_lines(path: Path, *events: AnyEvent) -> bytes:
    with Ledger(path) as ledger:
        for event in events:
            ledger.append(event)
    return path.read_bytes()


# ---- appending and reading -----------------------------------------------------------------------------


def test_append_then_read_round_trips(path: Path, fixed_clock: None) -> None:
    with Ledger(path) as ledger:
        first = ledger.append(received("a", 1, body="ünï \"q\"\nline"))
        second = ledger.append(delivery(DELIVERED, "reviewer", "a"))
    assert first == stamped(received("a", 1, body="ünï \"q\"\nline"), TS)
    assert second == stamped(delivery(DELIVERED, "reviewer", "a"), TS)
    raw = path.read_bytes()
    assert raw == line(first) + line(second)
    assert "ünï".encode() in raw  # not \u-escaped
    replay = read_ledger(path)
    assert replay.events == [first, second]
    assert replay.damaged == []
    assert replay.lines == 2
    assert replay.end == len(raw)


def test_lines_are_compact_with_the_ledgers_stamp(path: Path, fixed_clock: None) -> None:
    write_lines(path, RunState(state="stopped", by="human"))
    assert path.read_bytes() == b'{"ev":"run","state":"stopped","by":"human","ts":1700000000.123457}\n'


def test_the_stamp_is_the_ledgers_clock_not_the_callers(path: Path, fixed_clock: None) -> None:
    with Ledger(path) as ledger:
        written = ledger.append(stamped(one(1), 5.0))
    assert written.ts == TS
    assert events_of(path) == [written]


def test_ledger_file_is_private_whatever_the_umask(path: Path) -> None:
    old = os.umask(0)
    try:
        Ledger(path).close()
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_read_missing_file_yields_nothing(path: Path) -> None:
    replay = read_ledger(path)
    assert (replay.events, replay.damaged, replay.end, replay.lines) == ([], [], 0, 0)
    assert events_of(path) == []


def test_no_blank_line_when_the_file_ends_cleanly(path: Path, fixed_clock: None) -> None:
    write_lines(path, one(1))
    write_lines(path, one(2))
    assert path.read_bytes() == line(one(1)) + line(one(2))


def test_read_resumes_from_an_offset_and_numbers_lines_on(path: Path) -> None:
    write_lines(path, *[one(n) for n in range(5)])
    everything = read_ledger(path)
    assert [e.pid for e in everything.events if isinstance(e, BridgeState)] == [0, 1, 2, 3, 4]
    after_second = len(b"".join(path.read_bytes().splitlines(keepends=True)[:2]))
    resumed = read_ledger(path, after_second, first_line=3)
    assert resumed.events == everything.events[2:]
    assert resumed.lines == 3
    assert resumed.end == everything.end
    at_end = read_ledger(path, everything.end, first_line=6)
    assert (at_end.events, at_end.lines, at_end.end) == ([], 0, everything.end)


def test_a_follower_rereads_a_line_once_it_is_finished(path: Path) -> None:
    write_lines(path, one(1))
    reads = follow(path)
    assert [e.pid for e in next(reads).events if isinstance(e, BridgeState)] == [1]
    with path.open("ab") as f:
        f.write(b'{"ev":"bridge","state":"sta')
    assert next(reads).events == []
    with path.open("ab") as f:
        f.write(b'rted","pid":2}\nnot json\n')
    part = next(reads)
    assert part.events == [BridgeState(state="started", pid=2)]
    assert [d.line for d in part.damaged] == [3]  # numbered on from the first read
    assert part.end == path.stat().st_size


def test_append_once_adds_one_line(path: Path, fixed_clock: None) -> None:
    before = write_lines(path, one(1))
    written = append_once(path, RunState(state="stopped", by="human"))
    assert written == RunState(ts=TS, state="stopped", by="human")
    assert path.read_bytes() == before + line(written)


def test_two_writers_interleave_whole_lines(path: Path, fixed_clock: None) -> None:
    a = Ledger(path)
    b = Ledger(path)
    try:
        a.append(one(1))
        b.append(one(2))
        a.append(one(3))
    finally:
        a.close()
        b.close()
    assert path.read_bytes() == line(one(1)) + line(one(2)) + line(one(3))


# ---- damaged lines: reported, skipped, the rest replays ---------------------------------------------------


def test_a_damaged_line_in_the_middle_is_reported_and_the_rest_replays(path: Path, fixed_clock: None) -> None:
    good = line(one(1))
    missing = b'{"ev":"received","seq":2,"from":"worker","to":["reviewer"],"kind":"message","body":"x"}\n'
    path.write_bytes(good + missing + line(one(3)))
    replay = read_ledger(path)
    assert replay.events == [stamped(one(1), TS), stamped(one(3), TS)]
    assert replay.damaged == [Damaged(2, len(good), "Object missing required field `id`")]
    assert replay.damaged[0].describe() == "ledger line 2 skipped: Object missing required field `id`"
    assert replay.lines == 3
    assert replay.end == path.stat().st_size


def test_every_kind_of_damage_is_named_with_its_line(path: Path, fixed_clock: None) -> None:
    path.write_bytes(line(one(1)) + b'not json\n[1,2]\n"str"\n\xff\xfe\n\n{"ev":"nope"}\n'
                     b'{"ev":"queued","to":"robot","ids":["a"]}\n{"ev":"bridge","state":"started","pid":"7"}\n'
                     + line(one(2)))
    replay = read_ledger(path)
    assert replay.events == [stamped(one(1), TS), stamped(one(2), TS)]
    assert [(d.line, d.reason) for d in replay.damaged] == [
        (2, "not JSON (JSON is malformed: invalid character (byte 4))"),
        (3, "Expected `object`, got `array`"),
        (4, "Expected `object`, got `str`"),
        (5, "not JSON (JSON is malformed: invalid character (byte 0))"),
        # line 6 is blank: counted, not damaged
        (7, "Invalid value 'nope' - at `$.ev`"),
        (8, "Expected `str` matching regex '^(worker|reviewer|human)\\\\Z' - at `$.to`"),
        (9, "Expected `int`, got `str` - at `$.pid`"),
    ]
    assert replay.lines == 10


def test_a_stray_carriage_return_does_not_end_the_read(path: Path, fixed_clock: None) -> None:
    path.write_bytes(line(one(1)) + b'{"ev":"bridge",\r"junk\n' + line(one(3)))
    replay = read_ledger(path)
    assert replay.events == [stamped(one(1), TS), stamped(one(3), TS)]
    assert [d.line for d in replay.damaged] == [2]
    assert replay.end == path.stat().st_size


def test_an_append_leaves_a_complete_damaged_line_alone(path: Path, fixed_clock: None) -> None:
    before = line(one(1)) + b'{"ev":"nope"}\n'
    path.write_bytes(before)
    write_lines(path, one(2))
    assert path.read_bytes() == before + line(one(2))


# ---- torn tails: not damage to a reader; cut off (and recorded) before anything else is written ----------


def test_a_torn_tail_is_left_for_the_next_read_not_reported(path: Path) -> None:
    intact = write_lines(path, one(1), one(2))
    with path.open("ab") as f:
        f.write(b'{"ts":1,"ev":"thr')  # the writer was killed mid-line
    replay = read_ledger(path)
    assert len(replay.events) == 2
    assert replay.damaged == []
    assert replay.end == len(intact)


def test_the_next_append_cuts_a_torn_tail_and_records_it(path: Path, fixed_clock: None) -> None:
    intact = write_lines(path, one(1), one(2))
    fragment = b'{"ts":1,"ev":"thr'
    with path.open("ab") as f:
        f.write(fragment)
    with Ledger(path) as ledger:  # a restarted bridge
        ledger.append(one(4))
        ledger.append(one(5))
    repaired = LedgerRepaired(offset=len(intact), cut_bytes=len(fragment), reason=TORN)
    assert path.read_bytes() == intact + line(repaired) + line(one(4)) + line(one(5))
    replay = read_ledger(path)
    assert replay.damaged == []
    assert replay.events[2] == stamped(repaired, TS)


def test_repair_cuts_a_torn_tail_at_start(path: Path, fixed_clock: None) -> None:
    intact = write_lines(path, one(1))
    with path.open("ab") as f:
        f.write('{"ev":"bridge","reason":"é'.encode()[:-1])  # cut inside a multibyte character
    with Ledger(path) as ledger:
        repaired = ledger.repair()
        assert repaired == LedgerRepaired(offset=len(intact), cut_bytes=26, reason=TORN)
        assert path.read_bytes() == intact + line(repaired)
        assert ledger.repair() is None  # nothing more to cut
    assert path.read_bytes() == intact + line(repaired)


def test_repair_of_a_clean_or_missing_ledger_does_nothing(path: Path) -> None:
    with Ledger(path) as ledger:
        assert ledger.repair() is None
    assert path.read_bytes() == b""
    intact = write_lines(path, one(1))
    with Ledger(path) as ledger:
        assert ledger.repair() is None
    assert path.read_bytes() == intact


def test_a_ledger_that_is_all_fragment_is_cut_to_nothing(path: Path, fixed_clock: None) -> None:
    path.write_bytes(b'{"ev":"bri')
    write_lines(path, one(1))
    assert path.read_bytes() == line(LedgerRepaired(offset=0, cut_bytes=10, reason=TORN)) + line(one(1))


def test_a_fragment_longer_than_the_tail_read_is_cut_whole(path: Path, fixed_clock: None) -> None:
    intact = write_lines(path, one(1))
    junk = b"x" * (3 * 64 * 1024 + 17)
    with path.open("ab") as f:
        f.write(junk)
    write_lines(path, one(2))
    repaired = LedgerRepaired(offset=len(intact), cut_bytes=len(junk), reason=TORN)
    assert path.read_bytes() == intact + line(repaired) + line(one(2))


# ---- failed writes: nothing of the record is left, the caller knows ----------------------------------------


def _is_the_ledger(fd: int, path: Path) -> bool:
    try:
        return os.readlink(f"/proc/self/fd/{fd}") == str(path)
    except OSError:
        return False


class DiskFull:
    """os.write as on a nearly full disk: the ledger's first write lands half, then ENOSPC (until ``space``)."""

    def __init__(self, path: Path, monkeypatch: pytest.MonkeyPatch, first_half: bool = True) -> None:
        self.path, self.full, self.first_half, self.calls = path, True, first_half, 0
        self._real = os.write
        monkeypatch.setattr("bridge.rundir.ledger.os.write", self.write)

    def write(self, fd: int, data: bytes | memoryview) -> int:
        if not self.full or not _is_the_ledger(fd, self.path):
            return self._real(fd, data)
        self.calls += 1
        view = memoryview(data)
        if self.first_half and self.calls == 1 and len(view) > 1:
            return self._real(fd, view[: len(view) // 2])
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def space(self) -> None:
        self.full = False


def test_a_short_write_is_an_error_and_leaves_the_file_as_it_was(path: Path, fixed_clock: None,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    before = write_lines(path, one(1))
    with Ledger(path) as ledger:
        disk = DiskFull(path, monkeypatch)
        with pytest.raises(LedgerWriteError) as caught:
            ledger.append(received("a", 1, body="x" * 500))
        assert disk.calls == 2  # half of the record went down before the disk filled
        assert caught.value.disk_full
        assert caught.value.errno == errno.ENOSPC
        assert caught.value.reason == "cannot write the ledger: No space left on device"
        assert path.read_bytes() == before
        disk.space()
        ledger.append(one(2))  # space came back: a clean record, nothing glued, nothing to repair
    assert path.read_bytes() == before + line(one(2))
    assert read_ledger(path).damaged == []


def test_a_write_that_makes_no_progress_is_an_error(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    before = write_lines(path, one(1))
    real = os.write
    monkeypatch.setattr("bridge.rundir.ledger.os.write",
                        lambda fd, data: 0 if _is_the_ledger(fd, path) else real(fd, data))
    with Ledger(path) as ledger, pytest.raises(LedgerWriteError) as caught:
        ledger.append(one(2))
    assert not caught.value.disk_full
    assert caught.value.errno == errno.EIO
    assert path.read_bytes() == before


def test_a_failed_fsync_is_an_error_and_the_record_is_taken_back(path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    before = write_lines(path, one(1))

    def lost_device(fd: int) -> None:
        raise OSError(errno.EIO, os.strerror(errno.EIO))

    monkeypatch.setattr("bridge.rundir.ledger.os.fsync", lost_device)
    with Ledger(path) as ledger, pytest.raises(LedgerWriteError) as caught:
        ledger.append(one(2))
    assert not caught.value.disk_full
    assert caught.value.reason == "cannot write the ledger: Input/output error"
    assert path.read_bytes() == before


def test_a_quota_error_counts_as_a_full_disk() -> None:
    assert LedgerWriteError("x", errno.EDQUOT).disk_full
    assert not LedgerWriteError("x").disk_full


# ---- Record: the ledger first, then the run's views; a backlog while the disk is full ----------------------


def manifest(tmp_path: Path) -> Manifest:
    return Manifest(id="r1", repo=str(tmp_path), tmux=TmuxPlace(socket_path="/nonexistent", session="s"))


@pytest.fixture
def record(tmp_path: Path, path: Path) -> Iterator[Record]:
    ledger = Ledger(path)
    yield Record(ledger, Book(), Referee(manifest(tmp_path), tmp_path))
    ledger.close()


def test_record_writes_then_teaches_the_book_and_the_referee(record: Record, path: Path,
                                                             fixed_clock: None) -> None:
    written = record.add(received("a", 1, sender="worker"))
    assert written == stamped(received("a", 1, sender="worker"), TS)
    assert path.read_bytes() == line(written)
    assert list(record.book.entries) == ["a"]
    assert record.referee.protocol.messages == 1
    assert (record.backlog, record.problem) == ([], "")


def test_a_durable_event_on_a_full_disk_raises_and_nobody_learns_it(record: Record, path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    DiskFull(path, monkeypatch)
    with pytest.raises(LedgerWriteError) as caught:
        record.add(received("a", 1), durable=True)
    assert caught.value.disk_full
    assert record.book.entries == {}
    assert record.referee.protocol.messages == 0
    assert record.backlog == []
    assert path.read_bytes() == b""


def test_a_full_disk_backlogs_events_the_views_learn_at_once_and_flushes_them_in_order(
        record: Record, path: Path, fixed_clock: None, monkeypatch: pytest.MonkeyPatch) -> None:
    before = line(record.add(received("a", 1)))
    disk = DiskFull(path, monkeypatch)
    first, second = delivery("delivering", "reviewer", "a"), delivery(DELIVERED, "reviewer", "a", via="receipt")
    assert record.add(first) == first
    assert record.add(second) == second
    assert record.book.entries["a"].deliveries == {"reviewer": DELIVERED}  # learned although not on disk yet
    assert record.backlog == [first, second]
    assert record.problem == "cannot write the ledger: No space left on device"
    assert path.read_bytes() == before

    with pytest.raises(LedgerWriteError):  # a durable event behind a backlog waits too, and is not learned
        record.add(received("b", 2), durable=True)
    assert "b" not in record.book.entries
    assert record.backlog == [first, second]
    assert path.read_bytes() == before

    disk.space()
    third = record.add(one(7))
    assert record.backlog == []
    assert record.problem == ""
    assert path.read_bytes() == before + line(first) + line(second) + line(third)
    assert read_ledger(path).events == [stamped(e, TS) for e in (received("a", 1), first, second, one(7))]


def test_a_durable_event_after_space_came_back_goes_after_the_backlog(
        record: Record, path: Path, fixed_clock: None, monkeypatch: pytest.MonkeyPatch) -> None:
    disk = DiskFull(path, monkeypatch, first_half=False)
    record.add(one(1))
    assert record.backlog == [one(1)]
    disk.space()
    record.add(received("a", 1), durable=True)
    assert path.read_bytes() == line(one(1)) + line(received("a", 1))
    assert list(record.book.entries) == ["a"]
    assert record.backlog == []


def test_flush_stops_at_the_first_event_that_cannot_be_written(record: Record, path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    disk = DiskFull(path, monkeypatch, first_half=False)
    for n in range(3):
        record.add(one(n))
    assert not record.flush()
    assert record.backlog == [one(0), one(1), one(2)]
    disk.space()
    assert record.flush()
    assert [e.pid for e in events_of(path) if isinstance(e, BridgeState)] == [0, 1, 2]
