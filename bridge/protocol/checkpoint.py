"""Checkpoints: the exact state of the work under review, committed and working tree alike, as a git ref.

Built with a throwaway index, so the user's index, working tree and branches are never touched."""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from bridge.git import GitError, git_out


class CheckpointError(Exception):
    pass


@dataclass(frozen=True)
class Snapshot:
    commit: str
    tree: str


def _git(repo: Path, *args: str, env: dict[str, str] | None = None) -> str:
    try:
        return git_out(repo, *args, env=env)
    except GitError as exc:
        raise CheckpointError(str(exc)) from None


def current_tree(repo: Path) -> str:
    """The tree of everything in the working directory that git would see (.gitignore respected)."""
    with tempfile.TemporaryDirectory(prefix="pairloop-index-") as tmp:
        env = {**os.environ, "GIT_INDEX_FILE": str(Path(tmp) / "index")}
        try:
            _git(repo, "read-tree", "HEAD", env=env)
        except CheckpointError:
            pass  # no commit yet: start from an empty index
        _git(repo, "add", "-A", env=env)
        return _git(repo, "write-tree", env=env)


def snapshot(repo: Path, ref: str, message: str) -> Snapshot:
    """Commit the working directory's state on top of HEAD (not on any branch) and point ``ref`` at it."""
    tree = current_tree(repo)
    try:
        parent = ["-p", _git(repo, "rev-parse", "HEAD")]
    except CheckpointError:
        parent = []
    env = {**os.environ, "GIT_AUTHOR_NAME": "pairloop", "GIT_AUTHOR_EMAIL": "pairloop@localhost",
           "GIT_COMMITTER_NAME": "pairloop", "GIT_COMMITTER_EMAIL": "pairloop@localhost"}
    commit = _git(repo, "commit-tree", tree, *parent, "-m", message, env=env)
    _git(repo, "update-ref", ref, commit)
    return Snapshot(commit, tree)


def changes_between(repo: Path, old: str, new: str) -> str:
    """A short account of what changed from ``old`` to ``new``: commits, then the diff's size per file."""
    lines = []
    try:
        commits = _git(repo, "log", "--oneline", "--no-decorate", f"{old}..{new}^")
        if commits:
            lines.append("commits: " + "; ".join(commits.splitlines()[:10]))
        stat = _git(repo, "diff", "--stat=100", old, new)
    except CheckpointError as exc:
        return f"(could not compare: {exc})"
    lines.append(stat.splitlines()[-1].strip() if stat else "no changes")
    lines += [line.rstrip() for line in stat.splitlines()[:-1][:15]]
    return "\n".join(lines)
