"""What comes into the bridge: message files from the outbox, the agents' hook events, control requests.

Everything here was written by someone else — an agent, a hook, a human — so it is read as untrusted data:
validated by its owner, and what does not validate is set aside or skipped with the reason."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from bridge.book import Book
from bridge.compaction import card_after_compaction, card_due
from bridge.effects import Effects
from bridge.inbox.mailbox import ABANDONED_SECONDS, REJECTED, SETTLE_SECONDS, Litter, Refusal, move_aside, scan
from bridge.notify import PERMISSION, Call
from bridge.panes.envelope import ids_in
from bridge.panes.sanitize import inert
from bridge.protocol.referee import Referee
from bridge.rolecard import resumed
from bridge.rundir.agent_events import EVENTS, InvalidAgentEvent, events_dir, read_agent_event
from bridge.rundir.control import InvalidControl, control_dir, read_control
from bridge.rundir.events import HumanTurn, Received, Rejected
from bridge.rundir.files import private_dir
from bridge.rundir.message import OUTBOX


@dataclass(frozen=True)
class Arrival:
    """A new message, ready to record: what to record before it, and whether it only bounced back."""

    path: Path
    received: Received
    before: Effects
    bounce: bool


@dataclass(frozen=True)
class Refused:
    event: Rejected
    removed: bool = False  # a crashed writer's temp file, removed (not a message file set aside)

    @property
    def said(self) -> str:
        """The bridge pane's line for it."""
        if self.removed:
            return f"removed {self.event.file}: {self.event.reason}"
        return f"rejected {self.event.file}: {self.event.reason} (moved to {self.event.moved_to})"


@dataclass
class Heard:
    kinds: list[tuple[str, str]] = field(default_factory=list)  # (role, what its hook said)
    problems: list[str] = field(default_factory=list)
    effects: Effects = field(default_factory=Effects)


