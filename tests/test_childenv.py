"""The environment a child process gets: what is scrubbed, what is added, what is left alone."""

from __future__ import annotations

import pytest

from bridge.childenv import RUN_VARS, TMUX_VARS, child_env


def test_drops_the_callers_tmux_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TMUX", "/tmp/tmux-1/default,1,0")
    monkeypatch.setenv("TMUX_PANE", "%3")
    monkeypatch.setenv("PAIRLOOP_RUN_DIR", "/somewhere")
    env = child_env()
    assert "TMUX" not in env and "TMUX_PANE" not in env
    assert env["PAIRLOOP_RUN_DIR"] == "/somewhere", "only what is asked is dropped"
    assert env["HOME"]


def test_drops_what_it_is_told_and_sets_extra_on_top() -> None:
    base = {"TMUX": "t", "TMUX_PANE": "%1", "PAIRLOOP_RUN_DIR": "/r", "PAIRLOOP_ROLE": "worker", "PATH": "/bin"}
    env = child_env(base, drop=(*TMUX_VARS, *RUN_VARS), extra={"PATH": "/opt/bin:/bin", "NEW": "1"})
    assert env == {"PATH": "/opt/bin:/bin", "NEW": "1"}
    assert base["TMUX"] == "t", "the base is not changed"


def test_extra_may_put_back_a_dropped_variable() -> None:
    assert child_env({"TERM": "xterm"}, drop=("TERM",), extra={"TERM": "tmux-256color"}) == {"TERM": "tmux-256color"}
    assert child_env({"A": "1"}, drop=()) == {"A": "1"}
