"""Say what the bridge did and why: one short line per event in the bridge pane, the full story in bridge.log.

Everything said here may quote a message or an agent, so it is made inert before it reaches the terminal. A log
that cannot be written (a full disk) never stops the bridge: the pane still shows the line."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import TextIO

from bridge.book import Entry
from bridge.panes.sanitize import inert

BRIDGE_LOG = "bridge.log"


def snippet(text: str, width: int = 40) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def describe(entry: Entry, to: str | None = None) -> str:
    msg = entry.message
    return f'{msg.sender} → {to or ",".join(msg.to)}  #{entry.seq} "{snippet(msg.body)}"'


class Reporter:
    def __init__(self, run_dir: Path, out: TextIO | None = None) -> None:
        fd = os.open(run_dir / BRIDGE_LOG, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        os.fchmod(fd, 0o600)
        self._log = os.fdopen(fd, "a", encoding="utf-8")
        self._out = out if out is not None else sys.stdout
        self.log_failing = False

    def line(self, text: str, detail: str = "") -> None:
        shown = inert(text)
        try:
            self._out.write(f"{time.strftime('%H:%M:%S')} {shown}\n")
            self._out.flush()
        except (OSError, ValueError):
            pass  # the pane went away; the log still has it
        try:
            extra = f"  — {inert(detail)}" if detail else ""
            self._log.write(f"{time.strftime('%Y-%m-%dT%H:%M:%S')} {shown}{extra}\n")
            self._log.flush()
            self.log_failing = False
        except OSError:
            self.log_failing = True  # a full disk: the pane has it, the ledger has the facts

    def bell(self) -> None:
        try:
            self._out.write("\a")
            self._out.flush()
        except (OSError, ValueError):
            pass

    def close(self) -> None:
        try:
            self._log.close()
        except OSError:
            pass
