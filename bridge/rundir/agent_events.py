"""``events/<role>/``: what an agent reports through its hooks, one small file per event.

Written by the hook program the agents run (and by the sim agent); read by the bridge. Everything an agent
writes is untrusted data: a file that is not a valid event is skipped with the reason, never trusted."""

from __future__ import annotations

import errno
import os
import time
from pathlib import Path
from typing import Literal

import msgspec

from bridge.rundir.files import NotAFile, open_regular, private_dir, write_atomic

EVENTS = "events"
AgentEventKind = Literal["prompt", "stop", "attention", "compacted"]


class InvalidAgentEvent(Exception):
    def __init__(self, reason: str, missing: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.missing = missing  # the file is not there (yet)


class AgentEvent(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """``prompt``: a prompt was submitted (a delivery receipt, or the human's own turn); ``stop``: the turn ended;
    ``attention``: the agent waits on a permission prompt; ``compacted``: the agent compacted its context (its
    role card is due again)."""

    event: AgentEventKind
    ts: float = 0.0
    source: str = ""  # which hook call it came from
    prompt: str = ""
    session_id: str | None = None
    late: bool = False  # reported when the turn ended (codex), so it says nothing of the agent now
    message: str = ""
    agent: str = ""
    records: str = ""  # where the agent keeps its own records (claude's transcript, codex's rollout): bridge.usage


_decoder = msgspec.json.Decoder(AgentEvent)


def events_dir(run_dir: Path, role: str) -> Path:
    return run_dir / EVENTS / role


def write_agent_event(run_dir: Path, role: str, event: AgentEvent, n: int = 0) -> Path:
    """One file per event, named so they sort in the order they happened. The folder is made if need be: an
    agent's hook may fire before the bridge has prepared the run directory."""
    stamped = event if event.ts else msgspec.structs.replace(event, ts=time.time())
    path = private_dir(events_dir(run_dir, role)) / f"{time.time_ns() + n}-{event.event}.json"
    write_atomic(path, msgspec.json.encode(stamped))
    return path


MAX_EVENT_BYTES = 4 * 1024 * 1024


def open_untrusted(path: str | Path) -> tuple[int, os.stat_result]:
    """Open a file an agent named or wrote, for reading: a regular file only (never a link, a FIFO that would
    block the bridge, or a device). Returns the descriptor (the caller closes it) and its stat; a file that is
    not there raises InvalidAgentEvent with ``missing`` set."""
    try:
        return open_regular(path)
    except NotAFile as exc:
        raise InvalidAgentEvent(exc.strerror or "not a regular file") from None
    except OSError as exc:
        raise InvalidAgentEvent(f"unreadable: {exc.strerror}", missing=exc.errno == errno.ENOENT) from None


def read_agent_event(path: Path) -> AgentEvent:
    """One event file, read as the untrusted data it is: a regular file (never a link, a FIFO that would block
    the bridge, or a device), of a sane size, that validates."""
    fd, st = open_untrusted(path)
    try:
        if st.st_size > MAX_EVENT_BYTES:
            raise InvalidAgentEvent("larger than 4 MiB")
        with os.fdopen(os.dup(fd), "rb") as f:
            data = f.read(MAX_EVENT_BYTES + 1)
    except OSError as exc:
        raise InvalidAgentEvent(f"unreadable: {exc.strerror}") from None
    finally:
        os.close(fd)
    if len(data) > MAX_EVENT_BYTES:
        raise InvalidAgentEvent("larger than 4 MiB")
    try:
        return _decoder.decode(data)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise InvalidAgentEvent(str(exc)) from None
