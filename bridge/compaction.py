"""An agent compacted its context: its role card goes to it again, so a reviewer does not drift into implementing.

An agent reports a compaction through its hooks (claude: SessionStart with source "compact"; the sim: the
same event when told ``/compact``), as one ``compacted`` event file. Pure: the notice comes from the protocol's
state, and its id from the event file, so hearing the same file again (a restarted bridge) posts nothing new."""

from __future__ import annotations

import hashlib

from bridge.effects import Effects, Post
from bridge.protocol.state import Protocol
from bridge.rolecard import card_for

CARD_TOPIC = "role-card"  # what the notice is about (carried in its envelope)
# A real compaction comes after a context filled up, many turns apart; the event files are in the agents'
# workspace, where either agent can write them, so a stream of them must not become a stream of prompts.
CARD_INTERVAL = 60.0


def card_due(last_card_at: float | None, now: float, interval: float = CARD_INTERVAL) -> bool:
    """Whether a compaction heard ``now`` gets a card (monotonic seconds): not within ``interval`` of the last."""
    return last_card_at is None or now - last_card_at >= interval


def card_id(role: str, event_file: str) -> str:
    """The notice's id, from the event file's name (``<ns>-compacted.json``): one card per compaction. A name of
    another shape (anyone can write there) still gives a stable id that fits an envelope."""
    stamp = event_file.split("-", 1)[0]
    if not (stamp.isdigit() and len(stamp) <= 24):
        stamp = hashlib.sha256(event_file.encode("utf-8", "replace")).hexdigest()[:16]
    return f"card-{role}-{stamp}"


def card_after_compaction(role: str, event_file: str, protocol: Protocol) -> Effects:
    body = "\n".join([
        "Your context was just compacted; in case the summary lost it, here is your role card again.",
        card_for(role, protocol),
    ])
    return Effects(posts=[Post(card_id(role, event_file), (role,), body, "notice", CARD_TOPIC)])
