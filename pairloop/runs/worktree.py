"""A worktree per run: the pair works on a branch of its own in a checkout of its own, so the user's checkout —
its files, index, branch and HEAD — is never touched, and several pairs can work in one repository at once.

The worktrees live under the state root, ``<state root>/worktrees/<repo>-<run id>``, not next to the repository
nor inside it: nothing appears among the user's folders (or in their editor's, test runner's or search tool's
view of the repository), one place holds every run's files, and `pairloop clean` knows exactly what is its to
remove. Git itself keeps the worktree's administrative files in the repository's ``.git/worktrees/``, and the
branch and the checkpoint refs in the repository's refs, so the work is visible from the user's checkout."""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bridge import git
from pairloop.errors import PairloopError, UsageProblem
from pairloop.runs.store import Run, base_commit, slug, state_root
from pairloop.summary.summarize import PLAN_FILE as PLAN
from pairloop.summary.summarize import kept_plan_path

WORKTREES = "worktrees"
BRANCH_PREFIX = "pairloop/"


def default_branch(run_id: str) -> str:
    return BRANCH_PREFIX + run_id


def worktree_path(repo: Path, run_id: str) -> Path:
    """Resolved, as git and `rev-parse --show-toplevel` spell it: a command run inside the worktree finds its run
    by this path even when the state root is reached through a symlink (or given relative)."""
    return state_root().resolve() / WORKTREES / f"{slug(repo.name)}-{run_id}"


def wants_worktree(config: dict[str, Any]) -> bool:
    """``worktree = true`` in the configuration: every run gets its own worktree."""
    value = config.get("worktree", False)
    if not isinstance(value, bool):
        raise UsageProblem("worktree in the configuration must be true or false")
    return value


def branch_exists(repo: Path, branch: str) -> bool:
    return git(repo, "show-ref", "--verify", "--quiet", f"refs/heads/{branch}").returncode == 0


def check_new_branch(repo: Path, branch: str) -> None:
    """The run's branch is made for it: a name git refuses, or a branch that exists already, is refused here,
    before anything of the run is created."""
    # `check-ref-format --branch` expands "@{-1}" (the previous branch) and takes "@" or "refs/heads/x": the
    # manifest would name another branch than the one made. The name is checked as the ref it becomes.
    if (branch.startswith(("-", "refs/")) or branch == "@" or "@{" in branch
            or git(repo, "check-ref-format", "--branch", branch).returncode != 0
            or git(repo, "check-ref-format", f"refs/heads/{branch}").returncode != 0):
        raise UsageProblem(f"{branch!r} is not a valid branch name")
    if branch_exists(repo, branch):
        raise UsageProblem(f"branch {branch!r} already exists in {repo}: a run's worktree gets a new branch; "
                           "choose another name with --branch NAME")


