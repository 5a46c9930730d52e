"""bridge.router: the relay's decisions as a table, without tmux. What is owed, what the screen reads, when it
was last looked at and whether the relay is paused → wait, look, deliver, submit our own paste, or hold (the
reason said once per message and again when it changes, and when to look again)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from bridge.panes.envelope import header, render
from bridge.panes.screen import BUSY, DIALOG, DRAFT, EXITED, READY, STARTING, Reading
from bridge.router import (
    HOUSEKEEPING_SECONDS,
    INPUT_OFF_HELD,
    MAX_BACKOFF,
    Decision,
    Deliver,
    Hold,
    Look,
    Owed,
    Paste,
    Schedule,
    Situation,
    SubmitOurs,
    Wait,
    WarmUp,
    inflight_outcome,
    proves_our_paste,
    route,
    serving_order,
)
from pairloop.agents.claude import CLAUDE_RULES
from tests.typed_events import entry, paste_of

NOW = 100.0
DRAFT_HELD = "held: human draft in the input box"
# What the relay pastes for message a (and, in a batch, b), and what it records before pasting.
TEXT_A = render([entry("a", 3, sender="reviewer", body="please add a test\nand run it")], {}, "you are the worker")
TEXT_AB = render([entry("a", 3, sender="reviewer"), entry("b", 4)], {})
PASTE_A = paste_of(TEXT_A, ("a",))
HEAD_A = TEXT_A.split("\n", 1)[0]


def owed(*ids: str, delivering: bool = False, reason: str = "") -> tuple[Owed, ...]:
    return tuple(Owed(i, delivering, reason) for i in ids)


FRESH = Schedule()
A_AND_B = owed("a", "b")


def situation(reading: Reading | None = None, owed_: tuple[Owed, ...] = A_AND_B,
              schedule: Schedule = FRESH, now: float = NOW, paused: str = "", warming_up: bool = False,
              paste: Paste | None = None, placeholder: str = "", role: str = "worker") -> Situation:
    return Situation(role, owed_, schedule, now, paused, warming_up, reading, paste, placeholder)


def hold(decision: Decision) -> Hold:
    assert isinstance(decision, Hold), decision
    return decision


# ---- when to look at all ----------------------------------------------------------------------------------


@pytest.mark.parametrize("reading", [None, Reading(READY), Reading(BUSY)])
@pytest.mark.parametrize("paused", ["", "the human paused it"])
def test_nothing_happens_before_the_next_check(reading: Reading | None, paused: str) -> None:
    schedule = Schedule(NOW + 0.01, "target busy", 2)
    assert route(situation(reading, schedule=schedule, paused=paused)) == Wait(schedule)
    assert route(situation(reading, owed_=(), schedule=schedule, warming_up=True)) == Wait(schedule)


def test_with_nothing_owed_the_relay_only_keeps_house() -> None:
    assert route(situation(owed_=())) == Wait(Schedule(NOW + HOUSEKEEPING_SECONDS))
    assert route(situation(Reading(BUSY), owed_=())) == Wait(Schedule(NOW + HOUSEKEEPING_SECONDS))


def test_warm_up_looks_at_a_starting_agent_with_nothing_owed() -> None:
    assert route(situation(owed_=(), warming_up=True)) == Look()
    for state in (STARTING, READY, DIALOG):
        assert route(situation(Reading(state), owed_=(), warming_up=True)) == WarmUp(Schedule(NOW + MAX_BACKOFF))


def test_something_owed_and_no_reading_yet_means_look() -> None:
    assert route(situation()) == Look()
    assert route(situation(schedule=Schedule(NOW, "target busy", 3))) == Look()  # next_check reached


# ---- deliver -------------------------------------------------------------------------------------------------


def test_ready_delivers_and_resets_the_schedule() -> None:
    decision = route(situation(Reading(READY), owed_=owed("a"), schedule=Schedule(NOW - 1, "target busy", 4)))
    assert decision == Deliver(("a",), Schedule())


def test_a_batch_delivers_every_owed_id_in_order() -> None:
    order = owed("m-9", "m-1", "m-5", reason="target busy") + owed("m-3", delivering=True)
    assert route(situation(Reading(READY), owed_=order)) == Deliver(("m-9", "m-1", "m-5", "m-3"))


# ---- hold: the reason, in the human's words -------------------------------------------------------------------


@pytest.mark.parametrize(("reading", "role", "reason"), [
    (Reading(BUSY), "worker", "target busy"),
    (Reading(BUSY, "a reply is still streaming"), "worker", "target busy (a reply is still streaming)"),
    (Reading(DIALOG, "permission prompt"), "worker",
     "dialog on screen (permission prompt): answer it in the worker pane"),
    (Reading(DIALOG, "trust this folder"), "reviewer",
     "dialog on screen (trust this folder): answer it in the reviewer pane"),
    (Reading(DRAFT, draft="half typed"), "worker", DRAFT_HELD),
    (Reading(EXITED, "exited (status 1)"), "worker", "exited (status 1)"),
    (Reading(EXITED, "exited (signal 9: SIGKILL)"), "reviewer", "exited (signal 9: SIGKILL)"),
    (Reading(EXITED), "worker", "agent exited"),
    (Reading(STARTING), "worker", "agent not ready yet"),
])
def test_hold_reasons(reading: Reading, role: str, reason: str) -> None:
    decision = route(situation(reading, role=role))
    assert decision == Hold(reason, ("a", "b"), Schedule(NOW + 0.02, reason, 1))


def test_paused_holds_without_looking_and_says_why_once() -> None:
    reason = "relay paused: more than 6 review rounds without agreement"
    first = hold(route(situation(paused="more than 6 review rounds without agreement")))  # no reading: no Look
    assert first == Hold(reason, ("a", "b"), Schedule(NOW + HOUSEKEEPING_SECONDS, reason))
    # Unpausing wakes the relay; until then, looking again says nothing new.
    again = situation(owed_=owed("a", "b", reason=reason), schedule=first.schedule,
                      now=first.schedule.next_check, paused="more than 6 review rounds without agreement")
    assert route(again) == Hold(reason, (), Schedule(again.now + HOUSEKEEPING_SECONDS, reason))


@pytest.mark.parametrize("reading", [Reading(READY), Reading(DRAFT, draft=HEAD_A)])
def test_paused_never_delivers(reading: Reading) -> None:
    decision = route(situation(reading, owed_=owed("a", delivering=True), paused="by the human", paste=PASTE_A))
    assert hold(decision).reason == "relay paused: by the human"


def test_backoff_doubles_from_20_ms_to_a_quarter_second() -> None:
    schedule, now, delays = Schedule(), NOW, []
    for _ in range(7):
        decision = hold(route(situation(Reading(BUSY), schedule=schedule, now=now)))
        delays.append(round(decision.schedule.next_check - now, 6))
        schedule, now = decision.schedule, decision.schedule.next_check
    assert delays == [0.02, 0.04, 0.08, 0.16, MAX_BACKOFF, MAX_BACKOFF, MAX_BACKOFF]
    assert schedule.misses == 7


def test_backoff_starts_over_when_the_reason_changes() -> None:
    busy = Schedule(NOW, "target busy", 5)
    dialog = hold(route(situation(Reading(DIALOG, "permission prompt"), schedule=busy)))
    assert dialog.schedule.next_check == pytest.approx(NOW + 0.02)
    assert dialog.schedule.misses == 1
    back = hold(route(situation(Reading(BUSY), schedule=dialog.schedule, now=NOW + 1)))
    assert back.schedule == Schedule(NOW + 1 + 0.02, "target busy", 1)


def test_a_delivery_ends_the_backoff() -> None:
    deliver = route(situation(Reading(READY), schedule=Schedule(NOW, "target busy", 6)))
    assert isinstance(deliver, Deliver)
    after = hold(route(situation(Reading(BUSY), schedule=deliver.schedule)))
    assert after.schedule.next_check == pytest.approx(NOW + 0.02)


def test_the_reason_is_said_once_per_message_and_again_when_it_changes() -> None:
    busy = "target busy"
    first = hold(route(situation(Reading(BUSY))))
    assert first.note == ("a", "b")
    # The relay recorded the reason for both; looking again while still busy says nothing.
    told = owed("a", "b", reason=busy)
    assert hold(route(situation(Reading(BUSY), told, first.schedule, first.schedule.next_check))).note == ()
    # A message that arrives meanwhile is told, alone.
    newcomer = told + owed("c")
    assert hold(route(situation(Reading(BUSY), newcomer, first.schedule, first.schedule.next_check))).note == ("c",)
    # One recorded with another reason (say, before a restart) is told the current one.
    stale = owed("a", reason=busy) + owed("b", reason="agent not ready yet")
    assert hold(route(situation(Reading(BUSY), stale, first.schedule, first.schedule.next_check))).note == ("b",)
    # The reason changes: every message hears the new one.
    dialog = hold(route(situation(Reading(DIALOG, "permission prompt"), told, first.schedule,
                                  first.schedule.next_check)))
    assert dialog.note == ("a", "b")
    assert dialog.reason == "dialog on screen (permission prompt): answer it in the worker pane"


# ---- our own paste in the box: submitted only with proof ------------------------------------------------------


def sim_draft(text: str) -> str:
    """How the sim's input box shows a multi-line paste: its first line and a count."""
    return f"{text.split(chr(10), 1)[0]}  [+{text.count(chr(10))} more lines]"


