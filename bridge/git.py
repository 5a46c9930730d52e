"""Running git: the one place that spells the command line, so every caller gets the same behaviour (the
repository by ``-C``, no stdin to block on, text output captured) and the same error."""

from __future__ import annotations

import subprocess
from collections.abc import Mapping
from pathlib import Path


class GitError(Exception):
    """git exited non-zero; the message carries git's own words."""

    def __init__(self, args: tuple[str, ...], returncode: int, stderr: str) -> None:
        super().__init__(f"git {args[0] if args else ''}: {stderr.strip() or returncode}")
        self.command = args
        self.returncode = returncode
        self.stderr = stderr


def git(repo: Path | None, *args: str, env: Mapping[str, str] | None = None, check: bool = False,
        timeout: float | None = None, input: str | None = None,
        errors: str | None = None) -> subprocess.CompletedProcess[str]:
    """``git -C repo ARGS`` (in the current directory when ``repo`` is None). ``check`` raises GitError on a
    non-zero exit. A missing git raises FileNotFoundError and a timeout subprocess.TimeoutExpired, as
    subprocess does. ``input`` is git's stdin (none otherwise); ``errors="replace"`` for output that may not be
    UTF-8 (the content of diffs)."""
    where = ["-C", str(repo)] if repo is not None else []
    proc = subprocess.run(["git", *where, *args], capture_output=True, text=True, check=False,
                          env=dict(env) if env is not None else None, timeout=timeout, errors=errors,
                          **({"input": input} if input is not None else {"stdin": subprocess.DEVNULL}))
    if check and proc.returncode != 0:
        raise GitError(args, proc.returncode, proc.stderr)
    return proc


def git_out(repo: Path | None, *args: str, env: Mapping[str, str] | None = None) -> str:
    """What git printed, stripped; GitError when it failed."""
    return git(repo, *args, env=env, check=True).stdout.strip()
