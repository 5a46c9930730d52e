"""The bridge process's loop: it wires the pieces and carries out what they decide, making no decisions itself.

Each pass: control requests → the outbox (mailbox) → the agents' hook events (receipts, human turns) → for each
target, the router's decision (deliver, hold, submit our own paste) → messages for the human → the status line."""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import replace
from pathlib import Path
from types import FrameType
from typing import TextIO

from bridge.book import DELIVERED, DELIVERING, FAILED, QUEUED, SUPPRESSED, Book, Entry
from bridge.effects import Effects, Post
from bridge.inbox.intake import Intake
from bridge.panes.delivery import Outcome, deliver, submit_again
from bridge.panes.envelope import ATTACHMENTS, attachment_path, needs_attachment, render
from bridge.panes.lookout import Lookout
from bridge.panes.problem import publish_problem
from bridge.panes.screen import Reading
from bridge.panes.statusline import status_text
from bridge.panes.tmux import Tmux, TmuxError, passes_modes
from bridge.protocol.referee import Referee
from bridge.record import Record
from bridge.report import Reporter, describe
from bridge.router import (
    HOUSEKEEPING_SECONDS,
    MAX_BACKOFF,
    Deliver,
    Hold,
    Look,
    Owed,
    Paste,
    Schedule,
    Situation,
    SubmitOurs,
    Wait,
    WarmUp,
    inflight_outcome,
    route,
)
from bridge.rundir import lock
from bridge.rundir.events import DELIVERY_EVENTS, AnyEvent, BridgeState, Delivering, Received
from bridge.rundir.files import private_dir, write_atomic, write_private
from bridge.rundir.ledger import Ledger, LedgerWriteError, ledger_path, read_ledger
from bridge.rundir.manifest import mailbox_of, read_manifest, targets
from bridge.trouble import Trouble, after_pass, next_retry

BridgeBusy = lock.BridgeBusy


