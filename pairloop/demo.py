"""`pairloop demo`: two simulated agents pair on a built-in task in a throwaway repo. No accounts needed."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

from bridge import QUEUED, Tmux, TmuxError, child_env, git, poll
from pairloop.runs.lifecycle import StartOptions, start_run, stop_run, wait_for_summary, wait_until_running
from pairloop.runs.store import AGREED, Run
from pairloop.summary.summarize import pr_notes_path
from pairloop.views import conversation, message_lines

DEMO_TASK = "Add a greet(name) function in greeting.py, with a test, and get it reviewed."
GRACE_SECONDS = 4.0  # let an attached viewer see the agreement before the session closes


def make_demo_repo() -> Path:
    repo = Path(tempfile.mkdtemp(prefix="pairloop-demo-"))
    git(repo, "init", "-q")
    (repo / "README.md").write_text("# demo\n\nA throwaway repository for `pairloop demo`.\n")
    git(repo, "add", "README.md")
    git(repo, "-c", "user.name=pairloop demo", "-c", "user.email=demo@pairloop.invalid",
        "commit", "-q", "-m", "Start the demo repository")
    for key, value in (("user.name", "pairloop demo"), ("user.email", "demo@pairloop.invalid")):
        git(repo, "config", key, value)
    return repo


def wait_for_outcome(run: Run, timeout: float, on_message: Callable[[list[str]], None] | None = None,
                     stop_early: threading.Event | None = None) -> bool:
    """Poll the ledger until the pair agrees (True) or time runs out (False)."""
    shown = 0

    def outcome() -> str | None:
        nonlocal shown
        if stop_early and stop_early.is_set():
            return "stopped"
        book = run.book()
        entries = conversation(book)
        if on_message is not None:
            # Show each message once it has left the queue, in order.
            while shown < len(entries) and entries[shown].state != QUEUED:
                on_message(message_lines(entries[shown])[:3])
                shown += 1
        return AGREED if book.run_state == AGREED else None

    return poll(outcome, timeout, delay=0.1, max_delay=0.1) == AGREED


def run_demo(attach: bool, timeout: float, echo: Callable[[str], None], keep: bool = False) -> int:
    """Exit 0 when the pair agreed within ``timeout`` seconds, 1 otherwise. Cleans up its tmux server."""
    repo = make_demo_repo()
    tmux = Tmux(socket_name=f"pairloop-demo-{os.getpid()}")
    env = child_env()
    env.setdefault("PAIRLOOP_SIM_WORK_SECONDS", "1.0")
    run: Run | None = None
    try:
        run = start_run(tmux, repo, DEMO_TASK, StartOptions("sim", "sim"), env)
        wait_until_running(tmux, run)
        echo(f"demo run {run.id} in {repo}")
        if attach:
            agreed = _watch_attached(tmux, run, timeout)
        else:
            echo(f"task: {DEMO_TASK}")
            agreed = wait_for_outcome(run, timeout, lambda lines: echo("\n".join(lines)))
        commits = git(repo, "log", "--oneline", "--reverse").stdout.strip().splitlines()
        echo("")
        echo("the pair agreed: done" if agreed else f"no agreement within {timeout:.0f}s")
        echo("commits: " + "; ".join(commits))
        if agreed and wait_for_summary(run, timeout=15.0):
            _show_review_history(run, echo)
        return 0 if agreed else 1
    finally:
        if run is not None:
            stop_run(tmux, run)
        tmux.kill_private_server()
        if keep:
            echo(f"kept the demo repository at {repo}")
        else:
            shutil.rmtree(repo, ignore_errors=True)


def _watch_attached(tmux: Tmux, run: Run, timeout: float) -> bool:
    """Attach this terminal; a watcher closes the session a few seconds after the pair agrees."""
    result: dict[str, bool] = {"agreed": False}
    detached = threading.Event()

    def watch() -> None:
        result["agreed"] = wait_for_outcome(run, timeout, stop_early=detached)
        if result["agreed"]:
            time.sleep(GRACE_SECONDS)
        if not detached.is_set():
            with contextlib.suppress(TmuxError):
                tmux.kill_session(run.session)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    subprocess.run(tmux.attach_argv(run.session), env=child_env(), check=False)
    detached.set()
    watcher.join(timeout=2)
    return result["agreed"] or run.state == AGREED


def _show_review_history(run: Run, echo: Callable[[str], None]) -> None:
    """The part of the PR notes the summarizer wrote on agreement that shows the loop at a glance."""
    notes = pr_notes_path(run)
    if not notes.exists():
        return
    text = notes.read_text(encoding="utf-8")
    start = text.find("## Review history")
    end = text.find("\n## ", start + 1)
    if start >= 0:
        echo("")
        echo(f"PR notes, as `pairloop summarize` wrote them ({notes.name}), review history:")
        echo(text[start + len("## Review history"): end if end > 0 else None].strip())
