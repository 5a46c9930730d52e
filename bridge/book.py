"""Ledger replay: fold events into what each message is waiting for. Pure; no I/O."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from bridge.rundir.message import Message

QUEUED, DELIVERING, DELIVERED, FAILED = "queued", "delivering", "delivered", "failed"
SUPPRESSED = "suppressed"  # held back on purpose (a message bouncing back and forth), never delivered


@dataclass
class Entry:
    message: Message
    seq: int
    digest: str
    deliveries: dict[str, str] = field(default_factory=dict)  # recipient -> state
    reasons: dict[str, str] = field(default_factory=dict)  # recipient -> why it is not delivered yet
    note: str = ""  # what the bridge adds for the receiver (the round's checkpoint, finding ids, ...)

    @property
    def state(self) -> str:
        """One word for the whole message: failed wins, then anything still on its way, then delivered."""
        states = set(self.deliveries.values())
        if FAILED in states:
            return FAILED
        if SUPPRESSED in states:
            return SUPPRESSED
        if states <= {DELIVERED}:
            return DELIVERED
        return QUEUED


@dataclass
class Book:
    entries: dict[str, Entry] = field(default_factory=dict)
    order: list[str] = field(default_factory=list)
    run_state: str = "running"
    agent_states: dict[str, str] = field(default_factory=dict)
    rejected: int = 0

    @property
    def next_seq(self) -> int:
        return len(self.order) + 1

    def apply(self, event: dict[str, Any]) -> None:
        ev = event.get("ev")
        if ev == "received":
            msg = Message(
                event["id"], event["from"], tuple(event["to"]), event["body"],
                event.get("kind", "message"), float(event.get("created", 0.0)),
                tuple(event.get("fixed", ())), tuple(event.get("disputed", ())),
            )
            if msg.id not in self.entries:
                self.entries[msg.id] = Entry(msg, int(event["seq"]), str(event.get("digest", "")),
                                             {t: QUEUED for t in msg.to}, note=str(event.get("note", "")))
                self.order.append(msg.id)
        elif ev in (DELIVERING, DELIVERED, FAILED, QUEUED, SUPPRESSED):
            for msg_id in event.get("ids", []):
                entry = self.entries.get(msg_id)
                if entry is not None and entry.deliveries.get(event["to"]) in (QUEUED, DELIVERING):
                    entry.deliveries[event["to"]] = ev
                    if "reason" in event:
                        entry.reasons[event["to"]] = str(event["reason"])
        elif ev == "run":
            self.run_state = str(event.get("state", self.run_state))
        elif ev == "agent":
            self.agent_states[str(event.get("role"))] = str(event.get("state"))
        elif ev == "rejected":
            self.rejected += 1

    def apply_all(self, events: Iterable[dict[str, Any]]) -> Book:
        for event in events:
            self.apply(event)
        return self

    def pending(self, recipient: str) -> list[Entry]:
        """Messages still owed to ``recipient``, oldest first."""
        out = [self.entries[i] for i in self.order
               if self.entries[i].deliveries.get(recipient) in (QUEUED, DELIVERING)]
        return sorted(out, key=lambda e: e.seq)

    def count(self, recipient: str, state: str) -> int:
        return sum(1 for e in self.entries.values() if e.deliveries.get(recipient) == state)
