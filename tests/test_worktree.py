"""A worktree per run, which run a command goes to, `pairloop clean` and `pairloop ls`: on real git repositories,
with run directories written by hand (no tmux: the runs are stopped or never had a session)."""

from __future__ import annotations

import json
from pathlib import Path

import msgspec
import pytest
from click.testing import CliRunner

from bridge import Manifest, RoleSpec, TmuxError, TmuxPlace, write_manifest
from bridge.git import git, git_out
from pairloop.agents.sim import PROFILE as SIM
from pairloop.cli import cli
from pairloop.errors import NoSuchRun, PairloopError, UsageProblem
from pairloop.runs import lifecycle
from pairloop.runs.lifecycle import StartOptions, start_run
from pairloop.runs.store import Run, choose_run, load_run, repo_root, runs_dir, state_root
from pairloop.runs.worktree import (
    WouldLoseWork,
    add_worktree,
    clean,
    plan_removal,
    removal_of,
    remove,
    unique_commits,
)
from tests.conftest import make_repo


def commit(where: Path, name: str, text: str, message: str) -> str:
    (where / name).write_text(text)
    git(where, "add", name, check=True)
    git(where, "commit", "-q", "-m", message, check=True)
    return git_out(where, "rev-parse", "--short", "HEAD")


def checkout_state(repo: Path) -> tuple[str, str, str, str]:
    """Everything of the user's checkout a run must not touch: files, index, branch, HEAD."""
    return (git(repo, "status", "--porcelain", "--untracked-files=all", check=True).stdout,
            git_out(repo, "diff", "--cached"),
            git_out(repo, "symbolic-ref", "HEAD"), git_out(repo, "rev-parse", "HEAD"))


def fake_run(repo: Path, run_id: str, *, state: str = "stopped", worktree: bool = True,
             branch: str | None = None) -> Run:
    """A run directory as `start` writes it (with its own worktree when asked), without tmux behind it."""
    workdir, made_branch = add_worktree(repo, run_id, branch) if worktree else (repo, None)
    run_dir = runs_dir() / run_id
    run_dir.mkdir(parents=True)
    spec = RoleSpec(agent="sim", pane="%1", submit_key="Enter", screen=SIM.rules)
    mailbox = workdir / ".pairloop" / "runs" / run_id
    (mailbox / "outbox").mkdir(parents=True)
    write_manifest(run_dir, Manifest(
        id=run_id, repo=str(repo), mailbox=str(mailbox), state=state,  # type: ignore[arg-type]
        workdir=str(workdir) if made_branch else None, branch=made_branch, task=f"task of {run_id}",
        tmux=TmuxPlace(socket_path="/nonexistent", session=f"s-{run_id}"),
        roles={"worker": spec, "reviewer": msgspec.structs.replace(spec, pane="%2")}))
    return load_run(run_dir)


# ---- the worktree -------------------------------------------------------------------------------------


def test_a_worktree_is_a_new_branch_from_head_under_the_state_root(git_repo: Path) -> None:
    before = checkout_state(git_repo)
    path, branch = add_worktree(git_repo, "20260101-000000-aaaa")
    assert branch == "pairloop/20260101-000000-aaaa"
    assert path == state_root() / "worktrees" / "repo-20260101-000000-aaaa"
    assert git_out(path, "symbolic-ref", "HEAD") == f"refs/heads/{branch}"
    assert git_out(path, "rev-parse", "HEAD") == before[3]
    commit(path, "work.py", "x = 1\n", "work in the worktree")
    assert checkout_state(git_repo) == before, "the user's checkout is untouched"


def test_an_existing_branch_or_a_bad_name_is_refused_before_anything_is_made(git_repo: Path) -> None:
    git(git_repo, "branch", "taken", check=True)
    with pytest.raises(UsageProblem, match=r"branch 'taken' already exists.*--branch NAME"):
        add_worktree(git_repo, "20260101-000000-aaaa", "taken")
    with pytest.raises(UsageProblem, match="not a valid branch name"):
        add_worktree(git_repo, "20260101-000000-aaaa", "bad..name")
    assert not (state_root() / "worktrees" / "repo-20260101-000000-aaaa").exists()
    assert git_out(git_repo, "worktree", "list").count("\n") == 0


