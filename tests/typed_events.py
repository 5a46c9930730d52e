"""Building the ledger's typed events in tests with only the fields a test cares about."""

from __future__ import annotations

from bridge.book import Entry
from bridge.router import Paste
from bridge.rundir.events import DELIVERY_EVENTS, Delivered, Delivering, Failed, Queued, Received, Suppressed
from bridge.rundir.message import Message

DeliveryEvent = Queued | Delivering | Delivered | Failed | Suppressed


def received(msg_id: str, seq: int, sender: str = "worker", to: tuple[str, ...] = ("reviewer",),
             kind: str = "message", body: str = "body", created: float = 1.0, note: str = "",
             topic: str = "") -> Received:
    return Received(ts=5.0, seq=seq, id=msg_id, sender=sender, to=to, kind=kind, body=body, created=created,
                    digest=f"d-{msg_id}", file=f"{msg_id}.json", note=note, topic=topic)


def delivery(state: str, to: str, *ids: str, reason: str = "", via: str = "") -> DeliveryEvent:
    """A delivery event of kind ``state`` (queued, delivering, delivered, failed, suppressed)."""
    return DELIVERY_EVENTS[state](to=to, ids=ids, reason=reason, via=via)


def entry(msg_id: str, seq: int = 1, sender: str = "human", to: str = "worker", body: str = "body",
          kind: str = "message") -> Entry:
    return Entry(Message(msg_id, sender, (to,), body, kind, 1.0), seq, "d", {to: "queued"})


def paste_of(text: str, ids: tuple[str, ...]) -> Paste:
    """The paste the relay records (in its Delivering event) before it pastes ``text``."""
    return Paste(ids, text.split("\n", 1)[0], text.count("\n") + 1)


def delivering_paste(to: str, text: str, ids: tuple[str, ...]) -> Delivering:
    return Delivering(to=to, ids=ids, paste_first_line=text.split("\n", 1)[0], paste_lines=text.count("\n") + 1)
