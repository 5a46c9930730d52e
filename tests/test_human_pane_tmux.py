"""The human uses an agent's pane the way a tmux user does while messages arrive: reads back through the history
(copy mode), selects text, zooms the pane, resizes the window or the pane, types a draft. Every message still
reaches the agent whole, once, as one prompt; the human's copy mode and selection stay as they were; nothing is
recorded as a human turn that the human did not type; a draft (even a copy of a real envelope line) is never
submitted, merged or cleared. Real tmux (private servers), sim agents."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path

import pytest

from bridge.panes.envelope import parse
from bridge.panes.tmux import Tmux, TmuxError
from bridge.rundir.message import Message
from pairloop.runs.store import Run
from tests.conftest import wait_for
from tests.helpers import delivered, human_says, ledger, prompts, queued_reason, settle, start_sims

pytestmark = pytest.mark.tmux
BURST = 6
COPY_STATE = "#{pane_in_mode} #{pane_mode} #{scroll_position} #{selection_present} #{selection_start_x}," \
             "#{selection_start_y} #{selection_end_x},#{selection_end_y} #{copy_cursor_x},#{copy_cursor_y}"


def fmt(tmux: Tmux, pane: str, spec: str) -> str:
    return tmux.run("display-message", "-p", "-t", pane, spec)[0]


def burst(run: Run, to: str, tag: str, between: Callable[[int], None]) -> list[Message]:
    """Messages with several lines each (a paste cut into lines would show), the human acting between sends."""
    sent = []
    for i in range(BURST):
        sent.append(human_says(run, to, f"{tag} {i}: first line\n  second line of {i}\n\nlast line of {i};"))
        between(i)
    return sent


def assert_whole_and_once(run: Run, role: str, sent: list[Message]) -> None:
    """Each message delivered once, in one prompt with its body whole; no prompt the bridge did not paste; no
    human turn recorded."""
    wait_for(lambda: all(delivered(run, m.id, role) for m in sent), timeout=30, what="every message delivered")
    # Then one more: a second paste of any of them, or a receipt taken for a human turn, comes before it.
    settle(run, role)
    got = prompts(run, role)
    for msg in sent:
        carrying = [p for p in got if f"· id {msg.id} ·" in p]
        assert len(carrying) == 1, f"{msg.id} reached the agent {len(carrying)} times"
        bodies = {m.id: m.body for m in parse(carrying[0])[0]}
        assert bodies[msg.id] == msg.body, "the body arrived whole"
    assert all(p.startswith("[pairloop] ") for p in got), f"a prompt the bridge did not paste: {got}"
    assert [e for e in ledger(run) if e["ev"] == "human_turn"] == []
    assert [e for e in ledger(run) if e["ev"] == "failed"] == []


def scrolled_back(tmux: Tmux, pane: str) -> None:
    tmux.run("copy-mode", "-t", pane)
    tmux.run("send-keys", "-t", pane, "-X", "-N", "5", "scroll-up")


@pytest.mark.parametrize("keys", ["emacs", "vi"])
def test_messages_arrive_while_the_human_reads_back_in_copy_mode(tmux_server: Tmux, git_repo: Path,
                                                                 keys: str) -> None:
    run = start_sims(tmux_server, git_repo)
    pane = run.manifest.roles["worker"].pane
    tmux_server.set_window_options(pane, {"mode-keys": keys})
    human_says(run, "worker", "some history to scroll back through")  # so there is history
    wait_for(lambda: len(prompts(run, "worker")) == 1, what="the first prompt")
    # The sim may still be repainting after that prompt: wait until there is history to scroll back to.
    wait_for(lambda: int(fmt(tmux_server, pane, "#{history_size}")) > 0, what="history in the pane")
    scrolled_back(tmux_server, pane)
    assert fmt(tmux_server, pane, "#{pane_mode} #{?#{e|>:#{scroll_position},0},back,at the bottom}") == \
        "copy-mode back"

    def read_on(i: int) -> None:
        tmux_server.run("send-keys", "-t", pane, "-X", "scroll-up" if i % 2 else "cursor-up")

    sent = burst(run, "worker", "read back", read_on)
    state = fmt(tmux_server, pane, COPY_STATE)
    assert_whole_and_once(run, "worker", sent)
    assert fmt(tmux_server, pane, COPY_STATE) == state, "the human's copy mode is exactly as they left it"
    assert fmt(tmux_server, pane, "#{pane_mode}") == "copy-mode"


@pytest.mark.parametrize("keys", ["emacs", "vi"])
def test_messages_arrive_while_the_human_selects_text(tmux_server: Tmux, git_repo: Path, keys: str) -> None:
    run = start_sims(tmux_server, git_repo)
    pane = run.manifest.roles["reviewer"].pane
    tmux_server.set_window_options(pane, {"mode-keys": keys})
    scrolled_back(tmux_server, pane)
    tmux_server.run("send-keys", "-t", pane, "-X", "begin-selection")

    def extend(i: int) -> None:
        tmux_server.run("send-keys", "-t", pane, "-X", "cursor-up")

    buffers = tmux_server.run("list-buffers", "-F", "#{buffer_name}")
    sent = burst(run, "reviewer", "selecting", extend)
    state = fmt(tmux_server, pane, COPY_STATE)
    assert_whole_and_once(run, "reviewer", sent)
    assert fmt(tmux_server, pane, COPY_STATE) == state, "the selection is exactly as the human left it"
    assert fmt(tmux_server, pane, "#{selection_present}") == "1"
    assert tmux_server.run("list-buffers", "-F", "#{buffer_name}") == buffers, "nothing was copied"


@contextmanager
def human_keeps_at_it(action: Callable[[int], None]) -> Iterator[None]:
    """The human acting on the pane again and again on their own clock while the block runs, so their actions
    fall anywhere in a delivery: between the bridge's look and its paste, between the paste and the submit key."""
    stop = threading.Event()
    failures: list[TmuxError] = []

    def act() -> None:
        i = 0
        while not stop.is_set():
            try:
                action(i)
            except TmuxError as exc:
                failures.append(exc)
            i += 1
            stop.wait(0.005)  # a human's pace, roughly: not a wait for anything

    thread = threading.Thread(target=act, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(10)
    assert not failures, failures[:3]


def one_by_one_then_a_burst(run: Run, to: str, tag: str) -> list[Message]:
    """Three deliveries of one message each, then three messages at once (one paste, or two)."""
    sent = []
    for i in range(BURST):
        sent.append(human_says(run, to, f"{tag} {i}: first line\n  second line of {i}\n\nlast line of {i};"))
        if i < BURST // 2:
            wait_for(partial(delivered, run, sent[-1].id, to), timeout=30, what=f"delivery of {tag} {i}")
    return sent


def test_messages_arrive_while_the_human_goes_in_and_out_of_copy_mode(tmux_server: Tmux, git_repo: Path) -> None:
    run = start_sims(tmux_server, git_repo)
    pane = run.manifest.roles["worker"].pane
    tmux_server.set_window_options(pane, {"mode-keys": "vi"})

    def toggle(i: int) -> None:
        tmux_server.run("if-shell", "-F", "-t", pane, "#{pane_in_mode}", f"send-keys -t {pane} -X cancel",
                        f"copy-mode -t {pane}")

    with human_keeps_at_it(toggle):
        sent = one_by_one_then_a_burst(run, "worker", "in and out")
        assert_whole_and_once(run, "worker", sent)


def test_messages_arrive_while_the_human_zooms_the_pane(tmux_server: Tmux, git_repo: Path) -> None:
    run = start_sims(tmux_server, git_repo)
    pane = run.manifest.roles["worker"].pane

    def zoom(i: int) -> None:
        tmux_server.run("resize-pane", "-Z", "-t", pane)

    with human_keeps_at_it(zoom):
        sent = one_by_one_then_a_burst(run, "worker", "zoomed")
        assert_whole_and_once(run, "worker", sent)


def test_messages_arrive_while_the_human_resizes_the_window(tmux_server: Tmux, git_repo: Path) -> None:
    run = start_sims(tmux_server, git_repo)
    pane = run.manifest.roles["reviewer"].pane
    sizes = [("120", "30"), ("80", "24"), ("220", "50"), ("60", "15"), ("160", "40"), ("100", "20")]

    def resize(i: int) -> None:
        width, height = sizes[i % len(sizes)]
        tmux_server.run("resize-window", "-t", pane, "-x", width, "-y", height)

    with human_keeps_at_it(resize):
        sent = one_by_one_then_a_burst(run, "reviewer", "window resized")
        assert_whole_and_once(run, "reviewer", sent)


def test_messages_arrive_while_the_human_resizes_the_pane(tmux_server: Tmux, git_repo: Path) -> None:
    run = start_sims(tmux_server, git_repo)
    pane = run.manifest.roles["worker"].pane
    sizes = [("-x", "40"), ("-y", "8"), ("-x", "150"), ("-y", "30"), ("-x", "70"), ("-y", "12")]

    def resize(i: int) -> None:
        flag, size = sizes[i % len(sizes)]
        tmux_server.run("resize-pane", "-t", pane, flag, size)

    with human_keeps_at_it(resize):
        sent = one_by_one_then_a_burst(run, "worker", "pane resized")
        assert_whole_and_once(run, "worker", sent)


def test_synchronized_panes_get_no_submit_key_meant_for_another(tmux_server: Tmux, git_repo: Path) -> None:
    """With synchronize-panes on, send-keys reaches every pane of the window: an Enter meant for the worker
    would submit the human's draft in the reviewer's pane."""
    run = start_sims(tmux_server, git_repo)
    worker, reviewer = run.manifest.roles["worker"].pane, run.manifest.roles["reviewer"].pane
    tmux_server.send_keys(reviewer, "my own draft, not yet", literal=True)
    wait_for(lambda: "› my own draft, not yet" in tmux_server.capture(reviewer), what="the draft on screen")
    tmux_server.set_window_options(worker, {"synchronize-panes": "on"})
    sent = one_by_one_then_a_burst(run, "worker", "synchronized")
    assert_whole_and_once(run, "worker", sent)
    assert prompts(run, "reviewer") == [], "nothing was submitted in the reviewer's pane"
    assert "› my own draft, not yet" in tmux_server.capture(reviewer)


def test_input_turned_off_for_the_pane_holds_delivery_and_says_so(tmux_server: Tmux, git_repo: Path) -> None:
    """`select-pane -d` makes tmux drop whatever is written to the pane: a paste would be lost, so it waits."""
    run = start_sims(tmux_server, git_repo)
    pane = run.manifest.roles["worker"].pane
    tmux_server.run("select-pane", "-d", "-t", pane)
    msg = human_says(run, "worker", "wait for input to come back")
    wait_for(lambda: queued_reason(run, msg.id, "worker").startswith("held: input to the pane is off"),
             what="held: input off")
    assert prompts(run, "worker") == []
    tmux_server.run("select-pane", "-e", "-t", pane)
    assert_whole_and_once(run, "worker", [msg])


@pytest.mark.parametrize("copy_of", ["the mark", "a real envelope line"])
def test_a_draft_that_looks_like_ours_is_held_never_submitted_merged_or_cleared(
        tmux_server: Tmux, git_repo: Path, copy_of: str) -> None:
    run = start_sims(tmux_server, git_repo)
    pane = run.manifest.roles["worker"].pane
    first = human_says(run, "worker", "a message whose envelope the human copies")
    wait_for(lambda: delivered(run, first.id, "worker"), what="first delivery")
    (envelope,) = prompts(run, "worker")
    line = envelope.split("\n", 1)[0]
    draft = "[pairloop] also check the docs" if copy_of == "the mark" else line
    assert not draft.startswith("-")
    tmux_server.send_keys(pane, draft, literal=True)
    wait_for(lambda: f"› {draft}" in tmux_server.capture(pane), what="the draft on screen")

    later = [human_says(run, "worker", f"while the draft sits there {i}") for i in range(3)]
    wait_for(lambda: all(queued_reason(run, m.id, "worker") == "held: human draft in the input box"
                         for m in later), what="held: human draft")
    scrolled_back(tmux_server, pane)  # the human looks back at the message they are quoting
    tmux_server.run("send-keys", "-t", pane, "-X", "cancel")
    assert len(prompts(run, "worker")) == 1, "nothing was submitted"
    assert f"› {draft}" in tmux_server.capture(pane), "the draft is untouched: not merged, not cleared"
    assert not any(delivered(run, m.id, "worker") for m in later)

    tmux_server.send_keys(pane, "C-u")  # the human gives up on the draft
    assert_whole_and_once(run, "worker", [first, *later])
