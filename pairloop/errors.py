"""The errors the core raises; the CLI turns each into a clear message and an exit code scripts can use."""

from __future__ import annotations

import errno
import os
from collections.abc import Callable


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


class CannotWrite(PairloopError):
    """The file system refused: no space left, over quota, read-only, no permission."""

    exit_code = 5


# What each errno means for the one who asked, by how the file system refused; the path is where it refused.
_DEVICE_WIDE = {
    errno.ENOSPC: "no space left on the device holding {path}",
    errno.EDQUOT: "the disk quota is used up on the device holding {path}",
    errno.EROFS: "the device holding {path} is read-only",
}
_AT_PATH = {
    errno.EACCES: "permission denied: {path}",
    errno.EPERM: "not permitted: {path}",
    errno.EIO: "input/output error (a failing device?) at {path}",
    errno.ENOENT: "no such file or folder: {path}",
}


def describe_os_error(exc: OSError, consequence: str = "", is_dir: Callable[[str], bool] = os.path.isdir) -> str:
    """One line for an OSError: what the file system said, where, and what it means (``consequence``, e.g. "the
    message was not sent"). A device-wide refusal names the folder (the file it was writing does not exist)."""
    path = str(exc.filename) if exc.filename is not None else ""
    if exc.errno in _DEVICE_WIDE and path:
        folder = path if is_dir(path) else os.path.dirname(path) or path
        text = _DEVICE_WIDE[exc.errno].format(path=folder)
    elif exc.errno in _AT_PATH and path:
        text = _AT_PATH[exc.errno].format(path=path)
    else:
        said = exc.strerror or str(exc) or type(exc).__name__
        text = f"{said[:1].lower()}{said[1:]}" + (f": {path}" if path else "")
    return f"{text}: {consequence}" if consequence else text
