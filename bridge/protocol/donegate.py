"""The done gate explains itself: which paths changed since the approved checkpoint, and whether the pair changed
them.

The rule for "whether the run's agents changed it": the agents' work reaches git as commits, and a checkpoint
records the commit it was taken on top of (its parent). A path that a commit made since then changed is the
pair's. A path that differs only in the working tree (an uncommitted edit to a tracked file, or an untracked file)
is in no commit of the pair: it may be the worker's edit not committed yet, or a program writing into the
repository (a build, a log, a test's output) — the refusal says which of the two it can be, never guesses more."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from bridge.git import git

EMPTY_TREE = "4b825dc642cb6eb9a060e54bf8d69288fbee4904"
SHOWN_PATHS = 10
_STATUS = {"A": "added", "M": "modified", "D": "deleted", "T": "type changed"}


@dataclass(frozen=True)
class Change:
    path: str
    status: str  # added, modified, deleted
    committed: bool  # a commit made since the approved checkpoint changed it: the pair's
    tracked: bool  # git tracks it now (in HEAD)

    def describe(self) -> str:
        if self.committed:
            return f"{self.path} ({self.status}, in a commit made since the approval: the pair's)"
        if self.tracked:
            return f"{self.path} ({self.status}, not in a commit of the pair: an uncommitted edit, or a program " \
                   "writing it)"
        return f"{self.path} ({'untracked' if self.status != 'deleted' else 'deleted'}, not in a commit of the pair: " \
               "a program writing it, or a new file not committed yet)"


def _z(out: str) -> list[str]:
    return [p for p in out.split("\0") if p]


def changes_since(repo: Path, checkpoint: str, approved_tree: str, current_tree: str) -> list[Change]:
    """What differs between the approved checkpoint's tree and the working tree's now (tracked and untracked,
    .gitignore respected, as a checkpoint sees it), each with whose change it is."""
    diff = git(repo, "diff-tree", "-r", "-z", "--no-renames", "--name-status", approved_tree, current_tree)
    if diff.returncode != 0:
        return []
    fields = _z(diff.stdout)
    pairs = [(fields[i], fields[i + 1]) for i in range(0, len(fields) - 1, 2)]
    if not pairs:
        return []
    parent = git(repo, "rev-parse", "--verify", "-q", f"{checkpoint}^").stdout.strip() or EMPTY_TREE
    head = git(repo, "rev-parse", "--verify", "-q", "HEAD").stdout.strip()
    committed = set(_z(git(repo, "diff", "--name-only", "-z", parent, head).stdout)) if head else set()
    paths = [path for _, path in pairs]
    tracked = set(_z(git(repo, "--literal-pathspecs", "ls-tree", "-r", "-z", "--name-only", "HEAD", "--",
                         *paths).stdout)) if head else set()
    return [Change(path, _STATUS.get(status[:1], status), path in committed, path in tracked)
            for status, path in pairs]


def refusal_text(round_: int, changes: list[Change]) -> str:
    """The done gate's refusal for a changed tree, naming the paths. Pure."""
    if not changes:
        return (f"the code changed since the approval of round {round_}: ask for review of the current state with "
                "`pairloop review`")
    shown = "; ".join(c.describe() for c in changes[:SHOWN_PATHS])
    more = f"; and {len(changes) - SHOWN_PATHS} more" if len(changes) > SHOWN_PATHS else ""
    outside = [c for c in changes if not c.committed]
    advice = "ask for review of the current state with `pairloop review`"
    if outside:
        advice = ("commit what belongs to the work and ask for review with `pairloop review`; a file a program "
                  "writes belongs in .gitignore (or outside the repository)")
    return f"the code changed since the approval of round {round_}: {shown}{more}. {advice[0].upper()}{advice[1:]}"