@pytest.mark.parametrize("draft", [HEAD_A, sim_draft(TEXT_A), HEAD_A[:60], f"  {HEAD_A}  "])
def test_our_paste_still_in_the_box_is_submitted(draft: str) -> None:
    decision = route(situation(Reading(DRAFT, draft=draft), owed("a", delivering=True), paste=PASTE_A))
    assert decision == SubmitOurs(("a",), Schedule())


def test_our_batch_still_in_the_box_is_submitted_whole() -> None:
    paste = paste_of(TEXT_AB, ("a", "b"))
    decision = route(situation(Reading(DRAFT, draft=sim_draft(TEXT_AB)), owed("a", "b", delivering=True),
                               paste=paste))
    assert decision == SubmitOurs(("a", "b"))


@pytest.mark.parametrize(("name", "draft", "in_flight", "paste"), [
    ("no paste recorded", HEAD_A, owed("a", delivering=True), None),
    ("the paste was queued again (it never reached the pane)", HEAD_A, owed("a"), PASTE_A),
    ("the paste was delivered; a copy of its line is the human's", HEAD_A, owed("c"), PASTE_A),
    ("only part of the pasted batch is still in flight", sim_draft(TEXT_AB),
     owed("a", delivering=True) + owed("b"), paste_of(TEXT_AB, ("a", "b"))),
    ("the mark alone", "[pairloop]", owed("a", delivering=True), PASTE_A),
    ("the mark and the human's words", "[pairloop] please also check the docs", owed("a", delivering=True),
     PASTE_A),
    ("our line cut before the id", HEAD_A[:20], owed("a", delivering=True), PASTE_A),
    ("the envelope of a different message", header(entry("b", 4)),
     owed("a", delivering=True), PASTE_A),
    ("an old envelope line", '[pairloop] #1 message from reviewer · id m-old · reply: pairloop send "<text>"',
     owed("a", delivering=True), PASTE_A),
    ("a human's own draft", "fix the bug", owed("a", delivering=True), PASTE_A),
])
def test_anything_else_in_the_box_is_a_human_draft_and_held(name: str, draft: str, in_flight: tuple[Owed, ...],
                                                           paste: Paste | None) -> None:
    decision = hold(route(situation(Reading(DRAFT, draft=draft), in_flight, paste=paste)))
    assert decision.reason == DRAFT_HELD, name


