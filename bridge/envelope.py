"""What the receiving agent sees: a one-line envelope per message, then the sanitized body. Pure."""

from __future__ import annotations

import re
from collections.abc import Sequence

from bridge.book import Entry
from bridge.sanitize import sanitize
from bridge.screen import ENVELOPE_MARK

# Bodies larger than this are saved as a file and the paste names the file instead.
PASTE_LIMIT = 16 * 1024
_ID_IN_TEXT = re.compile(r"· id ([A-Za-z0-9][A-Za-z0-9._-]{0,80}) ·")
_LABELS = {"task": "task", "approve": "approval", "done": "done", "message": "message"}


def reply_hint(sender: str) -> str:
    if sender == "human":
        return 'reply: pairloop send --to human "<text>"'
    return 'reply: pairloop send "<text>"'


def header(entry: Entry) -> str:
    msg = entry.message
    label = _LABELS.get(msg.kind, msg.kind)
    return f"{ENVELOPE_MARK} #{entry.seq} {label} from {msg.sender} · id {msg.id} · {reply_hint(msg.sender)}"


def render(entries: Sequence[Entry], attachments: dict[str, str]) -> str:
    """One paste for a batch: each message's envelope line and body, in order, blank line between.

    ``attachments`` maps message id -> file path for bodies over PASTE_LIMIT."""
    parts = []
    for entry in entries:
        path = attachments.get(entry.message.id)
        if path is not None:
            size = len(entry.message.body.encode("utf-8"))
            body = f"(the body is {size} bytes, saved as a file: read {path})"
        else:
            body = sanitize(entry.message.body)
        parts.append(f"{header(entry)}\n{body}")
    return "\n\n".join(parts)


def needs_attachment(entry: Entry) -> bool:
    return len(entry.message.body.encode("utf-8")) > PASTE_LIMIT


def ids_in(text: str) -> set[str]:
    """Message ids named by envelopes in a prompt: a receipt for each."""
    return set(_ID_IN_TEXT.findall(text))