class Bridge:
    def __init__(self, run_dir: Path, tmux: Tmux, out: TextIO | None = None) -> None:
        self.run_dir = run_dir
        self.tmux = tmux
        self.manifest = read_manifest(run_dir)
        self.targets = targets(self.manifest)
        self.report = Reporter(run_dir, out)
        self.referee = Referee(self.manifest, run_dir)
        self.lookout = Lookout(tmux, self.targets, {r: s.answers for r, s in self.manifest.roles.items()},
                               time.monotonic())
        self.mailbox = mailbox_of(self.manifest, run_dir)
        self.intake = Intake(run_dir, self.mailbox, tuple(self.targets))
        self.schedules = {role: Schedule() for role in self.targets}
        self.wake = threading.Event()
        self.stopping = False
        self._record: Record | None = None
        self._lock_fd: int | None = None
        self._pastes = 0
        self.status_text = ""
        self.trouble = Trouble()  # writes the disk refuses (a full disk): see bridge.trouble
        self._failures: list[str] = []  # what could not be written during this pass
        self._wrote = False  # whether this pass made a record durable (a sign that space is back)
        self._held_for_disk: set[str] = set()  # roles whose delivery waits for the next retry
        self._published = ""  # the problem the tmux session was last told

    @property
    def record(self) -> Record:
        assert self._record is not None, "start() opens the ledger"
        return self._record

    @property
    def book(self) -> Book:
        return self.record.book

    # ---- lifecycle -------------------------------------------------------------------------------------

    def start(self) -> None:
        self._lock_fd = lock.take(self.run_dir)
        self.intake.prepare()
        path = ledger_path(self.run_dir)
        ledger = Ledger(path)
        repaired = ledger.repair()
        replay = read_ledger(path)
        self._record = Record(ledger, Book(), self.referee)
        for event in replay.events:
            self.record.learn(event)
            self.intake.replayed(event)
        if repaired is not None:
            self.report.line(f"ledger: cut off {repaired.cut_bytes} bytes of an unfinished line at offset "
                             f"{repaired.offset} (a write cut short)")
        for damaged in replay.damaged:
            self.report.line(damaged.describe())
        self.add(BridgeState(state="started", pid=os.getpid()))
        self.carry_out(self.referee.begin())
        queued = sum(self.book.owed(r) for r in self.targets)
        self.report.line(f"bridge started · {len(self.book.order)} messages in the ledger · {queued} to deliver")

    def run(self) -> int:
        from bridge.inbox.watcher import start_watching

        self.start()
        for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
            signal.signal(sig, self._on_signal)
        observer, kind = start_watching(self.intake.watched(), self.wake)
        if kind == "polling":
            self.report.line("watching by polling (inotify unavailable)")
        try:
            self.hear_agents()  # receipts first: they settle what was in flight when we last stopped
            self.recover_inflight()
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
            with contextlib.suppress(LedgerWriteError):
                self.record.add(BridgeState(state="stopped", pid=os.getpid()), durable=True)
            self.report.line("bridge stopped")
            if self._published:  # a problem said by a bridge that no longer runs would mislead `status`
                publish_problem(self.tmux, self.manifest.tmux.session, "")
            self.record.ledger.close()
            self.report.close()
        return 0

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self.stopping = True
        self.wake.set()

    def next_timeout(self) -> float:
        now = time.monotonic()
        waits = [s.next_check - now for role, s in self.schedules.items()
                 if self.book.owed(role) or self.lookout.warming_up(role, now)]
        if self.intake.rescan_at:
            waits.append(self.intake.rescan_at - now)
        if self.trouble.problem:
            waits.append(self.trouble.retry_at - now)
        return max(0.0, min(waits)) if waits else HOUSEKEEPING_SECONDS

    def session_alive(self) -> bool:
        return self.tmux.has_session(self.manifest.tmux.session)

    # ---- one pass --------------------------------------------------------------------------------------

    def tick(self) -> None:
        self.retry_writes()
        self.carry_out(self.intake.control(self.referee))
        self.ingest()
        self.hear_agents()
        for role in self.targets:
            self.serve(role)
        self.deliver_to_human()
        self.take_stock()
        self.update_status_line()

    # ---- writes the disk refuses ---------------------------------------------------------------------------

    def retry_writes(self) -> None:
        """What waits in memory is written first (events in order; the log's unwritten lines)."""
        self._failures, self._wrote = [], False
        if self.record.backlog:
            self.record.flush()
        self.report.retry()

    def failed(self, problem: str) -> None:
        self._failures.append(problem)

    def take_stock(self) -> None:
        """The pass is over: did a write fail, and is that news (an episode begins or ends)?"""
        failures = list(self._failures)
        if self.record.backlog:
            failures.append(self.record.problem or "cannot write the ledger")
        failures += [p for p in (self.report.log_problem, *self.intake.take_troubles()) if p]
        step = after_pass(self.trouble, failures, time.monotonic(), self._wrote)
        self.trouble = step.trouble
        if step.alert:
            self.alert(step.alert)
        if step.say:
            self.report.line(step.say)
            self.look_soon(tuple(self._held_for_disk))  # what waited for the retry need not wait for it now
        if not self.trouble.problem:
            self._held_for_disk.clear()
        if self.trouble.problem != self._published and publish_problem(
                self.tmux, self.manifest.tmux.session, self.trouble.problem):
            self._published = self.trouble.problem

    def add(self, event: AnyEvent, durable: bool = False) -> None:
        self.record.add(event, durable)

    def carry_out(self, fx: Effects, durable: bool = False) -> None:
        for event in fx.events:
            self.add(event, durable)
        self.look_soon(tuple(fx.wake))
        for post in fx.posts:
            self.post(post)
        for text in fx.says:
            self.report.line(text)
        for text in fx.alerts:
            self.alert(text)
        if fx.start_summary:
            said = self.referee.start_summary()
            if said:
                self.report.line(said)

    def post(self, post: Post) -> None:
        """A message from the bridge itself, delivered like any other."""
        if post.id in self.book.entries:
            return
        self.add(Received(seq=self.book.next_seq, id=post.id, sender="pairloop", to=post.to,
                          kind=post.kind, body=post.body, created=time.time(), topic=post.topic))
        self.report.line(f"{describe(self.book.entries[post.id])} ({post.kind})")
        self.look_soon(post.to)

    def look_soon(self, roles: tuple[str, ...]) -> None:
        for role in roles:
            if role in self.schedules:
                self.schedules[role] = Schedule()

    def ingest(self) -> None:
        try:
            for arrival in self.intake.arrivals(self.book, self.referee):
                # Recorded with what has to come before it (a round's checkpoint), in one fsync'd write: only now
                # may the file be claimed. A disk with room for only part of it gets none of it.
                self.record.add_together([*arrival.before.events, arrival.received])
                self._wrote = True
                self.carry_out(replace(arrival.before, events=[]))
                self.intake.claim(arrival.path)
                entry = self.book.entries[arrival.received.id]
                self.report.line(f"{describe(entry)} received")
                if arrival.bounce:
                    self.mark(entry.message.to, [entry], SUPPRESSED, reason="the same text went back and forth "
                              "(bounce)")
                else:
                    self.carry_out(self.referee.after(entry.message))
                self.look_soon(entry.message.to)
        except LedgerWriteError as exc:  # not claimed: the file waits in the outbox for the next try
            self.failed(exc.reason)
        for refusal in self.intake.refusals():
            self.add(refusal.event)
            self.report.line(refusal.said)

    def hear_agents(self) -> None:
        """Hook events: receipts settle deliveries, a prompt without our ids is the human typing in the pane."""
        heard = self.intake.agent_events(self.referee)
        for role, kind in heard.kinds:
            self.lookout.heard(role, kind)
            self.look_soon((role,))
        for problem in heard.problems:
            self.report.line(problem)
        self.carry_out(heard.effects)
        for role in self.targets:
            # A receipt settles only a paste we made: an event file is anyone's to write.
            done = [e for e in self.book.pending(role)
                    if e.deliveries.get(role) == DELIVERING and self.intake.has_receipt(role, e.message.id)]
            self.mark((role,), done, DELIVERED, via="receipt")

    # ---- delivery ----------------------------------------------------------------------------------------

    def situation(self, role: str, now: float) -> Situation:
        owed = tuple(Owed(e.message.id, e.deliveries.get(role) == DELIVERING, e.reasons.get(role, ""))
                     for e in self.book.pending(role))
        recorded = self.book.pastes.get(role)
        paste = Paste(recorded.ids, recorded.paste_first_line, recorded.paste_lines) if recorded else None
        return Situation(role, owed, self.schedules[role], now, self.referee.protocol.paused,
                         self.lookout.warming_up(role, now), paste=paste,
                         paste_placeholder=self.targets[role].rules.paste_placeholder,
                         submit_passes_modes=passes_modes(self.targets[role].submit_key))

    def serve(self, role: str) -> None:
        now = time.monotonic()
        situation = self.situation(role, now)
        decision = route(situation)
        if isinstance(decision, Look):
            sight = self.lookout.judge(role, now)
            self.carry_out(sight.effects)
            situation = replace(situation, reading=sight.reading)
            decision = route(situation)
        if isinstance(decision, Wait | WarmUp):
            self.schedules[role] = decision.schedule
        elif isinstance(decision, Hold):
            self.schedules[role] = decision.schedule
            self.mark((role,), self.entries(decision.note), QUEUED, reason=decision.reason)
        elif isinstance(decision, SubmitOurs):
            self.schedules[role] = decision.schedule
            self.report.line(f"→ {role}: our paste is still in the input box; submitting it")
            self.conclude(role, self.entries(decision.ids), submit_again(self.tmux, self.targets[role],
                                                                         self.receipt_check(role, decision.ids)))
        elif isinstance(decision, Deliver):
            self.schedules[role] = decision.schedule
            self.deliver_batch(role, self.entries(decision.ids), situation.reading)

    def entries(self, ids: Iterable[str]) -> list[Entry]:
        return [self.book.entries[i] for i in ids]

    def deliver_batch(self, role: str, batch: list[Entry], reading: Reading | None) -> None:
        target = self.targets[role]
        try:
            attachments = {e.message.id: str(self.attach(e)) for e in batch if needs_attachment(e)}
        except OSError as exc:
            self.hold_for_disk(role, f"cannot write an attachment: {exc.strerror or exc}")
            return
        text = render(batch, attachments, self.referee.footer(role))
        ids = tuple(e.message.id for e in batch)
        self._pastes += 1
        paste_file = self.run_dir / f".paste-{role}-{self._pastes}.txt"
        try:  # the paste file first: a disk that refuses it refuses it before anything is recorded or pasted
            write_private(paste_file, text.encode("utf-8"))
        except OSError as exc:
            self.hold_for_disk(role, f"cannot write the paste file: {exc.strerror or exc}")
            return
        try:  # the exact paste is on disk before it is made: only it may be submitted after a crash
            self.add(Delivering(to=role, ids=ids, paste_first_line=text.split("\n", 1)[0],
                                paste_lines=text.count("\n") + 1), durable=True)
        except LedgerWriteError as exc:
            paste_file.unlink(missing_ok=True)
            self.hold_for_disk(role, exc.reason)
            return
        self._wrote = True
        self.intake.forget_receipts(role, ids)  # a receipt heard before this paste is not about it
        self.lookout.submitted(role, self.manifest.roles[role].turn_hooks)
        before = reading.screen if reading is not None else ""
        try:
            outcome = deliver(self.tmux, target, paste_file, f"pairloop-{os.getpid()}-{role}",
                              self.receipt_check(role, ids), before)
        except OSError as exc:  # tmux could not read the paste file: nothing reached the pane
            paste_file.unlink(missing_ok=True)
            self.lookout.heard(role, "stop")  # no turn started after all
            self.mark((role,), batch, QUEUED, reason=f"paste failed: {exc.strerror or exc}", quiet=True)
            self.hold_for_disk(role, f"cannot write the paste file: {exc.strerror or exc}")
            return
        self.conclude(role, batch, outcome)

    def hold_for_disk(self, role: str, problem: str) -> None:
        """Nothing was recorded or pasted: the batch stays queued, and is tried again at the episode's next retry
        (the episode itself is said once, see take_stock)."""
        self.failed(problem)
        self._held_for_disk.add(role)
        self.schedules[role] = Schedule(next_retry(self.trouble, time.monotonic()), problem)

    def receipt_check(self, role: str, ids: tuple[str, ...]) -> Callable[[], bool]:
        def check() -> bool:
            self.hear_agents()
            return all(self.intake.has_receipt(role, i) for i in ids) or not any(
                e.message.id in ids for e in self.book.pending(role))
        return check

    def conclude(self, role: str, batch: list[Entry], outcome: Outcome) -> None:
        still = [e for e in batch if e.deliveries.get(role) == DELIVERING]
        if outcome.ok:
            self.mark((role,), still, DELIVERED, via=outcome.via)
        elif outcome.reason.startswith("paste failed"):
            self.mark((role,), still, QUEUED, reason=outcome.reason)  # nothing reached the pane: try again later
            self.schedules[role] = Schedule(time.monotonic() + MAX_BACKOFF, outcome.reason)
        else:
            self.mark((role,), still, FAILED, reason=outcome.reason)
            self.alert(f"pairloop: delivery to {role} FAILED: {outcome.reason}")

    def recover_inflight(self) -> None:
        """After a crash: a batch marked delivering reached the agent (its id on the screen) or it did not
        (queue it again). Our own paste still in the box is the router's to submit."""
        for role, target in self.targets.items():
            inflight = [e for e in self.book.pending(role) if e.deliveries.get(role) == DELIVERING]
            if not inflight:
                continue
            sight = self.lookout.observe(role)
            self.carry_out(sight.effects)
            try:
                history = self.tmux.capture(target.pane, history=3000)
            except TmuxError:
                history = ""
            situation = self.situation(role, time.monotonic())
            seen, lost = inflight_outcome([e.message.id for e in inflight], sight.reading, history,
                                          situation.paste, situation.paste_placeholder)
            self.mark((role,), self.entries(seen), DELIVERED, via="screen")
            self.mark((role,), self.entries(lost), QUEUED,
                      reason="not confirmed before the bridge restarted: redelivering")

    def deliver_to_human(self) -> None:
        """Messages for the human are shown here, in the bridge pane: that is their delivery."""
        for entry in self.book.pending("human"):
            self.report.line(f"{describe(entry, 'human')}:")
            for line in entry.message.body.splitlines()[:20]:
                self.report.line(f"    {line}")
            self.mark(("human",), [entry], DELIVERED, via="bridge pane", quiet=True)

    def mark(self, roles: tuple[str, ...], entries: list[Entry], state: str, *, via: str = "", reason: str = "",
             quiet: bool = False) -> None:
        if not entries:
            return
        for role in roles:
            event = DELIVERY_EVENTS[state](to=role, ids=tuple(e.message.id for e in entries),
                                           via=via, reason=reason)
            self.add(event)
            if quiet or state == DELIVERING:
                continue
            words = {QUEUED: f"queued: {reason}", DELIVERED: f"delivered ({via})", FAILED: f"FAILED: {reason}",
                     SUPPRESSED: f"suppressed: {reason}"}
            batch = f" (batch of {len(entries)})" if len(entries) > 1 and state == DELIVERED else ""
            for entry in entries if len(entries) <= 5 else [entries[0], entries[-1]]:
                self.report.line(f"{describe(entry, role)} {words[state]}{batch}")

    def attach(self, entry: Entry) -> Path:
        # In the mailbox: the receiving agent reads it there, inside its own workspace.
        path = attachment_path(private_dir(self.mailbox / ATTACHMENTS), entry.message.id)
        if not path.exists():  # whole or not there: a full disk leaves no half attachment to be trusted later
            write_atomic(path, entry.message.body.encode("utf-8"))
        return path

    # ---- telling the human -------------------------------------------------------------------------------

    def update_status_line(self) -> None:
        queued = sum(self.book.owed(r) for r in self.targets)
        views = {role: self.lookout.view(role) for role in self.targets}
        text = status_text(self.targets, views, self.referee.protocol, queued, self.book.run_state == "agreed",
                           self.trouble.problem)
        if text != self.status_text:
            self.status_text = text
            session = f"={self.manifest.tmux.session}:"  # ':' makes '=' (exact name) work for options
            with contextlib.suppress(TmuxError):
                self.tmux.run("set-option", "-t", session, "status-right-length", "160", ";",
                              "set-option", "-t", session, "status-right", text.replace("#", "##"))

    def alert(self, text: str) -> None:
        """Get the human's attention: a line here, a bell (tmux passes it to the terminal), a tmux message."""
        self.report.line(text)
        self.report.bell()
        with contextlib.suppress(TmuxError):
            self.tmux.display(f"={self.manifest.tmux.session}:", text)


__all__ = ["Bridge", "BridgeBusy"]
