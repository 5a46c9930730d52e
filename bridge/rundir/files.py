"""Writing files of the run directory: atomically (readers never see half a file), private to the user."""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path

PRIVATE_FILE, PRIVATE_DIR = 0o600, 0o700


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: Path, data: bytes, mode: int = PRIVATE_FILE) -> None:
    """Write to a hidden temp file beside ``path`` and rename it in. On any failure (a full disk) the temp file
    is removed and the error raised: nothing is left behind, and ``path`` is untouched."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    fsync_dir(path.parent)


def private_dir(path: Path) -> Path:
    """Create ``path`` (and parents) as 0700 whatever the umask; an existing one is tightened."""
    path.mkdir(parents=True, exist_ok=True, mode=PRIVATE_DIR)
    os.chmod(path, PRIVATE_DIR)
    return path
