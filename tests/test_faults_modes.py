"""Files pairloop makes for a run are private whatever the umask: every file 0600, every folder 0700.

The whole loop runs under umask 000 (the most permissive there is): the test process sets it, starts the private
tmux server itself so the server and all it starts (the bridge, the agents, the summary) inherit it, and checks
that they did. Anything created with the umask's default mode would then be world-writable, and shows here."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from bridge.panes.envelope import PASTE_LIMIT
from bridge.panes.tmux import Tmux
from pairloop.agents import hook
from pairloop.agents.claude import PROFILE as CLAUDE
from pairloop.agents.profile import LaunchContext
from pairloop.runs.lifecycle import StartOptions, request_control, send_message, stop_run, wait_for_summary
from pairloop.summary.pr import notes_of
from pairloop.summary.summarize import pr_notes_path
from tests.conftest import wait_for
from tests.helpers import book, bridge_pid, delivered, human_says, ledger, start_sims


@pytest.fixture
def umask_000() -> Iterator[None]:
    old = os.umask(0)
    try:
        yield
    finally:
        os.umask(old)


def umask_of(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Umask:"):
            return int(line.split()[1], 8)
    raise AssertionError(f"no Umask line for process {pid}")


def loose(*roots: Path) -> list[str]:
    """Every file not 0600 and every folder not 0700 under ``roots`` (symlinks are not followed)."""
    found = []
    for root in roots:
        for path in [root, *root.rglob("*")]:
            st = path.lstat()
            if stat.S_ISLNK(st.st_mode):
                continue
            want = 0o700 if stat.S_ISDIR(st.st_mode) else 0o600
            if stat.S_IMODE(st.st_mode) != want:
                found.append(f"{path.relative_to(root.parent)} {oct(stat.S_IMODE(st.st_mode))}")
    return found


@pytest.mark.tmux
@pytest.mark.usefixtures("umask_000")
def test_a_whole_run_under_umask_000_leaves_only_private_files(tmux_server: Tmux, git_repo: Path) -> None:
    # The server starts here, from this process: it (and so the bridge and the agents) gets umask 000.
    tmux_server.run("new-session", "-d", "-s", "umask-probe", "sleep 600")
    assert umask_of(int(tmux_server.run("display-message", "-p", "#{pid}")[0])) == 0
    run = start_sims(tmux_server, git_repo, "Add greet()", StartOptions("sim", "sim", mirror=False),
                     PAIRLOOP_SIM_MODE="pair", PAIRLOOP_SIM_WORK_SECONDS="0.3")
    assert umask_of(bridge_pid(run)) == 0, "the bridge inherited the permissive umask"
    # Every other kind of file a run can hold: control requests, an attachment, a refused file (written by
    # someone else with a wide mode), a message for the human.
    request_control(run, "pause")
    wait_for(lambda: run.protocol().paused, what="the pause")
    request_control(run, "unpause")
    wait_for(lambda: not run.protocol().paused, what="the unpause")
    big = human_says(run, "reviewer", "x" * (PASTE_LIMIT + 10))
    refused = run.outbox / "human" / "not-a-message.json"
    refused.write_text("{not json")
    os.chmod(refused, 0o666)
    wait_for(lambda: book(run).rejected, what="the refused file set aside")
    send_message(run, "reviewer", ("human",), "a note for the human")
    wait_for(lambda: delivered(run, big.id, "reviewer"), what="the attachment delivered")
    wait_for(lambda: book(run).run_state == "agreed", timeout=60, what="the pair to agree")
    assert wait_for_summary(run, timeout=30)
    wait_for(lambda: pr_notes_path(run).exists() and (run.dir / "digest.json").exists(), what="the summary")
    notes_of(run)  # what `pairloop pr` writes next to the notes
    assert stop_run(tmux_server, run)

    names = {p.name for p in run.dir.rglob("*")} | {p.name for p in run.mailbox.rglob("*")}
    for expected in ("bridge.log", "ledger.jsonl", "run.json", "brief-worker.md", "PLAN.template.md",
                     "attachments", f"{big.id}.txt", "rejected", "not-a-message.json", "on-agreement.log",
                     "on-agreement.pid", "digest.json", "PR_NOTES.md", "PR_BODY.md", "control", "launch"):
        assert expected in names, f"the run made no {expected} (the test would prove nothing of it)"
    assert any(e["ev"] == "rejected" for e in ledger(run))
    assert loose(run.dir, run.mailbox) == []
    # The folders above them that pairloop made are private too.
    assert stat.S_IMODE(run.dir.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(run.mailbox.parent.stat().st_mode) == 0o700


def test_claude_s_settings_file_is_private_under_umask_000(tmp_path: Path, umask_000: None) -> None:
    ctx = LaunchContext(tmp_path, "worker", "brief", tmp_path / "brief-worker.md", None, ())
    CLAUDE.argv(ctx)
    (settings,) = tmp_path.glob("claude-settings-*.json")
    assert json.loads(settings.read_text())["hooks"]
    assert stat.S_IMODE(settings.stat().st_mode) == 0o600
    assert list(tmp_path.glob(".*")) == [], "written atomically, nothing left beside it"


def test_the_hook_s_error_log_is_private_under_umask_000(tmp_path: Path, umask_000: None) -> None:
    assert hook.main([str(tmp_path), "worker", "prompt", "{not json"]) == 0
    log = tmp_path / "hook-errors.log"
    assert "JSONDecodeError" in log.read_text()
    assert stat.S_IMODE(log.stat().st_mode) == 0o600