def test_start_refuses_an_existing_branch_clearly(git_repo: Path) -> None:
    git(git_repo, "branch", "taken", check=True)
    result = CliRunner().invoke(cli, ["start", "--worker", "sim", "--reviewer", "sim", "--branch", "taken",
                                      "--no-attach", "task"])
    assert result.exit_code == 2
    assert "branch 'taken' already exists" in result.output
    assert not runs_dir().exists() or not any(runs_dir().iterdir()), "no run was created"


def test_commits_found_nowhere_else_until_merged_or_pushed(git_repo: Path, tmp_path: Path) -> None:
    path, branch = add_worktree(git_repo, "20260101-000000-aaaa")
    assert unique_commits(git_repo, branch) == []
    short = commit(path, "a.py", "a = 1\n", "Add a")
    assert unique_commits(git_repo, branch) == [f"{short} Add a"]
    origin = tmp_path / "origin.git"
    git(None, "init", "-q", "--bare", str(origin), check=True)
    git(git_repo, "remote", "add", "origin", str(origin), check=True)
    git(path, "push", "-q", "origin", branch, check=True)
    assert unique_commits(git_repo, branch) == [], "a pushed commit exists elsewhere"
    commit(path, "b.py", "b = 1\n", "Add b")
    assert [c.split(" ", 1)[1] for c in unique_commits(git_repo, branch)] == ["Add b"]
    git(git_repo, "merge", "-q", "--no-edit", branch, check=True)
    assert unique_commits(git_repo, branch) == [], "a merged commit exists elsewhere"


def test_removal_refuses_to_lose_commits_or_changes_and_says_which(git_repo: Path) -> None:
    path, branch = add_worktree(git_repo, "20260101-000000-aaaa")
    short = commit(path, "a.py", "a = 1\n", "Add a")
    (path / "notes.txt").write_text("uncommitted\n")
    plan = plan_removal("20260101-000000-aaaa", git_repo, path, branch)
    with pytest.raises(WouldLoseWork) as refused:
        remove(plan)
    message = str(refused.value)
    assert f"{short} Add a" in message and "exist nowhere else" in message
    assert "?? notes.txt" in message
    assert path.is_dir() and git(git_repo, "rev-parse", "--verify", branch).returncode == 0, "nothing removed"
    # Keeping the branch keeps the commits: only the uncommitted file still stands in the way.
    with pytest.raises(WouldLoseWork) as still:
        remove(plan, keep_branch=True)
    assert "notes.txt" in str(still.value) and "Add a" not in str(still.value)
    (path / "notes.txt").unlink()
    done = remove(plan_removal("20260101-000000-aaaa", git_repo, path, branch), keep_branch=True)
    assert done == [f"worktree {path}"]
    assert not path.exists()
    assert git_out(git_repo, "log", "-1", "--format=%s", branch) == "Add a", "the branch and its commit stay"
    assert "20260101-000000-aaaa" not in git_out(git_repo, "worktree", "list")


def test_force_removes_the_worktree_and_the_branch(git_repo: Path) -> None:
    path, branch = add_worktree(git_repo, "20260101-000000-aaaa")
    commit(path, "a.py", "a = 1\n", "Add a")
    done = remove(plan_removal("20260101-000000-aaaa", git_repo, path, branch), force=True)
    assert done == [f"worktree {path}", f"branch {branch} (1 commit(s) dropped)"]
    assert git(git_repo, "rev-parse", "--verify", branch).returncode != 0


def test_an_uncommitted_plan_is_kept_in_the_run_directory_not_lost(git_repo: Path) -> None:
    run = fake_run(git_repo, "20260101-000000-aaaa")
    assert run.manifest.workdir is not None
    (Path(run.manifest.workdir) / "PLAN.md").write_text("# the plan\n")
    removal = removal_of(run)
    assert removal is not None and removal.losses(keep_branch=False) == []
    done = remove(removal)
    assert (run.dir / "PLAN.md").read_text() == "# the plan\n"
    assert done[0] == f"PLAN.md kept as {run.dir / 'PLAN.md'}"


# ---- clean -------------------------------------------------------------------------------------------