def test_claudes_placeholder_is_ours_only_with_our_paste_in_flight_and_its_line_count() -> None:
    rules = CLAUDE_RULES.paste_placeholder
    box = Reading(DRAFT, draft="[Pasted text #1 +3 lines]")
    four_lines = Paste(("a",), HEAD_A, 4)  # claude counts the line breaks: 4 lines show as +3
    in_flight = owed("a", delivering=True)
    assert route(situation(box, in_flight, paste=four_lines, placeholder=rules)) == SubmitOurs(("a",))
    assert route(situation(box, in_flight, paste=Paste(("a",), HEAD_A, 3), placeholder=rules)) == SubmitOurs(("a",))
    for paste, owing in [(Paste(("a",), HEAD_A, 10), in_flight), (Paste(("a",), HEAD_A, 2), in_flight),
                         (four_lines, owed("a")), (None, in_flight)]:
        assert hold(route(situation(box, owing, paste=paste, placeholder=rules))).reason == DRAFT_HELD
    uncounted = Reading(DRAFT, draft="[Pasted text #2]")
    assert hold(route(situation(uncounted, in_flight, paste=four_lines, placeholder=rules))).reason == DRAFT_HELD


# ---- the pane around the screen: a mode the human has it in, input turned off ---------------------------------

COPY_MODE_HELD = "held: the human is reading back in the pane (copy mode)"


@pytest.mark.parametrize("mode", ["copy-mode", "tree-mode"])
def test_a_mode_the_human_has_the_pane_in_holds_nothing_when_the_submit_key_passes_it(mode: str) -> None:
    """The paste and the submit key are written to the agent past the mode: the human's view stays as it is."""
    assert route(situation(Reading(READY, pane_mode=mode))) == Deliver(("a", "b"))
    ours = Reading(DRAFT, draft=HEAD_A, pane_mode=mode)
    assert route(situation(ours, owed("a", delivering=True), paste=PASTE_A)) == SubmitOurs(("a",))


