"""The verification gate's runner: the run's verify command on exactly each review checkpoint, in the background.

For a round's checkpoint it makes a clean temporary worktree of the checkpoint ref (``git worktree add
--detach``: the checkpoint's files, not the live tree an agent or a program may be changing), runs the command
there in its own process group with the human's environment (minus what makes a command speak as an agent), and
removes the worktree afterwards. Each step is a child process the relay's loop polls: relaying never waits for it.
A command that runs past the timeout has its whole process group killed.

The one owner of ``verify-runs/`` in the run directory: ``<round>.log`` (the full output; ``<round>-<n>.log`` for a
later attempt), ``tree-<round>/`` (the temporary worktree) and ``tree-<round>.pid`` (the command's process group,
so a bridge started again after a crash can end a command it left running). The run directory is outside the
agents' workspace."""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import signal
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bridge.childenv import RUN_VARS, TMUX_VARS, child_env
from bridge.effects import Effects, Post
from bridge.git import git
from bridge.notify import verify_failed
from bridge.protocol.gates import PASSED, Verification
from bridge.protocol.referee import Topic
from bridge.protocol.state import Protocol
from bridge.rundir.events import VerifyFinished, VerifyResult, VerifyStarted
from bridge.rundir.files import PRIVATE_FILE, private_dir
from bridge.rundir.manifest import Manifest

VERIFY = "verify-runs"
TAIL_LINES, TAIL_BYTES = 25, 4000
KILL_GRACE = 2.0  # seconds between SIGTERM and SIGKILL for a command past its timeout
POLL_SECONDS = 0.1  # how often the loop looks at a running step


def command_text(command: str | Sequence[str]) -> str:
    """The command as shown to people: a string as written, a list joined as a shell would read it."""
    return command if isinstance(command, str) else shlex.join(command)


def command_argv(command: str | Sequence[str]) -> list[str]:
    """A string runs through the shell (pipes, ``&&``), a list as it is."""
    return ["/bin/sh", "-c", command] if isinstance(command, str) else list(command)


def verify_dir(run_dir: Path) -> Path:
    return run_dir / VERIFY


def log_path(run_dir: Path, round_: int, attempt: int = 1) -> Path:
    return verify_dir(run_dir) / (f"{round_}.log" if attempt == 1 else f"{round_}-{attempt}.log")


def tree_dir(run_dir: Path, round_: int) -> Path:
    return verify_dir(run_dir) / f"tree-{round_}"


def tail_of(path: Path) -> str:
    """The last lines of a log (its end only: a huge log is never read whole)."""
    try:
        with path.open("rb") as f:
            f.seek(max(0, f.seek(0, os.SEEK_END) - TAIL_BYTES))
            data = f.read()
    except OSError:
        return ""
    return "\n".join(data.decode("utf-8", "replace").splitlines()[-TAIL_LINES:])


def notice(v: Verification, run_id: str) -> Post:
    """The result, for the reviewer, delivered in the same paste as the review request it was held with."""
    lines = [f"verification of round {v.round}'s checkpoint ({v.ref}, {v.commit[:10]}): {v.outcome()}",
             f"command: `{v.command}` — run by the bridge in a clean worktree of the checkpoint, not the live tree"]
    if v.result != PASSED:
        if v.detail:
            lines.append(f"why: {v.detail}")
        if v.tail.strip():
            lines.append("the last lines of its output:")
            lines += ["    " + line for line in v.tail.splitlines()]
    lines.append(f"full log: {v.log}")
    topic = Topic.VERIFIED if v.result == PASSED else Topic.VERIFY_FAILED
    return Post(f"verify-{run_id}-{v.round}-{v.attempts}", ("reviewer",), "\n".join(lines), "notice", topic)


@dataclass
class _Job:
    round: int
    ref: str
    commit: str
    attempt: int
    log: Path
    tree: Path
    stage: str  # checkout, run, cleanup
    proc: subprocess.Popen[bytes]
    began: float  # monotonic, when the job began
    run_began: float = 0.0  # monotonic, when the command itself started
    deadline: float = 0.0  # monotonic, when the command runs out of time
    killed_at: float = 0.0
    finished: VerifyFinished | None = None


