"""Put a batch into an agent's input box and make sure it was submitted. tmux I/O lives here."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from bridge.deadline import poll
from bridge.panes.screen import BUSY, EXITED, Reading, classify, input_text
from bridge.panes.tmux import PaneInfo, Tmux, TmuxError
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
        return Reading(EXITED, f"agent exited ({why_dead(unreaped(info))})")
    reading = classify(screen, target.rules)
    return replace(reading, screen=screen, pane_mode=info.mode, input_off=info.input_off)


def why_dead(info: PaneInfo) -> str:
    """How the pane's program ended, in words: its exit status, or the signal that killed it."""
    if info.dead_status.strip():
        return f"status {info.dead_status.strip()}"
    number = info.dead_signal.strip()
    if number.isdigit():
        try:
            return f"killed by signal {number}, {signal.Signals(int(number)).name}"
        except ValueError:
            return f"killed by signal {number}"
    return "no exit status: killed by a signal?"


def unreaped(info: PaneInfo) -> PaneInfo:
    """tmux 3.3a now and then misses a pane's SIGCHLD: the pane is dead, tmux knows neither status nor signal,
    and the process waits as a zombie. Its exit is then read where Linux keeps it (/proc/PID/stat, field 52)."""
    if info.dead_status or info.dead_signal or info.pid <= 0:
        return info
    try:
        fields = Path(f"/proc/{info.pid}/stat").read_text().rsplit(")", 1)[1].split()
        if fields[0] != "Z":
            return info
        code = int(fields[49])
    except (OSError, IndexError, ValueError):
        return info
    if os.WIFSIGNALED(code):
        return replace(info, dead_signal=str(os.WTERMSIG(code)))
    if os.WIFEXITED(code):
        return replace(info, dead_status=str(os.WEXITSTATUS(code)))
    return info


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


def _key_buffer(target: Target) -> str:
    """The tmux buffer the submit key's bytes pass through (see Tmux.press)."""
    return f"pairloop-{os.getpid()}-{target.role}-key"


def deliver(
    tmux: Tmux,
    target: Target,
    paste_file: Path,
    buffer: str,
    receipt: Callable[[], bool],
    before: str,
) -> Outcome:
    """Paste the text in ``paste_file`` (written whole by the caller) bracketed and press the submit key;
    confirm by hook receipt first, screen second; press submit once more if the text is still sitting in the
    box; otherwise report failure."""
    try:
        if target.rules.submit_after_paste_shows:
            tmux.paste(target.pane, paste_file, buffer)
            _poll(PASTE_SHOWS_SECONDS, lambda: _holds_text(tmux, target))
            tmux.press(target.pane, target.submit_key, _key_buffer(target))
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
        tmux.press(target.pane, target.submit_key, _key_buffer(target))
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
        tmux.press(target.pane, target.submit_key, _key_buffer(target))
    except TmuxError as exc:
        return Outcome(False, reason=f"submit key failed: {exc}")
    via = _poll(start + CONFIRM_SECONDS - time.monotonic(), check)
    if via:
        return Outcome(True, via)
    return Outcome(False, reason="the input box did not clear after two submit presses")
