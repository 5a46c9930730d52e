"""The bridge process: ingest outbox files, keep the ledger, deliver to ready agents, say why."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import signal
import threading
import time
from pathlib import Path
from types import FrameType
from typing import Any, TextIO

from bridge.book import DELIVERED, DELIVERING, FAILED, QUEUED, SUPPRESSED, Book, Entry
from bridge.inbox.mailbox import SETTLE_SECONDS, move_aside, scan
from bridge.panes import envelope
from bridge.panes.delivery import confirm as confirm_delivery
from bridge.panes.delivery import deliver
from bridge.panes.lookout import Lookout
from bridge.panes.screen import BUSY, DIALOG, DRAFT, EXITED, READY, STARTING, Reading
from bridge.panes.statusline import status_text
from bridge.panes.tmux import Tmux, TmuxError
from bridge.protocol.referee import Referee
from bridge.report import Reporter, describe
from bridge.rundir.ledger import Ledger, read_events
from bridge.rundir.manifest import Target, read_manifest, targets
from bridge.rundir.message import Message

WAIT_REASONS = {
    BUSY: "target busy",
    DIALOG: "dialog on screen",
    DRAFT: "held: human draft in the input box",
    STARTING: "agent not ready yet",
    EXITED: "agent exited",
}
HOUSEKEEPING_SECONDS = 30.0
MAX_BACKOFF = 0.25


class BridgeBusy(Exception):
    """Another bridge already serves this run."""


class Bridge:
    def __init__(self, run_dir: Path, tmux: Tmux, out: TextIO | None = None) -> None:
        self.run_dir = run_dir
        self.tmux = tmux
        self.manifest: dict[str, Any] = read_manifest(run_dir)
        self.targets: dict[str, Target] = targets(self.manifest)
        self.outbox = run_dir / "outbox"
        self.events = run_dir / "events"
        self.report = Reporter(run_dir / "bridge.log", out)
        self.book = Book()
        self.receipts: dict[str, set[str]] = {role: set() for role in self.targets}
        self.seen_events: set[str] = set()
        self.wake = threading.Event()
        self.stopping = False
        self._lock_fd: int | None = None
        self._ledger: Ledger | None = None
        self._paste_count = 0
        self.rescan_at = 0.0
        self.lookout = Lookout(tmux, self.targets, self.manifest["roles"], self.emit, self.report.line, self.alert)
        self.watch = self.lookout.watch
        self.referee = Referee({**self.manifest, "run_dir": str(run_dir)}, self.emit, self.post, self.report.line,
                               self.alert)
        self.control = run_dir / "control"
        self.status_text = ""

    # ---- lifecycle -------------------------------------------------------------------------------------

    def lock(self) -> None:
        fd = os.open(self.run_dir / "bridge.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise BridgeBusy(f"another bridge is already running for {self.run_dir}") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._lock_fd = fd

    @property
    def ledger(self) -> Ledger:
        assert self._ledger is not None, "start() opens the ledger"
        return self._ledger

    def emit(self, event: dict[str, Any]) -> dict[str, Any]:
        """Record an event (fsync'd) and let every view of the run learn it."""
        record = self.ledger.append(event)
        self.book.apply(record)
        self.referee.apply(record)
        return record

    def post(self, msg_id: str, to: tuple[str, ...], body: str, kind: str) -> None:
        """A message from the bridge itself (a notice, or context from the human): delivered like any other."""
        if msg_id in self.book.entries:
            return
        msg = Message(msg_id, "pairloop", to, body, kind)
        record = {"ev": "received", "seq": self.book.next_seq, "digest": "", **_message_fields(msg.to_json())}
        self.emit(record)
        entry = self.book.entries[msg_id]
        self.report.line(f"{describe(entry)} ({kind})")
        for role in to:
            if role in self.watch:
                self.watch[role].next_check = 0.0

    def start(self) -> None:
        self.lock()
        for folder in (self.outbox, self.events, self.control):
            folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        for role in self.targets:
            (self.events / role).mkdir(exist_ok=True, mode=0o700)
        ledger_path = self.run_dir / "ledger.jsonl"
        ledger_path.touch(mode=0o600, exist_ok=True)
        for _, event in read_events(ledger_path):
            self.book.apply(event)
            self.referee.apply(event)
            if event.get("ev") == "human_turn":
                self.seen_events.add(str(event.get("event_file")))
        self._ledger = Ledger(ledger_path)
        self.emit({"ev": "bridge", "state": "started", "pid": os.getpid()})
        self.referee.begin()
        queued = sum(len(self.book.pending(r)) for r in self.targets)
        self.report.line(f"bridge started · {len(self.book.order)} messages in the ledger · {queued} to deliver")

    def run(self) -> int:
        from bridge.inbox.watcher import start_watching

        self.start()
        for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
            signal.signal(sig, self._on_signal)
        observer, kind = start_watching([self.outbox, self.events, self.control], self.wake)
        if kind == "polling":
            self.report.line("watching by polling (inotify unavailable)")
        try:
            self.scan_events()  # receipts first: they settle what was in flight when we last stopped
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
            self.ledger.append({"ev": "bridge", "state": "stopped", "pid": os.getpid()})
            self.report.line("bridge stopped")
            self.ledger.close()
            self.report.close()
        return 0

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self.stopping = True
        self.wake.set()

    def next_timeout(self) -> float:
        now = time.monotonic()
        waits = [w.next_check - now for role, w in self.watch.items()
                 if self.book.pending(role) or (not w.first_ready and self.lookout.starting_up())]
        if self.rescan_at:
            waits.append(self.rescan_at - now)
        if not waits:
            return HOUSEKEEPING_SECONDS
        return max(0.0, min(waits))

    # ---- one pass --------------------------------------------------------------------------------------

    def tick(self) -> None:
        self.read_control()
        self.ingest()
        self.scan_events()
        for role in self.targets:
            self.try_deliver(role)
        self.deliver_to_human()
        self.update_status_line()

    def read_control(self) -> None:
        """`pairloop pause` / `unpause` leave a file in control/: record what it asks, then remove it."""
        try:
            names = sorted(n for n in os.listdir(self.control) if not n.startswith("."))
        except FileNotFoundError:
            return
        for name in names:
            path = self.control / name
            action = (_read_json(path) or {}).get("action")
            if action == "pause":
                self.referee.pause("paused by the human", by="human")
            elif action == "unpause":
                self.referee.unpause()
                for watch in self.watch.values():
                    watch.next_check = 0.0
            else:
                self.report.line(f"ignored control file {name}: unknown action {action!r}")
            path.unlink(missing_ok=True)

    def update_status_line(self) -> None:
        queued = sum(len(self.book.pending(r)) for r in self.targets)
        text = status_text(self.targets, self.watch, self.referee.protocol, queued, self.book.run_state == "agreed")
        if text != self.status_text:
            self.status_text = text
            session = f"={self.manifest['tmux']['session']}:"  # ':' makes '=' (exact name) work for options
            with contextlib.suppress(TmuxError):
                self.tmux.run("set-option", "-t", session, "status-right-length", "160", ";",
                              "set-option", "-t", session, "status-right", text.replace("#", "##"))

    def session_alive(self) -> bool:
        return self.tmux.has_session(str(self.manifest["tmux"]["session"]))

    def ingest(self) -> None:
        found = scan(self.outbox)
        self.rescan_at = time.monotonic() + SETTLE_SECONDS / 2 if found.unsettled else 0.0
        for refusal in found.refusals:
            self.refuse(refusal.path, refusal.reason)
        for arrival in found.arrivals:
            known = self.book.entries.get(arrival.message.id)
            if known is not None and known.digest != arrival.digest:
                self.refuse(arrival.path, f"duplicate id {arrival.message.id} with different content")
                continue
            if known is None:
                self.receive(arrival.message, arrival.digest, arrival.path.name)
            # Claimed: the ledger now holds the whole message. Unlink rather than move it elsewhere: a move
            # out of a watched folder is an unpaired IN_MOVED_FROM, which watchdog holds back for 0.5 s.
            with contextlib.suppress(FileNotFoundError):
                arrival.path.unlink()
            for role in arrival.message.to:
                if role in self.watch:
                    self.watch[role].next_check = 0.0

    def receive(self, msg: Message, digest: str, file_name: str) -> None:
        """Record one new message (before its file is claimed), with what the referee adds to it."""
        bounce = self.referee.check_bounce(msg)
        note = "" if bounce else self.referee.note_for(msg)
        record = {"ev": "received", "seq": self.book.next_seq, "digest": digest, "file": file_name,
                  **_message_fields(msg.to_json()), **({"note": note} if note else {})}
        self.emit(record)
        entry = self.book.entries[msg.id]
        self.report.line(f"{describe(entry)} received")
        if bounce:
            self.record_all(entry, SUPPRESSED, "the same text went back and forth (bounce)")
            return
        self.referee.after(msg)

    def record_all(self, entry: Entry, state: str, reason: str) -> None:
        for role in entry.message.to:
            self.record(role, [entry], state, reason=reason)

    def refuse(self, path: Path, reason: str) -> None:
        try:
            moved = move_aside(path, self.run_dir, "rejected")
        except FileNotFoundError:
            return
        rel = str(path.relative_to(self.run_dir)) if path.is_relative_to(self.run_dir) else path.name
        self.emit({"ev": "rejected", "file": rel, "reason": reason, "moved_to": str(moved.relative_to(self.run_dir))})
        self.report.line(f"rejected {rel}: {reason} (moved to {moved.relative_to(self.run_dir)})")

    def scan_events(self) -> None:
        """Hook payloads: a submitted prompt carrying our envelope ids is a delivery receipt; one without
        them is a human typing straight into the pane."""
        for role in self.targets:
            folder = self.events / role
            try:
                names = sorted(n for n in os.listdir(folder) if not n.startswith("."))
            except FileNotFoundError:
                continue
            for name in names:
                key = f"{role}/{name}"
                if key in self.seen_events:
                    continue
                self.seen_events.add(key)
                payload = _read_json(folder / name)
                # A late receipt (codex reports a turn's prompt when the turn ends) says nothing of now.
                self.lookout.heard(role, "" if (payload or {}).get("late") else str((payload or {}).get("event")))
                if (payload or {}).get("event") == "attention":
                    self.alert(f"pairloop: the {role} waits for you: {(payload or {}).get('message') or 'permission'}")
                prompt = payload.get("prompt") if payload else None
                if not isinstance(prompt, str):
                    continue
                ids = envelope.ids_in(prompt)
                if ids:
                    self.receipts[role] |= ids
                    self.settle_receipts(role)
                elif prompt.strip():
                    self.emit({"ev": "human_turn", "role": role, "text": prompt, "event_file": key})
                    self.report.line(f"human → {role} (typed in the pane) \"{prompt.strip()[:40]}\"")
                    if self.referee.settings.get("mirror", True):
                        self.referee.mirror(f"turn-{role}-{name.split('-')[0]}", (role,), prompt, "message")

    def settle_receipts(self, role: str) -> None:
        """Messages whose receipt arrived are delivered, whatever the bridge believed before."""
        done = [e for e in self.book.pending(role) if e.message.id in self.receipts[role]]
        if done:
            self.record(role, done, DELIVERED, via="receipt")

    # ---- delivery ----------------------------------------------------------------------------------------

    def try_deliver(self, role: str) -> None:
        pending = self.book.pending(role)
        watch = self.watch[role]
        if time.monotonic() < watch.next_check:
            return
        if not pending:
            if not watch.first_ready and self.lookout.starting_up():
                # Starting up: look until the agent is first ready, so its settle time runs from then (not
                # from the first message) and any dialog we may answer gets answered.
                self.lookout.judge(role)
                watch.next_check = time.monotonic() + MAX_BACKOFF
            return
        if self.referee.protocol.paused:
            reason = f"relay paused: {self.referee.protocol.paused}"
            fresh = [e for e in pending if e.reasons.get(role) != reason]
            self.record(role, fresh, QUEUED, reason=reason)
            watch.next_check = time.monotonic() + HOUSEKEEPING_SECONDS  # unpausing wakes us
            return
        reading = self.lookout.judge(role)
        if reading.state == DRAFT and self.our_paste(role, reading, pending):
            self.finish_interrupted_paste(role, pending)
            return
        if reading.state != READY:
            reason = WAIT_REASONS.get(reading.state, reading.state)
            if reading.state == DIALOG:
                reason += f" ({reading.detail}): answer it in the {role} pane"
            elif reading.detail and reading.state != EXITED:
                reason += f" ({reading.detail})"
            elif reading.state == EXITED:
                reason = reading.detail or reason
            # Say why once per message and again whenever the reason changes, not on every look.
            fresh = pending if reason != watch.reason else [e for e in pending if e.reasons.get(role) != reason]
            watch.reason = reason
            self.record(role, fresh, QUEUED, reason=reason)
            watch.misses += 1
            watch.next_check = time.monotonic() + min(0.02 * 2**watch.misses, MAX_BACKOFF)
            return
        watch.reason = ""
        self.deliver_batch(role, pending, reading.screen)

    def deliver_batch(self, role: str, pending: list[Entry], before: str) -> None:
        target = self.targets[role]
        attachments = {e.message.id: str(self.attach(e)) for e in pending if envelope.needs_attachment(e)}
        text = envelope.render(pending, attachments, self.referee.footer(role))
        self.record(role, pending, DELIVERING)
        self._paste_count += 1
        paste_file = self.run_dir / f".paste-{role}-{self._paste_count}.txt"
        ids = {e.message.id for e in pending}
        if self.manifest["roles"][role].get("turn_hooks"):
            # Submitting starts a turn; the agent's end-of-turn hook (read in order, after this) ends it.
            self.watch[role].hook = "busy"
        outcome = deliver(self.tmux, target, text, paste_file, f"pairloop-{os.getpid()}-{role}",
                          lambda: self.receipt_for(role, ids), before)
        self.conclude(role, pending, outcome.ok, outcome.via, outcome.reason)

    def receipt_for(self, role: str, ids: set[str]) -> bool:
        self.scan_events()
        return ids <= self.receipts[role] or not any(e.message.id in ids for e in self.book.pending(role))

    def conclude(self, role: str, entries: list[Entry], ok: bool, via: str, reason: str) -> None:
        still = [e for e in entries if e.deliveries.get(role) == DELIVERING]
        if ok:
            self.record(role, still, DELIVERED, via=via)
        elif reason.startswith("paste failed"):
            self.record(role, still, QUEUED, reason=reason)  # nothing reached the pane: try again later
            self.watch[role].next_check = time.monotonic() + MAX_BACKOFF
        else:
            self.record(role, still, FAILED, reason=reason)
            self.alert(f"pairloop: delivery to {role} FAILED: {reason}")

    def our_paste(self, role: str, reading: Reading, pending: list[Entry]) -> bool:
        """The box holds text we pasted: it shows our envelope, or (for a TUI that shows long pastes as a
        placeholder) a paste placeholder while a delivery of ours is in flight."""
        if reading.ours:
            return True
        placeholder = self.targets[role].rules.paste_placeholder
        inflight = any(e.deliveries.get(role) == DELIVERING for e in pending)
        return bool(placeholder and inflight and re.match(placeholder, reading.draft))

    def finish_interrupted_paste(self, role: str, pending: list[Entry]) -> None:
        """Our own text sits unsubmitted in the box (we were killed between paste and submit): submit it."""
        inflight = [e for e in pending if e.deliveries.get(role) == DELIVERING] or pending
        target = self.targets[role]
        self.report.line(f"→ {role}: our paste is still in the input box; submitting it")
        before = self.tmux.capture(target.pane)
        ids = {e.message.id for e in inflight}
        try:
            self.tmux.send_keys(target.pane, target.submit_key)
        except TmuxError as exc:
            self.conclude(role, inflight, False, "", f"paste failed: {exc}")
            return
        outcome = confirm_delivery(self.tmux, target, lambda: self.receipt_for(role, ids), before)
        self.conclude(role, inflight, outcome.ok, outcome.via, outcome.reason)

    def recover_inflight(self) -> None:
        """After a crash: a batch marked delivering either reached the agent (a receipt, or its id on the
        screen) or it did not (queue it again). Our paste left in the box is handled by try_deliver."""
        for role, target in self.targets.items():
            inflight = [e for e in self.book.pending(role) if e.deliveries.get(role) == DELIVERING]
            if not inflight:
                continue
            reading = self.lookout.observe(role)
            if reading.state == DRAFT and self.our_paste(role, reading, inflight):
                continue
            try:
                history = self.tmux.capture(target.pane, history=3000)
            except TmuxError:
                history = ""
            seen = [e for e in inflight if f"id {e.message.id}" in history]
            if seen:
                self.record(role, seen, DELIVERED, via="screen")
            lost = [e for e in inflight if e not in seen]
            if lost:
                self.record(role, lost, QUEUED, reason="not confirmed before the bridge restarted: redelivering")

    def deliver_to_human(self) -> None:
        """Messages for the human are shown here, in the bridge pane: that is their delivery."""
        for entry in self.book.pending("human"):
            self.report.line(f"{describe(entry, 'human')}:")
            for line in entry.message.body.splitlines()[:20]:
                self.report.line(f"    {line}")
            self.record("human", [entry], DELIVERED, via="bridge pane", quiet=True)

    def record(self, role: str, entries: list[Entry], state: str, *, via: str = "", reason: str = "",
               quiet: bool = False) -> None:
        if not entries:
            return
        event: dict[str, Any] = {"ev": state, "to": role, "ids": [e.message.id for e in entries]}
        if via:
            event["via"] = via
        if reason:
            event["reason"] = reason
        self.emit(event)
        if quiet or state == DELIVERING:
            return
        words = {QUEUED: f"queued: {reason}", DELIVERED: f"delivered ({via})", FAILED: f"FAILED: {reason}",
                 SUPPRESSED: f"suppressed: {reason}"}
        batch = f" (batch of {len(entries)})" if len(entries) > 1 and state == DELIVERED else ""
        for entry in entries if len(entries) <= 5 else [entries[0], entries[-1]]:
            self.report.line(f"{describe(entry, role)} {words[state]}{batch}")

    def attach(self, entry: Entry) -> Path:
        folder = self.run_dir / "attachments"
        folder.mkdir(exist_ok=True, mode=0o700)
        path = folder / f"{entry.message.id}.txt"
        if not path.exists():
            path.write_text(entry.message.body, encoding="utf-8")
        return path

    def alert(self, text: str) -> None:
        """Get the human's attention: a line here, a bell (tmux passes it to the terminal), a tmux message."""
        self.report.line(text)
        self.report.bell()
        try:
            self.tmux.display(f"={self.manifest['tmux']['session']}:", text)
        except TmuxError:
            pass


def _message_fields(data: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in data.items() if k != "v"}


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None