def test_clean_removes_finished_worktrees_lists_them_and_leaves_running_and_unique_work(git_repo: Path) -> None:
    empty = fake_run(git_repo, "20260101-000001-aaaa")
    worked = fake_run(git_repo, "20260101-000002-bbbb")
    running = fake_run(git_repo, "20260101-000003-cccc", state="running")
    plain = fake_run(git_repo, "20260101-000004-dddd", worktree=False)
    assert worked.manifest.workdir is not None
    short = commit(Path(worked.manifest.workdir), "a.py", "a = 1\n", "Add a")
    before = checkout_state(git_repo)

    result = CliRunner().invoke(cli, ["clean"])
    assert result.exit_code == 1
    assert f"run {empty.id}: removed worktree {empty.manifest.workdir}, branch pairloop/{empty.id}" in result.stdout
    assert f"run {running.id} is still running" in result.stderr
    assert f"run {worked.id}: not removed" in result.stderr and f"{short} Add a" in result.stderr
    assert plain.id not in result.output, "a run without a worktree has nothing to clean"
    assert not Path(str(empty.manifest.workdir)).exists()
    assert Path(worked.manifest.workdir).is_dir() and Path(str(running.manifest.workdir)).is_dir()
    assert checkout_state(git_repo) == before

    dry = CliRunner().invoke(cli, ["clean", "--dry-run", "--keep-branch"])
    assert dry.exit_code == 0
    assert f"run {worked.id}: would remove worktree {worked.manifest.workdir}" in dry.stdout
    assert Path(worked.manifest.workdir).is_dir(), "a dry run removes nothing"

    kept = CliRunner().invoke(cli, ["clean", "--keep-branch"])
    assert kept.exit_code == 0, kept.output
    assert f"run {worked.id}: removed worktree" in kept.stdout
    assert git_out(git_repo, "log", "-1", "--format=%s", f"pairloop/{worked.id}") == "Add a"
    # The branch is still there, with its commit: clean refuses it until --force.
    again = CliRunner().invoke(cli, ["clean"])
    assert again.exit_code == 1 and "exist nowhere else" in again.stderr
    forced = CliRunner().invoke(cli, ["clean", "--force"])
    assert forced.exit_code == 0
    assert f"run {worked.id}: removed branch pairloop/{worked.id} (1 commit(s) dropped)" in forced.stdout
    assert git_out(git_repo, "branch", "--list", f"pairloop/{worked.id}") == ""


def test_clean_only_takes_this_repositorys_runs_unless_all(git_repo: Path, tmp_path: Path) -> None:
    other = make_repo(tmp_path / "other")
    theirs = fake_run(other, "20260101-000001-aaaa")
    assert clean([]).removed == []
    here = CliRunner().invoke(cli, ["clean"])
    assert here.exit_code == 0 and "no finished run's worktree to remove" in here.output
    assert Path(str(theirs.manifest.workdir)).is_dir()
    everywhere = CliRunner().invoke(cli, ["clean", "--all"])
    assert everywhere.exit_code == 0 and f"run {theirs.id}: removed" in everywhere.output


# ---- which run a command goes to ----------------------------------------------------------------------


def test_a_command_goes_to_the_run_of_its_worktree_else_the_newest_active_one_with_a_note(
        git_repo: Path) -> None:
    old = fake_run(git_repo, "20260101-000001-aaaa", state="running")
    new = fake_run(git_repo, "20260101-000002-bbbb", state="running")
    fake_run(git_repo, "20260101-000003-cccc")  # stopped: never chosen for a verb
    assert old.manifest.workdir is not None
    # Inside a run's worktree (or a folder of it): that run, no note.
    sub = Path(old.manifest.workdir) / "src"
    sub.mkdir()
    for where in (Path(old.manifest.workdir), sub):
        chosen = choose_run(repo_root(where), None, {})  # the commands resolve their folder so
        assert (chosen.run.id, chosen.note) == (old.id, "")
    # In the main checkout: the newest active run, and a note naming the other.
    chosen = choose_run(git_repo, None, {})
    assert chosen.run.id == new.id
    assert f"the newest of 2 active runs in {git_repo}" in chosen.note and old.id in chosen.note
    # An agent's own run wins over everything.
    assert choose_run(git_repo, None, {"PAIRLOOP_RUN_DIR": str(old.dir)}).run.id == old.id
    # --run: an id of any repository's run.
    assert choose_run(Path("/"), old.id[:15], {}).run.id == old.id
    with pytest.raises(NoSuchRun):
        choose_run(git_repo, "nope", {})


