"""Message files: the one format every sender writes into ``outbox/<sender>/``."""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bridge.roles import AGENT_ROLES as AGENT_ROLES  # noqa: PLC0414 (re-exported: roles were spelled here first)
from bridge.roles import RECIPIENTS as RECIPIENTS  # noqa: PLC0414
from bridge.roles import SENDERS as SENDERS  # noqa: PLC0414
from bridge.roles import partner_of as partner_of  # noqa: PLC0414
from bridge.rundir.files import private_dir, write_atomic

KINDS = ("message", "task", "review", "approve", "changes", "done")  # what a sender may write
BRIDGE_KINDS = ("notice", "context")  # what only the bridge itself creates (sender "pairloop")

OUTBOX = "outbox"
# Message files larger than this are refused outright; bodies over the paste limit become attachments.
MAX_FILE_BYTES = 4 * 1024 * 1024
# \Z, not $: $ also matches before a final newline, and an id "abc\n" would break its envelope line.
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,120}\Z")
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,80}\Z")
PLAIN_SUFFIXES = (".txt", ".md")


class MalformedMessage(Exception):
    """A file in the outbox that cannot be a message; ``reason`` says why in plain words."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def new_message_id() -> str:
    """Sortable by creation time (milliseconds, hex) and unique enough across senders."""
    return f"{time.time_ns() // 1_000_000:x}-{secrets.token_hex(2)}"


@dataclass(frozen=True)
class Message:
    id: str
    sender: str
    to: tuple[str, ...]
    body: str
    kind: str = "message"
    created: float = field(default_factory=time.time)
    fixed: tuple[str, ...] = ()  # with a review request: finding ids the worker says are fixed
    disputed: tuple[str, ...] = ()  # ... and ones it disputes

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "v": 1,
            "id": self.id,
            "from": self.sender,
            "to": list(self.to),
            "kind": self.kind,
            "created": self.created,
            "body": self.body,
        }
        if self.fixed:
            data["fixed"] = list(self.fixed)
        if self.disputed:
            data["disputed"] = list(self.disputed)
        return data

    @classmethod
    def from_json(cls, data: Any) -> Message:
        """Validate a decoded JSON object; raise MalformedMessage with the first problem found."""
        if not isinstance(data, dict):
            raise MalformedMessage("not a JSON object")
        msg_id = data.get("id")
        if not isinstance(msg_id, str) or not _ID.match(msg_id):
            raise MalformedMessage("missing or invalid 'id'")
        sender = data.get("from")
        if sender not in SENDERS:
            raise MalformedMessage(f"'from' must be one of {', '.join(SENDERS)}")
        to = data.get("to")
        if isinstance(to, str):
            to = [to]
        if not isinstance(to, list) or not to or any(t not in RECIPIENTS for t in to):
            raise MalformedMessage(f"'to' must name one or more of {', '.join(RECIPIENTS)}")
        if sender in to:
            raise MalformedMessage("a sender cannot message itself")
        kind = data.get("kind", "message")
        if kind not in KINDS:
            raise MalformedMessage(f"'kind' must be one of {', '.join(KINDS)}")
        body = data.get("body")
        if not isinstance(body, str) or not body.strip():
            raise MalformedMessage("empty or missing 'body'")
        created = data.get("created", 0.0)
        if not isinstance(created, int | float):
            raise MalformedMessage("'created' must be a number")
        refs = {}
        for key in ("fixed", "disputed"):
            value = data.get(key, [])
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise MalformedMessage(f"'{key}' must be a list of finding ids")
            refs[key] = tuple(value)
        return cls(msg_id, sender, tuple(dict.fromkeys(to)), body, kind, float(created), **refs)


def outbox_dir(run_dir: Path) -> Path:
    return run_dir / OUTBOX


def post(outbox: Path, message: Message) -> Path:
    """Drop ``message`` into ``outbox/<sender>/`` atomically; the bridge takes it from there."""
    folder = outbox / message.sender
    private_dir(folder)  # 0700 whatever the umask, the outbox too if it is missing
    path = folder / f"{message.id}.json"
    write_atomic(path, json.dumps(message.to_json(), ensure_ascii=False).encode("utf-8"))
    return path


def is_candidate(name: str) -> bool:
    """Hidden names are writers' temp files; everything else in an outbox must be a message."""
    return not name.startswith(".")


def read_message_file(path: Path, outbox: Path) -> Message:
    """Parse one outbox file, refusing anything that is not plainly a message from that folder's sender."""
    sender = path.parent.name
    if path.parent.parent != outbox or sender not in SENDERS:
        raise MalformedMessage(f"not in a sender's outbox folder ({', '.join(SENDERS)})")
    if path.parent.is_symlink():
        raise MalformedMessage("the sender folder is a symlink")
    if not _NAME.match(path.name):
        raise MalformedMessage("file name has characters outside A-Z a-z 0-9 . _ -")
    st = path.lstat()
    if path.is_symlink():
        raise MalformedMessage("a symlink, not a file")
    if not path.is_file():
        raise MalformedMessage("not a regular file")
    if os.path.realpath(path) != str(outbox.resolve() / sender / path.name):
        raise MalformedMessage("path escapes the outbox")
    if st.st_size == 0:
        raise MalformedMessage("empty file")
    if st.st_size > MAX_FILE_BYTES:
        raise MalformedMessage(f"larger than {MAX_FILE_BYTES // (1024 * 1024)} MiB")
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MalformedMessage(f"not UTF-8 (byte {exc.start})") from None
    if path.suffix in PLAIN_SUFFIXES:
        return _plain_message(path, sender, text)
    if path.suffix != ".json":
        raise MalformedMessage("unknown file type: use .json (or .txt/.md for a plain note to the partner)")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise MalformedMessage(f"unparseable JSON: {exc.msg} (line {exc.lineno})") from None
    message = Message.from_json(data)
    if message.sender != sender:
        raise MalformedMessage(f"'from' is {message.sender!r} but the file is in the {sender!r} outbox")
    return message


def _plain_message(path: Path, sender: str, text: str) -> Message:
    """A plain text file from an agent is a note to its partner: any agent that can write a file can talk."""
    if sender not in AGENT_ROLES:
        raise MalformedMessage("plain-text files are only for agents; the human must name 'to' in JSON")
    if not text.strip():
        raise MalformedMessage("empty body")
    st = path.lstat()
    # The same file read again (after a crash) gets the same id; another file of the same name does not.
    tag = hashlib.sha256(f"{sender}\0{st.st_mtime_ns}\0{text}".encode()).hexdigest()[:8]
    stem = path.stem if _ID.match(path.stem) else "note"
    return Message(f"{stem[:60]}-{tag}", sender, (partner_of(sender),), text, "message", st.st_mtime)
