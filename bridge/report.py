"""Say what the bridge did and why: one short line per event in the bridge pane, the full story in bridge.log.

Everything said here may quote a message or an agent, so it is made inert before it reaches the terminal. A log
that cannot be written (a full disk) never stops the bridge: the pane still shows the line."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from bridge.panes.sanitize import inert

if TYPE_CHECKING:  # the bridge's keeper writes this log too, and imports as little as it can
    from bridge.book import Entry

BRIDGE_LOG = "bridge.log"
PENDING_LOG_BYTES = 256 * 1024  # kept waiting while the disk is full; later lines are counted, not kept


def snippet(text: str, width: int = 40) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def describe(entry: Entry, to: str | None = None) -> str:
    msg = entry.message
    return f'{msg.sender} → {to or ",".join(msg.to)}  #{entry.seq} "{snippet(msg.body)}"'


class Reporter:
    def __init__(self, run_dir: Path, out: TextIO | None = None) -> None:
        self._fd = os.open(run_dir / BRIDGE_LOG, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        os.fchmod(self._fd, 0o600)
        self._out = out if out is not None else sys.stdout
        self._pending = bytearray()  # log lines (or their ends) a full disk refused, oldest first
        self._dropped = 0  # lines beyond what is kept waiting
        self.log_problem = ""  # why bridge.log cannot be written now ("" when it can)

    @property
    def log_failing(self) -> bool:
        return bool(self.log_problem)

    def line(self, text: str, detail: str = "") -> None:
        shown = inert(text)
        try:
            self._out.write(f"{time.strftime('%H:%M:%S')} {shown}\n")
            self._out.flush()
        except (OSError, ValueError):
            pass  # the pane went away; the log still has it
        extra = f"  — {inert(detail)}" if detail else ""
        data = f"{time.strftime('%Y-%m-%dT%H:%M:%S')} {shown}{extra}\n".encode("utf-8", "replace")
        if len(self._pending) + len(data) > PENDING_LOG_BYTES:
            self._dropped += 1
        else:
            self._pending += data
        self.retry()

    def retry(self) -> None:
        """Write what the log still holds, in order (a write cut short goes on where it stopped); once it is all
        written, say how many lines could not be kept. A full disk never stops the bridge: the pane has each
        line, the ledger has the facts."""
        while self._pending:
            try:
                written = os.write(self._fd, self._pending)
            except OSError as exc:
                self.log_problem = f"cannot write {BRIDGE_LOG}: {exc.strerror or exc}"
                return
            if written <= 0:
                self.log_problem = f"cannot write {BRIDGE_LOG}: the write made no progress"
                return
            del self._pending[:written]
            if not self._pending and self._dropped:
                self._pending += (f"{time.strftime('%Y-%m-%dT%H:%M:%S')} ({self._dropped} lines of this log were "
                                  "not kept while it could not be written)\n").encode()
                self._dropped = 0
        self.log_problem = ""

    def bell(self) -> None:
        try:
            self._out.write("\a")
            self._out.flush()
        except (OSError, ValueError):
            pass

    def close(self) -> None:
        self.retry()
        try:
            os.close(self._fd)
        except OSError:
            pass
