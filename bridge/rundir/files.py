"""Writing files of the run directory: atomically (readers never see half a file), private to the user."""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import stat
from pathlib import Path

PRIVATE_FILE, PRIVATE_DIR = 0o600, 0o700


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_all(fd: int, data: bytes) -> None:
    """Every byte or an error: a short write is continued, one that makes no progress is an error."""
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        if written <= 0:
            raise OSError(errno.EIO, "write made no progress")
        view = view[written:]


def _naming(exc: OSError, path: Path) -> OSError:
    """The error names the file that was being written (``os.write`` names none, a temp name says nothing)."""
    exc.filename = str(path)
    return exc


def write_atomic(path: Path, data: bytes, mode: int = PRIVATE_FILE, sync: bool = True) -> None:
    """Write to a hidden temp file beside ``path`` and rename it in. On any failure (a full disk, a write cut
    short) the temp file is removed and the error raised, naming ``path``: nothing is left behind, and ``path``
    is untouched. Without ``sync`` nothing waits for the disk: for a cache whose reader checks what it reads."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    except OSError as exc:
        raise _naming(exc, path) from None
    try:
        try:
            _write_all(fd, data)
            if sync:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        if isinstance(exc, OSError):
            raise _naming(exc, path) from None
        raise
    if sync:
        fsync_dir(path.parent)


def write_private(path: Path, data: bytes) -> None:
    """Write a scratch file (not fsync'd: it is not kept) whole, or remove it and raise, naming ``path``."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, PRIVATE_FILE)
    except OSError as exc:
        raise _naming(exc, path) from None
    try:
        try:
            _write_all(fd, data)
        finally:
            os.close(fd)
    except OSError as exc:
        with contextlib.suppress(OSError):
            path.unlink()
        raise _naming(exc, path) from None


def private_dir(path: Path) -> Path:
    """Create ``path`` as 0700 whatever the umask, and any missing parent too (``mkdir -p`` would make those
    with the umask's mode); an existing ``path`` is tightened, an existing parent left as it is."""
    if not path.parent.is_dir():
        private_dir(path.parent)
    try:
        path.mkdir(mode=PRIVATE_DIR)
    except FileExistsError:
        if path.is_symlink():  # never write (or chmod) through a link someone else put in our place
            raise OSError(errno.ELOOP, "a symlink where pairloop keeps a folder", str(path)) from None
        if not path.is_dir():
            raise
    os.chmod(path, PRIVATE_DIR)
    return path


class NotAFile(OSError):
    """A link, a FIFO, a device or a folder where a regular file was expected."""


def open_regular(path: str | Path) -> tuple[int, os.stat_result]:
    """Open, for reading, a file someone else may have put there: a regular file only (never a link, a FIFO that
    would block the reader, or a device). Returns the descriptor (the caller closes it) and its stat; raises
    :class:`NotAFile`, or the OSError of opening it."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise NotAFile(errno.ELOOP, "a symlink, not a file", str(path)) from None
        raise
    try:
        st = os.fstat(fd)
    except OSError:
        os.close(fd)
        raise
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        raise NotAFile(errno.EINVAL, "not a regular file", str(path))
    return fd, st


def tighten(path: Path) -> None:
    """Make a file someone else put here (a refused message file) private: 0600, a folder 0700; a symlink is
    left alone (chmod would change what it points to)."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if stat.S_ISDIR(st.st_mode):
        os.chmod(path, PRIVATE_DIR)
    elif stat.S_ISREG(st.st_mode):
        os.chmod(path, PRIVATE_FILE)
