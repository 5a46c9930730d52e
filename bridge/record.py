"""Where every event of a running bridge goes: the ledger first (fsync'd), then each view of the run.

When the ledger cannot be written (a full disk), events that only describe what already happened wait in memory,
in order, and go out with the next append that succeeds; events that something is about to depend on (a message
about to be claimed, a paste about to be made) must be durable first, or the caller does not act."""

from __future__ import annotations

from dataclasses import dataclass, field

from bridge.book import Book
from bridge.protocol.referee import Referee
from bridge.rundir.events import AnyEvent
from bridge.rundir.ledger import Ledger, LedgerWriteError


@dataclass
class Record:
    ledger: Ledger
    book: Book
    referee: Referee
    backlog: list[AnyEvent] = field(default_factory=list)
    problem: str = ""  # why the ledger cannot be written right now ("" when it can)
    learned: int = 0  # events learnt so far (bridge.replay counts what a snapshot would cover)

    def add(self, event: AnyEvent, durable: bool = False) -> AnyEvent:
        """Record ``event``. With ``durable``, raise LedgerWriteError unless it (and all before it) is on disk;
        without, keep it for later if the disk is full: the run's views learn it at once either way."""
        if not self.flush():
            if durable:
                raise LedgerWriteError(self.problem)
            self.backlog.append(event)
            self.learn(event)
            return event
        try:
            written = self.ledger.append(event)
        except LedgerWriteError as exc:
            self.problem = exc.reason
            if durable:
                raise
            self.backlog.append(event)
            written = event
        self.learn(written)
        return written

    def add_together(self, events: list[AnyEvent]) -> list[AnyEvent]:
        """Record ``events`` durably in one write, all or none; LedgerWriteError (and nobody learns any of them)
        when they cannot be."""
        if not self.flush():
            raise LedgerWriteError(self.problem)
        try:
            written = self.ledger.append_all(events)
        except LedgerWriteError as exc:
            self.problem = exc.reason
            raise
        for event in written:
            self.learn(event)
        return written

    def flush(self) -> bool:
        """Write what waits in memory; True when nothing is left waiting."""
        while self.backlog:
            try:
                self.ledger.append(self.backlog[0])
            except LedgerWriteError as exc:
                self.problem = exc.reason
                return False
            self.backlog.pop(0)
        self.problem = ""
        return True

    def learn(self, event: AnyEvent) -> None:
        """Let every view of the run know an event that is already in the ledger (replay at start)."""
        self.book.apply(event)
        self.referee.apply(event)
        self.learned += 1
