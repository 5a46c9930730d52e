"""`pairloop pr`: the exact gh command (--dry-run), and every reason it refuses, against a `gh` test double on
PATH, a real git repository and a local bare "origin". No network."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from bridge.git import git
from bridge.rundir.manifest import Manifest, TmuxPlace, write_manifest
from pairloop.runs.store import base_commit, create_run_dir

TITLE = """Fix "quotes", $(dollars) & `ticks`; it's -fine"""
BODY = """## Summary

A body with a second "# heading"-looking line:
# not a title
and $HOME, `backticks`, 'single' and "double" quotes.
"""
NOTES = f"# {TITLE}\n\n{BODY}"
URL = "https://github.com/example/repo/pull/7"
EXISTING = "https://github.com/example/repo/pull/3"

# The double answers like gh 2.x would: `auth status`, `pr view --json url --jq .url`, `pr create`, `pr edit`.
# It records each call (argv, cwd, and the body file's content at call time) in $GH_DOUBLE_DIR/calls.jsonl;
# files in that folder set its answers: `logged_out`, `existing_pr` (the URL of a PR open for the branch).
GH_DOUBLE = '''#!{python}
import json, os, subprocess, sys
from pathlib import Path

state = Path(os.environ["GH_DOUBLE_DIR"])
args = sys.argv[1:]
record = {{"argv": args, "cwd": os.getcwd()}}
if "--body-file" in args:
    record["body"] = Path(args[args.index("--body-file") + 1]).read_text(encoding="utf-8")
with (state / "calls.jsonl").open("a", encoding="utf-8") as f:
    f.write(json.dumps(record) + "\\n")


def setting(name):
    path = state / name
    return path.read_text().strip() if path.exists() else ""


def no_pr():
    branch = subprocess.run(["git", "rev-parse", "--abbrev-ref", "HEAD"], capture_output=True, text=True).stdout
    print(f'no pull requests found for branch "{{branch.strip()}}"', file=sys.stderr)
    sys.exit(1)


if args[:2] == ["auth", "status"]:
    if setting("logged_out"):
        print("You are not logged into any GitHub hosts. To log in, run: gh auth login", file=sys.stderr)
        sys.exit(1)
    print("github.com\\n  \\u2713 Logged in to github.com account octocat (keyring)")
elif args[:2] == ["pr", "view"]:
    if not setting("existing_pr"):
        no_pr()
    print(setting("existing_pr"))
elif args[:2] == ["pr", "create"]:
    print("Creating draft pull request for feature into main in example/repo", file=sys.stderr)
    print("{url}")
elif args[:2] == ["pr", "edit"]:
    if not setting("existing_pr"):
        no_pr()
    print(setting("existing_pr"))
else:
    print(f"unknown command {{args}}", file=sys.stderr)
    sys.exit(1)
'''


@dataclass
class World:
    repo: Path
    run_id: str
    run_dir: Path
    gh_dir: Path  # the double's state: calls.jsonl and its settings
    env: dict[str, str]  # the double first on PATH
    env_without_gh: dict[str, str]  # a PATH with git and no gh at all

    def pairloop(self, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "pairloop", *args], cwd=self.repo, env=env or self.env,
                              capture_output=True, text=True, timeout=60, check=False, stdin=subprocess.DEVNULL)

    def pr(self, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        return self.pairloop("pr", "--run", self.run_id, *args, env=env)

    def calls(self) -> list[dict[str, Any]]:
        log = self.gh_dir / "calls.jsonl"
        return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []

    def argvs(self) -> list[list[str]]:
        return [c["argv"] for c in self.calls()]

    def set(self, name: str, value: str = "1") -> None:
        (self.gh_dir / name).write_text(value)

    def git(self, *args: str) -> str:
        return git(self.repo, *args, check=True).stdout


def one_error_line(out: subprocess.CompletedProcess[str]) -> str:
    """A refusal is one line on stderr, never a traceback, and nothing on stdout."""
    assert "Traceback" not in out.stderr + out.stdout
    assert out.stdout == ""
    lines = out.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), out.stderr
    return lines[0]


