"""Say what the bridge did and why: one short line per event in the bridge pane, the full story in bridge.log."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import TextIO

from bridge.book import Entry


def snippet(text: str, width: int = 40) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def describe(entry: Entry, to: str | None = None) -> str:
    msg = entry.message
    return f'{msg.sender} → {to or ",".join(msg.to)}  #{entry.seq} "{snippet(msg.body)}"'


class Reporter:
    def __init__(self, log_path: Path, out: TextIO | None = None) -> None:
        self._log = log_path.open("a", encoding="utf-8")
        self._out = out if out is not None else sys.stdout

    def line(self, text: str, detail: str = "") -> None:
        stamp = time.strftime("%H:%M:%S")
        try:
            self._out.write(f"{stamp} {text}\n")
            self._out.flush()
        except (OSError, ValueError):
            pass  # the pane went away; the log still has it
        self._log.write(f"{time.strftime('%Y-%m-%dT%H:%M:%S')} {text}{'  — ' + detail if detail else ''}\n")
        self._log.flush()

    def bell(self) -> None:
        try:
            self._out.write("\a")
            self._out.flush()
        except (OSError, ValueError):
            pass

    def close(self) -> None:
        self._log.close()
