"""Take message files out of the outbox: record each in the ledger first, then claim it; set bad ones aside."""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import stat
import time
from dataclasses import dataclass, field
from pathlib import Path

from bridge.rundir.files import private_dir, tighten
from bridge.rundir.message import SENDERS, MalformedMessage, Message, is_candidate, read_message_file


@dataclass(frozen=True)
class Arrival:
    path: Path
    message: Message
    digest: str


@dataclass(frozen=True)
class Refusal:
    path: Path
    reason: str


def digest(message: Message) -> str:
    data = json.dumps([message.sender, list(message.to), message.kind, message.body], ensure_ascii=False)
    return hashlib.sha256(data.encode("utf-8")).hexdigest()[:16]


REJECTED = "rejected"  # refused files are set aside here, in the run directory, never deleted
# A file that does not parse yet but was written this recently may still be being written by a sender that
# does not rename into place (`echo ... > file`): look again shortly before refusing it.
SETTLE_SECONDS = 1.0


# A writer renames its hidden temp file into place once it is complete. One still there this long after its last
# write was left by a writer that crashed or was killed, and nothing will ever finish it.
ABANDONED_SECONDS = 600.0


@dataclass(frozen=True)
class Litter:
    """A hidden file in the outbox, untouched for ``age`` seconds: a crashed writer's temp file, to remove."""

    path: Path
    age: float


@dataclass
class Scan:
    arrivals: list[Arrival]
    refusals: list[Refusal]
    unsettled: int = 0  # files to look at again shortly
    litter: list[Litter] = field(default_factory=list)


def scan(outbox: Path, now: float | None = None) -> Scan:
    """Everything waiting in the outbox, oldest first, split into messages and files to refuse."""
    now = time.time() if now is None else now
    result = Scan([], [])
    arrivals, refusals = result.arrivals, result.refusals
    try:
        folders = sorted(os.scandir(outbox), key=lambda e: e.name)
    except FileNotFoundError:
        return result
    for folder in folders:
        if not is_candidate(folder.name):
            result.litter += _abandoned(folder, now)
            continue
        path = Path(folder.path)
        if folder.is_symlink() or not folder.is_dir():
            refusals.append(Refusal(path, "not a sender folder (worker/, reviewer/ or human/)"))
            continue
        try:
            entries = sorted(os.scandir(path), key=lambda e: e.name)
        except OSError:
            continue
        for item in entries:
            if not is_candidate(item.name):
                result.litter += _abandoned(item, now)  # a writer's temp file: renamed into place when complete
                continue
            file_path = Path(item.path)
            if folder.name not in SENDERS:
                refusals.append(Refusal(file_path, f"unknown sender folder {folder.name!r}"))
                continue
            try:
                message = read_message_file(file_path, outbox)
            except MalformedMessage as exc:
                if _fresh(item, now) and not item.is_symlink():
                    result.unsettled += 1
                else:
                    refusals.append(Refusal(file_path, exc.reason))
                continue
            except FileNotFoundError:
                continue  # claimed or removed under us
            except OSError as exc:
                refusals.append(Refusal(file_path, f"unreadable: {exc.strerror}"))
                continue
            arrivals.append(Arrival(file_path, message, digest(message)))
    arrivals.sort(key=lambda a: (a.message.created, a.message.id))
    return result


def _abandoned(item: os.DirEntry[str], now: float) -> list[Litter]:
    """The hidden file (or link: never a folder) as litter, when nothing has written it for ABANDONED_SECONDS."""
    try:
        st = item.stat(follow_symlinks=False)
    except OSError:
        return []
    if stat.S_ISDIR(st.st_mode) or now - st.st_mtime < ABANDONED_SECONDS:
        return []
    return [Litter(Path(item.path), now - st.st_mtime)]


def _fresh(item: os.DirEntry[str], now: float) -> bool:
    try:
        return now - item.stat(follow_symlinks=False).st_mtime < SETTLE_SECONDS
    except OSError:
        return False


def move_aside(path: Path, run_dir: Path, folder: str) -> Path:
    """Move a file (or link, or folder) under ``run_dir/folder/<sender>/``, never overwriting anything. What
    lands in the run directory is private there, whatever mode its writer gave it."""
    dest_dir = private_dir(run_dir / folder / path.parent.name)
    dest = dest_dir / path.name
    if dest.exists() or dest.is_symlink():
        dest = dest_dir / f"{path.name}.{secrets.token_hex(3)}"
    os.rename(path, dest)
    tighten(dest)
    return dest