@pytest.mark.tmux  # `send` asks tmux whether the run's session is up (there is none: no server is started)
def test_send_from_a_worktree_goes_to_its_run_and_from_the_checkout_says_which(
        git_repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    old = fake_run(git_repo, "20260101-000001-aaaa", state="running")
    new = fake_run(git_repo, "20260101-000002-bbbb", state="running")
    result = CliRunner().invoke(cli, ["send", "--to", "worker", "to the newest"])
    assert result.exit_code == 0
    assert f"sent to run {new.id}, the newest of 2 active runs" in result.stderr
    assert [p.stem for p in (new.outbox / "human").iterdir()] == [result.stdout.strip()]
    assert old.manifest.workdir is not None
    monkeypatch.chdir(old.manifest.workdir)
    result = CliRunner().invoke(cli, ["send", "--to", "worker", "to my worktree's run"])
    assert result.exit_code == 0 and "sent to run" not in result.stderr
    assert [p.stem for p in (old.outbox / "human").iterdir()] == [result.stdout.strip()]


# ---- ls -----------------------------------------------------------------------------------------------


def test_ls_lists_every_repositorys_runs_and_a_damaged_run_directory_as_damaged(
        git_repo: Path, tmp_path: Path) -> None:
    mine = fake_run(git_repo, "20260101-000001-aaaa", branch="feature/limits")
    theirs = fake_run(make_repo(tmp_path / "other"), "20260101-000002-bbbb", worktree=False)
    damaged = runs_dir() / "20260101-000003-cccc"
    damaged.mkdir()
    (damaged / "run.json").write_text("{not json")
    (runs_dir() / "20260101-000004-dddd").mkdir()  # a folder with no run.json at all

    result = CliRunner().invoke(cli, ["ls", "--all", "--json"])
    assert result.exit_code == 0, result.output
    runs = {r["id"]: r for r in json.loads(result.stdout)["runs"]}
    assert list(runs) == ["20260101-000004-dddd", "20260101-000003-cccc", theirs.id, mine.id]
    assert runs[mine.id] | {"agents": None} == runs[mine.id] | {
        "repo": str(git_repo), "branch": "feature/limits", "workdir": mine.manifest.workdir, "state": "stopped",
        "round": 0, "phase": "work", "needs_human": False, "why": [], "agents": None}
    assert runs[mine.id]["agents"] == {"worker": {"agent": "sim", "state": "stopped"},
                                       "reviewer": {"agent": "sim", "state": "stopped"}}
    assert runs[theirs.id]["repo"] == str(tmp_path / "other") and runs[theirs.id]["branch"] in ("master", "main")
    assert runs["20260101-000003-cccc"]["state"] == "damaged" and runs["20260101-000003-cccc"]["reason"]
    assert runs["20260101-000004-dddd"]["state"] == "damaged"

    text = CliRunner().invoke(cli, ["ls", "--all"])
    assert text.exit_code == 0 and "Traceback" not in text.output
    assert f"{mine.id}  stopped  {git_repo}  [feature/limits]  round 0 (work)" in text.stdout
    assert f"    worktree {mine.manifest.workdir}" in text.stdout
    assert "20260101-000003-cccc  DAMAGED  " in text.stdout
    # Without --all the stopped runs are left out; the damaged folders are still shown.
    live = CliRunner().invoke(cli, ["ls"])
    assert mine.id not in live.stdout and "20260101-000003-cccc  DAMAGED" in live.stdout


def test_the_configuration_turns_worktrees_on_and_a_branch_needs_a_worktree(git_repo: Path) -> None:
    from pairloop.runs.worktree import wants_worktree

    assert wants_worktree({}) is False and wants_worktree({"worktree": True}) is True
    with pytest.raises(UsageProblem, match="true or false"):
        wants_worktree({"worktree": "yes"})
    (git_repo / ".pairloop.toml").write_text('worktree = "yes"\n')
    result = CliRunner().invoke(cli, ["start", "--worker", "sim", "--reviewer", "sim", "--no-attach", "task"])
    assert result.exit_code == 2 and "worktree in the configuration must be true or false" in result.output
    result = CliRunner().invoke(cli, ["start", "--no-worktree", "--branch", "x", "--no-attach", "task"])
    assert result.exit_code == 2 and "cannot go with --no-worktree" in result.output


# ---- found by a review: names, paths, failed starts ----------------------------------------------------


@pytest.mark.parametrize("name", ["@{-1}", "@", "HEAD", "refs/heads/x", "-x", "--force"])
def test_a_branch_name_git_would_read_as_another_thing_is_refused(git_repo: Path, name: str) -> None:
    """`check-ref-format --branch` expands "@{-1}" to the previous branch and lets "@" and "refs/heads/x"
    through: the manifest would name a branch other than the one made (or one `git log @` cannot name)."""
    git(git_repo, "branch", "previous", check=True)
    git(git_repo, "checkout", "-q", "previous", check=True)
    git(git_repo, "checkout", "-q", "-", check=True)  # "@{-1}" now means "previous"
    with pytest.raises(UsageProblem, match="not a valid branch name"):
        add_worktree(git_repo, "20260101-000000-aaaa", name)
    assert git_out(git_repo, "worktree", "list").count("\n") == 0


def test_start_with_an_option_as_the_branch_name_is_a_usage_error(git_repo: Path) -> None:
    result = CliRunner().invoke(cli, ["start", "--worker", "sim", "--reviewer", "sim", "--branch", "-x",
                                      "--no-attach", "task"])
    assert result.exit_code == 2, result.output
    assert "'-x' is not a valid branch name" in result.output


def test_a_command_in_a_subfolder_of_a_worktree_finds_its_run_through_a_symlinked_state_root(
        git_repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """git spells the worktree's path resolved: the manifest must too, or the run of the worktree is not found."""
    (tmp_path / "real-home").mkdir()
    (tmp_path / "home-link").symlink_to(tmp_path / "real-home")
    monkeypatch.setenv("PAIRLOOP_HOME", str(tmp_path / "home-link"))
    run = fake_run(git_repo, "20260101-000000-aaaa", state="running")
    fake_run(git_repo, "20260101-000001-bbbb", state="running", worktree=False)  # newer, in the checkout
    inside = Path(run.manifest.workdir or "") / "src" / "deep"
    inside.mkdir(parents=True)
    chosen = choose_run(repo_root(inside), None, env={})
    assert (chosen.run.id, chosen.note) == (run.id, "")


def test_pairloop_run_dir_naming_no_run_says_so(git_repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An agent's shell whose run directory was removed since (`clean --all`, by hand)."""
    monkeypatch.setenv("PAIRLOOP_RUN_DIR", str(git_repo / "gone"))
    monkeypatch.setenv("PAIRLOOP_ROLE", "worker")
    result = CliRunner().invoke(cli, ["send", "hello"])
    assert result.exit_code == 3, result.output
    assert "PAIRLOOP_RUN_DIR names no run" in result.output


class _NoTmux:
    """A tmux whose every command fails, as a broken server would."""

    def __getattr__(self, name: str) -> object:
        def fail(*args: object, **kwargs: object) -> object:
            raise TmuxError("no server")
        return fail


def test_a_start_that_fails_after_the_worktree_leaves_no_worktree_branch_or_run_directory(
        git_repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    before = checkout_state(git_repo)
    with pytest.raises(TmuxError):
        start_run(_NoTmux(), git_repo, "task", StartOptions("sim", "sim", worktree=True))  # type: ignore[arg-type]
    assert git_out(git_repo, "worktree", "list").count("\n") == 0
    assert git_out(git_repo, "branch", "--list", "pairloop/*") == ""
    assert not runs_dir().exists() or not any(runs_dir().iterdir()), "no run directory without run.json"
    assert checkout_state(git_repo) == before


def test_a_run_id_in_use_is_refused_without_touching_that_run_or_leaving_a_worktree(
        git_repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    other = fake_run(git_repo, "20260101-000000-aaaa", worktree=False)
    manifest = (other.dir / "run.json").read_bytes()
    monkeypatch.setattr(lifecycle, "new_run_id", lambda: other.id)
    with pytest.raises(PairloopError, match="exists already"):
        start_run(_NoTmux(), git_repo, "task", StartOptions("sim", "sim", worktree=True))  # type: ignore[arg-type]
    assert (other.dir / "run.json").read_bytes() == manifest
    assert git_out(git_repo, "worktree", "list").count("\n") == 0
    assert git_out(git_repo, "branch", "--list", "pairloop/*") == ""
