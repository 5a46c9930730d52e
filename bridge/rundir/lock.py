"""``bridge.lock``: one bridge per run. The bridge holds a POSIX write lock on it for as long as it runs and
writes its pid into it. Asking whether a bridge runs only *tests* the lock (F_GETLK): it never takes it, so a
liveness check can never make a starting bridge believe another one is running."""

from __future__ import annotations

import contextlib
import fcntl
import os
import struct
from pathlib import Path

BRIDGE_LOCK = "bridge.lock"
# struct flock on Linux: short l_type, short l_whence, off_t l_start, off_t l_len, pid_t l_pid (+ padding).
_FLOCK = "@hhqqi4x"
# How `python -m bridge` exits when another bridge holds the lock (EX_TEMPFAIL): its keeper waits, never loops.
BUSY_EXIT = 75


class BridgeBusy(Exception):
    """Another bridge already serves this run."""


def lock_path(run_dir: Path) -> Path:
    return run_dir / BRIDGE_LOCK


def take(run_dir: Path) -> int:
    """Take the run's bridge lock for this process (raise BridgeBusy if it is held); return the descriptor,
    which must stay open for as long as the bridge runs."""
    fd = os.open(lock_path(run_dir), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        raise BridgeBusy(f"another bridge is already running for {run_dir}") from None
    with contextlib.suppress(OSError):  # the pid is for people, the lock is what counts: a full disk may refuse it
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
    return fd


def holder(run_dir: Path) -> int | None:
    """The pid of the bridge holding the lock, or None when no bridge runs. Never takes the lock. (Not for the
    bridge process itself: closing any descriptor of the file would drop its own POSIX lock.)"""
    try:
        fd = os.open(lock_path(run_dir), os.O_RDONLY)
    except OSError:
        return None
    try:
        query = struct.pack(_FLOCK, fcntl.F_WRLCK, os.SEEK_SET, 0, 0, 0)
        answer = fcntl.fcntl(fd, fcntl.F_GETLK, query)
    except OSError:
        return None
    finally:
        os.close(fd)
    l_type, _, _, _, pid = struct.unpack(_FLOCK, answer)
    return None if l_type == fcntl.F_UNLCK else int(pid)


def running(run_dir: Path) -> bool:
    return holder(run_dir) is not None
