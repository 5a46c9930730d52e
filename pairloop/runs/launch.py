"""``python -m pairloop.runs.launch RUN_DIR ROLE``: what an agent pane runs first.

tmux gives new panes its server's environment, not the caller's, and a command line is visible to every
user in ``ps``. So ``pairloop start`` leaves the agent's argv and environment in a private file (mode 0600,
in a 0700 folder); this reads it, deletes it, and execs the agent in its place."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import msgspec

from bridge import child_env, write_atomic

LAUNCH = "launch"


class LaunchSpec(msgspec.Struct, frozen=True, kw_only=True):
    """One agent's command line, working directory and environment, read once by its pane and deleted."""

    argv: tuple[str, ...]
    cwd: str
    env: dict[str, str]


def spec_path(run_dir: Path, role: str) -> Path:
    return run_dir / LAUNCH / f"{role}.json"


def write_launch_spec(run_dir: Path, role: str, spec: LaunchSpec) -> None:
    write_atomic(spec_path(run_dir, role), msgspec.json.encode(spec))


def take_launch_spec(run_dir: Path, role: str) -> LaunchSpec:
    """Read the spec and delete it: the environment it holds is not left lying around."""
    path = spec_path(run_dir, role)
    try:
        spec = msgspec.json.decode(path.read_bytes(), type=LaunchSpec)
    finally:
        path.unlink(missing_ok=True)
    if not spec.argv:
        raise ValueError("the launch file names no program")
    return spec

# Set by tmux for the pane itself; the caller's values would name the wrong server, pane or terminal.
PANE_OWN = ("TMUX", "TMUX_PANE", "TERM")


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print("usage: python -m pairloop.runs.launch RUN_DIR ROLE", file=sys.stderr)
        return 2
    try:
        spec = take_launch_spec(Path(args[0]), args[1])
    except (OSError, ValueError, msgspec.ValidationError, msgspec.DecodeError) as exc:
        print(f"pairloop: cannot launch the {args[1]}: {exc}", file=sys.stderr)
        return 1
    env = child_env(spec.env, drop=PANE_OWN, extra={k: os.environ[k] for k in PANE_OWN if k in os.environ})
    try:
        os.chdir(spec.cwd)
        os.execvpe(spec.argv[0], list(spec.argv), env)
    except OSError as exc:
        print(f"pairloop: cannot start {spec.argv[0]!r}: {exc.strerror}", file=sys.stderr)
        return 127
    return 0  # not reached


if __name__ == "__main__":
    sys.exit(main())
