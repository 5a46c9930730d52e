"""bridge.rundir.ledger: append-only JSON lines, torn tails skipped, followers resume by offset."""

from __future__ import annotations

import json
import stat
import time
from pathlib import Path

import pytest

from bridge.rundir.ledger import Ledger, append_once, read_events


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "ledger.jsonl"


@pytest.fixture
def fixed_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(time, "time", lambda: 1700000000.1234567)


def test_append_then_read_round_trips(path: Path, fixed_clock: None) -> None:
    with Ledger(path) as ledger:
        first = ledger.append({"ev": "received", "id": "a", "body": "ünï \"q\"\nline"})
        second = ledger.append({"ev": "delivered", "ids": ["a"], "to": "reviewer"})
    assert first == {"ts": 1700000000.123457, "ev": "received", "id": "a", "body": "ünï \"q\"\nline"}
    assert second == {"ts": 1700000000.123457, "ev": "delivered", "ids": ["a"], "to": "reviewer"}
    lines = path.read_bytes().split(b"\n")
    assert lines[-1] == b""
    assert len(lines) == 3
    assert "ünï".encode() in lines[0]  # not \u-escaped
    events = list(read_events(path))
    assert [e for _, e in events] == [first, second]
    assert events[0][0] == len(lines[0]) + 1
    assert events[1][0] == path.stat().st_size


def test_ts_comes_first_and_lines_are_compact(path: Path, fixed_clock: None) -> None:
    with Ledger(path) as ledger:
        ledger.append({"ev": "x"})
    assert path.read_text().startswith('{"ts":1700000000.123457,"ev":"x"}')


def test_ledger_file_is_private(path: Path) -> None:
    Ledger(path).close()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_read_missing_file_yields_nothing(path: Path) -> None:
    assert list(read_events(path)) == []


def test_torn_last_line_is_skipped_and_next_append_parses(path: Path) -> None:
    with Ledger(path) as ledger:
        ledger.append({"ev": "one"})
        ledger.append({"ev": "two"})
    intact = path.stat().st_size
    with path.open("ab") as f:
        f.write(b'{"ts":1,"ev":"thr')  # the writer was killed mid-line
    assert [e["ev"] for _, e in read_events(path)] == ["one", "two"]
    assert list(read_events(path))[-1][0] == intact

    with Ledger(path) as ledger:  # a restarted bridge
        ledger.append({"ev": "four"})
        ledger.append({"ev": "five"})
    assert [e["ev"] for _, e in read_events(path)] == ["one", "two", "four", "five"]
    raw = path.read_bytes()
    assert raw.endswith(b'"ev":"five"}\n')
    assert b'{"ts":1,"ev":"thr\n{' in raw


def test_torn_line_cut_inside_a_multibyte_character(path: Path) -> None:
    with Ledger(path) as ledger:
        ledger.append({"ev": "one"})
    with path.open("ab") as f:
        f.write('{"ev":"two","body":"é'.encode()[:-1])
    assert [e["ev"] for _, e in read_events(path)] == ["one"]
    with Ledger(path) as ledger:
        ledger.append({"ev": "three", "body": "é"})
    assert [e["ev"] for _, e in read_events(path)] == ["one", "three"]


def test_no_blank_line_when_the_file_ends_cleanly(path: Path, fixed_clock: None) -> None:
    with Ledger(path) as ledger:
        ledger.append({"ev": "one"})
    with Ledger(path) as ledger:
        ledger.append({"ev": "two"})
    assert path.read_bytes() == (b'{"ts":1700000000.123457,"ev":"one"}\n'
                                 b'{"ts":1700000000.123457,"ev":"two"}\n')


def test_unparseable_and_non_object_lines_are_skipped(path: Path) -> None:
    path.write_bytes(b'{"ev":"one"}\nnot json\n[1,2]\n"str"\n\xff\xfe\n\n{"ev":"two"}\n')
    events = list(read_events(path))
    assert [e for _, e in events] == [{"ev": "one"}, {"ev": "two"}]
    assert events[-1][0] == path.stat().st_size


def test_read_events_resumes_from_an_offset(path: Path) -> None:
    with Ledger(path) as ledger:
        for n in range(5):
            ledger.append({"ev": "e", "n": n})
    everything = list(read_events(path))
    assert [e["n"] for _, e in everything] == [0, 1, 2, 3, 4]
    after_second = everything[1][0]
    resumed = list(read_events(path, after_second))
    assert resumed == everything[2:]
    assert list(read_events(path, everything[-1][0])) == []


def test_a_follower_rereads_a_line_once_it_is_finished(path: Path) -> None:
    with Ledger(path) as ledger:
        ledger.append({"ev": "one"})
    offset = list(read_events(path))[-1][0]
    with path.open("ab") as f:
        f.write(b'{"ev":"tw')
    assert list(read_events(path, offset)) == []
    with path.open("ab") as f:
        f.write(b'o"}\n')
    assert list(read_events(path, offset)) == [(path.stat().st_size, {"ev": "two"})]


def test_append_once_adds_one_line(path: Path) -> None:
    with Ledger(path) as ledger:
        ledger.append({"ev": "one"})
    append_once(path, {"ev": "run", "state": "stopped"})
    events = [e for _, e in read_events(path)]
    assert len(events) == 2
    assert {k: v for k, v in events[1].items() if k != "ts"} == {"ev": "run", "state": "stopped"}
    assert isinstance(events[1]["ts"], float)


def test_two_writers_interleave_whole_lines(path: Path) -> None:
    a = Ledger(path)
    b = Ledger(path)
    try:
        a.append({"ev": "a1"})
        b.append({"ev": "b1"})
        a.append({"ev": "a2"})
    finally:
        a.close()
        b.close()
    assert [e["ev"] for _, e in read_events(path)] == ["a1", "b1", "a2"]
    assert all(json.loads(line) for line in path.read_text().splitlines())