def test_a_mode_holds_when_the_submit_key_cannot_pass_it_and_says_which() -> None:
    def routed(reading: Reading, owed_: tuple[Owed, ...] = A_AND_B, paste: Paste | None = None) -> Decision:
        return route(replace(situation(reading, owed_, paste=paste), submit_passes_modes=False))

    copy_mode = hold(routed(Reading(READY, pane_mode="copy-mode")))
    assert copy_mode.reason == COPY_MODE_HELD
    assert copy_mode.note == ("a", "b")
    assert copy_mode.schedule.next_check == pytest.approx(NOW + 0.02), "looked at again soon: it ends any moment"
    ours = Reading(DRAFT, draft=HEAD_A, pane_mode="copy-mode")
    assert hold(routed(ours, owed_=owed("a", delivering=True), paste=PASTE_A)).reason == COPY_MODE_HELD
    assert hold(routed(Reading(READY, pane_mode="tree-mode"))).reason == "held: the human has the pane in tree mode"
    assert routed(Reading(READY)) == Deliver(("a", "b")), "out of the mode, it delivers at once"


def test_input_turned_off_holds_even_our_own_paste() -> None:
    """tmux drops what is written to a pane whose input is off: a paste or a submit key would be lost."""
    off = hold(route(situation(Reading(READY, input_off=True))))
    assert off.reason == INPUT_OFF_HELD
    ours = Reading(DRAFT, draft=HEAD_A, input_off=True)
    assert hold(route(situation(ours, owed("a", delivering=True), paste=PASTE_A))).reason == INPUT_OFF_HELD


# ---- proves_our_paste and what a restart makes of a paste in flight --------------------------------------------


def test_proof_needs_a_recorded_paste_and_our_first_line_with_its_id() -> None:
    assert proves_our_paste(HEAD_A, PASTE_A)
    assert proves_our_paste(sim_draft(TEXT_A), PASTE_A)
    assert proves_our_paste(HEAD_A[: HEAD_A.index("id a") + 4], PASTE_A)  # cut by a narrow pane, id still shown
    assert not proves_our_paste(HEAD_A, None)
    assert not proves_our_paste("", PASTE_A)
    assert not proves_our_paste(HEAD_A, Paste((), HEAD_A, 4))
    assert not proves_our_paste(HEAD_A.replace("#3", "#2"), PASTE_A)
    assert not proves_our_paste(f"please see {HEAD_A}", PASTE_A)
    assert not proves_our_paste("[pairloop]", PASTE_A)


def test_a_placeholder_is_judged_by_its_line_count_alone() -> None:
    rules = CLAUDE_RULES.paste_placeholder
    assert proves_our_paste("[Pasted text #1 +3 lines]", Paste(("a",), HEAD_A, 4), rules)
    assert not proves_our_paste("[Pasted text #1 +30 lines]", Paste(("a",), HEAD_A, 4), rules)
    assert not proves_our_paste(HEAD_A, Paste(("a",), HEAD_A, 4), r"^\[pairloop\]"), "the placeholder rule wins"


def test_after_a_restart_the_history_says_what_reached_the_agent() -> None:
    history = f"> {HEAD_A}\n  working on it\n"
    assert inflight_outcome(["a", "b"], Reading(READY), history, PASTE_A) == (["a"], ["b"])
    assert inflight_outcome(["a"], Reading(READY), "nothing", PASTE_A) == ([], ["a"])
    assert inflight_outcome(["a"], Reading(DRAFT, draft="fix the bug"), "nothing", PASTE_A) == ([], ["a"])


def test_after_a_restart_our_paste_still_in_the_box_is_neither_seen_nor_lost() -> None:
    assert inflight_outcome(["a"], Reading(DRAFT, draft=sim_draft(TEXT_A)), "", PASTE_A) == ([], [])
    placeholder = Reading(DRAFT, draft="[Pasted text #1 +3 lines]")
    assert inflight_outcome(["a"], placeholder, "", Paste(("a",), HEAD_A, 4), CLAUDE_RULES.paste_placeholder) \
        == ([], [])


def test_after_a_restart_a_copy_of_a_settled_paste_is_not_ours() -> None:
    """The latest paste went through before; the one now in flight is another's: the box is the human's."""
    assert inflight_outcome(["c"], Reading(DRAFT, draft=HEAD_A), "", PASTE_A) == ([], ["c"])


def test_the_target_whose_oldest_owed_message_came_first_is_served_first() -> None:
    # A human's message to the reviewer (seq 7) and the context copy posted after it to the worker (seq 8): the
    # addressee first, whatever the targets' own order.
    assert serving_order({"worker": 8, "reviewer": 7}) == ["reviewer", "worker"]
    assert serving_order({"worker": 3, "reviewer": 7}) == ["worker", "reviewer"]
    assert serving_order({"worker": None, "reviewer": 7}) == ["reviewer", "worker"], "owed nothing: last"
    assert serving_order({"worker": None, "reviewer": None}) == ["worker", "reviewer"], "their own order"
