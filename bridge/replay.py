"""The ledger folded into the run's views when the bridge starts, in as little time as the history allows.

A bridge started again by its keeper begins from the views the bridge before it kept in ``ledger.snapshot``
(bridge.rundir.snapshot) and folds only the ledger's lines after them; without one it trusts, from the first line.
Either way the views are the fold of the whole ledger: the snapshot is written only while they are exactly that
(every event learnt is in the ledger, and nothing but this bridge wrote to it since it was read).

A replay makes objects for every event (the decoded event, each message's entry in the book) and all of them live
on: a garbage collector left running would walk the growing heap again and again while they are made, for nothing.
So it is paused while the ledger is read and folded, and what the replay made is then moved out of its sight
(``gc.freeze``): the live relay's collections stay as short with 10,000 messages in the book as with 10."""

from __future__ import annotations

import gc
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import msgspec

from bridge.book import Book, Shelf
from bridge.protocol.state import Protocol
from bridge.record import Record
from bridge.rundir.events import AnyEvent
from bridge.rundir.ledger import Damaged, Replay, read_ledger
from bridge.rundir.snapshot import Covered, Unusable, read_snapshot, write_snapshot

# A snapshot is due once this many events, or an eighth of those it would cover, came after the last one: the
# cost of writing stays a small share of the run's, and a restart folds a few thousand events at most.
SNAPSHOT_EVERY = 1000
# While messages are owed the snapshot waits for a pass with none (a write takes tens of milliseconds), this long.
PATIENCE_S = 5.0
RETRY_S = 60.0  # after a snapshot could not be written


class Views(msgspec.Struct, array_like=True):
    """What a snapshot keeps: the book and the protocol, as the fold of the ledger up to its offset made them."""

    book: Shelf
    protocol: Protocol
    protocol_started: bool


@contextmanager
def collector_paused() -> Iterator[None]:
    """No garbage collection inside; afterwards everything alive is frozen (kept, never scanned again)."""
    was_on = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if was_on:
            gc.enable()


def fold(record: Record, events: Sequence[AnyEvent]) -> None:
    """Every event the ledger holds, learnt by the run's views (``record``), in order."""
    learn = record.learn
    for event in events:
        learn(event)


@dataclass
class Recalled:
    """Where a start begins: the views (restored from the snapshot, or new), and the ledger read on from there."""

    book: Book
    protocol: Protocol
    protocol_started: bool
    replay: Replay  # the ledger's lines after the snapshot (all of them without one)
    damaged: list[Damaged]  # every damaged line of the ledger, those the snapshot covers first
    covered: int  # events the snapshot covers (0 without one)
    why_not: str = ""  # why no snapshot was used ("" when one was)
    news: bool = False  # ... and that reason is worth saying (not "none yet", nor an earlier keeper's)


def recall(run_dir: Path, ledger: Path, key: bytes | None) -> Recalled:
    """The views to begin from and what of the ledger is left to fold. Nothing of a snapshot is trusted without
    ``key`` (a bridge not started by a keeper), or when it fails its check."""
    try:
        if key is None:
            raise Unusable("not started by a keeper")
        end, covered, views = read_snapshot(run_dir, key, ledger, Views)
        book = Book.restored(views.book)
    except Unusable as exc:
        return _whole(ledger, exc.reason, exc.news)
    except Exception as exc:  # a snapshot of ours that cannot be restored must not stop the bridge
        return _whole(ledger, f"cannot be restored ({type(exc).__name__}: {exc})", True)
    replay = read_ledger(ledger, end, covered.lines + 1)
    return Recalled(book, views.protocol, views.protocol_started, replay, [*covered.damaged, *replay.damaged],
                    covered.events)


def _whole(ledger: Path, why_not: str, news: bool) -> Recalled:
    replay = read_ledger(ledger)
    return Recalled(Book(), Protocol(), False, replay, list(replay.damaged), 0, why_not, news)


@dataclass
class Keeping:
    """When the next snapshot is due, and writing it. ``covered``: the events the snapshot the views began from
    holds (0 without one); with what the record has learnt since, the events the views hold now."""

    run_dir: Path
    key: bytes | None
    covered: int
    damaged: list[Damaged]
    saved_events: int = field(init=False)  # events the last snapshot covers
    due_since: float | None = None
    retry_at: float = 0.0  # after a write failed (a full disk): not before then
    written: int = 0  # snapshots this bridge wrote
    _said: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.saved_events = self.covered

    def due(self, record: Record, owed: int, now: float) -> bool:
        """Enough events came since the last snapshot, and either nothing is owed or it has waited long enough."""
        if self.key is None or record.backlog or record.ledger.foreign or now < self.retry_at:
            return False
        if self.events_now(record) - self.saved_events < max(SNAPSHOT_EVERY, self.saved_events // 8):
            self.due_since = None
            return False
        if self.due_since is None:
            self.due_since = now
        return owed == 0 or now - self.due_since >= PATIENCE_S

    def events_now(self, record: Record) -> int:
        return self.covered + record.learned

    def keep(self, record: Record, protocol: Protocol, protocol_started: bool) -> str:
        """Write the snapshot of the views as they are now; a failure (a full disk) is news once per reason."""
        assert self.key is not None
        prefix = record.ledger.prefix()
        if prefix is None:  # another writer came in since it was read: the views may not be its fold
            return ""
        events = self.events_now(record)
        covered = Covered(lines=prefix.count(b"\n"), events=events, damaged=tuple(self.damaged))
        try:
            write_snapshot(self.run_dir, self.key, prefix, covered,
                           Views(record.book.shelved(), protocol, protocol_started))
        except Exception as exc:  # a cache that cannot be written (a full disk...) stops nothing
            self.retry_at = time.monotonic() + RETRY_S
            why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc) or type(exc).__name__
            problem = f"ledger snapshot not written: {why} (the ledger is not affected)"
            if problem in self._said:
                return ""
            self._said.add(problem)
            return problem
        self.saved_events, self.due_since = events, None
        self.written += 1
        return ""
