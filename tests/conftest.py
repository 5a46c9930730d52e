"""Shared fixtures: an isolated HOME and environment for every test, throwaway git repos, private tmux servers.

Every test that starts tmux carries the ``tmux`` marker (a test using the ``tmux_server`` fixture gets it
here), so ``pytest -m "not tmux and not e2e"`` is a quick loop with no tmux server. A test without the marker
(or ``e2e``) finds a ``tmux`` on PATH that refuses to run and fails the test, so a missing marker cannot hide."""

from __future__ import annotations

import os
import stat
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest

from bridge.deadline import poll
from bridge.git import git
from bridge.panes.tmux import Tmux

T = TypeVar("T")
TMUX_TRAP_VAR = "PAIRLOOP_TEST_TMUX_TRAP"
REFUSING_TMUX = f"""#!/bin/sh
echo "tmux refused: this test has no tmux marker (use the tmux_server fixture or pytest.mark.tmux)" >&2
if [ -n "${TMUX_TRAP_VAR}" ]; then echo "tmux $*" >> "${TMUX_TRAP_VAR}"; fi
exit 1
"""


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if "tmux_server" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.tmux)


@pytest.fixture(scope="session")
def refusing_tmux_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("refusing-tmux")
    shim = folder / "tmux"
    shim.write_text(REFUSING_TMUX)
    shim.chmod(shim.stat().st_mode | stat.S_IXUSR)
    return folder


@pytest.fixture(autouse=True)
def tmux_only_when_marked(request: pytest.FixtureRequest, refusing_tmux_dir: Path, tmp_path: Path,
                          monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Unmarked tests get the refusing tmux first on PATH (in process, libtmux finds it too; so does every
    child); any attempt fails the test at teardown, even when the code under test swallowed the error."""
    if request.node.get_closest_marker("tmux") or request.node.get_closest_marker("e2e"):
        yield
        return
    trap = tmp_path / "tmux-attempts"
    monkeypatch.setenv("PATH", f"{refusing_tmux_dir}{os.pathsep}{os.environ.get('PATH', os.defpath)}")
    monkeypatch.setenv(TMUX_TRAP_VAR, str(trap))
    yield
    if trap.exists():
        pytest.fail(f"this test ran tmux without the tmux marker:\n{trap.read_text()}", pytrace=False)


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
                "PAIRLOOP_SIM_DISPUTE", "PAIRLOOP_SIM_LENIENT", "PAIRLOOP_WATCH", "PAIRLOOP_HOME", "XDG_STATE_HOME"):
        monkeypatch.delenv(var, raising=False)
    for key, value in (("GIT_AUTHOR_NAME", "Test"), ("GIT_AUTHOR_EMAIL", "test@example.invalid"),
                       ("GIT_COMMITTER_NAME", "Test"), ("GIT_COMMITTER_EMAIL", "test@example.invalid")):
        monkeypatch.setenv(key, value)
    return home


def make_repo(repo: Path) -> Path:
    """A git repository at ``repo`` with one commit."""
    repo.mkdir()
    git(repo, "init", "-q", check=True)
    (repo / "README.md").write_text("test repo\n")
    git(repo, "add", "README.md", check=True)
    git(repo, "commit", "-q", "-m", "init", check=True)
    return repo


@pytest.fixture
def git_repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    repo = make_repo(tmp_path / "repo")
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
    poll(lambda: all(_gone(p) for p in pids), 10, delay=0.05, max_delay=0.05)
    leftover = [p for p in pids if not _gone(p)]
    assert not leftover, f"pane processes outlived their tmux server: {leftover}"


TINY_DISK_BYTES = 4 * 1024 * 1024


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    """A file system of its own, small enough to fill to the last byte: a tmpfs mounted for this test, unmounted
    afterwards whatever happened. Skipped, saying why, where mounting is not possible (it needs root, which the
    tests have here and in CI). Ask for it before ``tmux_server``: the processes holding files on it are gone
    before it is unmounted."""
    where = tmp_path / "tiny-disk"
    where.mkdir()
    if os.geteuid() != 0:
        pytest.skip("a full disk is a tmpfs the test mounts, and mounting needs root")
    try:
        mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={TINY_DISK_BYTES},mode=0700", "tmpfs",
                                  str(where)], capture_output=True, text=True, check=False)
    except FileNotFoundError:
        pytest.skip("no `mount` program to mount a tmpfs with")
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip() or mounted.returncode}")
    try:
        yield where
    finally:
        if subprocess.run(["umount", str(where)], capture_output=True, check=False).returncode != 0:
            # Something still holds a file there: detach it now, the memory goes when the last file is closed.
            subprocess.run(["umount", "-l", str(where)], capture_output=True, check=False)


def wait_for(predicate: Callable[[], T | None], timeout: float = 15.0, what: str = "condition") -> T:
    """Poll with a deadline; fail with ``what`` if it never holds."""
    value = poll(predicate, timeout)
    if not value:
        raise AssertionError(f"timed out after {timeout}s waiting for {what}")
    return value
