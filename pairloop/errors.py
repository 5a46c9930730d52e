"""The errors the core raises; the CLI turns each into a clear message and an exit code scripts can use."""

from __future__ import annotations


class PairloopError(Exception):
    exit_code = 1


class UsageProblem(PairloopError):
    """The command was given something it cannot use."""

    exit_code = 2


class NoSuchRun(PairloopError):
    exit_code = 3


class MissingTool(PairloopError):
    """tmux, git or an agent program is not installed."""

    exit_code = 4
