"""Calls to the human that reach the human: besides the bell and the tmux message (bridge.desk), a desktop
notification where one can be shown, and the run's ``notify`` command.

The pure part decides which calls notify and with what JSON (:func:`due`, :func:`payload`, :func:`osc`); the
:class:`Notifier` carries it out without ever blocking the relay: the command and notify-send run in the
background with a timeout, and what goes wrong is said in bridge.log, never fatal.

- ``notify = ["cmd", …]`` (from the configuration as it stood at start, or the human's flags: run.json) gets one
  JSON object per call on its standard input: ``{"kind", "run", "role", "reason", "round", "text", "ts"}``.
- notify-send, when it is installed and a desktop session is there (DBUS_SESSION_BUS_ADDRESS, DISPLAY or
  WAYLAND_DISPLAY).
- A terminal notification (OSC 9, or OSC 777 with PAIRLOOP_OSC=777; PAIRLOOP_OSC=off for none) written by the
  bridge to its own pane wrapped in tmux's passthrough, which tmux allows for the bridge pane alone: tmux writes it
  to the attached terminal between its own output, never into the middle of it (a write straight to the client's
  tty could land inside an escape sequence tmux is drawing), and no agent pane can pass anything through. Only
  one of the two sequences is sent, since terminals that know both would show the notification twice. Its text
  has every control character removed first: nothing from a message or an agent can end the sequence early."""

from __future__ import annotations

import json
import os
import queue
import shutil
import subprocess
import threading
import time
from dataclasses import dataclass
from typing import Any, TextIO

from bridge.panes.sanitize import sanitize

# What a call is about. Every call notifies; these are the kinds a notify command can route on.
DIALOG = "dialog"  # a dialog waits in an agent's pane
PERMISSION = "permission"  # an agent asks permission (its hook said so)
PAUSED = "paused"  # the governor paused the relay
BUDGET = "budget"  # the run crossed its token budget
USAGE_LIMIT = "usage-limit"  # an agent hit a usage or rate limit
VERIFY_FAILED = "verify-failed"  # the verification failed twice in a row
AGREED = "agreed"  # the pair agreed the work is done
DELIVERY_FAILED = "delivery-failed"
DISK = "disk"  # the disk refuses the run's writes
OTHER = "other"
KINDS = (DIALOG, PERMISSION, PAUSED, BUDGET, USAGE_LIMIT, VERIFY_FAILED, AGREED, DELIVERY_FAILED, DISK, OTHER)
REPEAT_SECONDS = 60.0  # the same call again within this long notifies once
COMMAND_TIMEOUT = 10.0
DESKTOP_TIMEOUT = 5.0
OSC_TEXT = 180  # characters of a terminal notification's text


@dataclass(frozen=True)
class Call:
    """A call to the human: ``text`` is the line the bridge pane and the tmux message show."""

    kind: str
    text: str
    role: str = ""
    reason: str = ""


def call_of(alert: str | Call) -> Call:
    return alert if isinstance(alert, Call) else Call(OTHER, alert)


def verify_failed(round_: int, reason: str) -> Call:
    """The call for a verification that failed twice in a row (the verification gate raises it)."""
    return Call(VERIFY_FAILED, f"pairloop: verification failed twice in a row (round {round_}): {reason}",
                reason=reason)


def due(call: Call, sent: dict[tuple[str, str, str], float], now: float) -> bool:
    """Whether ``call`` notifies now: always, unless the very same call went out less than REPEAT_SECONDS ago
    (a dialog that flickers on and off is one call, not one a second). ``sent`` is updated."""
    key = (call.kind, call.role, call.reason or call.text)
    if now - sent.get(key, -REPEAT_SECONDS) < REPEAT_SECONDS:
        return False
    sent[key] = now
    return True


def payload(call: Call, run: str, round_: int, ts: float) -> dict[str, Any]:
    """The JSON object a notify command receives (the exact text: it is data, JSON-escaped)."""
    return {"kind": call.kind, "run": run, "role": call.role, "reason": call.reason or call.text,
            "round": round_, "text": call.text, "ts": round(ts, 3)}


