"""``ledger.snapshot``: the bridge's views of the run as folded from the ledger up to an offset, so a bridge started
again folds only what came after. A cache, never the truth: without it, or when it fails its check, the ledger is
folded from its first line, as it always could be.

A snapshot is used only when it proves itself: a keyed hash (HMAC-SHA256) over the offset, the views and every
byte of the ledger up to the offset. The key is made by the keeper that forks a run's bridges and lives only in its
memory and theirs (never in a file), so only a bridge of the same keeper — the same code — trusts what another
wrote. One the agents wrote (they can write where the bridge reads; a forged ledger line at least stays in the
ledger for all to see, a forged snapshot would not), one from older code, one whose ledger was cut back or
rewritten, a torn or truncated file: each fails the check, and the reason is said.

Layout: a magic line, the writer's keeper (8 bytes that name its key and reveal nothing of it), the offset (8 bytes,
big-endian), the hash (32 bytes), then msgpack of :class:`Covered` and the caller's views."""

from __future__ import annotations

import errno
import hashlib
import hmac
import os
from pathlib import Path
from typing import TypeVar

import msgspec

from bridge.rundir.files import open_regular, write_atomic
from bridge.rundir.ledger import Damaged

SNAPSHOT = "ledger.snapshot"
MAGIC = b"pairloop ledger snapshot 1\n"
_TAG, _END, _MAC = len(MAGIC), len(MAGIC) + 8, len(MAGIC) + 16
_HEAD = _MAC + 32
# A cache must never take the room the ledger needs: it is written only with this much more free space than itself.
FREE_MARGIN = 64 * 1024 * 1024

V = TypeVar("V")


class Covered(msgspec.Struct, array_like=True, frozen=True):
    """What of the ledger the views include: its lines up to the offset, the events among them, and the lines
    that were damaged (said again by each bridge that starts)."""

    lines: int
    events: int
    damaged: tuple[Damaged, ...] = ()


class Unusable(Exception):
    """There is no snapshot to trust; ``reason`` says why in a few words. ``news``: the reason is not one of the
    ordinary ones (none yet, one from an earlier keeper of the run) and is worth saying."""

    def __init__(self, reason: str, news: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.news = news


def _tag(key: bytes) -> bytes:
    return hashlib.sha256(b"pairloop snapshot keeper " + key).digest()[:8]


def snapshot_path(run_dir: Path) -> Path:
    return run_dir / SNAPSHOT


def _seal(key: bytes, end: bytes, body: bytes, prefix: bytes) -> bytes:
    mac = hmac.new(key, MAGIC + end, hashlib.sha256)
    mac.update(body)
    mac.update(prefix)
    return mac.digest()


def write_snapshot(run_dir: Path, key: bytes, prefix: bytes, covered: Covered, views: object) -> None:
    """Keep ``views``, the fold of the ledger's ``prefix``. Raises OSError (nothing left behind) when it cannot be
    written, or when the disk has too little room to spare for it."""
    path = snapshot_path(run_dir)
    body = msgspec.msgpack.encode((covered, views))
    end = len(prefix).to_bytes(8, "big")
    fs = os.statvfs(run_dir)
    if fs.f_bavail * fs.f_frsize < len(body) + FREE_MARGIN:
        raise OSError(errno.ENOSPC, "too little free space to spare for it", str(path))
    # Not fsync'd: the relay waits for this write, and a snapshot torn by a power cut fails its check.
    write_atomic(path, MAGIC + _tag(key) + end + _seal(key, end, body, prefix) + body, sync=False)


def read_snapshot(run_dir: Path, key: bytes, ledger: Path, views: type[V]) -> tuple[int, Covered, V]:
    """The offset the snapshot covers, what it covers, and its views; :class:`Unusable` when there is none to trust."""
    try:  # anyone could have put something there: a FIFO must not block the start, a huge file not fill memory
        fd, st = open_regular(snapshot_path(run_dir))
        with os.fdopen(fd, "rb") as f:
            most = 2 * ledger.stat().st_size + 1024 * 1024  # the fold of a ledger is smaller than the ledger
            if st.st_size > most:
                raise Unusable("larger than the ledger could make it", news=True)
            data = f.read(most + 1)
    except FileNotFoundError:
        raise Unusable("none yet") from None
    except OSError as exc:
        raise Unusable(f"cannot read it: {exc.strerror or exc}", news=True) from None
    if not data.startswith(MAGIC):
        raise Unusable("not a snapshot of this version", news=True)
    if len(data) < _HEAD:
        raise Unusable("cut short", news=True)
    if data[_TAG:_END] != _tag(key):
        raise Unusable("written by an earlier keeper of this run")
    end_bytes = data[_END:_MAC]
    end = int.from_bytes(end_bytes, "big")
    try:
        with ledger.open("rb") as f:
            prefix = f.read(end)
    except OSError as exc:
        raise Unusable(f"cannot read the ledger: {exc.strerror or exc}", news=True) from None
    if len(prefix) < end:
        raise Unusable("the ledger is shorter than what it covers (cut back or replaced)", news=True)
    body = data[_HEAD:]
    if not hmac.compare_digest(data[_MAC:_HEAD], _seal(key, end_bytes, body, prefix)):
        raise Unusable("it does not match the ledger (the ledger or the snapshot was changed)", news=True)
    try:
        covered, folded = msgspec.msgpack.decode(body, type=tuple[Covered, views])  # type: ignore[valid-type]
    except msgspec.DecodeError as exc:  # sealed with our key, so our own bytes: cannot happen, said if it does
        raise Unusable(f"unreadable: {exc}", news=True) from None
    return end, covered, folded
