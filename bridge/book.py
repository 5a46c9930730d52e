"""The book of messages: ledger events folded into what each message is waiting for. Pure; no I/O.

What is still owed to each recipient is indexed as events arrive, so a pass of the relay costs the same with
10,000 messages in the ledger as with 10."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

import msgspec

from bridge.rundir.events import (
    DELIVERY_EVENTS,
    AgentState,
    AnyEvent,
    Delivering,
    Delivery,
    HumanTurn,
    Received,
    Rejected,
    RunState,
    tag_of,
)
from bridge.rundir.message import Message

QUEUED, DELIVERING, DELIVERED, FAILED = "queued", "delivering", "delivered", "failed"
SUPPRESSED = "suppressed"  # held back on purpose (a message bouncing back and forth), never delivered
OWED = (QUEUED, DELIVERING)
_STATES: dict[type, str] = {cls: state for state, cls in DELIVERY_EVENTS.items()}  # a delivery's kind -> its state


@dataclass
class Entry:
    message: Message
    seq: int
    digest: str
    deliveries: dict[str, str] = field(default_factory=dict)  # recipient -> state
    reasons: dict[str, str] = field(default_factory=dict)  # recipient -> why it is not delivered yet
    note: str = ""  # what the bridge adds for the receiver (the round's checkpoint, finding ids, ...)
    topic: str = ""  # for the bridge's notices: what it is about

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


def message_of(event: Received) -> Message:
    return Message(event.id, event.sender, event.to, event.body, event.kind, event.created, event.fixed,
                   event.disputed)


@dataclass
class Book:
    entries: dict[str, Entry] = field(default_factory=dict)
    order: list[str] = field(default_factory=list)
    run_state: str = "running"
    agent_states: dict[str, str] = field(default_factory=dict)
    rejected: int = 0
    pastes: dict[str, Delivering] = field(default_factory=dict)  # recipient -> the latest paste made to it
    # The hook event files of what the human typed into a pane: a bridge started again does not hear one twice.
    human_turns: list[str] = field(default_factory=list)
    # recipient -> the entries still owed to it, oldest first (insertion order is seq order)
    _owed: dict[str, dict[str, Entry]] = field(default_factory=dict)
    _counts: Counter[tuple[str, str]] = field(default_factory=Counter)

    @property
    def next_seq(self) -> int:
        return len(self.order) + 1

    def apply(self, event: AnyEvent) -> None:
        if type(event) is Received:  # most of a ledger is messages and their deliveries: one look each
            self._receive(event)
        elif isinstance(event, Delivery):
            state = _STATES.get(type(event)) or tag_of(event)
            if isinstance(event, Delivering):
                self.pastes[event.to] = event
            for msg_id in event.ids:
                entry = self.entries.get(msg_id)
                if entry is not None and entry.deliveries.get(event.to) in OWED:
                    self._move(entry, event.to, state)
                    if event.reason:
                        entry.reasons[event.to] = event.reason
        elif isinstance(event, RunState):
            self.run_state = event.state
        elif isinstance(event, AgentState):
            self.agent_states[event.role] = event.state
        elif isinstance(event, Rejected):
            self.rejected += 1
        elif isinstance(event, HumanTurn) and event.event_file:
            self.human_turns.append(event.event_file)

    def _receive(self, event: Received) -> None:
        if event.id in self.entries:
            return
        entry = Entry(message_of(event), event.seq, event.digest, note=event.note, topic=event.topic)
        self.entries[event.id] = entry
        self.order.append(event.id)
        for recipient in entry.message.to:
            entry.deliveries[recipient] = QUEUED
            self._owed.setdefault(recipient, {})[entry.message.id] = entry
            self._counts[(recipient, QUEUED)] += 1

    def _move(self, entry: Entry, recipient: str, state: str) -> None:
        self._counts[(recipient, entry.deliveries[recipient])] -= 1
        self._counts[(recipient, state)] += 1
        entry.deliveries[recipient] = state
        if state not in OWED:
            self._owed.get(recipient, {}).pop(entry.message.id, None)

    def apply_all(self, events: Iterable[AnyEvent]) -> Book:
        for event in events:
            self.apply(event)
        return self

    def pending(self, recipient: str) -> list[Entry]:
        """Messages still owed to ``recipient``, oldest first."""
        return list(self._owed.get(recipient, {}).values())

    def oldest_owed(self, recipient: str) -> int | None:
        """The seq of the oldest message still owed to ``recipient`` (None when nothing is)."""
        entry = next(iter(self._owed.get(recipient, {}).values()), None)
        return entry.seq if entry is not None else None

    def owed(self, recipient: str) -> int:
        return len(self._owed.get(recipient, {}))

    def count(self, recipient: str, state: str) -> int:
        return self._counts[(recipient, state)]

    # ---- kept across a restart (bridge.replay) -------------------------------------------------------------

    def shelved(self) -> Shelf:
        """Everything the book knows, with its indexes, to be restored as it is (no entry made twice)."""
        return Shelf(self.order, list(self.entries.values()), self.run_state, self.agent_states, self.rejected,
                     self.pastes, self.human_turns, {r: list(owed) for r, owed in self._owed.items()},
                     [(r, state, n) for (r, state), n in self._counts.items()])

    @classmethod
    def restored(cls, shelf: Shelf) -> Book:
        entries = dict(zip(shelf.order, shelf.entries, strict=True))
        return cls(entries, shelf.order, shelf.run_state, shelf.agent_states, shelf.rejected, shelf.pastes,
                   shelf.human_turns, {r: {i: entries[i] for i in ids} for r, ids in shelf.owed.items()},
                   Counter({(r, state): n for r, state, n in shelf.counts}))


class Shelf(msgspec.Struct, array_like=True):
    """A book as kept in the ledger's snapshot: its entries in order, each once, and its indexes by id."""

    order: list[str]
    entries: list[Entry]
    run_state: str
    agent_states: dict[str, str]
    rejected: int
    pastes: dict[str, Delivering]
    human_turns: list[str]
    owed: dict[str, list[str]]
    counts: list[tuple[str, str, int]]