class Verifier:
    def __init__(self, manifest: Manifest, run_dir: Path) -> None:
        self.command = manifest.verify
        self.timeout = manifest.verify_timeout
        self.run_id = manifest.id
        self.repo = Path(manifest.work_tree)
        self.run_dir = run_dir
        self.job: _Job | None = None

    @property
    def enabled(self) -> bool:
        return bool(self.command)

    # ---- the loop's side -----------------------------------------------------------------------------

    def next_wake(self) -> float | None:
        return POLL_SECONDS if self.job is not None else None

    def poll(self, protocol: Protocol) -> Effects:
        """Advance the running job, or start the next checkpoint's; what to record, deliver and say."""
        if not self.enabled:
            return Effects()
        if self.job is not None:
            return self._advance(self.job, protocol)
        n = protocol.gates.to_start(sorted(protocol.verify_rounds(True)))
        if n is None:
            return Effects()
        return self._start(n, protocol)

    def _start(self, n: int, protocol: Protocol) -> Effects:
        cp = protocol.checkpoints[n]
        before = protocol.gates.verifications.get(n)
        attempt = before.attempts + 1 if before else 1
        log, tree = log_path(self.run_dir, n, attempt), tree_dir(self.run_dir, n)
        text = command_text(self.command)
        try:
            private_dir(verify_dir(self.run_dir))
            self._remove_tree(tree)
            fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, PRIVATE_FILE)
            with os.fdopen(fd, "wb") as out:
                out.write(f"$ {text}\n# round {n}, checkpoint {cp['ref']} ({cp['commit']})\n".encode())
                out.flush()
                proc = subprocess.Popen(["git", "-C", str(self.repo), "worktree", "add", "--detach", "--quiet",
                                         str(tree), cp["commit"] or cp["ref"]], stdout=out, stderr=out,
                                        stdin=subprocess.DEVNULL)
        except OSError as exc:
            return self._record_now(n, cp, attempt, log, "error", f"cannot start: {exc.strerror or exc}",
                                    protocol.gates.failures_in_a_row)
        self.job = _Job(n, cp["ref"], cp["commit"], attempt, log, tree, "checkout", proc, time.monotonic())
        return Effects([VerifyStarted(round=n, ref=cp["ref"], commit=cp["commit"], command=text, log=str(log))],
                       says=[f"verifying round {n}'s checkpoint: {text}"])

    def _record_now(self, n: int, cp: dict[str, str], attempt: int, log: Path, result: VerifyResult,
                    detail: str, failures_before: int) -> Effects:
        text = command_text(self.command)
        fx = Effects([VerifyStarted(round=n, ref=cp["ref"], commit=cp["commit"], command=text, log=str(log))])
        self.job = None
        return fx.add(self._finish_effects(VerifyFinished(round=n, ref=cp["ref"], commit=cp["commit"], command=text,
                                                          result=result, log=str(log), detail=detail),
                                           attempt, failures_before))

    def _advance(self, job: _Job, protocol: Protocol) -> Effects:
        now = time.monotonic()
        code = job.proc.poll()
        if job.stage == "checkout":
            if code is None:
                return Effects()
            if code != 0:
                job.finished = self._finished(job, "error", None, f"git worktree add exited {code} (see the log)")
                return self._cleanup(job)
            return self._run(job)
        if job.stage == "run":
            if code is None:
                if now >= job.deadline and not job.killed_at:
                    job.killed_at = now
                    self._signal(job, signal.SIGTERM)
                elif job.killed_at and now - job.killed_at >= KILL_GRACE:
                    self._signal(job, signal.SIGKILL)
                return Effects()
            self._signal(job, signal.SIGKILL)  # whatever it left running in its group ends with it
            (self.run_dir / VERIFY / f"{job.tree.name}.pid").unlink(missing_ok=True)
            if job.killed_at:
                job.finished = self._finished(job, "timed out", None, f"ran past the {self.timeout:g} s timeout: "
                                              "its process group was killed")
            else:
                job.finished = self._finished(job, "passed" if code == 0 else "failed", code, "")
            self._append(job.log, f"# {job.finished.result}: exit status {code} after "
                                  f"{job.finished.duration:.1f} s\n")
            return self._cleanup(job)
        if code is None:  # cleanup: removing the worktree
            return Effects()
        self._remove_tree(job.tree, quick=True)
        self.job = None
        assert job.finished is not None
        return self._finish_effects(job.finished, job.attempt, protocol.gates.failures_in_a_row)

    def _run(self, job: _Job) -> Effects:
        env = child_env(drop=(*TMUX_VARS, *RUN_VARS))
        try:
            fd = os.open(job.log, os.O_WRONLY | os.O_APPEND)
            with os.fdopen(fd, "wb") as out:
                job.proc = subprocess.Popen(command_argv(self.command), cwd=job.tree, stdout=out,
                                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                                            start_new_session=True)
            (self.run_dir / VERIFY / f"{job.tree.name}.pid").write_text(f"{job.proc.pid}\n")
        except OSError as exc:
            job.finished = self._finished(job, "error", None, f"cannot run it: {exc.strerror or exc}")
            return self._cleanup(job)
        job.stage, job.run_began = "run", time.monotonic()
        job.deadline = job.run_began + self.timeout
        return Effects()

    def _cleanup(self, job: _Job) -> Effects:
        job.stage = "cleanup"
        try:
            job.proc = subprocess.Popen(["git", "-C", str(self.repo), "worktree", "remove", "--force", str(job.tree)],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                        stdin=subprocess.DEVNULL)
        except OSError:
            job.proc = subprocess.Popen(["true"])
        return Effects()

    def _finished(self, job: _Job, result: VerifyResult, code: int | None, detail: str) -> VerifyFinished:
        began = job.run_began or job.began
        return VerifyFinished(round=job.round, ref=job.ref, commit=job.commit, command=command_text(self.command),
                              result=result, exit_status=code, duration=time.monotonic() - began,
                              log=str(job.log), tail="" if result == PASSED else tail_of(job.log), detail=detail)

    def _finish_effects(self, event: VerifyFinished, attempt: int, failures_before: int) -> Effects:
        v = Verification(event.round, event.ref, commit=event.commit, command=event.command, log=event.log,
                         result=event.result, exit_status=event.exit_status, duration=event.duration,
                         tail=event.tail, detail=event.detail, attempts=attempt)
        fx = Effects([event], posts=[notice(v, self.run_id)], wake=["reviewer"],
                     says=[f"verification of round {v.round}: {v.outcome()} (log: {v.log})"])
        if event.result not in (PASSED, "interrupted") and failures_before >= 1:
            fx.alerts.append(verify_failed(event.round, v.outcome()))  # twice in a row: the human hears of it
        return fx

    def _signal(self, job: _Job, sig: int) -> None:
        with contextlib.suppress(OSError):
            os.killpg(job.proc.pid, sig)

    @staticmethod
    def _append(path: Path, text: str) -> None:
        with contextlib.suppress(OSError), path.open("a", encoding="utf-8") as f:
            f.write(text)

    def _remove_tree(self, tree: Path, quick: bool = False) -> None:
        """A worktree left behind: git forgets it, and its files go."""
        if not quick and tree.exists():
            git(self.repo, "worktree", "remove", "--force", str(tree))
        shutil.rmtree(tree, ignore_errors=True)
        git(self.repo, "worktree", "prune")

    # ---- start and stop ------------------------------------------------------------------------------

    def clean_stale(self, protocol: Protocol) -> Effects:
        """At bridge start: a command a crashed bridge left running is ended, its worktree removed, and its
        round's verification recorded as interrupted (it runs again)."""
        fx = Effects()
        folder = verify_dir(self.run_dir)
        if not folder.is_dir():
            return fx
        for pid_file in folder.glob("tree-*.pid"):
            with contextlib.suppress(OSError, ValueError):
                pid = int(pid_file.read_text().strip())
                cwd = os.readlink(f"/proc/{pid}/cwd")
                if Path(cwd).is_relative_to(folder):  # still ours: not a recycled pid
                    os.killpg(pid, signal.SIGKILL)
            pid_file.unlink(missing_ok=True)
        for tree in folder.glob("tree-*"):
            if tree.is_dir():
                self._remove_tree(tree)
                fx.says.append(f"removed a verification worktree left behind: {tree.name}")
        for v in protocol.gates.verifications.values():
            if v.running:
                fx.events.append(VerifyFinished(round=v.round, ref=v.ref, commit=v.commit, command=v.command,
                                                result="interrupted", log=v.log,
                                                detail="the bridge stopped while it ran: it runs again"))
        return fx

    def close(self) -> None:
        """The bridge stops: end a running command and remove its worktree (it runs again at the next start)."""
        job, self.job = self.job, None
        if job is None:
            return
        if job.stage == "run":
            self._signal(job, signal.SIGKILL)
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            job.proc.wait(timeout=5)
        (self.run_dir / VERIFY / f"{job.tree.name}.pid").unlink(missing_ok=True)
        self._remove_tree(job.tree)
