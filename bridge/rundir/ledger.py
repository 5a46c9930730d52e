"""``ledger.jsonl``: append-only and fsync'd, every message and every state change; the source of truth.

A record is complete and durable, or the append failed and the caller knows (:class:`LedgerWriteError`): a write
cut short (a full disk) is cut off again before the error is raised, so the next record never lands glued to a
fragment. A fragment some other crash left behind is cut off before the next append (and recorded). Reading
validates each line; a damaged one is reported with its line number and the reason, never raised."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bridge.rundir.events import AnyEvent, InvalidEvent, LedgerRepaired, decode, decode_lines, encode, stamped

LEDGER = "ledger.jsonl"
_TAIL_CHUNK = 64 * 1024


class LedgerWriteError(Exception):
    """The record could not be made durable (a full disk, a lost device); nothing of it is left in the file."""

    def __init__(self, reason: str, errno_: int = 0) -> None:
        super().__init__(reason)
        self.reason = reason
        self.errno = errno_

    @property
    def disk_full(self) -> bool:
        return self.errno in (errno.ENOSPC, errno.EDQUOT)


def ledger_path(run_dir: Path) -> Path:
    return run_dir / LEDGER


@dataclass(frozen=True)
class Damaged:
    """A line replay skipped: which one (1-based), where it starts, and why."""

    line: int
    offset: int
    reason: str

    def describe(self) -> str:
        return f"ledger line {self.line} skipped: {self.reason}"


@dataclass
class Replay:
    """What one read of the ledger found: the valid events in order, the damaged lines, and where to go on."""

    events: list[AnyEvent] = field(default_factory=list)
    damaged: list[Damaged] = field(default_factory=list)
    end: int = 0  # offset just after the last complete line
    lines: int = 0  # complete lines read, damaged ones included


def read_ledger(path: Path, start: int = 0, first_line: int = 1) -> Replay:
    """Every complete line from ``start``. An unfinished last line (being written, or torn by a crash) is left
    for the next read; ``first_line`` numbers the lines when going on from an earlier read."""
    result = Replay(end=start)
    try:
        with path.open("rb") as f:
            f.seek(start)
            data = f.read()
    except FileNotFoundError:
        return result
    complete = data[: data.rfind(b"\n") + 1]
    if b"\r" not in complete:
        try:  # the whole intact ledger in one call; any damage sends us line by line to find it
            result.events = decode_lines(complete)
            result.lines = complete.count(b"\n")
            result.end = start + len(complete)
            return result
        except InvalidEvent:
            result.events = []
    offset, number = start, first_line
    # Split on LF only: a stray CR in a damaged line must not end the read there (bytes.splitlines would).
    for raw in data.split(b"\n")[:-1]:  # the last piece is an unfinished line, or nothing
        line_start, offset = offset, offset + len(raw) + 1
        result.lines += 1
        if raw.strip():
            try:
                result.events.append(decode(raw))
            except InvalidEvent as exc:
                result.damaged.append(Damaged(number, line_start, exc.reason))
        number += 1
    result.end = offset
    return result


def events_of(path: Path) -> list[AnyEvent]:
    return read_ledger(path).events


def follow(path: Path) -> Iterator[Replay]:
    """Successive reads, each going on where the last one ended (for ``pairloop log -f``)."""
    start, line = 0, 1
    while True:
        part = read_ledger(path, start, line)
        start, line = part.end, line + part.lines
        yield part


class Ledger:
    """The writer. Appends take a short exclusive lock, so a second writer (``pairloop stop``) never interleaves
    with the bridge, and each record is one complete line, fsync'd before the caller acts on it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600)
        # Where this writer's last record ends, once the owner says how far it has read (:meth:`read_up_to`);
        # ``foreign``: bytes it did not write came after that (another writer, a torn write it cut off).
        self.end: int | None = None
        self.foreign = False

    def read_up_to(self, end: int) -> None:
        """The owner has taken in every record before ``end``: what this writer appends follows on from there."""
        self.end = end

    def prefix(self) -> bytes | None:
        """Every byte up to :attr:`end`, when nothing but this writer's own records came after what its owner
        read (None otherwise: the owner's views are not the fold of the file)."""
        with self._locked():
            if self.end is None or self.foreign or os.fstat(self._fd).st_size != self.end:
                self.foreign = self.foreign or self.end is not None
                return None
            return os.pread(self._fd, self.end, 0)

    def append(self, event: AnyEvent) -> AnyEvent:
        return self.append_all([event])[0]

    def append_all(self, events: Sequence[AnyEvent]) -> list[AnyEvent]:
        """Several records in one write: all of them durable, or none (a message and what has to be recorded
        before it never come apart, even on a disk with room for only one of them)."""
        ts = round(time.time(), 6)
        records = [stamped(event, ts) for event in events]
        data = b"".join(encode(record) + b"\n" for record in records)
        with self._locked():
            size = os.fstat(self._fd).st_size
            if size != self.end:
                self.foreign = self.foreign or self.end is not None
            repair = self._cut_fragment(size)
            if repair is not None:
                size = repair.offset
                data = encode(stamped(repair, ts)) + b"\n" + data
            self._write_whole(data, size)
            if self.end is not None:
                self.end = size + len(data)
        return records

    def repair(self) -> LedgerRepaired | None:
        """Cut off a fragment a crash left at the end (called at bridge start); the record of it is appended."""
        with self._locked():
            repair = self._cut_fragment(os.fstat(self._fd).st_size)
            if repair is not None:
                self._write_whole(encode(stamped(repair, round(time.time(), 6))) + b"\n", repair.offset)
        return repair

    def _cut_fragment(self, size: int) -> LedgerRepaired | None:
        end = _last_line_end(self._fd, size)
        if end == size:
            return None
        try:
            os.ftruncate(self._fd, end)
        except OSError as exc:
            raise LedgerWriteError(f"cannot cut off a torn ledger line: {exc.strerror}", exc.errno or 0) from None
        return LedgerRepaired(offset=end, cut_bytes=size - end, reason="an unfinished line (a write cut short)")

    def _write_whole(self, data: bytes, size: int) -> None:
        view = memoryview(data)
        try:
            while view:
                written = os.write(self._fd, view)
                if written <= 0:
                    raise OSError(errno.EIO, "write made no progress")
                view = view[written:]
            os.fsync(self._fd)
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, size)  # leave no fragment behind for the next record to be glued to
            reason = f"cannot write the ledger: {exc.strerror or exc}"
            raise LedgerWriteError(reason, exc.errno or 0) from None

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(self._fd, fcntl.LOCK_UN)

    def close(self) -> None:
        os.close(self._fd)

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _last_line_end(fd: int, size: int) -> int:
    """The offset just after the last newline (0 when there is none): everything after it is a fragment."""
    pos = size
    while pos > 0:
        start = max(0, pos - _TAIL_CHUNK)
        chunk = os.pread(fd, pos - start, start)
        cut = chunk.rfind(b"\n")
        if cut >= 0:
            return start + cut + 1
        pos = start
    return 0


def append_once(path: Path, event: AnyEvent) -> AnyEvent:
    """Append one event from a process other than the bridge (for example ``pairloop stop``)."""
    with Ledger(path) as ledger:
        return ledger.append(event)
