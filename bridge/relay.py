"""The bridge process's loop: it wires the pieces and carries out what they decide, making no decisions itself.

Each pass: control requests → the outbox (mailbox) → the agents' hook events (receipts, human turns) → for each
target, the router's decision (deliver, hold, submit our own paste) → messages for the human → the status line."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path
from types import FrameType
from typing import TextIO

from bridge.book import SUPPRESSED, Book
from bridge.courier import Courier
from bridge.desk import Desk
from bridge.effects import Effects, Post
from bridge.guard import Guard, what_runs
from bridge.inbox.intake import Intake
from bridge.meter import Meter
from bridge.notify import Call, Notifier
from bridge.panes.lookout import Lookout
from bridge.panes.problem import publish_problem
from bridge.panes.statusline import status_text
from bridge.panes.tmux import Tmux, TmuxError, tmux_literal
from bridge.protocol.referee import Referee
from bridge.record import Record
from bridge.recording.pipes import record_panes
from bridge.replay import Keeping, collector_paused, fold, recall
from bridge.report import Reporter, describe
from bridge.router import HOUSEKEEPING_SECONDS, serving_order
from bridge.rundir import lock
from bridge.rundir.events import AnyEvent, BridgeState, Received
from bridge.rundir.ledger import Ledger, LedgerWriteError, ledger_path
from bridge.rundir.manifest import mailbox_of, read_manifest, targets
from bridge.verify import Verifier
from bridge.wakeup import wake_on_signals

BridgeBusy = lock.BridgeBusy


class Bridge:
    def __init__(self, run_dir: Path, tmux: Tmux, out: TextIO | None = None, lock_fd: int | None = None,
                 snapshot_key: bytes | None = None) -> None:
        self.run_dir = run_dir
        self.snapshot_key = snapshot_key  # from the keeper that forked us: its snapshots are ours (bridge.replay)
        self.keeping: Keeping | None = None
        self.tmux = tmux
        self.manifest = read_manifest(run_dir)
        self.targets = targets(self.manifest)
        self.report = Reporter(run_dir, out)
        self.referee = Referee(self.manifest, run_dir)
        self.lookout = Lookout(tmux, self.targets, {r: s.answers for r, s in self.manifest.roles.items()},
                               time.monotonic())
        self.mailbox = mailbox_of(self.manifest, run_dir)
        self.intake = Intake(run_dir, self.mailbox, tuple(self.targets))
        self.desk = Desk(self.report, tmux, self.manifest.tmux.session)
        self.courier = Courier(self.desk, self.manifest, run_dir, self.mailbox, self.targets, self.lookout,
                               self.intake, self.referee)
        # The verification gate, and the watch on the working tree's copy of what it runs (both from run.json).
        self.verifier = Verifier(self.manifest, run_dir)
        self.guard = Guard(Path(self.manifest.work_tree), self.manifest.config_at_start, what_runs(self.manifest)) \
            if self.manifest.config_at_start else None
        # What the agents spend and the limits they hit (their own records, their screens); calls that notify.
        self.meter = Meter(tmux, self.targets, {role: spec.records for role, spec in self.manifest.roles.items()})
        self.meter.roots = {role: spec.records_roots for role, spec in self.manifest.roles.items()}  # bridge.usage
        self.desk.notifier = Notifier(self.manifest.id, self.manifest.notify, out if out is not None else sys.stdout)
        self.wake = threading.Event()
        self.stopping = False
        self._lock_fd = lock_fd  # taken already by `python -m bridge`, first thing
        self.status_text = ""
        self._published = ""  # the problem the tmux session was last told
        self._session_seen: float | None = None  # when tmux last said the session exists (see session_alive)

    @property
    def record(self) -> Record:
        return self.desk.record

    @property
    def book(self) -> Book:
        return self.desk.book

    # ---- lifecycle -------------------------------------------------------------------------------------

    def start(self) -> None:
        if self._lock_fd is None:
            self._lock_fd = lock.take(self.run_dir)
        for problem in self.intake.prepare():
            self.report.line(problem)
        path = ledger_path(self.run_dir)
        ledger = Ledger(path)
        repaired = ledger.repair()
        with collector_paused():  # the history's objects all live on: collecting while they are made is waste
            recalled = recall(self.run_dir, path, self.snapshot_key)
            self.referee.restore(recalled.protocol, recalled.protocol_started)
            self.desk.open(Record(ledger, recalled.book, self.referee))
            fold(self.record, recalled.replay.events)
        ledger.read_up_to(recalled.replay.end)
        self.intake.seen.update(self.book.human_turns)  # heard already: never recorded twice
        self.keeping = Keeping(self.run_dir, self.snapshot_key, recalled.covered, recalled.damaged)
        if repaired is not None:
            self.report.line(f"ledger: cut off {repaired.cut_bytes} bytes of an unfinished line at offset "
                             f"{repaired.offset} (a write cut short)")
        for damaged in recalled.damaged:
            self.report.line(damaged.describe())
        if recalled.news:
            self.report.line(f"ledger snapshot not used: {recalled.why_not}; the whole ledger was read instead")
        self.add(BridgeState(state="started", pid=os.getpid()))
        self.carry_out(self.referee.begin())
        if self.manifest.bridge_pane:  # terminal notifications pass through tmux from this pane alone (bridge.notify)
            with contextlib.suppress(TmuxError):
                self.tmux.set_pane_option(self.manifest.bridge_pane, "allow-passthrough", "on")
        self.carry_out(self.verifier.clean_stale(self.referee.protocol))
        queued = sum(self.book.owed(r) for r in self.targets)
        snapshot = f" (from its snapshot and {len(recalled.replay.events)} events after it)" if recalled.covered \
            else ""
        self.report.line(f"bridge started · {len(self.book.order)} messages in the ledger{snapshot} · {queued} to "
                         "deliver")

    def run(self) -> int:
        for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):  # first: a stop asked during start is a stop
            signal.signal(sig, self._on_signal)
        unwake = wake_on_signals(self.wake)
        try:
            self._run()
        finally:
            unwake()
        return 0

    def _run(self) -> None:
        from bridge.inbox.watcher import start_watching

        self.start()
        self.keep_recording()
        observer, kind = start_watching(self.intake.watched(), self.wake)
        if kind == "polling":
            self.report.line("watching by polling (inotify unavailable)")
        try:
            self.hear_agents()  # receipts first: they settle what was in flight when we last stopped
            self.carry_out(self.courier.recover_inflight())
            self.tick()
            while not self.stopping:
                woke = self.wake.wait(self.next_timeout())
                self.wake.clear()
                if not woke and not self.session_alive():
                    self.report.line("tmux session is gone: stopping")
                    break
                if not self.stopping:
                    self.tick()
        finally:
            observer.stop()
            self.verifier.close()
            with contextlib.suppress(LedgerWriteError):
                self.record.add(BridgeState(state="stopped", pid=os.getpid()), durable=True)
            self.report.line("bridge stopped")
            if self._published:  # a problem said by a bridge that no longer runs would mislead `status`
                publish_problem(self.tmux, self.manifest.tmux.session, "")
            self.record.ledger.close()
            self.report.close()

    def keep_recording(self) -> None:
        """Every live agent pane is recorded: after a restart, a resume, a relaunched agent (bridge.recording)."""
        opened = record_panes(self.tmux, self.run_dir, self.manifest)
        if opened:
            self.report.line(f"recording the {' and '.join(opened)} pane{'s' if len(opened) > 1 else ''}")

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self.stopping = True  # the loop is woken through the signal's wake-up pipe (bridge.wakeup), not from here

    def next_timeout(self) -> float:
        now = time.monotonic()
        waits = [s.next_check - now for role, s in self.courier.schedules.items()
                 if self.book.owed(role) or self.lookout.warming_up(role, now)]
        if self.intake.rescan_at:
            waits.append(self.intake.rescan_at - now)
        if self.desk.trouble.problem:
            waits.append(self.desk.trouble.retry_at - now)
        verifying = self.verifier.next_wake()
        if verifying is not None:
            waits.append(verifying)
        if self.guard is not None:
            waits.append(self.guard.next_wake(now))
        metering = self.meter.due(now)
        if metering is not None:
            waits.append(metering - now)
        return max(0.0, min(waits)) if waits else HOUSEKEEPING_SECONDS

    def session_alive(self) -> bool:
        """Asked when the loop times out, at most once per housekeeping period: each ask is a tmux process, and
        the loop also times out for its periodic looks (the closing session's hangup is what usually stops us)."""
        now = time.monotonic()
        if self._session_seen is not None and now - self._session_seen < HOUSEKEEPING_SECONDS:
            return True
        self._session_seen = now
        return self.tmux.has_session(self.manifest.tmux.session)

    # ---- one pass --------------------------------------------------------------------------------------

    def tick(self) -> None:
        self.retry_writes()
        self.carry_out(self.intake.control(self.referee, self.book))
        self.ingest()
        self.hear_agents()
        self.watch_spending()
        self.check_gates()
        for role in serving_order({role: self.book.oldest_owed(role) for role in self.targets}):
            self.carry_out(self.courier.serve(role))
        self.courier.deliver_to_human()
        self.take_stock()
        self.update_status_line()
        self.keep_snapshot()

    def keep_snapshot(self) -> None:
        """Now and then, the views as they are now go to the ledger's snapshot, for the next start (bridge.replay)."""
        owed = sum(self.book.owed(r) for r in self.targets)
        if self.keeping is not None and self.keeping.due(self.record, owed, time.monotonic()):
            problem = self.keeping.keep(self.record, self.referee.protocol, self.referee.protocol_started)
            if problem:
                self.report.line(problem)

    def watch_spending(self) -> None:
        """Tokens and usage limits from the agents' records and screens; the token budget; notifications that
        went wrong."""
        self.carry_out(self.meter.read(self.intake.records, self.referee))
        self.carry_out(self.meter.judge(self.referee))
        if self.desk.notifier is not None:
            for news in self.desk.notifier.news():
                self.report.line(f"notification: {news}")

    def check_gates(self) -> None:
        """The verification of a checkpoint goes on (or begins); the working tree's configuration is looked at."""
        self.carry_out(self.verifier.poll(self.referee.protocol))
        if self.guard is not None:
            self.carry_out(self.guard.look(self.referee.protocol.gates.config_changes))

    # ---- writes the disk refuses ---------------------------------------------------------------------------

    def retry_writes(self) -> None:
        """What waits in memory is written first (events in order; the log's unwritten lines)."""
        self.desk.begin_pass()
        if self.record.backlog:
            self.record.flush()
        self.report.retry()

    def take_stock(self) -> None:
        """The pass is over: did a write fail, and is that news (an episode begins or ends)?"""
        step = self.desk.take_stock([p for p in (self.report.log_problem, *self.intake.take_troubles()) if p])
        if step.alert:
            self.alert(step.alert)
        if step.say:
            self.report.line(step.say)
        if not self.desk.trouble.problem:
            self.courier.disk_back(said=bool(step.say))
        if self.desk.trouble.problem != self._published and publish_problem(
                self.tmux, self.manifest.tmux.session, self.desk.trouble.problem):
            self._published = self.desk.trouble.problem

    def add(self, event: AnyEvent, durable: bool = False) -> None:
        self.desk.add(event, durable)

    def carry_out(self, fx: Effects, durable: bool = False) -> None:
        for event in fx.events:
            self.add(event, durable)
        self.look_soon(tuple(fx.wake))
        if fx.start_summary:  # first: whoever saw the agreement in the ledger is waiting for it
            said = self.referee.start_summary()
            if said:
                self.report.line(said)
        for post in fx.posts:
            self.post(post)
        for text in fx.says:
            self.report.line(text)
        for call in fx.alerts:
            self.alert(call)

    def post(self, post: Post) -> None:
        """A message from the bridge itself, delivered like any other."""
        if post.id in self.book.entries:
            return
        self.add(Received(seq=self.book.next_seq, id=post.id, sender="pairloop", to=post.to,
                          kind=post.kind, body=post.body, created=time.time(), topic=post.topic))
        self.report.line(f"{describe(self.book.entries[post.id])} ({post.kind})")
        self.look_soon(post.to)

    def look_soon(self, roles: tuple[str, ...]) -> None:
        self.courier.look_soon(roles)

    def ingest(self) -> None:
        try:
            for arrival in self.intake.arrivals(self.book, self.referee):
                # Recorded with what has to come before it (a round's checkpoint), in one fsync'd write: only now
                # may the file be claimed. A disk with room for only part of it gets none of it.
                self.desk.add_together([*arrival.before.events, arrival.received])
                self.carry_out(replace(arrival.before, events=[]))
                self.intake.claim(arrival.path)
                entry = self.book.entries[arrival.received.id]
                self.report.line(f"{describe(entry)} received")
                if arrival.bounce:
                    self.desk.mark(entry.message.to, [entry], SUPPRESSED, reason="the same text went back and forth "
                              "(bounce)")
                else:
                    self.carry_out(self.referee.after(entry.message))
                self.look_soon(entry.message.to)
        except LedgerWriteError as exc:  # not claimed: the file waits in the outbox for the next try
            self.desk.failed(exc.reason)
        for refusal in self.intake.refusals():
            self.add(refusal.event)
            self.report.line(refusal.said)

    def hear_agents(self) -> None:
        """Hook events: receipts settle deliveries; a human typing in a pane, a permission prompt, come back
        from the courier to be carried out here."""
        self.carry_out(self.courier.listen())

    # ---- telling the human -------------------------------------------------------------------------------

    def update_status_line(self) -> None:
        queued = sum(self.book.owed(r) for r in self.targets)
        views = {role: self.lookout.view(role) for role in self.targets}
        text = status_text(self.targets, views, self.referee.protocol, queued, self.book.run_state == "agreed",
                           self.desk.trouble.problem)
        if text != self.status_text:
            self.status_text = text
            session = f"={self.manifest.tmux.session}:"  # ':' makes '=' (exact name) work for options
            with contextlib.suppress(TmuxError):
                self.tmux.run("set-option", "-t", session, "status-right-length", "160", ";",
                              "set-option", "-t", session, "status-right", tmux_literal(text))

    def alert(self, text: str | Call) -> None:
        self.desk.alert(text)


__all__ = ["Bridge", "BridgeBusy"]