def plain(text: str, limit: int = OSC_TEXT) -> str:
    """One line of text with no control character left (escape sequences removed, newlines and tabs as spaces)."""
    flat = " ".join(sanitize(text).split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def osc(title: str, body: str, flavor: str = "9") -> str:
    """A terminal notification: OSC 9 (body only) or OSC 777 (notify;title;body), BEL-terminated, with every
    control character gone from the text (';' too, in 777's title, where it separates fields)."""
    if flavor == "777":
        return f"\x1b]777;notify;{plain(title, 60).replace(';', ',')};{plain(body)}\x07"
    return f"\x1b]9;{plain(f'{title}: {body}')}\x07"


def passthrough(sequence: str) -> str:
    """``sequence`` wrapped for tmux's passthrough (DCS tmux; …, every ESC inside doubled)."""
    return "\x1bPtmux;" + sequence.replace("\x1b", "\x1b\x1b") + "\x1b\\"


def desktop_available(env: dict[str, str]) -> bool:
    return bool(shutil.which("notify-send", path=env.get("PATH"))) and any(
        env.get(k) for k in ("DBUS_SESSION_BUS_ADDRESS", "DISPLAY", "WAYLAND_DISPLAY"))


class Notifier:
    """Carries out the calls that are due. The relay calls :meth:`send` (on its own thread) and drains
    :meth:`news` each pass for what to say about commands that failed."""

    def __init__(self, run: str, command: tuple[str, ...], out: TextIO | None, env: dict[str, str] | None = None,
                 *, timeout: float = COMMAND_TIMEOUT) -> None:
        self.run, self.command, self.out, self.timeout = run, command, out, timeout
        env = dict(os.environ) if env is None else env
        self.env = env
        self.desktop = desktop_available(env)
        self.flavor = env.get("PAIRLOOP_OSC", "9")
        self.sent: dict[tuple[str, str, str], float] = {}
        self._news: queue.SimpleQueue[str] = queue.SimpleQueue()

    def send(self, call: Call, round_: int) -> bool:
        """Notify about ``call`` if it is due; True when it was."""
        if not due(call, self.sent, time.monotonic()):
            return False
        if self.command:
            data = json.dumps(payload(call, self.run, round_, time.time()), ensure_ascii=False) + "\n"
            self._background("notify command", list(self.command), data, self.timeout)
        if self.desktop:
            self._background("notify-send", ["notify-send", "--app-name=pairloop", "--", "pairloop",
                                             plain(call.text, 300)], None, DESKTOP_TIMEOUT)
        self.terminal(call)
        return True

    def terminal(self, call: Call) -> None:
        """Only to a terminal (the bridge's pane): a log or a pipe gets no escape sequences."""
        if self.out is None or self.flavor not in ("9", "777"):
            return
        try:
            if not self.out.isatty():
                return
            self.out.write(passthrough(osc("pairloop", call.text, self.flavor)))
            self.out.flush()
        except (OSError, ValueError):
            pass

    def news(self) -> list[str]:
        """What went wrong with a notification since the last call (for bridge.log)."""
        out = []
        while not self._news.empty():
            out.append(self._news.get_nowait())
        return out

    def _background(self, what: str, argv: list[str], stdin: str | None, timeout: float) -> None:
        thread = threading.Thread(target=self._run, args=(what, argv, stdin, timeout), daemon=True,
                                  name=f"notify-{what}")
        thread.start()

    def _run(self, what: str, argv: list[str], stdin: str | None, timeout: float) -> None:
        try:
            proc = subprocess.run(argv, input=(stdin or "").encode("utf-8"), capture_output=True, timeout=timeout,
                                  check=False, env=self.env, start_new_session=True)
        except subprocess.TimeoutExpired:
            self._news.put(f"{what} did not finish within {timeout:.0f}s: stopped")
            return
        except OSError as exc:
            self._news.put(f"{what} could not start: {exc.strerror or exc}")
            return
        if proc.returncode != 0:
            tail = plain(proc.stderr.decode("utf-8", "replace")[-300:], 200)
            self._news.put(f"{what} exited with status {proc.returncode}{': ' + tail if tail else ''}")


__all__ = ["AGREED", "BUDGET", "DIALOG", "KINDS", "PAUSED", "PERMISSION", "USAGE_LIMIT", "VERIFY_FAILED", "Call",
           "Notifier", "call_of", "due", "osc", "passthrough", "payload", "plain", "verify_failed"]
