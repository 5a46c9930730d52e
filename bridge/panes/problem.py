"""The bridge's current problem (a disk refusing writes), kept as a user option of the run's tmux session.

The ledger may be the very thing that cannot be written, so `pairloop status` learns the problem from tmux: the
bridge sets the option while the problem lasts and unsets it when it is over (and when it stops)."""

from __future__ import annotations

from bridge.panes.tmux import Tmux, TmuxError

PROBLEM_OPTION = "@pairloop_problem"


def _target(session: str) -> str:
    return f"={session}:"  # ':' makes '=' (exact name) work for session options


def publish_problem(tmux: Tmux, session: str, problem: str) -> bool:
    """Set (or, for "", unset) the session's problem; False when tmux could not be told."""
    args = ("set-option", "-t", _target(session), PROBLEM_OPTION, problem) if problem else \
        ("set-option", "-u", "-t", _target(session), PROBLEM_OPTION)
    try:
        tmux.run(*args)
    except TmuxError:
        return False
    return True


def published_problem(tmux: Tmux, session: str) -> str:
    """What the session's bridge says is wrong now ("" when nothing is, or the session is gone)."""
    try:
        return "\n".join(tmux.run("show-options", "-qv", "-t", _target(session), PROBLEM_OPTION)).strip()
    except TmuxError:
        return ""
