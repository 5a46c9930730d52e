"""Many pairs at once, with the sim agent on real tmux: three runs in one repository, each in its own worktree,
while the user keeps working in their checkout; runs in two repositories at once; `pairloop ls`; which run a
command from a worktree or from the checkout goes to; and removing a worktree whose branch holds work."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path
from typing import Any

import msgspec
import pytest
from click.testing import CliRunner

from bridge import TmuxPlace, write_manifest
from bridge.git import git, git_out
from bridge.panes.tmux import Tmux
from pairloop.cli import cli
from pairloop.listing import TMUX_TIMEOUT
from pairloop.runs.lifecycle import StartOptions
from pairloop.runs.store import Run, load_run
from tests.conftest import make_repo, wait_for
from tests.helpers import auto_summary_written, book, delivered, prompts, start_sims
from tests.test_worktree import checkout_state, fake_run

pytestmark = pytest.mark.tmux

PAIR = {"PAIRLOOP_SIM_MODE": "pair", "PAIRLOOP_SIM_WORK_SECONDS": "0.1"}


def agreed(run: Run) -> bool:
    return book(run).run_state == "agreed"


def sent(result_stdout: str) -> str:
    return result_stdout.strip().splitlines()[0]


def test_three_pairs_in_one_repository_each_in_its_own_worktree(tmux_server: Tmux, git_repo: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    before = checkout_state(git_repo)
    # Each pair signs its own commits: the same work committed in the same second from the same base by the same
    # author would otherwise be one and the same git object on two branches.
    first = start_sims(tmux_server, git_repo, "Add greet(), one", StartOptions("sim", "sim", worktree=True), **PAIR,
                       GIT_AUTHOR_NAME="pair one")
    # The user keeps working in their checkout while the pairs work: an edit, a new file.
    (git_repo / "README.md").write_text("the user's own edit\n")
    (git_repo / "scratch.txt").write_text("the user's notes\n")
    assert not agreed(first), "the user's edit lands while the first pair is still at work"
    runs = [first] + [start_sims(tmux_server, git_repo, f"Add greet(), {n}", StartOptions("sim", "sim", worktree=True),
                                 **PAIR, GIT_AUTHOR_NAME=f"pair {n}") for n in ("two", "three")]
    wait_for(lambda: all(agreed(r) for r in runs), timeout=120, what="all three pairs to agree")
    # Finished, not only begun: the summary writes PR_NOTES.md first and PLAN.md (checked below) after it.
    wait_for(lambda: all(auto_summary_written(r) for r in runs), timeout=60, what="the three summaries")

    # The user's checkout: their own changes and nothing else; the same index, branch and HEAD.
    status, index, branch, head = checkout_state(git_repo)
    assert status.splitlines() == [" M README.md", "?? scratch.txt"]
    assert (index, branch, head) == before[1:]
    assert not (git_repo / "PLAN.md").exists(), "the summaries went to the worktrees"

    heads = set()
    for started in runs:
        run = load_run(started.dir)
        work, own = Path(str(run.manifest.workdir)), str(run.manifest.branch)
        assert own == f"pairloop/{run.id}" and git_out(work, "symbolic-ref", "--short", "HEAD") == own
        # Each branch has its own commits, made in its own worktree by its own worker.
        commits = git_out(git_repo, "log", "--format=%H %s", f"{head}..{own}").splitlines()
        assert [c.split(" ", 1)[1] for c in commits] == ["Add a test for greet()", "Add greet()"]
        heads |= {c.split(" ", 1)[0] for c in commits}
        # The checkpoints were taken in the worktree: on top of its branch, without the user's edit.
        last = f"refs/pairloop/{run.id}/round-2"
        assert git_out(git_repo, "rev-parse", f"{last}^") == git_out(git_repo, "rev-parse", own)
        assert git_out(git_repo, "show", f"{last}:README.md") == "test repo"
        assert "scratch.txt" not in git_out(git_repo, "ls-tree", "--name-only", last)
        assert (work / "PLAN.md").exists()
    assert len(heads) == 6, "no commit is shared between the pairs"

    # `pairloop ls`: every run, with its repository, branch, agents, round, and that it waits for the human.
    def listed_ready() -> dict[str, dict[str, Any]] | None:
        """`ls --json`'s runs once every agent is back at its prompt (the last "done" is still being read when
        the pair agrees: the agents' states come from their screens)."""
        listed = CliRunner().invoke(cli, ["ls", "--json"])
        assert listed.exit_code == 0, listed.output
        found = {r["id"]: r for r in json.loads(listed.stdout)["runs"]}
        states = [a["state"] for r in found.values() for a in r["agents"].values()]
        return found if states and all(state == "ready" for state in states) else None

    records = wait_for(listed_ready, what="every agent of the three pairs ready")
    assert set(records) == {r.id for r in runs}
    for run in runs:
        r = records[run.id]
        assert (r["repo"], r["branch"], r["state"], r["round"], r["needs_human"]) == (
            str(git_repo), f"pairloop/{run.id}", "agreed", 2, True)
        assert r["agents"] == {"worker": {"agent": "sim", "state": "ready"},
                               "reviewer": {"agent": "sim", "state": "ready"}}
    text = CliRunner().invoke(cli, ["ls"]).stdout
    assert all(f"{r.id}  agreed  {git_repo}  [pairloop/{r.id}]  round 2 (work)" in text for r in runs)

    # From a run's worktree a command goes to that run; from the checkout to the newest, saying so.
    monkeypatch.chdir(Path(str(load_run(runs[0].dir).manifest.workdir)) / ".pairloop")
    mine = CliRunner().invoke(cli, ["send", "--to", "reviewer", "for the first pair"])
    assert mine.exit_code == 0 and "sent to run" not in mine.stderr
    monkeypatch.chdir(git_repo)
    newest = CliRunner().invoke(cli, ["send", "--to", "reviewer", "for the newest pair"])
    assert newest.exit_code == 0
    assert f"sent to run {runs[2].id}, the newest of 3 active runs" in newest.stderr
    wait_for(lambda: delivered(runs[0], sent(mine.stdout), "reviewer") and
             delivered(runs[2], sent(newest.stdout), "reviewer"), what="both messages to arrive")
    assert sent(mine.stdout) not in book(runs[1]).entries and sent(mine.stdout) not in book(runs[2]).entries
    assert sent(newest.stdout) not in book(runs[0]).entries

    # Stopping with --remove-worktree refuses to drop the branch's commits, and says which.
    stopped = CliRunner().invoke(cli, ["stop", "--run", runs[0].id, "--remove-worktree"])
    assert stopped.exit_code == 1
    assert f"stopped run {runs[0].id}" in stopped.stdout
    assert "exist nowhere else" in stopped.stderr and "Add greet()" in stopped.stderr
    work0 = Path(str(load_run(runs[0].dir).manifest.workdir))
    assert work0.is_dir()
    cleaned = CliRunner().invoke(cli, ["clean", "--force"])
    assert cleaned.exit_code == 0, cleaned.output
    assert f"run {runs[0].id}: removed" in cleaned.stdout and not work0.exists()
    assert f"run {runs[1].id} is still running" in cleaned.stderr
    assert git(git_repo, "rev-parse", "--verify", f"pairloop/{runs[0].id}").returncode != 0
    assert checkout_state(git_repo)[1:] == before[1:]


