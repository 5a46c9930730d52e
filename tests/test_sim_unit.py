"""The sim agent without a terminal: key parsing, receipts, and that its screen agrees with SIM_RULES."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bridge.book import Entry
from bridge.panes.envelope import ids_in, render
from bridge.panes.screen import BUSY, DIALOG, DRAFT, READY, Reading, classify
from bridge.router import Paste, proves_our_paste
from bridge.rundir.message import Message
from pairloop.agents.sim import SIM_RULES
from pairloop.agents.sim_agent import PASTE_END, PASTE_START, Sim

LONG = 3600.0  # a turn that never ends during a test


def make(tmp_path: Path, role: str = "worker", work_seconds: float = LONG, dialog: bool = False) -> Sim:
    return Sim(role=role, mode="quiet", work_seconds=work_seconds, run_dir=tmp_path / "run", dialog=dialog)


def events(tmp_path: Path, role: str = "worker") -> list[dict[str, Any]]:
    folder = tmp_path / "run" / "events" / role
    if not folder.exists():
        return []
    names = sorted(folder.iterdir(), key=lambda p: int(p.name.split("-", 1)[0]))
    assert all(not p.name.startswith(".") for p in names)  # written atomically: no temp files left
    return [json.loads(p.read_text(encoding="utf-8")) for p in names]


def prompts(tmp_path: Path, role: str = "worker") -> list[str]:
    return [e["prompt"] for e in events(tmp_path, role) if e["event"] == "prompt"]


def paste(text: str) -> str:
    """What tmux sends for ``paste-buffer -p``: bracketed, with LF turned into CR."""
    return PASTE_START + text.replace("\n", "\r") + PASTE_END


def look(sim: Sim, width: int = 100, height: int = 30) -> Reading:
    return classify("\n".join(sim.screen(width, height)), SIM_RULES)


# ---- feed: typing --------------------------------------------------------------------------------------


def test_typing_then_enter_submits_and_writes_a_receipt(tmp_path: Path) -> None:
    sim = make(tmp_path)
    sim.feed("fix the bug")
    assert sim.input == "fix the bug"
    assert events(tmp_path) == []
    sim.feed("\r")
    assert sim.input == ""
    assert sim.busy_since is not None
    assert sim.current == "fix the bug"
    [event] = events(tmp_path)
    assert event["event"] == "prompt"
    assert event["agent"] == "sim"
    assert event["prompt"] == "fix the bug"
    assert isinstance(event["ts"], float)


def test_lf_also_submits(tmp_path: Path) -> None:
    sim = make(tmp_path)
    sim.feed("one\n")
    assert prompts(tmp_path) == ["one"]


def test_receipts_go_under_the_role(tmp_path: Path) -> None:
    sim = make(tmp_path, role="reviewer")
    sim.feed("look\r")
    assert prompts(tmp_path, "reviewer") == ["look"]
    assert events(tmp_path, "worker") == []


def test_no_run_dir_writes_nothing(tmp_path: Path) -> None:
    sim = Sim(role="worker", mode="quiet", work_seconds=LONG, run_dir=None)
    sim.feed("hello\r")
    assert sim.current == "hello"
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("keys", ["\r", "   \r", "\t\r", "\r\n"])
def test_enter_on_a_blank_line_does_nothing(tmp_path: Path, keys: str) -> None:
    sim = make(tmp_path)
    sim.feed(keys)
    assert events(tmp_path) == []
    assert sim.busy_since is None
    assert sim.input == ""


def test_backspace_and_delete_remove_the_last_character(tmp_path: Path) -> None:
    sim = make(tmp_path)
    sim.feed("abc\x7f\x08d")
    assert sim.input == "ad"
    sim.feed("\x7f\x7f\x7f\x08")
    assert sim.input == ""


@pytest.mark.parametrize("clear", ["\x15", "\x03"])
def test_ctrl_u_and_ctrl_c_clear_the_line(tmp_path: Path, clear: str) -> None:
    sim = make(tmp_path)
    sim.feed(f"hello{clear}bye\r")
    assert prompts(tmp_path) == ["bye"]


def test_ctrl_d_quits_only_on_an_empty_line(tmp_path: Path) -> None:
    sim = make(tmp_path)
    sim.feed("x\x04")
    assert sim.input == "x"
    sim.feed("\x15")
    with pytest.raises(SystemExit) as info:
        sim.feed("\x04")
    assert info.value.code == 0


def test_other_controls_are_ignored(tmp_path: Path) -> None:
    sim = make(tmp_path)
    sim.feed("a\x01\x02\x07\x0bb\x00")
    assert sim.input == "ab"


def test_unicode_is_typed_as_is(tmp_path: Path) -> None:
    sim = make(tmp_path)
    sim.feed("ünï 🎉 中文\r")
    assert prompts(tmp_path) == ["ünï 🎉 中文"]


def test_escape_sequences_are_ignored(tmp_path: Path) -> None:
    sim = make(tmp_path)
    sim.feed("ab\x1b[Dc\x1bOAd\x1b[1;5Ce\x1bxf\x1b[?25hg")
    assert sim.input == "abcdefg"


def test_a_lone_escape_at_the_end_waits_for_the_rest(tmp_path: Path) -> None:
    sim = make(tmp_path)
    sim.feed("a\x1b")
    assert sim.input == "a"
    sim.feed("[Db")
    assert sim.input == "ab"


# ---- feed: bracketed paste -------------------------------------------------------------------------------


def test_bracketed_paste_turns_cr_into_lf_and_does_not_submit(tmp_path: Path) -> None:
    sim = make(tmp_path)
    sim.feed(f"{PASTE_START}line1\rline2\r\nline3\r{PASTE_END}")
    assert sim.input == "line1\nline2\nline3\n"
    assert events(tmp_path) == []
    assert sim.busy_since is None
    sim.feed("\r")
    assert prompts(tmp_path) == ["line1\nline2\nline3\n"]


def test_paste_keeps_control_like_text_literally(tmp_path: Path) -> None:
    sim = make(tmp_path)
    sim.feed(paste("a\x7fb \x15 c"))
    assert sim.input == "a\x7fb \x15 c"


def test_paste_appends_to_what_was_typed(tmp_path: Path) -> None:
    sim = make(tmp_path)
    sim.feed("note: ")
    sim.feed(paste("pasted"))
    sim.feed(" end\r")
    assert prompts(tmp_path) == ["note: pasted end"]


@pytest.mark.parametrize("cut", range(1, len(PASTE_END)))
def test_paste_end_marker_split_across_two_feeds(tmp_path: Path, cut: int) -> None:
    sim = make(tmp_path)
    sim.feed(PASTE_START + "abc\rdef" + PASTE_END[:cut])
    assert sim.input == ""
    sim.feed(PASTE_END[cut:] + "x")
    assert sim.input == "abc\ndefx"


def test_paste_content_arriving_in_many_small_feeds(tmp_path: Path) -> None:
    sim = make(tmp_path)
    data = paste("first line\nsecond [201 line\n\tthird ~ line") + "\r"
    sim.feed(PASTE_START)
    for ch in data[len(PASTE_START):]:
        sim.feed(ch)
    assert prompts(tmp_path) == ["first line\nsecond [201 line\n\tthird ~ line"]


def test_paste_start_marker_cut_after_the_escape(tmp_path: Path) -> None:
    sim = make(tmp_path)
    sim.feed(PASTE_START[:1])
    sim.feed(PASTE_START[1:] + "abc" + PASTE_END)
    assert sim.input == "abc"


@pytest.mark.parametrize("cut", range(2, len(PASTE_START)))
def test_paste_start_marker_split_across_two_feeds(tmp_path: Path, cut: int) -> None:
    sim = make(tmp_path)
    sim.feed(PASTE_START[:cut])
    sim.feed(PASTE_START[cut:] + "abc\rdef" + PASTE_END)
    assert sim.input == "abc\ndef"


def test_a_csi_cut_in_half_is_still_ignored(tmp_path: Path) -> None:
    sim = make(tmp_path)
    sim.feed("a\x1b[1;")
    sim.feed("5Cb")
    assert sim.input == "ab"


def test_the_receipt_holds_the_exact_pasted_envelope(tmp_path: Path) -> None:
    body = "-rf; 'q' \"q\" $(x) `y` \\n ünï 🎉\n\ttab;\n\nlast line"
    entries = [Entry(Message("18f-ab12", "reviewer", ("worker",), body, "message", 1.0), 4, "d"),
               Entry(Message("t-1", "human", ("worker",), "second", "task", 2.0), 5, "d")]
    text = render(entries, {})
    sim = make(tmp_path)
    sim.feed(paste(text))
    recorded = Paste(("18f-ab12", "t-1"), text.split("\n", 1)[0], text.count("\n") + 1)
    for width in (60, 100, 200):  # the sim's box shows the first line (cut to the pane) and a count
        assert proves_our_paste(look(sim, width).draft, recorded), width
    assert not proves_our_paste(look(sim).draft, Paste(("t-1",), render(entries[1:], {}).split("\n", 1)[0], 2))
    sim.feed("\r")
    assert prompts(tmp_path) == [text]
    assert ids_in(prompts(tmp_path)[0]) == {"18f-ab12", "t-1"}
    shown = [line for line in sim.transcript if line.startswith("> ")]
    assert shown == [f"> {line}" for line in text.split("\n") if line.startswith("[pairloop]")]


# ---- turns, queue, dialog ---------------------------------------------------------------------------------


def test_a_prompt_while_busy_is_queued_then_run(tmp_path: Path) -> None:
    sim = make(tmp_path, work_seconds=0.0)
    sim.feed("first\r")
    sim.feed("second\r")
    assert prompts(tmp_path) == ["first", "second"]  # both submitted prompts get a receipt
    assert sim.queue == ["second"]
    assert sim.transcript[-1] == "· (queued until the current turn ends)"
    sim.step()
    assert [e["event"] for e in events(tmp_path)] == ["prompt", "prompt", "stop"]
    assert sim.current == "second"
    assert sim.busy_since is not None
    assert sim.queue == []
    sim.step()
    assert sim.busy_since is None
    assert [e["event"] for e in events(tmp_path)] == ["prompt", "prompt", "stop", "stop"]


def test_step_does_nothing_before_the_turn_is_up(tmp_path: Path) -> None:
    sim = make(tmp_path)
    sim.step()
    sim.feed("work\r")
    sim.step()
    assert sim.busy_since is not None
    assert [e["event"] for e in events(tmp_path)] == ["prompt"]


def test_enter_in_the_dialog_dismisses_it_without_a_receipt(tmp_path: Path) -> None:
    sim = make(tmp_path, dialog=True)
    sim.feed("\r")
    assert not sim.dialog
    assert sim.transcript == ["· (trusted this folder)"]
    assert events(tmp_path) == []
    assert sim.busy_since is None


# ---- the screen agrees with SIM_RULES -------------------------------------------------------------------


def test_idle_screen_is_ready(tmp_path: Path) -> None:
    sim = make(tmp_path)
    assert look(sim) == Reading(READY)
    lines = sim.screen(100, 30)
    assert len(lines) == 30
    assert all(len(line) <= 100 for line in lines)


def test_typed_text_is_a_draft(tmp_path: Path) -> None:
    sim = make(tmp_path)
    sim.feed("half a thought")
    assert look(sim) == Reading(DRAFT, draft="half a thought")
    assert not proves_our_paste(look(sim).draft, Paste(("m1",), "[pairloop] #1 message from human · id m1 ·", 2))


def test_a_typed_copy_of_an_envelope_line_is_a_draft_only_the_recorded_paste_can_claim(tmp_path: Path) -> None:
    line = '[pairloop] #7 message from reviewer · id m-7 · reply: pairloop send "<text>"'
    sim = make(tmp_path)
    sim.feed(line)  # typed (or pasted back) by the human
    assert look(sim) == Reading(DRAFT, draft=line)
    assert not proves_our_paste(look(sim).draft, None)
    assert not proves_our_paste(look(sim).draft, Paste(("m-8",), line.replace("m-7", "m-8"), 3))


def test_a_multi_line_paste_is_a_draft(tmp_path: Path) -> None:
    sim = make(tmp_path)
    sim.feed(paste("line1\nline2\nline3"))
    assert look(sim) == Reading(DRAFT, draft="line1  [+2 more lines]")


def test_busy_screen_is_busy(tmp_path: Path) -> None:
    sim = make(tmp_path)
    sim.feed("work\r")
    assert look(sim) == Reading(BUSY)
    sim.feed("typed while busy")
    assert look(sim) == Reading(BUSY)


def test_dialog_screen_is_a_dialog(tmp_path: Path) -> None:
    sim = make(tmp_path, dialog=True)
    assert look(sim) == Reading(DIALOG, "trust this folder")
    assert look(sim, 80, 4) == Reading(DIALOG, "trust this folder")
    sim.feed("\r")
    assert look(sim) == Reading(READY)


def test_back_to_ready_when_the_turn_ends(tmp_path: Path) -> None:
    sim = make(tmp_path, work_seconds=0.0)
    sim.feed("work\r")
    assert look(sim) == Reading(BUSY)
    sim.step()
    assert look(sim) == Reading(READY)


def test_a_long_transcript_still_reads_ready_at_the_pane_size(tmp_path: Path) -> None:
    sim = make(tmp_path, work_seconds=0.0)
    for n in range(40):
        sim.feed(f"prompt {n}\r")
        sim.step()
    assert look(sim, 60, 20) == Reading(READY)
    assert len(sim.screen(60, 20)) == 20


def test_an_idle_sim_whose_transcript_quotes_the_busy_footer_is_ready(tmp_path: Path) -> None:
    sim = make(tmp_path, work_seconds=0.0)
    sim.feed("the footer says esc to interrupt while it works\r")
    sim.step()
    assert sim.busy_since is None
    assert look(sim) == Reading(READY)