class Intake:
    def __init__(self, run_dir: Path, mailbox: Path, roles: tuple[str, ...]) -> None:
        self.run_dir = run_dir
        self.mailbox = mailbox
        self.outbox = mailbox / OUTBOX
        self.roles = roles
        self.receipts: dict[str, set[str]] = {role: set() for role in roles}
        self.seen: set[str] = set()  # hook event files already heard, as "<role>/<name>"
        self.rescan_at = 0.0  # when to look at the outbox again for a file still being written
        self._refusals: list[Refusal] = []
        self._litter: list[Litter] = []  # temp files crashed writers left in the outbox, found by the last scan
        self._troubles: list[str] = []  # writes refused during this pass (a full disk, a read-only device)
        self._acted: set[str] = set()  # control files acted on that could not be removed yet
        self.records: dict[str, list[str]] = {}  # role -> where its agent keeps its records (bridge.meter)
        self._card_at: dict[str, float] = {}  # role -> when its last role card after a compaction was posted

    def has_receipt(self, role: str, msg_id: str) -> bool:
        return msg_id in self.receipts[role]

    def forget_receipts(self, role: str, ids: tuple[str, ...]) -> None:
        self.receipts[role] -= set(ids)

    def prepare(self) -> list[str]:
        """Make the folders the bridge reads; what cannot be made (an agent put a link in its place) is said,
        not fatal: the bridge reads on what it can."""
        problems = []
        for folder in (self.outbox, self.mailbox / EVENTS, control_dir(self.run_dir),
                       *(events_dir(self.mailbox, role) for role in self.roles)):
            try:
                private_dir(folder)
            except OSError as exc:
                problems.append(f"cannot use {inert(str(folder))}: {exc.strerror or exc}")
        return problems

    def watched(self) -> list[Path]:
        return [self.outbox, self.mailbox / EVENTS, control_dir(self.run_dir)]

    # ---- control requests ------------------------------------------------------------------------------

    def control(self, referee: Referee, book: Book | None = None) -> Effects:
        """`pairloop pause` / `unpause` / `resume` leave a file in control/: act on it, then remove it."""
        fx = Effects()
        folder = control_dir(self.run_dir)
        try:
            names = sorted(n for n in os.listdir(folder) if not n.startswith("."))
        except FileNotFoundError:
            return fx
        for name in names:
            path = folder / name
            if name in self._acted:  # acted on already; only its removal failed
                self._remove(path, "a control file")
                continue
            try:
                request = read_control(path)
                action: str | None = request.action
            except InvalidControl as exc:
                fx.says.append(f"ignored control file {inert(name)}: {exc.reason}")
                action = None
            if action == "pause":
                fx.add(referee.pause("paused by the human", by="human"))
            elif action == "unpause":
                fx.add(referee.unpause())
                fx.wake += list(self.roles)
            elif action == "done":
                fx.add(referee.overrule_done(request.note))
                fx.wake += list(self.roles)
            elif action == "resumed" and book is not None and request.role in self.roles:
                fx.add(resumed(name.removesuffix(".json"), request.role, request.fresh, request.reason, book,
                               referee.protocol))
            if not self._remove(path, "a control file"):
                self._acted.add(name)
        return fx

    def _remove(self, path: Path, what: str) -> bool:
        """Remove a file that was dealt with; False (and a trouble for the pass) when the device refuses."""
        try:
            path.unlink(missing_ok=True)
        except OSError as exc:
            self._troubles.append(f"cannot remove {what}: {exc.strerror or exc}")
            return False
        self._acted.discard(path.name)
        return True

    def take_troubles(self) -> list[str]:
        """What could not be written or removed since the last call."""
        troubles, self._troubles = self._troubles, []
        return troubles

    # ---- the outbox --------------------------------------------------------------------------------------

    def arrivals(self, book: Book, referee: Referee) -> Iterator[Arrival]:
        """New messages in the outbox, oldest first. Each is yielded once the one before it has been recorded
        (the referee's note for a message depends on those before it)."""
        found = scan(self.outbox)
        self.rescan_at = time.monotonic() + SETTLE_SECONDS / 2 if found.unsettled else 0.0
        self._refusals += found.refusals
        self._litter = found.litter
        for arrival in found.arrivals:
            msg = arrival.message
            known = book.entries.get(msg.id)
            if known is not None:
                if known.digest != arrival.digest:
                    self._refusals.append(Refusal(arrival.path, f"duplicate id {msg.id} with different content"))
                else:
                    self.claim(arrival.path)  # recorded before a crash, not yet claimed
                continue
            bounce = referee.check_bounce(msg)
            note, before = ("", Effects()) if bounce else referee.before(msg)
            yield Arrival(arrival.path, Received(
                seq=book.next_seq, id=msg.id, sender=msg.sender, to=msg.to, kind=msg.kind,
                body=msg.body, created=msg.created, digest=arrival.digest, file=arrival.path.name, note=note,
                fixed=msg.fixed, disputed=msg.disputed), before, bounce)

    def claim(self, path: Path) -> None:
        # The ledger now holds the whole message. Unlink rather than move it elsewhere: a move out of a
        # watched folder is an unpaired IN_MOVED_FROM, which watchdog holds back for 0.5 s. A file that cannot be
        # removed (a read-only device) is known by its id and digest at the next scan: claimed again, not doubled.
        self._remove(path, "a claimed message file")

    def refusals(self) -> list[Refused]:
        """Set the refused files aside (never deleted: the human may want them) and say why; remove what crashed
        writers left behind (their temp files are no one's message)."""
        out = []
        pending, self._refusals = self._refusals, []
        for refusal in pending:
            try:
                # Beside the outbox, on the same file system (a rename across file systems fails): it is the
                # sender's own bytes, kept for the human to look at, trusted by nobody.
                moved = move_aside(refusal.path, self.mailbox, REJECTED)
            except FileNotFoundError:
                continue
            except OSError as exc:  # the next scan refuses it again: recorded once, when it is set aside
                self._troubles.append(f"cannot set aside a refused message file: {exc.strerror or exc}")
                continue
            out.append(Refused(Rejected(file=_rel(refusal.path, self.mailbox), reason=refusal.reason,
                                        moved_to=_rel(moved, self.mailbox))))
        return out + self._clean_litter()

    def _clean_litter(self) -> list[Refused]:
        """Remove the hidden temp files crashed writers left in the outbox, once nothing has written them for
        ABANDONED_SECONDS, and say so (in the ledger, as a rejected file, and in the bridge pane)."""
        out = []
        litter, self._litter = self._litter, []
        for item in litter:
            try:
                if time.time() - item.path.lstat().st_mtime < ABANDONED_SECONDS:
                    continue  # written again since the scan: a writer is alive after all
                item.path.unlink()
            except FileNotFoundError:
                continue  # renamed into place, or removed, since the scan
            except OSError as exc:
                self._troubles.append(f"cannot remove an abandoned temp file: {exc.strerror or exc}")
                continue
            minutes = int(item.age // 60)
            out.append(Refused(Rejected(file=_rel(item.path, self.mailbox), reason=(
                f"a hidden temp file nothing had written for {minutes} minutes (left by a writer that crashed or "
                f"was killed): removed")), removed=True))
        return out

    # ---- the agents' hook events -----------------------------------------------------------------------

    def agent_events(self, referee: Referee, book: Book | None = None) -> Heard:
        """A submitted prompt carrying our envelope ids is a delivery receipt; one without them is a human
        typing straight into the pane."""
        heard = Heard()
        for role in self.roles:
            folder = events_dir(self.mailbox, role)
            try:
                names = sorted(n for n in os.listdir(folder) if not n.startswith("."))
            except FileNotFoundError:
                continue
            compacted = ""  # the newest compaction heard in this pass: one card for all of them
            for name in names:
                key = f"{role}/{name}"
                if key in self.seen:
                    continue
                self.seen.add(key)
                try:
                    event = read_agent_event(folder / name)
                except InvalidAgentEvent as exc:
                    if _fresh(folder / name):  # perhaps still being written by a writer that does not rename
                        self.seen.discard(key)
                        self.rescan_at = self.rescan_at or time.monotonic() + SETTLE_SECONDS / 2
                    else:
                        heard.problems.append(f"ignored {role} hook event {inert(name)}: {exc.reason}")
                    continue
                # A late receipt (codex reports a turn's prompt when the turn ends) says nothing of now.
                heard.kinds.append((role, "" if event.late else event.event))
                if event.records and event.records not in self.records.setdefault(role, []):
                    self.records[role].append(event.records)
                if event.event == "compacted":  # its role card is due again
                    compacted = name
                if event.event == "attention":
                    heard.effects.alerts.append(Call(PERMISSION, f"pairloop: the {role} waits for you: "
                                                     f"{inert(event.message) or 'permission'}", role=role,
                                                     reason=event.message or "permission"))
                if event.event != "prompt":
                    continue
                ids = ids_in(event.prompt)
                if ids:
                    self.receipts[role] |= ids
                elif event.prompt.strip():
                    heard.effects.add(self._human_turn(role, name, key, event.prompt, referee))
            # Anyone can write these files: forged ones in a stream get one card per CARD_INTERVAL, not one each.
            # A card already in the ledger (the file heard again by a restarted bridge) starts no interval.
            card = card_after_compaction(role, compacted, referee.protocol) if compacted else None
            if card is not None and not (book is not None and all(p.id in book.entries for p in card.posts)) \
                    and card_due(self._card_at.get(role), time.monotonic()):
                self._card_at[role] = time.monotonic()
                heard.effects.add(card)
        return heard

    def _human_turn(self, role: str, name: str, key: str, prompt: str, referee: Referee) -> Effects:
        fx = Effects([HumanTurn(role=role, text=prompt, event_file=key)],
                     says=[f"human → {role} (typed in the pane) \"{prompt.strip()[:40]}\""])
        if referee.settings.mirror:
            fx.add(referee.mirror(f"turn-{role}-{name.split('-', maxsplit=1)[0]}", (role,), prompt, "message"))
        return fx


def _fresh(path: Path) -> bool:
    try:
        return time.time() - path.stat().st_mtime < SETTLE_SECONDS
    except OSError:
        return False


def _rel(path: Path, run_dir: Path) -> str:
    return str(path.relative_to(run_dir)) if path.is_relative_to(run_dir) else path.name
