"""Put a batch into an agent's input box and make sure it was submitted. tmux I/O lives here."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from bridge.deadline import poll
from bridge.panes.screen import BUSY, EXITED, Reading, classify, input_text
from bridge.panes.tmux import Tmux, TmuxError
from bridge.rundir.manifest import Target

CONFIRM_SECONDS = 5.0
RETRY_AFTER_SECONDS = 0.8
PASTE_SHOWS_SECONDS = 1.0


@dataclass(frozen=True)
class Outcome:
    ok: bool
    via: str = ""  # "receipt" or "screen"
    reason: str = ""


def read_target(tmux: Tmux, target: Target) -> Reading:
    """The agent's state from its screen; a missing or dead pane reads as exited."""
    info, screen = tmux.look(target.pane)
    if info is None:
        return Reading(EXITED, "pane is gone")
    if info.dead:
        return Reading(EXITED, f"agent exited (status {info.dead_status or '?'})")
    reading = classify(screen, target.rules)
    return replace(reading, screen=screen)


def _cleared(tmux: Tmux, target: Target, before: str) -> bool:
    """Screen evidence of a submit: the screen moved on, and our text is no longer in the input box."""
    screen = tmux.capture(target.pane)
    if screen == before:
        return False
    reading = classify(screen, target.rules)
    if reading.state == BUSY:
        return True
    return input_text(screen, target.rules) == ""


def _poll(seconds: float, check: Callable[[], str | None]) -> str | None:
    """The agent reacts on its own clock: look often at first (a submit shows within milliseconds)."""
    return poll(check, seconds, delay=0.005, max_delay=0.05)


def deliver(
    tmux: Tmux,
    target: Target,
    text: str,
    paste_file: Path,
    buffer: str,
    receipt: Callable[[], bool],
    before: str,
) -> Outcome:
    """Paste ``text`` bracketed and press the submit key; confirm by hook receipt first, screen second;
    press submit once more if the text is still sitting in the box; otherwise report failure."""
    fd = os.open(paste_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, text.encode("utf-8"))
    finally:
        os.close(fd)
    try:
        if target.rules.submit_after_paste_shows:
            tmux.paste(target.pane, paste_file, buffer)
            _poll(PASTE_SHOWS_SECONDS, lambda: _holds_text(tmux, target))
            tmux.send_keys(target.pane, target.submit_key)
        else:
            tmux.paste(target.pane, paste_file, buffer, target.submit_key)
    except TmuxError as exc:
        return Outcome(False, reason=f"paste failed: {exc}")
    finally:
        paste_file.unlink(missing_ok=True)
    return confirm(tmux, target, receipt, before)


def _holds_text(tmux: Tmux, target: Target) -> str | None:
    try:
        return "yes" if input_text(tmux.capture(target.pane), target.rules) else None
    except TmuxError:
        return None


def submit_again(tmux: Tmux, target: Target, receipt: Callable[[], bool]) -> Outcome:
    """Our own paste sits unsubmitted in the box (we were stopped between paste and submit): submit it."""
    try:
        before = tmux.capture(target.pane)
        tmux.send_keys(target.pane, target.submit_key)
    except TmuxError as exc:
        return Outcome(False, reason=f"paste failed: {exc}")
    return confirm(tmux, target, receipt, before)


def confirm(tmux: Tmux, target: Target, receipt: Callable[[], bool], before: str) -> Outcome:
    """Wait for evidence of the submit; if none comes soon, press the submit key once more (a TUI that has
    only just started may drop the first one: the text then sits in its box), then wait out the deadline."""
    def check() -> str | None:
        if receipt():
            return "receipt"
        try:
            return "screen" if _cleared(tmux, target, before) else None
        except TmuxError:
            return None

    start = time.monotonic()
    via = _poll(RETRY_AFTER_SECONDS, check)
    if via:
        return Outcome(True, via)
    try:
        tmux.send_keys(target.pane, target.submit_key)
    except TmuxError as exc:
        return Outcome(False, reason=f"submit key failed: {exc}")
    via = _poll(start + CONFIRM_SECONDS - time.monotonic(), check)
    if via:
        return Outcome(True, via)
    return Outcome(False, reason="the input box did not clear after two submit presses")
