"""A stop signal wakes the relay's loop without the signal handler touching the loop's event.

Python runs a signal handler in the main thread, between two bytecodes of whatever it was doing — possibly inside
``Event.wait()`` or ``Event.clear()``, holding the event's lock. A handler that then called ``set()`` would wait for
that lock forever: the bridge would hang instead of stopping. So the handler only sets a flag, and the interpreter's
own C handler writes the signal's number into a pipe (``signal.set_wakeup_fd``); a thread reading the pipe sets the
event, taking the lock like any other thread."""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Callable


def wake_on_signals(event: threading.Event) -> Callable[[], None]:
    """From now on a signal sets ``event``; returns what undoes it (the pipe closed, its thread gone)."""
    read_end, write_end = os.pipe()
    os.set_blocking(write_end, False)  # set_wakeup_fd requires it: a full pipe drops a byte, never blocks
    previous = signal.set_wakeup_fd(write_end)

    def relay() -> None:
        while True:
            try:
                data = os.read(read_end, 64)
            except OSError:
                return
            if not data:  # the write end was closed: undone
                return
            event.set()

    thread = threading.Thread(target=relay, name="signal-wake", daemon=True)
    thread.start()

    def undo() -> None:
        signal.set_wakeup_fd(previous)
        with contextlib.suppress(OSError):
            os.close(write_end)
        thread.join(timeout=1.0)
        with contextlib.suppress(OSError):
            os.close(read_end)

    return undo
