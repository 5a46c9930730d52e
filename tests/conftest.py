"""Shared fixtures: an isolated HOME and environment for every test, throwaway git repos, private tmux servers."""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from bridge.panes.tmux import Tmux


@pytest.fixture(autouse=True)
def isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No test sees the user's HOME, their tmux, or a run from the environment it was started in."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    for var in ("TMUX", "TMUX_PANE", "PAIRLOOP_RUN_DIR", "PAIRLOOP_ROLE", "PAIRLOOP_RUN", "PAIRLOOP_REPO",
                "PAIRLOOP_TMUX_SOCKET", "PAIRLOOP_WORKER", "PAIRLOOP_REVIEWER", "PAIRLOOP_SIM_MODE",
                "PAIRLOOP_SIM_WORK_SECONDS", "PAIRLOOP_SIM_DIALOG", "PAIRLOOP_SIM_STUCK", "PAIRLOOP_SIM_STUBBORN",
                "PAIRLOOP_SIM_IGNORE_HUP",
                "PAIRLOOP_SIM_DISPUTE", "PAIRLOOP_WATCH"):
        monkeypatch.delenv(var, raising=False)
    for key, value in (("GIT_AUTHOR_NAME", "Test"), ("GIT_AUTHOR_EMAIL", "test@example.invalid"),
                       ("GIT_COMMITTER_NAME", "Test"), ("GIT_COMMITTER_EMAIL", "test@example.invalid")):
        monkeypatch.setenv(key, value)
    return home


@pytest.fixture
def git_repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    repo = tmp_path / "repo"
    repo.mkdir()
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    (repo / "README.md").write_text("test repo\n")
    subprocess.run(["git", "add", "README.md"], cwd=repo, check=True)
    subprocess.run(["git", "commit", "-q", "-m", "init"], cwd=repo, check=True)
    monkeypatch.chdir(repo)
    return repo


def _pane_pids(tmux: Tmux) -> list[int]:
    try:
        return [int(p) for p in tmux.run("list-panes", "-a", "-F", "#{pane_pid}") if p]
    except Exception:
        return []


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    # A zombie is gone for our purposes: its parent (tmux) reaps it.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"
    except OSError:
        return True


@pytest.fixture
def tmux_server() -> Iterator[Tmux]:
    """A private tmux server on its own socket; killed afterwards, its socket removed, its panes' processes
    checked gone."""
    name = f"pairloop-test-{uuid.uuid4().hex[:10]}"
    tmux = Tmux(socket_name=name)
    yield tmux
    pids = _pane_pids(tmux)
    tmux.kill_private_server()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not all(_gone(p) for p in pids):
        time.sleep(0.05)
    leftover = [p for p in pids if not _gone(p)]
    assert not leftover, f"pane processes outlived their tmux server: {leftover}"


def wait_for(predicate: Callable[[], object], timeout: float = 15.0, what: str = "condition") -> object:
    """Poll with a deadline; fail with ``what`` if it never holds."""
    deadline = time.monotonic() + timeout
    delay = 0.01
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(delay)
        delay = min(delay * 2, 0.1)
