"""Tokens and usage limits, read from the agents' own records: claude's transcript, codex's rollout.

Both are JSON Lines files the agent appends to. The hook program tells the bridge where each one is (the records
path of a turn-end event); this module reads them incrementally (an offset kept per file, a partial last line
left for the next look, at most READ_BYTES per look), so it never blocks the relay and never counts a line twice.

Shapes (claude 2.1.332, codex 0.171.0):
- claude: an ``assistant`` entry carries ``message.id`` and ``message.usage`` (input_tokens,
  cache_creation_input_tokens, cache_read_input_tokens, output_tokens); a message streamed in several content
  blocks is written once per block with the same id, so usage counts once per id. An API error is an assistant
  entry with ``isApiErrorMessage``, ``error`` ("rate_limit" on a 429) and ``apiErrorStatus``.
- codex: ``{"type": "event_msg", "payload": {"type": "token_count", "info": {"total_token_usage": {...}}}}``
  holds the thread's running total; a turn that hit a limit ends with ``task_complete`` whose ``error`` has
  ``codex_error_info`` "usage_limit_exceeded" (or the rate-limit block names ``rate_limit_reached_type``).
The sim agent writes claude's shape."""

from __future__ import annotations

import fnmatch
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from bridge.rundir.agent_events import InvalidAgentEvent, open_untrusted
from bridge.rundir.manifest import RecordsRoot

CLAUDE, CODEX = "claude-transcript", "codex-rollout"
FORMATS = (CLAUDE, CODEX)
READ_BYTES = 1024 * 1024  # per file per look: a huge transcript is caught up over several passes
MAX_LINE = 4 * 1024 * 1024  # a longer "line" is skipped, not kept growing in memory


@dataclass(frozen=True)
class Tokens:
    """``input`` counts every input token (cache reads and writes included), ``cached`` those read from a cache."""

    input: int = 0
    cached: int = 0
    output: int = 0

    @property
    def total(self) -> int:
        return self.input + self.output

    def __add__(self, other: Tokens) -> Tokens:
        return Tokens(self.input + other.input, self.cached + other.cached, self.output + other.output)


@dataclass(frozen=True)
class LimitHit:
    """A usage or rate limit the agent ran into, as its records say; ``at`` is the record's timestamp."""

    reason: str
    at: str = ""


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


def claude_usage(usage: dict[str, Any]) -> Tokens:
    cache_read = _int(usage.get("cache_read_input_tokens"))
    inputs = _int(usage.get("input_tokens")) + _int(usage.get("cache_creation_input_tokens")) + cache_read
    return Tokens(inputs, cache_read, _int(usage.get("output_tokens")))


def codex_usage(usage: dict[str, Any]) -> Tokens:
    return Tokens(_int(usage.get("input_tokens")), _int(usage.get("cached_input_tokens")),
                  _int(usage.get("output_tokens")))


@dataclass
class Tally:
    """What one record file said so far: claude's usage per message id, codex's latest running total."""

    by_message: dict[str, Tokens] = field(default_factory=dict)
    running: Tokens = Tokens()
    limits: list[LimitHit] = field(default_factory=list)  # found since the caller last took them

    @property
    def tokens(self) -> Tokens:
        total = self.running
        for used in self.by_message.values():
            total = total + used
        return total


def _claude_line(entry: dict[str, Any], tally: Tally) -> None:
    if entry.get("type") != "assistant":
        return
    message = entry.get("message")
    if entry.get("isApiErrorMessage"):
        status = entry.get("apiErrorStatus")
        kind = str(entry.get("error") or "")
        if status == 429 or kind in ("rate_limit", "usage_limit", "billing_error"):
            text = ""
            if isinstance(message, dict) and isinstance(message.get("content"), list) and message["content"]:
                first = message["content"][0]
                text = str(first.get("text", "")) if isinstance(first, dict) else ""
            tally.limits.append(LimitHit(text or f"API error {status} ({kind})", str(entry.get("timestamp", ""))))
        return
    if isinstance(message, dict) and isinstance(message.get("usage"), dict):
        key = str(message.get("id") or entry.get("uuid") or len(tally.by_message))
        tally.by_message[key] = claude_usage(message["usage"])


