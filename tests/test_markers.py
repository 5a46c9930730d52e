"""The quick loop (`-m "not tmux and not e2e"`) starts no tmux: tests that need it are marked, and an unmarked
test that tries finds a tmux that refuses."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from bridge.panes.tmux import Tmux, TmuxError
from tests.conftest import TMUX_TRAP_VAR


def test_an_unmarked_test_cannot_run_tmux(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    elsewhere = tmp_path / "elsewhere"  # not this test's own trap, which would fail it
    monkeypatch.setenv(TMUX_TRAP_VAR, str(elsewhere))
    out = subprocess.run(["tmux", "-V"], env=dict(os.environ), capture_output=True, text=True, check=False)
    assert out.returncode == 1 and "tmux refused" in out.stderr
    with pytest.raises(TmuxError, match="tmux refused"):
        Tmux(socket_name="pairloop-test-refused").run("new-session", "-d")
    assert elsewhere.read_text().splitlines() == ["tmux -V", "tmux -Lpairloop-test-refused new-session -d"]


def test_a_test_using_the_tmux_server_is_marked(tmux_server: Tmux, request: pytest.FixtureRequest) -> None:
    assert request.node.get_closest_marker("tmux") is not None
