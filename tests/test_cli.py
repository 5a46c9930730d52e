"""The command line: each command's happy path on a private tmux server, and every error path."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from bridge.panes.tmux import Tmux
from pairloop.cli import cli
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
    run_dir = git_repo / ".pairloop" / "runs" / run_id
    assert oct(run_dir.stat().st_mode & 0o777) == "0o700"
    assert "/.pairloop/" in (git_repo / ".git" / "info" / "exclude").read_text()
    manifest = json.loads((run_dir / "run.json").read_text())
    assert manifest["roles"]["worker"]["agent"] == "sim"
    assert manifest["base_commit"] == subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True,
                                                      text=True, check=True).stdout.strip()

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
    assert not tmux_server.has_session(manifest["tmux"]["session"])
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
    assert entry.message.sender == "reviewer"  # type: ignore[union-attr]
    assert entry.message.to == ("worker",)  # type: ignore[union-attr]
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
        seen = []
        while not any(r["state"] == "delivered" for r in seen):
            seen.append(json.loads(proc.stdout.readline()))
        assert [(r["body"], r["state"]) for r in seen][-1] == ("followed", "delivered")
    finally:
        proc.terminate()
        proc.wait(timeout=5)


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
