"""Running git through the one helper: in a repository or here, with an environment, failures typed."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bridge.git import GitError, git, git_out


def test_runs_in_the_repository_given(git_repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert git_out(git_repo, "rev-parse", "--show-toplevel") == str(git_repo.resolve())
    monkeypatch.chdir(git_repo)
    assert git(None, "log", "--format=%s").stdout == "init\n"


def test_a_failure_is_a_result_unless_checked(git_repo: Path) -> None:
    out = git(git_repo, "rev-parse", "--verify", "no-such-ref")
    assert out.returncode != 0 and out.stderr
    with pytest.raises(GitError) as caught:
        git(git_repo, "rev-parse", "--verify", "no-such-ref", check=True)
    assert str(caught.value).startswith("git rev-parse: ")
    assert caught.value.returncode == out.returncode
    with pytest.raises(GitError, match="git log: "):
        git_out(git_repo, "log", "no-such-ref")


def test_the_environment_given_is_the_one_git_sees(git_repo: Path, tmp_path: Path) -> None:
    index = tmp_path / "other-index"
    git_out(git_repo, "read-tree", "HEAD", env={**os.environ, "GIT_INDEX_FILE": str(index)})
    assert index.exists()
    assert git_out(git_repo, "status", "--porcelain") == "", "the repository's own index is untouched"


def test_git_never_waits_for_input(git_repo: Path) -> None:
    """stdin is closed: a git that would read it (here `hash-object --stdin`) sees an empty input at once."""
    assert git_out(git_repo, "hash-object", "--stdin") == "e69de29bb2d1d6434b8b29ae775ad8c2e48c5391"
