"""The configuration a worktree run starts from. What runs is the human's configuration as it stood at start:
the checkout's (uncommitted edits included), which the human controls. The run's worktree has only the committed
file, which the agents work with and may edit; when the two differ on what the bridge runs, the human is told
at start which one runs. Pure, but for reading the two files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pairloop.errors import UsageProblem
from pairloop.runs.config import read_config

SETTINGS = ("verify", "verify_timeout", "notify", "max_tokens")


def differing(checkout: dict[str, Any], worktree: dict[str, Any]) -> list[str]:
    """The settings the bridge runs or enforces on which the two configurations differ."""
    return [key for key in SETTINGS if checkout.get(key) != worktree.get(key)]


def notice(keys: list[str], flags: set[str]) -> str:
    """What to tell the human at start ("" when nothing differs); ``flags`` are settings given on the command
    line, which run whatever either file says."""
    keys = [key for key in keys if key not in flags]
    if not keys:
        return ""
    return (f"pairloop: your checkout's configuration differs from the one committed (which the run's worktree "
            f"has) in {', '.join(keys)}: the run uses your checkout's, as it stands now; a change the agents make "
            "to the worktree's configuration is flagged to you, never used")


def worktree_notice(work: Path, checkout: dict[str, Any], flags: set[str]) -> str:
    """The notice for a run in the worktree ``work``, the checkout's configuration being ``checkout``."""
    try:
        committed = read_config(work)
    except UsageProblem:
        committed = {key: "unreadable" for key in SETTINGS}
    return notice(differing(checkout, committed), flags)
