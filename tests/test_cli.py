"""The command line: each command's happy path on a private tmux server, and every error path."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from bridge import Entry, Tmux, TmuxError, TmuxMissing, read_manifest
from bridge.git import git_out
from pairloop.cli import PairloopGroup, cli
from pairloop.errors import MissingTool, NoSuchRun, PairloopError, UsageProblem
from pairloop.runs.store import Run, runs_dir
from tests.conftest import wait_for
from tests.helpers import delivered, start_sims


def invoke(*args: str, env: dict[str, str] | None = None, stdin: str | None = None) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args), env=env, input=stdin, catch_exceptions=False)
    return result.exit_code, result.output


# ---- errors, no tmux needed ---------------------------------------------------------------------------


def test_send_without_a_run_is_exit_3(git_repo: Path) -> None:
    code, out = invoke("send", "--to", "worker", "hello")
    assert code == 3
    assert "no active run in" in out
    assert "Traceback" not in out


def test_send_from_a_human_shell_needs_to(git_repo: Path) -> None:
    code, out = invoke("send", "hello")
    assert code == 2
    assert "--to worker|reviewer|both" in out


def test_bad_option_is_exit_2(git_repo: Path) -> None:
    code, out = invoke("send", "--to", "nobody", "hello")
    assert code == 2
    assert "Invalid value for '--to'" in out


def test_unknown_run_id_is_exit_3(git_repo: Path) -> None:
    for args in (("stop", "--run", "nope"), ("log", "--run", "nope"), ("send", "--run", "nope", "--to", "worker", "x")):
        code, out = invoke(*args)
        assert code == 3, args
        assert "no run 'nope'" in out


def test_stop_with_no_active_run_is_exit_3(git_repo: Path) -> None:
    code, out = invoke("stop")
    assert code == 3
    assert "no active run" in out


def test_status_with_no_runs(git_repo: Path) -> None:
    code, out = invoke("status")
    assert code == 0
    assert "no active runs here" in out
    code, out = invoke("status", "--json")
    assert code == 0
    assert json.loads(out) == {"runs": []}


def test_unknown_agent_is_exit_2(git_repo: Path) -> None:
    code, out = invoke("start", "task", "--worker", "gpt-9", "--no-attach", "--socket", "unused")
    assert code == 2
    assert "unknown agent 'gpt-9'" in out


def test_tmux_missing_from_path_is_exit_4(git_repo: Path, tmp_path: Path) -> None:
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    git = subprocess.run(["which", "git"], capture_output=True, text=True, check=True).stdout.strip()
    (empty / "git").symlink_to(git)
    code, out = invoke("start", "task", "--no-attach", env={"PATH": str(empty)})
    assert code == 4
    assert "tmux is not installed or not on PATH" in out


def test_start_outside_git_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    monkeypatch.chdir(plain)
    code, out = invoke("start", "task", "--no-attach", "--socket", "pairloop-test-unused")
    assert code == 1
    assert "is not a git repository" in out
    assert not (plain / ".pairloop").exists()


def test_empty_message_from_stdin_is_exit_2(tmux_server: Tmux, git_repo: Path) -> None:
    start_sims(tmux_server, git_repo)
    code, out = invoke("send", "--to", "worker", "-", stdin="  \n")
    assert code == 2
    assert "the message is empty" in out


# ---- the commands on a private tmux server ------------------------------------------------------------


def test_start_send_status_log_stop(tmux_server: Tmux, git_repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    socket = str(tmux_server.server.socket_name)
    monkeypatch.setenv("PAIRLOOP_SIM_MODE", "quiet")
    code, out = invoke("start", "Add a feature", "--worker", "sim", "--reviewer", "sim", "--no-attach",
                       "--socket", socket)
    assert code == 0, out
    run_id = out.split()[1]
    assert f"session pairloop-repo-{run_id}" in out
    run_dir = runs_dir() / run_id
    assert oct(run_dir.stat().st_mode & 0o777) == "0o700"
    mailbox = git_repo / ".pairloop" / "runs" / run_id
    assert oct(mailbox.stat().st_mode & 0o777) == "0o700"
    assert sorted(p.name for p in mailbox.iterdir()) == ["PLAN.template.md", "events", "outbox"], \
        "only what the agents write, and the template they read, is in their workspace"
    assert "/.pairloop/" in (git_repo / ".git" / "info" / "exclude").read_text()
    manifest = read_manifest(run_dir)
    assert manifest.roles["worker"].agent == "sim"
    assert manifest.base_commit == git_out(git_repo, "rev-parse", "HEAD")

    code, out = invoke("send", "--to", "reviewer", "-", stdin="-- from stdin;\n")
    assert code == 0
    msg_id = out.strip()
    from pairloop.runs.store import load_run

    run = load_run(run_dir)
    wait_for(lambda: delivered(run, msg_id, "reviewer"), what="delivery of the CLI message")
    task_id = run.book().order[0]
    wait_for(lambda: delivered(run, task_id, "worker"), what="delivery of the task")

    code, out = invoke("status", "--json")
    assert code == 0
    (st,) = json.loads(out)["runs"]
    assert st["id"] == run_id and st["state"] == "running" and st["session_alive"] is True
    assert st["bridge"] == "running"
    assert st["agents"]["reviewer"]["delivered"] == 1
    wait_for(lambda: run.book().count("worker", "delivered") == 2, what="the task and the mirrored context")
    code, out = invoke("status", "--json")
    (st,) = json.loads(out)["runs"]
    assert st["agents"]["worker"]["delivered"] == 2  # the task, and what the human told the reviewer
    assert st["agents"]["worker"]["state"] in ("ready", "busy")

    code, out = invoke("status")
    assert f"run {run_id}  running" in out
    assert "reviewer sim" in out

    code, out = invoke("log", "--json")
    records = [json.loads(line) for line in out.splitlines()]
    assert [(r["from"], r["to"], r["state"], r["body"]) for r in records] == [
        ("human", ["worker"], "delivered", "Add a feature"),
        ("human", ["reviewer"], "delivered", "-- from stdin;\n"),
        ("pairloop", ["worker"], "delivered", "For context, the human told the reviewer: -- from stdin;\n"),
    ]
    assert records[1]["id"] == msg_id

    code, out = invoke("log")
    assert "#2" in out and "human → reviewer" in out and "    -- from stdin;" in out

    code, out = invoke("stop")
    assert code == 0
    assert out.strip() == f"stopped run {run_id}"
    assert not tmux_server.has_session(manifest.tmux.session)
    assert json.loads((run_dir / "run.json").read_text())["state"] == "stopped"

    code, out = invoke("stop", "--run", run_id)
    assert code == 0
    assert out.strip() == f"run {run_id} is already stopped"
    code, out = invoke("send", "--run", run_id, "--to", "worker", "late")
    assert code == 1
    assert "is stopped" in out
    code, out = invoke("status", "--all", "--json")
    assert json.loads(out)["runs"][0]["state"] == "stopped"


def test_send_inside_an_agent_pane_goes_to_the_partner(tmux_server: Tmux, git_repo: Path) -> None:
    run = start_sims(tmux_server, git_repo)
    env = {"PAIRLOOP_RUN_DIR": str(run.dir), "PAIRLOOP_ROLE": "reviewer"}
    code, out = invoke("send", "looks wrong", env=env)
    assert code == 0
    entry = run.book().entries.get(out.strip()) or wait_for(
        lambda: run.book().entries.get(out.strip()), what="the message in the ledger")
    assert entry.message.sender == "reviewer"
    assert entry.message.to == ("worker",)
    code, out = invoke("approve", "ship it", env=env)
    assert code == 0
    wait_for(lambda: out.strip() in run.book().entries, what="the approval in the ledger")
    assert run.book().entries[out.strip()].message.kind == "approve"


def test_log_follow_prints_new_messages(tmux_server: Tmux, git_repo: Path) -> None:
    run = start_sims(tmux_server, git_repo)
    proc = subprocess.Popen([sys.executable, "-m", "pairloop", "log", "-f", "--json", "--run", run.id],
                            cwd=git_repo, stdout=subprocess.PIPE, text=True, env=os.environ.copy())
    try:
        code, _ = invoke("send", "--to", "worker", "followed")
        assert code == 0
        assert proc.stdout is not None
        seen: list[dict[str, Any]] = []
        while not any(r["state"] == "delivered" for r in seen):
            seen.append(json.loads(proc.stdout.readline()))
        assert [(r["body"], r["state"]) for r in seen][-1] == ("followed", "delivered")
    finally:
        proc.terminate()
        proc.wait(timeout=5)


@pytest.mark.tmux  # `pairloop demo` starts its own private tmux server
def test_demo_no_attach_agrees_and_leaves_nothing_behind(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "pairloop", "demo", "--no-attach"], capture_output=True,
                          text=True, timeout=120, stdin=subprocess.DEVNULL, cwd=tmp_path, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "the pair agreed: done" in proc.stdout
    assert "Add greet(); " in proc.stdout and "Add a test for greet()" in proc.stdout
    assert "review history:" in proc.stdout, "the summary written on agreement is shown"
    assert "reviewer approved (#5)" in proc.stdout
    run_id = proc.stdout.split("demo run ", 1)[1].split()[0]
    repo = proc.stdout.split(" in ", 1)[1].split()[0]
    assert not Path(repo).exists()
    leftovers = []
    for pid_dir in Path("/proc").iterdir():
        if pid_dir.name.isdigit():
            try:
                cmdline = (pid_dir / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if repo in cmdline or run_id in cmdline:
                leftovers.append(cmdline)
    assert leftovers == []


def test_stop_ends_an_agent_that_ignores_the_hangup(tmux_server: Tmux, git_repo: Path) -> None:
    from pairloop.runs.lifecycle import stop_run

    run = start_sims(tmux_server, git_repo, PAIRLOOP_SIM_IGNORE_HUP="1")
    pids = tmux_server.pane_pids(run.session)
    assert len(pids) == 3
    assert stop_run(tmux_server, run)
    gone = []
    for pid in pids:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
            gone.append(stat.rsplit(")", 1)[1].split()[0] == "Z")
        except OSError:
            gone.append(True)
    assert all(gone), "every pane's process ended, the one ignoring SIGHUP included"


# ---- the one place errors become exit codes -----------------------------------------------------------


@pytest.mark.parametrize(("error", "code", "line"), [
    (NoSuchRun("no run 'x'"), 3, "Error: no run 'x'"),
    (UsageProblem("say who"), 2, "Error: say who"),
    (MissingTool("gh is missing"), 4, "Error: gh is missing"),
    (PairloopError("it failed"), 1, "Error: it failed"),
    (TmuxMissing("tmux is not installed"), 4, "Error: tmux is not installed"),
    (TmuxError("no server running"), 1, "Error: tmux: no server running"),
])
def test_a_core_error_is_one_line_on_stderr_and_its_exit_code(error: Exception, code: int, line: str) -> None:
    group = PairloopGroup()

    @group.command()
    def fails() -> None:
        raise error

    result = CliRunner().invoke(group, ["fails"])
    assert (result.exit_code, result.stderr, result.stdout) == (code, line + "\n", "")


# ---- text that starts with '-' ------------------------------------------------------------------------


def test_leading_dash_text_is_text_not_an_unknown_option(git_repo: Path) -> None:
    for args in (("send", "--to", "reviewer", "- a bullet"), ("changes", "- add a test"), ("approve", "-ok"),
                 ("send", "--to", "worker", "--not-an-option")):
        code, out = invoke(*args)
        assert (code, "No such option" in out, "no active run" in out) == (3, False, True), args


def test_real_options_and_help_still_work_next_to_dash_text(git_repo: Path) -> None:
    code, out = invoke("changes", "--help")
    assert code == 0 and "Reviewer (or the human, overruling it): ask for changes." in out
    code, out = invoke("send", "-h")
    assert code == 0 and "Send TEXT" in out
    code, out = invoke("send", "--to", "nobody", "- x")
    assert code == 2 and "Invalid value for '--to'" in out
    code, out = invoke("send", "--to", "worker", "- one", "- two")
    assert code == 2 and "unexpected extra argument" in out


def received(run: Run, msg_id: str) -> Entry | None:
    return run.book().entries.get(msg_id)


def test_every_text_verb_takes_text_starting_with_a_dash(tmux_server: Tmux, git_repo: Path) -> None:
    run = start_sims(tmux_server, git_repo)
    worker = {"PAIRLOOP_RUN_DIR": str(run.dir), "PAIRLOOP_ROLE": "worker"}
    reviewer = {"PAIRLOOP_RUN_DIR": str(run.dir), "PAIRLOOP_ROLE": "reviewer"}
    cases: list[tuple[tuple[str, ...], dict[str, str] | None, str | None, tuple[str, str, tuple[str, ...], str]]] = [
        (("send", "--to", "reviewer", "- a bullet"), None, None, ("human", "message", ("reviewer",), "- a bullet")),
        (("send", "- options after", "--to", "worker"), None, None,
         ("human", "message", ("worker",), "- options after")),
        (("send", "--to=both", "--", "--to is text after --"), None, None,
         ("human", "message", ("worker", "reviewer"), "--to is text after --")),
        (("send", "--to", "worker", "-"), None, "- from stdin\n", ("human", "message", ("worker",), "- from stdin\n")),
        (("send", "-- two dashes first"), reviewer, None, ("reviewer", "message", ("worker",), "-- two dashes first")),
        (("review", "--fixed", "F1.1", "- ready: the bullet"), worker, None,
         ("worker", "review", ("reviewer",), "- ready: the bullet")),
        (("changes", "- add a test"), reviewer, None, ("reviewer", "changes", ("worker",), "- add a test")),
        (("changes", "-"), None, "- from stdin", ("human", "changes", ("worker",), "- from stdin")),
        (("approve", "-- lgtm"), reviewer, None, ("reviewer", "approve", ("worker",), "-- lgtm")),
        (("approve", "--run", run.id, "- the human overrules"), None, None,
         ("human", "approve", ("worker",), "- the human overrules")),
        (("done", "- all green"), worker, None, ("worker", "done", ("reviewer",), "- all green")),
    ]
    for args, env, stdin, (sender, kind, to, body) in cases:
        code, out = invoke(*args, env=env, stdin=stdin)
        assert code == 0, (args, out)
        msg_id = out.strip()
        entry = wait_for(partial(received, run, msg_id), what=f"{args} in the ledger")
        assert (entry.message.sender, entry.message.kind, entry.message.to, entry.message.body) == (
            sender, kind, to, body), args
    review = next(e for e in run.book().entries.values() if e.message.kind == "review")
    assert review.message.fixed == ("F1.1",)


def test_log_follow_ends_when_the_run_is_stopped(tmux_server: Tmux, git_repo: Path) -> None:
    from pairloop.runs.lifecycle import stop_run
    from pairloop.views import log_output

    run = start_sims(tmux_server, git_repo)
    code, out = invoke("send", "--to", "worker", "- followed")
    assert code == 0
    wait_for(lambda: delivered(run, out.strip(), "worker"), what="the delivery")
    stops: list[bool] = []
    printed = list(log_output(run, follow=True, sleep=lambda _: stops.append(stop_run(tmux_server, run))))
    assert stops == [True], "it read once, waited once (the run stopped meanwhile), read again and ended"
    assert printed[0].splitlines()[1:] == ["    - followed"]
