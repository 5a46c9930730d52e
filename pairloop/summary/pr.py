"""`pairloop pr`: a draft PR from the run's PR notes with gh, or the exact command with --dry-run."""

from __future__ import annotations

import shlex
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from bridge import git, write_atomic
from pairloop.errors import MissingTool, PairloopError
from pairloop.runs.store import Run
from pairloop.summary.summarize import pr_notes_path


class PrExists(PairloopError):
    """A PR for this branch is already open; ``url`` names it."""

    def __init__(self, message: str, url: str) -> None:
        super().__init__(message)
        self.url = url


@dataclass(frozen=True)
class PrPlan:
    argv: list[str]
    title: str
    body_file: Path

    def shell(self) -> str:
        return shlex.join(self.argv)


def notes_of(run: Run) -> tuple[str, Path]:
    """The title and a body file (the notes without their title line), from PR_NOTES.md."""
    notes = pr_notes_path(run)
    if not notes.exists():
        raise PairloopError(f"run {run.id} has no PR notes yet: run `pairloop summarize --run {run.id}` first")
    first, _, rest = notes.read_text(encoding="utf-8").partition("\n")
    body = run.dir / "PR_BODY.md"
    write_atomic(body, rest.lstrip("\n").encode("utf-8"))
    return first.removeprefix("# ").strip(), body


def where(run: Run) -> Path:
    """Where gh and git run: the run's worktree while it exists, else the repository."""
    work = Path(run.manifest.work_tree)
    return work if work.is_dir() else Path(run.manifest.repo)


def branch_of(run: Run) -> str:
    """The run's own branch (a run with a worktree), else the branch checked out where it worked."""
    return run.manifest.branch or git(where(run), "rev-parse", "--abbrev-ref", "HEAD").stdout.strip()


def plan_pr(run: Run, gh: str = "gh") -> PrPlan:
    title, body = notes_of(run)
    head = ["--head", run.manifest.branch] if run.manifest.branch else []
    return PrPlan([gh, "pr", "create", "--draft", *head, "--title", title, "--body-file", str(body)], title, body)


def plan_update(run: Run, gh: str = "gh") -> PrPlan:
    """`gh pr edit` of the PR open for the run's branch: its title and body from the run's notes."""
    title, body = notes_of(run)
    branch = [run.manifest.branch] if run.manifest.branch else []
    return PrPlan([gh, "pr", "edit", *branch, "--title", title, "--body-file", str(body)], title, body)


def _run(argv: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, cwd=cwd, capture_output=True, text=True, check=False, stdin=subprocess.DEVNULL)


def check_gh(repo: Path, gh: str = "gh") -> None:
    """gh is installed and logged in."""
    if shutil.which(gh) is None:
        raise MissingTool("gh (the GitHub CLI) is not installed: see https://cli.github.com, then `gh auth login`")
    if _run([gh, "auth", "status"], repo).returncode != 0:
        raise PairloopError("gh is not logged in: run `gh auth login` first")


def check_ready(run: Run, gh: str = "gh") -> None:
    """Clear errors for every reason `gh pr create` would fail or do the wrong thing."""
    repo = where(run)
    check_gh(repo, gh)
    branch = branch_of(run)
    if not branch or branch == "HEAD":
        raise PairloopError("the repository is not on a branch (detached HEAD): check out a branch first")
    # The run's branch by name: its worktree may be gone, and the user's checkout is on another branch.
    named = branch if run.manifest.branch else "HEAD"
    upstream = git(repo, "rev-parse", "--abbrev-ref", "--symbolic-full-name", f"{named}@{{u}}")
    if upstream.returncode != 0:
        raise PairloopError(f"branch {branch!r} is not pushed: run `git push -u origin {branch}` first")
    ahead = git(repo, "rev-list", "--count", f"{named}@{{u}}..{named}").stdout.strip()
    if ahead not in ("", "0"):
        raise PairloopError(f"branch {branch!r} has {ahead} commit(s) not pushed: run `git push` first")
    view = [branch] if run.manifest.branch else []
    existing = _run([gh, "pr", "view", *view, "--json", "url", "--jq", ".url"], repo)
    if existing.returncode == 0 and existing.stdout.strip():
        url = existing.stdout.strip()
        raise PrExists(f"a PR already exists for {branch!r}: {url} (update its body with `pairloop pr --update`)",
                       url)


def create(run: Run, gh: str = "gh") -> str:
    plan = plan_pr(run, gh)  # no notes yet: say so before anything about gh or the branch
    check_ready(run, gh)
    out = _run(plan.argv, where(run))
    if out.returncode != 0:
        raise PairloopError(f"gh pr create failed: {(out.stderr or out.stdout).strip()}")
    return out.stdout.strip()


def update(run: Run, gh: str = "gh") -> str:
    """Replace the body (and title) of the PR already open for this branch with the run's notes."""
    plan = plan_update(run, gh)
    repo = where(run)
    check_gh(repo, gh)
    out = _run(plan.argv, repo)
    if out.returncode != 0:
        raise PairloopError(f"gh pr edit failed: {(out.stderr or out.stdout).strip()}")
    return out.stdout.strip()