def test_runs_in_two_repositories_at_once_do_not_hear_each_other(tmux_server: Tmux, tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    one, two = make_repo(tmp_path / "one"), make_repo(tmp_path / "two")
    run_one = start_sims(tmux_server, one, options=StartOptions("sim", "sim", worktree=True))
    run_two = start_sims(tmux_server, two)
    assert run_one.session != run_two.session
    said = {}
    for repo, run in ((one, run_one), (two, run_two)):
        monkeypatch.chdir(repo)
        result = CliRunner().invoke(cli, ["send", "--to", "worker", f"only for {repo.name}"])
        assert result.exit_code == 0 and result.stderr == "", result.output
        said[run.id] = sent(result.stdout)
    wait_for(lambda: delivered(run_one, said[run_one.id], "worker") and delivered(run_two, said[run_two.id], "worker"),
             what="each message in its own run")
    assert [p for p in prompts(run_one, "worker") if "only for" in p] == \
        [p for p in prompts(run_one, "worker") if "only for one" in p] != []
    assert not any("only for one" in p for p in prompts(run_two, "worker"))
    for run in (run_one, run_two):  # its own message, and the context mirrored from it to the reviewer: no other
        assert set(book(run).entries) == {said[run.id], f"{said[run.id]}-context"}
    records = {r["id"]: r for r in json.loads(CliRunner().invoke(cli, ["ls", "--json"]).stdout)["runs"]}
    assert {(r["repo"], r["branch"]) for r in records.values()} == {
        (str(one), f"pairloop/{run_one.id}"), (str(two), git_out(two, "symbolic-ref", "--short", "HEAD"))}
    assert git_out(two, "worktree", "list").count("\n") == 0, "no worktree in the repository that asked for none"


def test_ls_does_not_hang_on_a_stuck_tmux_server(tmux_server: Tmux, git_repo: Path) -> None:
    """A run's server that never answers (stopped, swapped out): `ls` says so within its bound and lists the rest."""
    tmux_server.new_session("stuck", git_repo, "sleep 600")
    run = fake_run(git_repo, "20260101-000000-aaaa", state="running", worktree=False)
    write_manifest(run.dir, msgspec.structs.replace(
        run.manifest, tmux=TmuxPlace(socket_path=tmux_server.socket_path(), session="stuck")))
    fake_run(git_repo, "20260101-000001-bbbb", worktree=False)
    server_pid = int(tmux_server.run("display-message", "-p", "#{pid}")[0])
    os.kill(server_pid, signal.SIGSTOP)
    try:
        began = time.monotonic()
        result = CliRunner().invoke(cli, ["ls", "--all"])
        took = time.monotonic() - began
    finally:
        os.kill(server_pid, signal.SIGCONT)
    assert result.exit_code == 0, result.output
    assert took < 3 * TMUX_TIMEOUT, took
    assert "got no answer" in result.output and "20260101-000001-bbbb" in result.output