@pytest.fixture
def world(tmp_path: Path, git_repo: Path) -> World:
    """The repo on branch `feature`, pushed with upstream to a local bare origin; a stopped run with PR notes."""
    repo = git_repo
    origin = tmp_path / "origin.git"
    git(None, "init", "-q", "--bare", str(origin), check=True)
    for args in (["checkout", "-q", "-b", "feature"], ["remote", "add", "origin", str(origin)],
                 ["push", "-q", "-u", "origin", "feature"]):
        git(repo, *args, check=True)
    run_id, run_dir, _ = create_run_dir(repo)
    write_manifest(run_dir, Manifest(id=run_id, task=TITLE, repo=str(repo), base_commit=base_commit(repo),
                                     state="stopped", tmux=TmuxPlace(socket_path="/nonexistent", session="none")))
    (run_dir / "PR_NOTES.md").write_text(NOTES, encoding="utf-8")

    gh_dir = tmp_path / "gh-double"
    bin_dir = tmp_path / "bin"
    gh_dir.mkdir()
    bin_dir.mkdir()
    gh = bin_dir / "gh"
    gh.write_text(GH_DOUBLE.format(python=sys.executable, url=URL), encoding="utf-8")
    gh.chmod(0o755)
    only_git = tmp_path / "only-git"
    only_git.mkdir()
    git_path = subprocess.run(["sh", "-c", "command -v git"], capture_output=True, text=True,
                              check=True).stdout.strip()
    (only_git / "git").symlink_to(git_path)
    base = {k: v for k, v in os.environ.items() if k not in ("PAIRLOOP_RUN", "PAIRLOOP_REPO")}
    base["GH_DOUBLE_DIR"] = str(gh_dir)
    env = {**base, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    return World(repo, run_id, run_dir, gh_dir, env, {**base, "PATH": str(only_git)})


# ---- --dry-run -------------------------------------------------------------------------------------------


def test_dry_run_prints_the_exact_command_and_the_body_file_holds_the_notes(world: World) -> None:
    out = world.pr("--dry-run", env=world.env_without_gh)  # printing the command needs no gh
    assert out.returncode == 0, out.stderr
    body_file = world.run_dir / "PR_BODY.md"
    assert out.stdout == shlex.join(["gh", "pr", "create", "--draft", "--title", TITLE,
                                     "--body-file", str(body_file)]) + "\n"
    assert body_file.read_text(encoding="utf-8") == BODY  # the notes without their title line
    assert world.calls() == []
    # The printed line is a shell command that gives gh exactly that title and body.
    subprocess.run(["sh", "-c", out.stdout], cwd=world.repo, env=world.env, check=True, capture_output=True)
    (call,) = world.calls()
    assert call["argv"] == ["pr", "create", "--draft", "--title", TITLE, "--body-file", str(body_file)]
    assert call["body"] == BODY


def test_dry_run_update_prints_the_gh_pr_edit_command(world: World) -> None:
    out = world.pr("--dry-run", "--update", env=world.env_without_gh)
    assert out.returncode == 0, out.stderr
    assert out.stdout == shlex.join(["gh", "pr", "edit", "--title", TITLE, "--body-file",
                                     str(world.run_dir / "PR_BODY.md")]) + "\n"
    assert world.calls() == []


@pytest.mark.parametrize("args", [["--dry-run"], [], ["--update"]])
def test_no_pr_notes_yet_says_run_summarize_first(world: World, args: list[str]) -> None:
    (world.run_dir / "PR_NOTES.md").unlink()
    out = world.pr(*args)
    assert out.returncode == 1
    line = one_error_line(out)
    assert line == f"Error: run {world.run_id} has no PR notes yet: run `pairloop summarize --run {world.run_id}` first"
    assert world.calls() == []


def test_notes_written_by_summarize_make_the_body(world: World) -> None:
    (world.run_dir / "PR_NOTES.md").unlink()
    summarized = world.pairloop("summarize", "--run", world.run_id, "--quiet")
    assert summarized.returncode == 0, summarized.stderr
    notes = (world.run_dir / "PR_NOTES.md").read_text(encoding="utf-8")
    title, _, rest = notes.partition("\n")
    out = world.pr("--dry-run")
    assert out.returncode == 0, out.stderr
    assert shlex.split(out.stdout)[5] == title.removeprefix("# ")
    assert (world.run_dir / "PR_BODY.md").read_text(encoding="utf-8") == rest.lstrip("\n")
    assert rest.lstrip("\n").startswith("## Summary\n")


# ---- refusals --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("args", [[], ["--update"]])
def test_gh_missing_is_exit_4(world: World, args: list[str]) -> None:
    out = world.pr(*args, env=world.env_without_gh)
    assert out.returncode == 4
    line = one_error_line(out)
    assert "gh (the GitHub CLI) is not installed" in line and "https://cli.github.com" in line


@pytest.mark.parametrize("args", [[], ["--update"]])
def test_gh_not_logged_in(world: World, args: list[str]) -> None:
    world.set("logged_out")
    out = world.pr(*args)
    assert out.returncode == 1
    assert one_error_line(out) == "Error: gh is not logged in: run `gh auth login` first"
    assert world.argvs() == [["auth", "status"]]


def test_branch_not_pushed(world: World) -> None:
    world.git("checkout", "-q", "-b", "topic/new")
    out = world.pr()
    assert out.returncode == 1
    assert one_error_line(out) == ("Error: branch 'topic/new' is not pushed: "
                                   "run `git push -u origin topic/new` first")
    assert ["pr", "create"] not in [a[:2] for a in world.argvs()]


def test_commits_not_pushed(world: World) -> None:
    (world.repo / "more.txt").write_text("more\n")
    world.git("add", "more.txt")
    world.git("commit", "-q", "-m", "more")
    world.git("commit", "-q", "--allow-empty", "-m", "even more")
    out = world.pr()
    assert out.returncode == 1
    assert one_error_line(out) == "Error: branch 'feature' has 2 commit(s) not pushed: run `git push` first"
    assert ["pr", "create"] not in [a[:2] for a in world.argvs()]
    world.git("push", "-q")
    assert world.pr().returncode == 0


def test_detached_head(world: World) -> None:
    world.git("checkout", "-q", "--detach")
    out = world.pr()
    assert out.returncode == 1
    assert "not on a branch (detached HEAD)" in one_error_line(out)


def test_a_pr_already_open_names_it_and_update_edits_it(world: World) -> None:
    world.set("existing_pr", EXISTING)
    out = world.pr()
    assert out.returncode == 1
    line = one_error_line(out)
    assert line == (f"Error: a PR already exists for 'feature': {EXISTING} "
                    "(update its body with `pairloop pr --update`)")
    assert ["pr", "create"] not in [a[:2] for a in world.argvs()]

    (world.gh_dir / "calls.jsonl").unlink()
    updated = world.pr("--update")
    assert updated.returncode == 0, updated.stderr
    assert updated.stdout == f"{EXISTING}\n"
    body_file = str(world.run_dir / "PR_BODY.md")
    assert world.argvs() == [["auth", "status"], ["pr", "edit", "--title", TITLE, "--body-file", body_file]]
    assert world.calls()[-1]["body"] == BODY


def test_update_without_an_open_pr_says_what_gh_said(world: World) -> None:
    out = world.pr("--update")
    assert out.returncode == 1
    assert one_error_line(out) == 'Error: gh pr edit failed: no pull requests found for branch "feature"'


# ---- the happy path --------------------------------------------------------------------------------------


def test_creates_the_draft_pr(world: World) -> None:
    out = world.pr()
    assert out.returncode == 0, out.stderr
    assert out.stdout == f"{URL}\n"
    assert "Traceback" not in out.stderr
    body_file = str(world.run_dir / "PR_BODY.md")
    assert world.argvs() == [
        ["auth", "status"],
        ["pr", "view", "--json", "url", "--jq", ".url"],
        ["pr", "create", "--draft", "--title", TITLE, "--body-file", body_file],
    ]
    create = world.calls()[-1]
    notes = (world.run_dir / "PR_NOTES.md").read_text(encoding="utf-8")
    assert create["body"] == notes.partition("\n")[2].lstrip("\n") == BODY
    assert Path(create["cwd"]).resolve() == world.repo.resolve()


def test_a_run_with_its_own_worktree_opens_the_pr_from_its_branch(world: World) -> None:
    """The user's checkout stays on `feature` (pushed); the run worked on its own branch in its own worktree."""
    from pairloop.runs.worktree import add_worktree

    run_id, run_dir, _ = create_run_dir(world.repo)
    work, branch = add_worktree(world.repo, run_id)
    write_manifest(run_dir, Manifest(id=run_id, task=TITLE, repo=str(world.repo), base_commit=base_commit(world.repo),
                                     state="stopped", workdir=str(work), branch=branch,
                                     tmux=TmuxPlace(socket_path="/nonexistent", session="none")))
    (run_dir / "PR_NOTES.md").write_text(NOTES, encoding="utf-8")
    (work / "a.py").write_text("a = 1\n")
    git(work, "add", "a.py", check=True)
    git(work, "commit", "-q", "-m", "Add a", check=True)

    def pr(*args: str) -> subprocess.CompletedProcess[str]:
        return world.pairloop("pr", "--run", run_id, *args)

    assert one_error_line(pr()) == f"Error: branch {branch!r} is not pushed: run `git push -u origin {branch}` first"
    git(work, "push", "-q", "-u", "origin", branch, check=True)
    (work / "b.py").write_text("b = 1\n")
    git(work, "add", "b.py", check=True)
    git(work, "commit", "-q", "-m", "Add b", check=True)
    assert one_error_line(pr()) == f"Error: branch {branch!r} has 1 commit(s) not pushed: run `git push` first"
    git(work, "push", "-q", check=True)
    dry = pr("--dry-run")
    assert shlex.split(dry.stdout)[:6] == ["gh", "pr", "create", "--draft", "--head", branch]
    out = pr()
    assert out.returncode == 0, out.stderr
    view, create = world.calls()[-2:]
    assert view["argv"][:3] == ["pr", "view", branch]
    assert create["argv"][:5] == ["pr", "create", "--draft", "--head", branch] and create["cwd"] == str(work)
    assert world.git("rev-parse", "--abbrev-ref", "HEAD").strip() == "feature", "the user's checkout untouched"