def _codex_line(entry: dict[str, Any], tally: Tally) -> None:
    payload = entry.get("payload")
    if entry.get("type") != "event_msg" or not isinstance(payload, dict):
        return
    if payload.get("type") == "token_count":
        info = payload.get("info")
        if isinstance(info, dict) and isinstance(info.get("total_token_usage"), dict):
            tally.running = codex_usage(info["total_token_usage"])
        limits = payload.get("rate_limits")
        if isinstance(limits, dict) and limits.get("rate_limit_reached_type"):
            tally.limits.append(LimitHit(f"rate limit reached ({limits['rate_limit_reached_type']})",
                                         str(entry.get("timestamp", ""))))
    elif payload.get("type") == "task_complete" and isinstance(payload.get("error"), dict):
        # codex_error_info: "usage_limit_exceeded" (a usage limit, or no quota left), or for a 429 after its
        # retries {"response_too_many_failed_attempts": {"http_status_code": 429}}.
        error = payload["error"]
        info = error.get("codex_error_info")
        status = next((v.get("http_status_code") for v in info.values() if isinstance(v, dict)), None) \
            if isinstance(info, dict) else None
        if (isinstance(info, str) and "limit" in info) or status == 429:
            tally.limits.append(LimitHit(str(error.get("message") or info), str(entry.get("timestamp", ""))))


def read_line(fmt: str, line: bytes, tally: Tally) -> None:
    """Fold one record line into ``tally``; anything that is not a record we know is passed over."""
    try:
        entry = json.loads(line)
    except ValueError:
        return
    if isinstance(entry, dict):
        (_claude_line if fmt == CLAUDE else _codex_line)(entry, tally)


def refusal(path: str, roots: Sequence[RecordsRoot]) -> str:
    """Why a record path an agent's event named is not read ("" when it may be): it must be a file named as the
    agent names its records, under one of the role's roots (recorded at start from the agent's environment), the
    real path included, so a forged path cannot make the bridge read another file or another agent's records.
    No roots (a run from before they were recorded): only the opening rules of :meth:`RecordFile.read` apply."""
    if not roots:
        return ""
    if not os.path.isabs(path) or "\0" in path:
        return "not an absolute path"
    real = os.path.realpath(path)
    for root in roots:
        top = os.path.realpath(root.dir)
        if (os.path.commonpath([top, real]) == top and real != top
                and fnmatch.fnmatchcase(os.path.basename(real), root.name)):
            return ""
    return "not where this agent keeps its records"


class RecordFile:
    """One agent's record file, read on from where the last look stopped."""

    def __init__(self, path: str, fmt: str) -> None:
        self.path, self.fmt = path, fmt
        self.offset = 0
        self.partial = b""
        self.tally = Tally()
        self.problem = ""

    def read(self) -> bool:
        """Read what was appended since the last look (up to READ_BYTES); True when something new was read. A
        missing file is not yet written; anything but a regular file (a symlink, a FIFO, a device) is never read,
        so the bridge cannot be made to block on it or follow a link (the event files' rule, bridge.rundir)."""
        try:
            fd, st = open_untrusted(self.path)
        except InvalidAgentEvent as exc:
            self.problem = "" if exc.missing else f"cannot read {self.path}: {exc.reason}"
            return False
        try:
            if st.st_size < self.offset:  # replaced or cut short: start over
                self.offset, self.partial, self.tally = 0, b"", Tally()
            if st.st_size == self.offset:
                return False
            data = os.pread(fd, min(READ_BYTES, st.st_size - self.offset), self.offset)
        except OSError as exc:
            self.problem = f"cannot read {self.path}: {exc.strerror}"
            return False
        finally:
            os.close(fd)
        self.problem = ""
        self.offset += len(data)
        lines = (self.partial + data).split(b"\n")
        self.partial = lines.pop()  # the last piece: "" after a newline, or a line still being written
        if len(self.partial) > MAX_LINE:
            self.partial = b""
        for line in lines:
            if line.strip():
                read_line(self.fmt, line, self.tally)
        return True


__all__ = ["CLAUDE", "CODEX", "FORMATS", "LimitHit", "RecordFile", "Tally", "Tokens", "read_line", "refusal"]
