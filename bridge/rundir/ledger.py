"""The append-only, fsync'd ledger: every message and every state change, the source of truth."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any


class Ledger:
    """One JSON object per line. Appends are single ``write`` calls on an O_APPEND descriptor, so a
    second writer (``pairloop stop``) never interleaves inside a line, and each is fsync'd before we act."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        self._needs_newline = _ends_without_newline(path)

    def append(self, event: dict[str, Any]) -> dict[str, Any]:
        record = {"ts": round(time.time(), 6), **event}
        line = json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n"
        if self._needs_newline:
            # A crash cut the previous line short: start ours on a fresh line so both stay parseable.
            line = "\n" + line
            self._needs_newline = False
        os.write(self._fd, line.encode("utf-8"))
        os.fsync(self._fd)
        return record

    def close(self) -> None:
        os.close(self._fd)

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _ends_without_newline(path: Path) -> bool:
    size = path.stat().st_size
    if size == 0:
        return False
    with path.open("rb") as f:
        f.seek(size - 1)
        return f.read(1) != b"\n"


def read_events(path: Path, start: int = 0) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield (offset after the line, event) for each complete, parseable line from ``start``.

    A torn last line (the writer was killed mid-write) and any unparseable line are skipped, not fatal."""
    try:
        f = path.open("rb")
    except FileNotFoundError:
        return
    with f:
        f.seek(start)
        offset = start
        for raw in f:
            if not raw.endswith(b"\n"):
                return  # incomplete: a follower will read it again once it is finished
            offset += len(raw)
            try:
                event = json.loads(raw)
            except (json.JSONDecodeError, UnicodeDecodeError):
                continue
            if isinstance(event, dict):
                yield offset, event


def append_once(path: Path, event: dict[str, Any]) -> None:
    """Append one event from a process other than the bridge (for example ``pairloop stop``)."""
    with Ledger(path) as ledger:
        ledger.append(event)
