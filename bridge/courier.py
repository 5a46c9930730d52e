"""The courier: delivery to the agents' panes. For each target it asks the router, carries out the decision
(deliver a batch, hold it with the reason, submit our own interrupted paste) and confirms by receipt or screen.

What it hears from the agents' hooks while it waits for a receipt comes back as Effects for the relay to carry
out; it decides nothing the router does not."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable
from dataclasses import replace
from pathlib import Path

from bridge.book import DELIVERED, DELIVERING, FAILED, QUEUED, Entry
from bridge.desk import Desk
from bridge.effects import Effects
from bridge.inbox.intake import Intake
from bridge.panes.delivery import Outcome, deliver, submit_again
from bridge.panes.envelope import ATTACHMENTS, attachment_path, needs_attachment, render
from bridge.panes.lookout import Lookout
from bridge.panes.screen import Reading
from bridge.panes.tmux import TmuxError, passes_modes
from bridge.protocol.referee import Referee
from bridge.report import describe
from bridge.router import (
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
from bridge.rundir.events import Delivering
from bridge.rundir.files import private_dir, write_atomic, write_private
from bridge.rundir.ledger import LedgerWriteError
from bridge.rundir.manifest import Manifest, Target


class Courier:
    def __init__(self, desk: Desk, manifest: Manifest, run_dir: Path, mailbox: Path, targets: dict[str, Target],
                 lookout: Lookout, intake: Intake, referee: Referee) -> None:
        self.desk, self.manifest, self.run_dir, self.mailbox = desk, manifest, run_dir, mailbox
        self.targets, self.lookout, self.intake, self.referee = targets, lookout, intake, referee
        self.schedules = {role: Schedule() for role in targets}
        self.held_for_disk: set[str] = set()  # roles whose delivery waits for the next retry
        self.heard = Effects()  # what the hooks said while we waited for receipts, for the relay to carry out
        self._pastes = 0

    def look_soon(self, roles: Iterable[str]) -> None:
        for role in roles:
            if role in self.schedules:
                self.schedules[role] = Schedule()

    # ---- what the agents' hooks say ----------------------------------------------------------------------

    def listen(self) -> Effects:
        """Hook events: receipts settle deliveries; the rest (a human typing in a pane, a permission prompt) is
        returned for the relay to carry out, with whatever was heard while waiting for a receipt."""
        heard = self.intake.agent_events(self.referee, self.desk.book)
        for role, kind in heard.kinds:
            self.lookout.heard(role, kind)
            self.look_soon((role,))
        for problem in heard.problems:
            self.desk.report.line(problem)
        for event in heard.effects.events:  # recorded now, before any delivery this hearing settles
            self.desk.add(event)
        for role in self.targets:
            # A receipt settles only a paste we made: an event file is anyone's to write.
            done = [e for e in self.desk.book.pending(role)
                    if e.deliveries.get(role) == DELIVERING and self.intake.has_receipt(role, e.message.id)]
            self.desk.mark((role,), done, DELIVERED, via="receipt")
        fx, self.heard = self.heard.add(replace(heard.effects, events=[])), Effects()
        return fx

    def receipt_check(self, role: str, ids: tuple[str, ...]) -> Callable[[], bool]:
        def check() -> bool:
            self.heard.add(self.listen())
            return all(self.intake.has_receipt(role, i) for i in ids) or not any(
                e.message.id in ids for e in self.desk.book.pending(role))
        return check

    # ---- one target ----------------------------------------------------------------------------------------

    def situation(self, role: str, now: float) -> Situation:
        book = self.desk.book
        protocol = self.referee.protocol
        verified = protocol.verify_rounds(bool(self.referee.verify)) if role == "reviewer" else set()
        owed = tuple(Owed(e.message.id, e.deliveries.get(role) == DELIVERING, e.reasons.get(role, ""),
                          protocol.gates.gate(e.message.id, verified) if verified else "")
                     for e in book.pending(role))
        recorded = book.pastes.get(role)
        paste = Paste(recorded.ids, recorded.paste_first_line, recorded.paste_lines) if recorded else None
        return Situation(role, owed, self.schedules[role], now, self.referee.protocol.paused,
                         self.lookout.warming_up(role, now), paste=paste,
                         paste_placeholder=self.targets[role].rules.paste_placeholder,
                         submit_passes_modes=passes_modes(self.targets[role].submit_key))

    def serve(self, role: str) -> Effects:
        """One look at one target, and what the router says to do about it. Returns what the lookout asks to
        record or say, and what was heard meanwhile."""
        now = time.monotonic()
        situation = self.situation(role, now)
        decision = route(situation)
        seen = Effects()
        if isinstance(decision, Look):
            sight = self.lookout.judge(role, now)
            seen = sight.effects
            for event in seen.events:
                self.desk.add(event)
            seen = replace(seen, events=[])
            situation = replace(situation, reading=sight.reading)
            decision = route(situation)
        if isinstance(decision, Wait | WarmUp):
            self.schedules[role] = decision.schedule
        elif isinstance(decision, Hold):
            self.schedules[role] = decision.schedule
            self.desk.mark((role,), self.entries(decision.note), QUEUED, reason=decision.reason)
        elif isinstance(decision, SubmitOurs):
            self.schedules[role] = decision.schedule
            self.desk.report.line(f"→ {role}: our paste is still in the input box; submitting it")
            self.conclude(role, self.entries(decision.ids), submit_again(self.desk.tmux, self.targets[role],
                                                                         self.receipt_check(role, decision.ids)))
        elif isinstance(decision, Deliver):
            self.schedules[role] = decision.schedule
            self.deliver_batch(role, self.entries(decision.ids), situation.reading)
        fx, self.heard = seen.add(self.heard), Effects()
        return fx

    def entries(self, ids: Iterable[str]) -> list[Entry]:
        return [self.desk.book.entries[i] for i in ids]

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
            self.desk.add(Delivering(to=role, ids=ids, paste_first_line=text.split("\n", 1)[0],
                                     paste_lines=text.count("\n") + 1), durable=True)
        except LedgerWriteError as exc:
            paste_file.unlink(missing_ok=True)
            self.hold_for_disk(role, exc.reason)
            return
        self.intake.forget_receipts(role, ids)  # a receipt heard before this paste is not about it
        self.lookout.submitted(role, self.manifest.roles[role].turn_hooks)
        before = reading.screen if reading is not None else ""
        try:
            outcome = deliver(self.desk.tmux, target, paste_file, f"pairloop-{os.getpid()}-{role}",
                              self.receipt_check(role, ids), before)
        except OSError as exc:  # tmux could not read the paste file: nothing reached the pane
            paste_file.unlink(missing_ok=True)
            self.lookout.heard(role, "stop")  # no turn started after all
            self.desk.mark((role,), batch, QUEUED, reason=f"paste failed: {exc.strerror or exc}", quiet=True)
            self.hold_for_disk(role, f"cannot write the paste file: {exc.strerror or exc}")
            return
        self.conclude(role, batch, outcome)

    def disk_back(self, said: bool) -> None:
        """Writing works again: what waited for the next retry need not wait for it."""
        if said:
            self.look_soon(self.held_for_disk)
        self.held_for_disk.clear()

    def hold_for_disk(self, role: str, problem: str) -> None:
        """Nothing was recorded or pasted: the batch stays queued, and is tried again at the episode's next retry
        (the episode itself is said once, by the relay's stock-take)."""
        self.desk.failed(problem)
        self.held_for_disk.add(role)
        self.schedules[role] = Schedule(self.desk.next_retry(), problem)

    def conclude(self, role: str, batch: list[Entry], outcome: Outcome) -> None:
        still = [e for e in batch if e.deliveries.get(role) == DELIVERING]
        if outcome.ok:
            self.desk.mark((role,), still, DELIVERED, via=outcome.via)
        elif outcome.reason.startswith("paste failed"):
            self.desk.mark((role,), still, QUEUED, reason=outcome.reason)  # nothing reached the pane: retry later
            self.schedules[role] = Schedule(time.monotonic() + MAX_BACKOFF, outcome.reason)
        else:
            self.desk.mark((role,), still, FAILED, reason=outcome.reason)
            self.desk.alert(f"pairloop: delivery to {role} FAILED: {outcome.reason}")

    def recover_inflight(self) -> Effects:
        """After a crash: a batch marked delivering reached the agent (its id on the screen) or it did not
        (queue it again). Our own paste still in the box is the router's to submit."""
        fx = Effects()
        for role, target in self.targets.items():
            inflight = [e for e in self.desk.book.pending(role) if e.deliveries.get(role) == DELIVERING]
            if not inflight:
                continue
            sight = self.lookout.observe(role)
            fx.add(sight.effects)
            try:
                history = self.desk.tmux.capture(target.pane, history=3000)
            except TmuxError:
                history = ""
            situation = self.situation(role, time.monotonic())
            seen, lost = inflight_outcome([e.message.id for e in inflight], sight.reading, history,
                                          situation.paste, situation.paste_placeholder)
            self.desk.mark((role,), self.entries(seen), DELIVERED, via="screen")
            self.desk.mark((role,), self.entries(lost), QUEUED,
                           reason="not confirmed before the bridge restarted: redelivering")
        return fx

    def deliver_to_human(self) -> None:
        """Messages for the human are shown in the bridge pane: that is their delivery."""
        for entry in self.desk.book.pending("human"):
            self.desk.report.line(f"{describe(entry, 'human')}:")
            for line in entry.message.body.splitlines()[:20]:
                self.desk.report.line(f"    {line}")
            self.desk.mark(("human",), [entry], DELIVERED, via="bridge pane", quiet=True)

    def attach(self, entry: Entry) -> Path:
        # In the mailbox: the receiving agent reads it there, inside its own workspace.
        path = attachment_path(private_dir(self.mailbox / ATTACHMENTS), entry.message.id)
        if not path.exists():  # whole or not there: a full disk leaves no half attachment to be trusted later
            write_atomic(path, entry.message.body.encode("utf-8"))
        return path