def add_worktree(repo: Path, run_id: str, branch: str | None = None) -> tuple[Path, str]:
    """A new worktree for the run on a new branch from the current HEAD; returns its path and branch."""
    branch = branch or default_branch(run_id)
    check_new_branch(repo, branch)
    head = base_commit(repo)
    if head is None:
        raise PairloopError(f"{repo} has no commit yet: a worktree starts from HEAD, so commit something first")
    path = worktree_path(repo, run_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    out = git(repo, "worktree", "add", "-q", "-b", branch, str(path), head)
    if out.returncode != 0:
        raise PairloopError(f"could not create the run's worktree: {out.stderr.strip()}")
    return path, branch


def unique_commits(repo: Path, branch: str) -> list[str]:
    """The branch's commits that no other branch, tag or remote-tracking branch holds ("<short id> <subject>",
    newest first): deleting the branch would lose them. A merged or pushed branch has none."""
    name = f"refs/heads/{branch}"
    if git(repo, "show-ref", "--verify", "--quiet", name).returncode != 0:
        return []
    out = git(repo, "log", "--format=%h %s", name, "--not", f"--exclude={branch}", "--branches", "--tags",
              "--remotes")
    if out.returncode != 0:
        raise PairloopError(f"cannot tell what branch {branch!r} holds: {out.stderr.strip()}")
    return out.stdout.splitlines()


def uncommitted(workdir: Path) -> list[str]:
    """What removing the worktree would lose that no commit holds: its changed and untracked files
    (`git status --porcelain` lines). The run's mailbox is ignored by git and not counted."""
    if not workdir.is_dir():
        return []
    out = git(workdir, "status", "--porcelain", "--untracked-files=all")
    return out.stdout.splitlines() if out.returncode == 0 else [f"?? (cannot read its status: {out.stderr.strip()})"]


@dataclass(frozen=True)
class Removal:
    """What removing one run's worktree means: the worktree, its branch, and what either would lose."""

    run_id: str
    repo: Path
    workdir: Path
    branch: str | None
    commits: list[str] = field(default_factory=list)  # the branch's commits found nowhere else
    files: list[str] = field(default_factory=list)  # uncommitted changes in the worktree (status lines)
    # Where an uncommitted PLAN.md (the summary writes it into the worktree) is kept when the worktree goes.
    plan_copy: Path | None = None

    def kept_plan(self) -> bool:
        return self.plan_copy is not None and any(_path_of(f) == PLAN for f in self.files)

    def lost_files(self) -> list[str]:
        return [f for f in self.files if not (self.plan_copy is not None and _path_of(f) == PLAN)]

    def losses(self, keep_branch: bool) -> list[str]:
        """Why this removal needs --force: each loss, named. Keeping the branch keeps its commits."""
        out = []
        lost = self.lost_files()
        if lost:
            out.append(f"{len(lost)} uncommitted change(s) in {self.workdir}: "
                       + ", ".join(f.strip() for f in lost[:8]) + (" …" if len(lost) > 8 else ""))
        if self.commits and not keep_branch:
            out.append(f"branch {self.branch!r} has {len(self.commits)} commit(s) that exist nowhere else: "
                       + "; ".join(self.commits[:8]) + (" …" if len(self.commits) > 8 else ""))
        return out


def _path_of(status_line: str) -> str:
    return status_line[3:].strip().strip('"')


def plan_removal(run_id: str, repo: Path, workdir: Path, branch: str | None,
                 plan_copy: Path | None = None) -> Removal:
    return Removal(run_id, repo, workdir, branch, unique_commits(repo, branch) if branch else [],
                   uncommitted(workdir), plan_copy)


class WouldLoseWork(PairloopError):
    """Removing a worktree (or its branch) would lose work; nothing was removed."""


def remove(removal: Removal, *, force: bool = False, keep_branch: bool = False) -> list[str]:
    """Remove the run's worktree and (unless ``keep_branch``) its branch; what was removed, one line each.
    Refuses, naming what would be lost, unless ``force``."""
    losses = removal.losses(keep_branch)
    if losses and not force:
        raise WouldLoseWork(f"run {removal.run_id}: not removed, " + "; ".join(losses)
                            + " (push or merge the branch, or keep it with --keep-branch, or --force)")
    done = []
    if removal.kept_plan() and removal.plan_copy is not None:
        shutil.copyfile(removal.workdir / PLAN, removal.plan_copy)
        done.append(f"{PLAN} kept as {removal.plan_copy}")
    if removal.workdir.exists():
        out = git(removal.repo, "worktree", "remove", "--force", str(removal.workdir))
        if out.returncode != 0:  # no longer a worktree git knows (moved, pruned): the folder is still ours
            shutil.rmtree(removal.workdir, ignore_errors=True)
        done.append(f"worktree {removal.workdir}")
    git(removal.repo, "worktree", "prune")
    if removal.branch and not keep_branch and branch_exists(removal.repo, removal.branch):
        out = git(removal.repo, "branch", "-D", removal.branch)
        if out.returncode != 0:
            raise PairloopError(f"could not delete branch {removal.branch!r}: {out.stderr.strip()}")
        done.append(f"branch {removal.branch}" + (f" ({len(removal.commits)} commit(s) dropped)"
                                                  if removal.commits else ""))
    return done


def removal_of(run: Run) -> Removal | None:
    """What removing this run's worktree means, or None when it never had one or nothing of it is left."""
    m = run.manifest
    if not m.workdir or not m.branch:
        return None
    repo, workdir = Path(m.repo), Path(m.workdir)
    if not workdir.exists() and not branch_exists(repo, m.branch):
        return None
    return plan_removal(run.id, repo, workdir, m.branch, kept_plan_path(run))


@dataclass(frozen=True)
class Cleaned:
    removed: list[str]  # "run <id>: worktree …, branch …", one line per run
    refused: list[str]  # why a run's worktree was left, one line each
    skipped: list[str]  # runs still running, with a worktree


def clean(runs: list[Run], *, force: bool = False, keep_branch: bool = False, dry_run: bool = False) -> Cleaned:
    """Remove the worktrees (and branches) of the finished runs among ``runs``; a run still running is left
    alone, and a removal that would lose work is refused (see :func:`remove`), the others go on."""
    removed: list[str] = []
    refused: list[str] = []
    skipped: list[str] = []
    for run in runs:
        removal = removal_of(run)
        if removal is None:
            continue
        if not run.stopped:
            skipped.append(f"run {run.id} is still running (stop it with `pairloop stop --remove-worktree`)")
            continue
        if dry_run:
            losses = removal.losses(keep_branch)
            what = [f"worktree {removal.workdir}"] + ([] if keep_branch else [f"branch {removal.branch}"])
            line = f"run {run.id}: would remove " + ", ".join(what)
            (refused if losses and not force else removed).append(
                line + (f" — refused without --force: {'; '.join(losses)}" if losses and not force else ""))
            continue
        try:
            removed.append(f"run {run.id}: removed " + ", ".join(remove(removal, force=force,
                                                                          keep_branch=keep_branch)))
        except PairloopError as exc:
            refused.append(str(exc))
    return Cleaned(removed, refused, skipped)
