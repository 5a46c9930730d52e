"""The bridge's desk: where, during a pass, things are recorded (the ledger, through Record) and said (the
pane, bridge.log, calls to the human), and where writes the disk refused are noted for the pass's stock-take."""

from __future__ import annotations

import contextlib
import time

from bridge.book import DELIVERED, DELIVERING, FAILED, QUEUED, SUPPRESSED, Book, Entry
from bridge.notify import Call, Notifier, call_of
from bridge.panes.tmux import Tmux, TmuxError
from bridge.record import Record
from bridge.report import Reporter, describe
from bridge.rundir.events import DELIVERY_EVENTS, AnyEvent
from bridge.trouble import Step, Trouble, after_pass, next_retry


class Desk:
    def __init__(self, report: Reporter, tmux: Tmux, session: str) -> None:
        self.report = report
        self.tmux = tmux
        self.session = session
        self._record: Record | None = None
        self.trouble = Trouble()  # writes the disk refuses (a full disk): see bridge.trouble
        self.failures: list[str] = []  # what could not be written during this pass
        self.wrote = False  # whether this pass made a record durable (a sign that space is back)
        self.notifier: Notifier | None = None  # desktop, terminal and the run's notify command

    def open(self, record: Record) -> None:
        self._record = record

    @property
    def record(self) -> Record:
        assert self._record is not None, "the bridge's start() opens the ledger"
        return self._record

    @property
    def book(self) -> Book:
        return self.record.book

    def add(self, event: AnyEvent, durable: bool = False) -> None:
        self.record.add(event, durable)
        if durable:
            self.wrote = True

    def add_together(self, events: list[AnyEvent]) -> None:
        """Record ``events`` durably in one write, all or none (LedgerWriteError when they cannot be)."""
        self.record.add_together(events)
        self.wrote = True

    def take_stock(self, more_failures: list[str]) -> Step:
        """The pass is over: did a write fail, and is that news (an episode begins or ends)?"""
        failures = [*self.failures, *more_failures]
        if self.record.backlog:
            failures.append(self.record.problem or "cannot write the ledger")
        step = after_pass(self.trouble, failures, time.monotonic(), self.wrote)
        self.trouble = step.trouble
        return step

    def begin_pass(self) -> None:
        self.failures, self.wrote = [], False

    def failed(self, problem: str) -> None:
        self.failures.append(problem)

    def next_retry(self) -> float:
        return next_retry(self.trouble, time.monotonic())

    def mark(self, roles: tuple[str, ...], entries: list[Entry], state: str, *, via: str = "", reason: str = "",
             quiet: bool = False) -> None:
        """Record how far some messages got to each of ``roles``, and say it (once, not for a paste in flight)."""
        if not entries:
            return
        for role in roles:
            self.add(DELIVERY_EVENTS[state](to=role, ids=tuple(e.message.id for e in entries), via=via,
                                            reason=reason))
            if quiet or state == DELIVERING:
                continue
            words = {QUEUED: f"queued: {reason}", DELIVERED: f"delivered ({via})", FAILED: f"FAILED: {reason}",
                     SUPPRESSED: f"suppressed: {reason}"}
            batch = f" (batch of {len(entries)})" if len(entries) > 1 and state == DELIVERED else ""
            for entry in entries if len(entries) <= 5 else [entries[0], entries[-1]]:
                self.report.line(f"{describe(entry, role)} {words[state]}{batch}")

    def alert(self, alert: str | Call) -> None:
        """Get the human's attention: a line here, a bell (tmux passes it to the terminal), a tmux message, and
        the notifications (bridge.notify)."""
        call = call_of(alert)
        self.report.line(call.text)
        self.report.bell()
        with contextlib.suppress(TmuxError):
            self.tmux.display(f"={self.session}:", call.text)
        if self.notifier is not None:
            self.notifier.send(call, self.record.referee.protocol.round if self._record else 0)
