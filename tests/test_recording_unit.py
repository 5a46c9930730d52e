"""Recordings without tmux: the cast file and its one writer, the markers taken from the ledger, what replay plays
and how it makes a recording safe for the human's terminal."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bridge import Cast, CastEvent, CastHeader, cast_offset, read_cast
from bridge.recording.marks import Marks
from bridge.recording.pipes import recorder_command
from bridge.rundir.cast import LIMIT_LABEL, CastBusy, CastWriter, InvalidCast, parse_cast
from bridge.rundir.events import Delivered, Received, Round, Verdict, VerifyFinished
from pairloop.replay import RESTORE, SOFT_RESET, Frame, NoSuchRound, SafeOutput, frames, play, prepare, round_time
from pairloop.runs.recording import recording_settings

T0 = 1_700_000_000.25


def lines(path: Path) -> list[object]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_a_new_cast_has_a_v2_header_and_real_offsets(tmp_path: Path) -> None:
    path = tmp_path / "worker.cast"
    writer = CastWriter(path, 100, 30, now=T0, title="worker")
    writer.output(T0 + 1.5, "héllo\x1b[31m")
    writer.resize(T0 + 2.0, 80, 24)
    writer.marker(T0 + 3.0, "round 1 opened")
    writer.close()
    header, *events = lines(path)
    assert header == {"version": 2, "width": 100, "height": 30, "timestamp": 1_700_000_000, "idle_time_limit": 2.0,
                      "title": "worker"}
    assert events == [[1.75, "o", "héllo\x1b[31m"], [2.25, "r", "80x24"], [3.25, "m", "round 1 opened"]]
    # The report maps a ledger time onto the recording with the header's timestamp alone.
    assert cast_offset(path, T0 + 3.0) == 3.25 and cast_offset(path, 0) == 0.0


def test_appending_goes_on_with_the_same_clock_and_never_goes_back(tmp_path: Path) -> None:
    path = tmp_path / "worker.cast"
    first = CastWriter(path, 80, 24, now=T0)
    first.output(T0 + 10, "a")
    first.close()
    later = CastWriter(path, 120, 40, now=T0 + 500)
    assert later.appended and later.header.timestamp == 1_700_000_000 and later.last == 10.25
    later.output(T0 + 600, "b")
    later.output(T0 + 5, "clock set back")  # clamped: times never go back
    later.close()
    cast = read_cast(path)
    assert [e.time for e in cast.events] == [10.25, 600.25, 600.25]
    assert sum(1 for line in path.read_text().splitlines() if line.startswith("{")) == 1


def test_one_writer_at_a_time(tmp_path: Path) -> None:
    path = tmp_path / "worker.cast"
    writer = CastWriter(path, 80, 24, now=T0)
    with pytest.raises(CastBusy):
        CastWriter(path, 80, 24, wait=0.1)
    writer.close()
    CastWriter(path, 80, 24, wait=0.1).close()  # free again once the first is done


def test_a_torn_last_line_is_cut_before_appending(tmp_path: Path) -> None:
    path = tmp_path / "worker.cast"
    writer = CastWriter(path, 80, 24, now=T0)
    writer.output(T0 + 1, "whole")
    writer.close()
    with path.open("ab") as f:
        f.write(b'[2.0, "o", "tor')
    writer = CastWriter(path, 80, 24, now=T0)
    writer.output(T0 + 3, "next")
    writer.close()
    assert [e.data for e in read_cast(path).events] == ["whole", "next"]
    path.write_bytes(b'{"version": 2, "wid')  # not even the header: the recording starts again
    CastWriter(path, 80, 24, now=T0).close()
    assert read_cast(path).header.width == 80


def test_the_size_limit_stops_with_a_last_marker(tmp_path: Path) -> None:
    path = tmp_path / "worker.cast"
    writer = CastWriter(path, 80, 24, now=T0, limit=400)
    written = 0
    while writer.output(T0 + written, "x" * 50):
        written += 1
    assert writer.full and not writer.output(T0 + 99, "more") and not writer.marker(T0 + 99, "m")
    writer.close()
    size = path.stat().st_size
    assert size <= 400 + 100  # the limit marker may be the one line past it
    assert read_cast(path).events[-1] == CastEvent(read_cast(path).events[-1].time, "m", LIMIT_LABEL)
    again = CastWriter(path, 80, 24, now=T0, limit=400)  # a recorder started later on a full cast writes nothing
    assert again.full and not again.output(T0 + 100, "y")
    again.close()
    assert path.stat().st_size == size


def test_reading_rejects_what_is_not_v2_and_skips_a_damaged_event() -> None:
    with pytest.raises(InvalidCast):
        parse_cast(b'{"version": 1, "width": 80, "height": 24}\n')
    with pytest.raises(InvalidCast):
        parse_cast(b"")
    cast = parse_cast(b'{"version": 2, "width": 80, "height": 24}\n[1.0, "o", "a"]\n{oops\n[2.0, "o"]\n')
    assert [e.data for e in cast.events] == ["a"] and cast.damaged == [3, 4]


def test_markers_name_what_happened_to_this_pane() -> None:
    marks = Marks("worker")
    assert marks.label(Received(seq=3, id="m3", sender="reviewer", to=("worker",), kind="changes", body="fix")) \
        is None  # received by the bridge: marked when delivered
    assert marks.label(Received(seq=4, id="m4", sender="worker", to=("reviewer",), kind="review", body="r")) == \
        "sent #4 worker → reviewer (review)"
    assert marks.label(Delivered(to="worker", ids=("m3",), via="receipt")) == \
        "delivered #3 reviewer → worker (changes)"
    assert marks.label(Delivered(to="reviewer", ids=("m4",))) is None  # into the other pane
    assert marks.label(Round(round=2, phase="work", commit="0123456789abcdef")) == \
        "round 2 opened (checkpoint 0123456789)"
    assert marks.label(Verdict(id="v", by="reviewer", kind="approve", round=2, phase="work")) == \
        "verdict: approve by reviewer (round 2)"
    verified = marks.label(VerifyFinished(round=2, ref="r", result="failed", exit_status=1, duration=3.25))
    assert verified == "verify finished · round 2 · result failed · exit_status 1 · duration 3.2s"


def test_the_recorder_command_leaves_our_words_alone_and_asks_tmux_for_the_pane(tmp_path: Path) -> None:
    command = recorder_command(tmp_path / "run #1", "worker", 1024, "worker · #{evil}")
    assert command.startswith("exec ")
    assert "'" + str(tmp_path / "run ##1") + "'" in command and "##{evil}" in command
    assert "#{q:pane_tty}" in command and "#{pane_width}x#{pane_height}" in command


def test_recording_settings_come_from_flags_then_environment_then_configuration() -> None:
    assert recording_settings({}, {}).enabled and recording_settings({}, {}).limit_mb == 50
    assert not recording_settings({"record": False}, {}).enabled
    assert recording_settings({"record": False}, {"PAIRLOOP_RECORD": "1"}).enabled
    assert not recording_settings({}, {"PAIRLOOP_RECORD": "off"}).enabled
    assert recording_settings({}, {}, record=False).enabled is False
    assert recording_settings({"record_limit_mb": 5}, {"PAIRLOOP_RECORD_LIMIT_MB": "7"}).limit_mb == 7
    with pytest.raises(Exception, match="record_limit_mb"):
        recording_settings({"record_limit_mb": "lots"}, {})


# ---- replay -------------------------------------------------------------------------------------------------


def recording(*events: tuple[float, str, str], idle: float = 2.0) -> Cast:
    return Cast(CastHeader(100, 30, 1_700_000_000, idle), [CastEvent(*e) for e in events])


def test_replay_from_a_round_draws_what_came_before_at_once_then_plays_on() -> None:
    cast = recording((0.5, "o", "screen one"), (1.0, "r", "80x24"), (2.0, "o", " more"),
                     (3.0, "m", "round 1 opened (checkpoint abc)"), (3.0, "o", "R1"), (9.0, "o", "later"),
                     (10.0, "m", "round 2 opened"), (10.5, "o", "R2"))
    assert round_time(cast, 1) == 3.0 and round_time(cast, 2) == 10.0
    with pytest.raises(NoSuchRound, match=r"round 3 is not in this recording \(rounds in this recording: 1, 2\)"):
        round_time(cast, 3)
    cut = prepare(cast, round_time(cast, 1))
    assert (cut.header.width, cut.header.height) == (80, 24)  # the size in force there
    assert [(e.time, e.code, e.data) for e in cut.events] == [
        (0.0, "o", "screen one more"), (0.0, "m", "round 1 opened (checkpoint abc)"), (0.0, "o", "R1"),
        (6.0, "o", "later"), (7.0, "m", "round 2 opened"), (7.5, "o", "R2")]
    # Pauses shortened to the recording's idle limit, then divided by the speed; markers are not drawn.
    assert frames(cut, speed=2) == [Frame(0.0, "screen one more"), Frame(0.0, "R1"), Frame(1.0, "later"),
                                    Frame(0.75, "R2")]
    assert [f.delay for f in frames(cut, speed=1, idle_limit=0)] == [0.0, 0.0, 6.0, 1.5]
    whole = prepare(cast)
    assert whole.events[0] == CastEvent(0.5, "o", "screen one")


def test_the_player_writes_after_each_delay_and_puts_the_terminal_back() -> None:
    out: list[str] = []
    slept: list[float] = []
    play([Frame(0.0, "a"), Frame(0.5, "b")], out.append, slept.append)
    assert out == ["a", "b", RESTORE] and slept == [0.5]

    def interrupted(delay: float) -> None:
        raise KeyboardInterrupt

    out.clear()
    play([Frame(0.0, "a"), Frame(1.0, "b")], out.append, interrupted)
    assert out == ["a", RESTORE], "Ctrl-C ends it, and the modes are put back"


@pytest.mark.parametrize(("recorded", "played"), [
    *[(drawn, drawn) for drawn in ("plain \x1b[1;31mred\x1b[0m \x1b[?1049h\x1b[2J\x1b[10;5H\x1b[?25l\x1b[3;20r",)],
    ("a\x1b]52;c;ZWNobyBwd25lZA==\x07b", "ab"),  # a clipboard write
    ("a\x1b]0;a title\x1b\\b\x1b]2;t\x07c", "abc"),  # titles
    ("a\x1b]8;;http://x\x1b\\link\x1b]8;;\x1b\\b", "alinkb"),  # hyperlinks
    ("a\x1b]4;1;rgb:ff/00/00\x07\x1b]11;#000000\x07b", "ab"),  # colours set for good
    ("a\x1b]104\x07\x1b]110\x1b\\b", "a\x1b]104\x07\x1b]110\x1b\\b"),  # colour resets are kept
    ("a\x1b]777;notify;hi;there\x07\x1b]9;hi\x07b", "ab"),  # notifications
    ("a\x1bPtmux;\x1b\x1b]52;c;eA==\x07\x1b\\b", "ab"),  # a DCS passthrough to the terminal outside
    ("a\x1bP$qm\x1b\\\x1b_Gi=1;AAAA\x1b\\\x1b^pm\x1b\\\x1bXsos\x1b\\b", "ab"),  # DCS, APC, PM, SOS
    ("a\x1b[6n\x1b[c\x1b[>c\x1b[5n\x1b[21t\x1b[8;50;200t\x1b[?2004$p\x1b[>q\x1bZb", "ab"),  # queries, window ops
    ("a\x1b[>1u\x1b[?u\x1b[<u\x1b[ub", "a\x1b[ub"),  # the kitty keyboard protocol (CSI u alone restores the cursor)
    ("a\x9b31m\x9d52;c;x\x07b", "a31m52;c;x\x07b"),  # 8-bit controls go (what follows is plain text)
    ("a\x1bcb", "a" + SOFT_RESET + "b"),  # a full reset becomes a soft one
])
def test_replayed_output_cannot_act_on_the_terminal(recorded: str, played: str) -> None:
    assert SafeOutput().feed(recorded) == played


def test_a_sequence_split_across_events_is_judged_whole() -> None:
    safe = SafeOutput()
    assert safe.feed("a\x1b]52;c;ZW") == "a"
    assert safe.feed("Nobw==\x07b\x1b[3") == "b"
    assert safe.feed("1mred") == "\x1b[31mred"
    assert safe.feed("\x1b") == "" and safe.feed("[6n.") == "."
    never_ended = SafeOutput()
    assert never_ended.feed("\x1b]52;c;" + "A" * 70_000) == "" and never_ended.held == ""
