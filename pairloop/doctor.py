"""`pairloop doctor`: is everything the default pair needs installed and able to start?"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from pairloop.agents.profile import profile
from pairloop.errors import PairloopError
from pairloop.runs.config import agent_settings, default_roles, read_config, verify_settings
from pairloop.runs.suggest import advice, verify_line

MIN_TMUX = (3, 0)


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str
    fix: str = ""
    needed: bool = True  # False: only some commands need it


def _version(argv: list[str], timeout: float = 20.0) -> tuple[bool, str]:
    """Run ``argv --version``-style: (ran fine, first line of output or the error)."""
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False,
                             stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return False, str(exc)
    text = (out.stdout or out.stderr).strip().splitlines()
    return out.returncode == 0, text[0] if text else f"exit status {out.returncode}"


def check_tmux() -> Check:
    path = shutil.which("tmux")
    if path is None:
        return Check("tmux", False, "not found on PATH", "install tmux 3.0 or newer (e.g. apt-get install tmux)")
    ok, line = _version([path, "-V"])
    m = re.search(r"(\d+)\.(\d+)", line)
    new_enough = bool(m) and (int(m.group(1)), int(m.group(2))) >= MIN_TMUX  # type: ignore[union-attr]
    if not ok or not new_enough:
        return Check("tmux", False, f"{line} ({path})", "install tmux 3.0 or newer")
    return Check("tmux", True, f"{line} ({path})")


def check_git() -> Check:
    path = shutil.which("git")
    if path is None:
        return Check("git", False, "not found on PATH", "install git")
    ok, line = _version([path, "--version"])
    return Check("git", ok, f"{line} ({path})", "" if ok else "reinstall git")


def check_agent(name: str, repo: Path, env: dict[str, str], needed: bool) -> Check:
    """Found, its version, and whether it starts far enough to print that version."""
    try:
        prof = profile(name, agent_settings(read_config(repo), name, env))
    except PairloopError as exc:
        return Check(name, False, str(exc), needed=needed)
    command = prof.command[0]
    path = shutil.which(command) or (command if Path(command).is_file() else None)
    hint = prof.install_hint
    if path is None:
        return Check(name, False, f"{command!r} not found on PATH", hint or "install it or set its command "
                     "in .pairloop.toml", needed)
    if name == "sim":
        return Check(name, True, f"built in ({path})", needed=needed)
    ok, line = _version([*prof.command, "--version"])
    if not ok:
        return Check(name, False, f"{path} did not start: {line}", hint, needed)
    return Check(name, True, f"{line} ({path})", needed=needed)


def check_gh() -> Check:
    path = shutil.which("gh")
    if path is None:
        return Check("gh", False, "not found on PATH", "install the GitHub CLI (for `pairloop pr` only)",
                     needed=False)
    ok, line = _version([path, "--version"])
    return Check("gh", ok, f"{line} ({path})", needed=False)


def check_verify(repo: Path) -> Check:
    """The verification gate: the configured command, or one suggested from what the repository holds."""
    try:
        command, timeout = verify_settings(read_config(repo))
    except PairloopError as exc:
        return Check("verify", False, str(exc), needed=False)
    if command:
        return Check("verify", True, verify_line(command, timeout), needed=False)
    return Check("verify", False, "none configured: checkpoints are not checked", advice(repo), needed=False)


def run_checks(repo: Path, env: dict[str, str] | None = None) -> list[Check]:
    env = dict(os.environ) if env is None else env
    worker, reviewer = default_roles(read_config(repo), env)
    checks = [check_tmux(), check_git()]
    for name in dict.fromkeys((worker, reviewer, "claude", "codex")):
        checks.append(check_agent(name, repo, env, needed=name in (worker, reviewer)))
    checks.append(check_gh())
    checks.append(check_verify(repo))
    return checks


def report(checks: list[Check]) -> tuple[list[str], bool]:
    """Lines to print, and whether the default pair can run."""
    lines = []
    for c in checks:
        status = "ok" if c.ok else ("MISSING" if c.needed else "missing")
        lines.append(f"{c.name:<8} {status:<8} {c.detail}")
        if not c.ok and c.fix:
            lines.append(f"{'':<17}fix: {c.fix}")
    ready = all(c.ok for c in checks if c.needed)
    lines.append("the default pair can run" if ready else "the default pair cannot run: fix what is MISSING above")
    return lines, ready
