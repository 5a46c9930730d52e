"""The command line's core without click or tmux: who sends what to whom, how a session is shown, `log`."""

from __future__ import annotations

import re

import pytest

from pairloop.errors import UsageProblem
from pairloop.runs.attach import how_to_show
from pairloop.verbs import VERBS, body_of, recipients, run_env, sender_from

PANE = {"PAIRLOOP_RUN_DIR": "/runs/r1"}

# ---- the sender, from the environment -----------------------------------------------------------------


@pytest.mark.parametrize(("env", "sender"), [
    ({}, "human"),
    ({**PANE, "PAIRLOOP_ROLE": "worker"}, "worker"),
    ({**PANE, "PAIRLOOP_ROLE": "reviewer"}, "reviewer"),
    ({"PAIRLOOP_ROLE": "worker"}, "human"),  # a role without its run is not an agent's pane
    ({**PANE, "PAIRLOOP_ROLE": "bridge"}, "human"),
    ({**PANE, "PAIRLOOP_ROLE": "human"}, "human"),
])
def test_the_sender_is_the_pane_s_agent_or_the_human(env: dict[str, str], sender: str) -> None:
    assert sender_from(env) == sender


def test_a_run_directory_in_the_environment_speaks_only_for_an_agent() -> None:
    env = {**PANE, "PAIRLOOP_RUN": "r2", "HOME": "/h"}
    assert run_env("worker", env) == env
    assert run_env("human", env) == {"PAIRLOOP_RUN": "r2", "HOME": "/h"}


# ---- the verbs' table ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("verb", "sender", "to", "expected"), [
    ("send", "human", "worker", ("worker",)),
    ("send", "human", "reviewer", ("reviewer",)),
    ("send", "human", "both", ("worker", "reviewer")),
    ("send", "worker", None, ("reviewer",)),  # inside a pane: the partner
    ("send", "reviewer", None, ("worker",)),
    ("send", "worker", "both", ("reviewer",)),  # both, but never itself
    ("send", "reviewer", "human", ("human",)),
    ("review", "worker", None, ("reviewer",)),
    ("done", "worker", None, ("reviewer",)),
    ("approve", "reviewer", None, ("worker",)),
    ("approve", "human", None, ("worker",)),  # the human overrules the reviewer
    ("changes", "reviewer", None, ("worker",)),
    ("changes", "human", None, ("worker",)),
])
def test_where_each_verb_goes(verb: str, sender: str, to: str | None, expected: tuple[str, ...]) -> None:
    assert recipients(VERBS[verb], sender, to) == expected


@pytest.mark.parametrize(("verb", "sender", "to", "problem"), [
    ("send", "human", None, "from outside an agent pane, say who it is for: --to worker|reviewer|both"),
    ("send", "worker", "worker", "the worker cannot send a message to itself"),
    ("send", "human", "human", "the human cannot send a message to itself"),
    ("review", "reviewer", None, "`pairloop review` is the worker's verb (run it in the worker's pane)"),
    ("review", "human", None, "`pairloop review` is the worker's verb"),
    ("done", "reviewer", None, "`pairloop done` is the worker's verb"),
    ("approve", "worker", None, "`pairloop approve` is the reviewer's (or the human's) verb; the worker uses "
                                "`pairloop review` and `pairloop done`"),
    ("changes", "worker", None, "`pairloop changes` is the reviewer's (or the human's) verb"),
])
def test_what_each_verb_refuses(verb: str, sender: str, to: str | None, problem: str) -> None:
    with pytest.raises(UsageProblem, match="^" + re.escape(problem)):
        recipients(VERBS[verb], sender, to)


def test_each_verb_sends_its_own_kind_and_default_text() -> None:
    assert {name: (v.kind, v.default_text) for name, v in VERBS.items()} == {
        "send": ("message", None), "review": ("review", "Ready for review."), "done": ("done", "Done."),
        "approve": ("approve", "Approved."), "changes": ("changes", None),
    }


def test_the_body_is_the_text_or_stdin_for_a_lone_dash() -> None:
    assert body_of("- a bullet", lambda: pytest.fail("stdin read")) == "- a bullet"
    assert body_of("--", lambda: pytest.fail("stdin read")) == "--"
    assert body_of("-", lambda: "- from stdin\n") == "- from stdin\n"


@pytest.mark.parametrize(("text", "stdin"), [("", ""), ("  \n", ""), ("-", ""), ("-", "  \n")])
def test_an_empty_body_is_refused(text: str, stdin: str) -> None:
    with pytest.raises(UsageProblem, match="the message is empty"):
        body_of(text, lambda: stdin)


# ---- showing the session ------------------------------------------------------------------------------

SOCKET = "/tmp/tmux-1000/pairloop-x"


@pytest.mark.parametrize(("env", "wanted", "terminal", "how"), [
    ({}, True, True, "attach"),  # outside tmux
    ({"TMUX": f"{SOCKET},123,0"}, True, True, "switch"),  # a client of the run's own server: no nesting
    ({"TMUX": "/tmp/tmux-1000/../tmux-1000/pairloop-x,1,0"}, True, True, "switch"),  # the same socket
    ({"TMUX": "/tmp/tmux-1000/default,123,0"}, True, True, "attach"),  # another server: nested
    ({"TMUX": ""}, True, True, "attach"),
    ({}, False, True, "print"),  # --no-attach
    ({}, True, False, "print"),  # no terminal to attach
    ({"TMUX": f"{SOCKET},123,0"}, True, False, "print"),
    ({"TMUX": f"{SOCKET},123,0"}, False, True, "print"),
])
def test_how_the_session_is_shown(env: dict[str, str], wanted: bool, terminal: bool, how: str) -> None:
    assert how_to_show(SOCKET, env, wanted=wanted, terminal=terminal) == how

