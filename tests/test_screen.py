"""bridge.panes.screen: agent state from screen text, with the sim's rules and with rules that use placeholders."""

from __future__ import annotations

import pytest

from bridge.panes.screen import (
    BUSY,
    DIALOG,
    DRAFT,
    ENVELOPE_MARK,
    READY,
    STARTING,
    Reading,
    ScreenRules,
    classify,
    input_text,
)
from bridge.router import Paste, proves_our_paste
from pairloop.agents.sim import SIM_RULES

RULE = "─" * 40
HEAD = " pairloop sim · worker  (simulated agent: no model, no account)\n\n"


def idle(text: str = "", transcript: str = "") -> str:
    return f"{HEAD}{transcript}{RULE}\n› {text}\n{RULE}\n  ? for shortcuts · enter to submit"


def busy(text: str = "") -> str:
    return f"{HEAD}{RULE}\n› {text}\n{RULE}\n  ● working… (3s · esc to interrupt)"


DIALOG_SCREEN = f"{HEAD}Do you trust the files in this folder?\n\n  1. Yes, proceed   (enter)\n  2. No, exit"


def test_ready_when_the_input_line_is_empty() -> None:
    assert classify(idle(), SIM_RULES) == Reading(READY)


def test_ready_when_the_input_line_holds_only_spaces() -> None:
    assert classify(idle("   "), SIM_RULES) == Reading(READY)


def test_busy_footer_means_busy() -> None:
    assert classify(busy(), SIM_RULES) == Reading(BUSY)


def test_busy_wins_over_a_draft() -> None:
    assert classify(busy("half typed"), SIM_RULES) == Reading(BUSY)


def test_dialog_is_named() -> None:
    assert classify(DIALOG_SCREEN, SIM_RULES) == Reading(DIALOG, "trust this folder")


def test_dialog_wins_over_busy_and_ready() -> None:
    screen = f"{busy()}\n{idle()}\nDo you trust the files in this folder?"
    assert classify(screen, SIM_RULES) == Reading(DIALOG, "trust this folder")


def test_draft_carries_the_text() -> None:
    assert classify(idle("  fix the tests please  "), SIM_RULES) == Reading(DRAFT, draft="fix the tests please")


@pytest.mark.parametrize("screen", ["", "\n\n\n", f"{HEAD}loading…", f"{HEAD}{RULE}\n› \n{RULE}\n  loading"])
def test_starting_without_the_ready_footer(screen: str) -> None:
    assert classify(screen, SIM_RULES) == Reading(STARTING)


def test_starting_when_ready_footer_but_no_input_line() -> None:
    assert classify(f"{HEAD}  ? for shortcuts · enter to submit", SIM_RULES) == Reading(STARTING)


def test_the_last_input_line_is_the_live_one() -> None:
    screen = f"{HEAD}› old text in the transcript\n{idle()}"
    assert classify(screen, SIM_RULES) == Reading(READY)
    screen = f"{HEAD}› \n{idle('typed')}"
    assert classify(screen, SIM_RULES) == Reading(DRAFT, draft="typed")


def test_nbsp_inside_a_draft_becomes_a_space() -> None:
    assert classify(idle("hello\u00a0world"), SIM_RULES) == Reading(DRAFT, draft="hello world")


def test_nbsp_only_input_is_empty() -> None:
    assert classify(idle("\u00a0\u00a0 \u00a0"), SIM_RULES) == Reading(READY)


def test_input_text_none_without_an_input_line() -> None:
    assert input_text("nothing here", SIM_RULES) is None
    assert input_text(idle(), SIM_RULES) == ""
    assert input_text(idle(" x "), SIM_RULES) == "x"


PLACEHOLDER_RULES = ScreenRules(
    ready=(r"\? for shortcuts",),
    busy=(r"esc to interrupt",),
    input=r"^│ > (?P<text>.*?)\s*│$",
    dialogs={"permission": r"Do you want to proceed\?", "login": r"Select login method"},
    placeholders=('Try "refactor <filepath>"', "Type a message"),
)


def box(text: str) -> str:
    return f"╭────╮\n│ > {text} │\n╰────╯\n  ? for shortcuts"


@pytest.mark.parametrize("hint", ['Try "refactor <filepath>"', "Type a message", "  Type a message  "])
def test_placeholders_count_as_empty(hint: str) -> None:
    assert classify(box(hint), PLACEHOLDER_RULES) == Reading(READY)


def test_placeholder_painted_with_nbsp_counts_as_empty() -> None:
    assert classify(box("Type\u00a0a\u00a0message"), PLACEHOLDER_RULES) == Reading(READY)


@pytest.mark.parametrize("text", ["Type a message please", "Try", "type a message"])
def test_text_that_only_resembles_a_placeholder_is_a_draft(text: str) -> None:
    assert classify(box(text), PLACEHOLDER_RULES) == Reading(DRAFT, draft=text)


def test_every_ready_pattern_must_match() -> None:
    rules = ScreenRules(ready=("enter to submit", "model: sim"), busy=(), input=r"^› (?P<text>.*)$")
    assert classify(idle(), rules) == Reading(STARTING)
    assert classify(idle() + "\nmodel: sim", rules) == Reading(READY)


def test_dialogs_are_checked_in_their_order() -> None:
    screen = box("") + "\nSelect login method\nDo you want to proceed?"
    assert classify(screen, PLACEHOLDER_RULES) == Reading(DIALOG, "permission")


def test_patterns_are_multiline() -> None:
    rules = ScreenRules(ready=(r"^  \? for shortcuts · enter to submit$",), busy=(r"^  ● working",),
                        input=r"^› (?P<text>.*)$")
    assert classify(idle(), rules) == Reading(READY)
    assert classify(busy(), rules) == Reading(BUSY)
    assert classify(idle(transcript="  said: ● working hard\n"), rules) == Reading(READY)


def test_our_envelope_in_the_box_is_ours_only_as_the_paste_we_recorded() -> None:
    """The screen only reads the box; whether its text is ours is proven against the recorded paste."""
    ours = f"{ENVELOPE_MARK} #3 message from worker · id 18f-ab12 · reply: pairloop send \"<text>\""
    reading = classify(idle(ours), SIM_RULES)
    assert reading == Reading(DRAFT, draft=ours)
    recorded = Paste(("18f-ab12",), ours, 3)
    assert proves_our_paste(reading.draft, recorded)
    assert not proves_our_paste(reading.draft, None), "no paste recorded: a human's copy of an envelope"
    assert not proves_our_paste(reading.draft, Paste(("18f-cd34",), ours.replace("18f-ab12", "18f-cd34"), 3))
    for human in ("please [pair] loop", ENVELOPE_MARK, f"{ENVELOPE_MARK} #3 message from worker", f"see {ours}"):
        assert not proves_our_paste(classify(idle(human), SIM_RULES).draft, recorded), human
    assert not proves_our_paste(classify(idle(), SIM_RULES).draft, recorded)
    assert ENVELOPE_MARK == "[pairloop]"


def test_rules_round_trip_through_json() -> None:
    assert ScreenRules.from_json(PLACEHOLDER_RULES.to_json()) == PLACEHOLDER_RULES
    assert ScreenRules.from_json(SIM_RULES.to_json()) == SIM_RULES
    minimal = ScreenRules.from_json({"ready": ["r"], "busy": [], "input": "(?P<text>.*)"})
    assert minimal == ScreenRules(("r",), (), "(?P<text>.*)", {}, ())
