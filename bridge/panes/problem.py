"""The bridge's current problem (a disk refusing writes), kept as a user option of the run's tmux session.

The ledger may be the very thing that cannot be written, so `pairloop status` learns the problem from tmux: the
bridge sets the option while the problem lasts and unsets it when it is over (and when it stops)."""

from __future__ import annotations

from bridge.panes.tmux import Tmux, TmuxError, tmux_literal

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


# While the bridge is down and its keeper cannot get it to stay up (a crash loop), the keeper says so here.
BRIDGE_DOWN_OPTION = "@pairloop_bridge_down"


def publish_bridge_down(tmux: Tmux, target: str, text: str) -> None:
    """Say on ``target``'s session (a pane id will do) that the bridge keeps dying, on the status line too; ""
    takes the word back (the status line is the bridge's again once it runs). Raises TmuxError."""
    if text:
        tmux.run("set-option", "-t", target, BRIDGE_DOWN_OPTION, text, ";",
                 "set-option", "-t", target, "status-right", tmux_literal(f"BRIDGE DOWN: {text}"))
    else:
        tmux.run("set-option", "-u", "-t", target, BRIDGE_DOWN_OPTION)


def published_bridge_down(tmux: Tmux, session: str) -> str:
    """What the session's bridge keeper says is wrong with the bridge ("" when nothing is)."""
    try:
        return "\n".join(tmux.run("show-options", "-qv", "-t", _target(session), BRIDGE_DOWN_OPTION)).strip()
    except TmuxError:
        return ""
