"""What the receiving agent sees: a one-line envelope per message, then the sanitized body. Pure."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bridge.book import Entry
from bridge.panes.sanitize import sanitize
from bridge.panes.screen import ENVELOPE_MARK

# Bodies larger than this are saved as a file and the paste names the file instead.
PASTE_LIMIT = 16 * 1024
_ID_IN_TEXT = re.compile(r"· id ([A-Za-z0-9][A-Za-z0-9._-]{0,80}) ·")
_LABELS = {"task": "task", "approve": "approval", "done": "done", "message": "message",
           "review": "review request", "changes": "changes requested", "notice": "notice", "context": "context"}


def reply_hint(sender: str) -> str:
    if sender == "human":
        return 'reply: pairloop send --to human "<text>"'
    if sender == "pairloop":
        return "from the bridge"
    return 'reply: pairloop send "<text>"'


def header(entry: Entry) -> str:
    msg = entry.message
    label = _LABELS.get(msg.kind, msg.kind) + (f" ({entry.topic})" if entry.topic else "")
    return f"{ENVELOPE_MARK} #{entry.seq} {label} from {msg.sender} · id {msg.id} · {reply_hint(msg.sender)}"


_INVISIBLE = {ord(c): None for c in "\u200b\u200c\u200d\u2060\ufeff\u00ad"}
QUOTE = "> "


def looks_like_ours(line: str) -> bool:
    """A line a reader could take for one of pairloop's own (an envelope, a note, the footer)."""
    return line.translate(_INVISIBLE).lstrip().lower().startswith(ENVELOPE_MARK)


def neutralize(text: str) -> str:
    """Quote every line that looks like pairloop's own, so only the bridge's lines start with the mark: a body
    can quote an envelope but never forge one. Every other line is left exactly as it was."""
    return "\n".join(QUOTE + line if looks_like_ours(line) else line for line in text.split("\n"))


def render(entries: Sequence[Entry], attachments: dict[str, str], footer: str = "") -> str:
    """One paste for a batch: each message's envelope line and body (and the bridge's note on it), in order,
    blank line between; then ``footer`` (which verbs apply now).

    ``attachments`` maps message id -> file path for bodies over PASTE_LIMIT."""
    parts = []
    for entry in entries:
        path = attachments.get(entry.message.id)
        if path is not None:
            size = len(entry.message.body.encode("utf-8"))
            body = f"(the body is {size} bytes, saved as a file: read {path})"
        else:
            body = neutralize(sanitize(entry.message.body))
        note = f"\n{ENVELOPE_MARK} {neutralize(sanitize(entry.note))}" if entry.note else ""
        parts.append(f"{header(entry)}\n{body}{note}")
    if footer:
        parts.append(f"{ENVELOPE_MARK} {footer}")
    return "\n\n".join(parts)


ATTACHMENTS = "attachments"


def attachment_path(folder: Path, msg_id: str) -> Path:
    return folder / f"{msg_id}.txt"


def needs_attachment(entry: Entry) -> bool:
    return len(entry.message.body.encode("utf-8")) > PASTE_LIMIT


def ids_in(text: str) -> set[str]:
    """Message ids named by envelopes in a prompt: a receipt for each."""
    return set(_ID_IN_TEXT.findall(text))


_HEADER_LINE = re.compile(r"^\[pairloop\] #(?P<seq>\d+) (?P<label>.+?) from (?P<sender>\S+) · id (?P<id>\S+) · .*$",
                          re.MULTILINE)


@dataclass(frozen=True)
class Parsed:
    seq: int
    label: str
    sender: str
    id: str
    body: str
    note: str

    @property
    def topic(self) -> str:
        """What a notice from the bridge is about: "notice (not-done)" → "not-done"."""
        m = re.fullmatch(r"\S+ \(([\w-]+)\)", self.label)
        return m[1] if m else ""


def parse(prompt: str) -> tuple[list[Parsed], str]:
    """Take a pasted batch apart again: its messages (body, and the bridge's note) and its footer.

    No body line starts with "[pairloop]": render() quotes any that would (see neutralize)."""
    heads = list(_HEADER_LINE.finditer(prompt))
    out: list[Parsed] = []
    footer = ""
    for i, head in enumerate(heads):
        end = heads[i + 1].start() - 2 if i + 1 < len(heads) else len(prompt)
        segment = prompt[head.end() + 1 : max(end, head.end() + 1)]
        if i + 1 == len(heads):
            cut = segment.rfind(f"\n\n{ENVELOPE_MARK} ")
            if cut >= 0:
                segment, footer = segment[:cut], segment[cut + 2 + len(ENVELOPE_MARK) + 1 :]
        body, _, note = segment.partition(f"\n{ENVELOPE_MARK} ")
        out.append(Parsed(int(head["seq"]), head["label"], head["sender"], head["id"], body, note))
    return out, footer
