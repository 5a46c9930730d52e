"""A signal wakes the relay's loop through a pipe and a thread, never from the handler itself (bridge.wakeup)."""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from types import FrameType

import pytest

from bridge.wakeup import wake_on_signals


@pytest.fixture
def flagged() -> Iterator[list[int]]:
    """SIGUSR1 handled by a handler that only notes it, as the relay's does."""
    seen: list[int] = []

    def note(signum: int, frame: FrameType | None) -> None:
        seen.append(signum)

    previous = signal.signal(signal.SIGUSR1, note)
    try:
        yield seen
    finally:
        signal.signal(signal.SIGUSR1, previous)


def test_a_signal_sets_the_event(flagged: list[int]) -> None:
    event = threading.Event()
    undo = wake_on_signals(event)
    try:
        os.kill(os.getpid(), signal.SIGUSR1)
        assert event.wait(5.0)
        assert flagged == [signal.SIGUSR1]
    finally:
        undo()
    assert not any(t.name == "signal-wake" and t.is_alive() for t in threading.enumerate()), "undone"


def test_a_signal_while_the_loop_holds_the_event_s_lock_does_not_hang(flagged: list[int]) -> None:
    """The loop may be inside wait() or clear(), holding the event's lock, when the signal lands: a handler that
    set the event there would wait for that lock forever. The wake-up comes once the lock is let go."""
    event = threading.Event()
    undo = wake_on_signals(event)
    lock = event._cond  # type: ignore[attr-defined]  # the lock wait() and clear() hold
    try:
        with lock:
            os.kill(os.getpid(), signal.SIGUSR1)  # the handler runs here, in this thread, the lock held
            assert flagged == [signal.SIGUSR1]
            assert not event.is_set()
        assert event.wait(5.0)
    finally:
        undo()


def test_undoing_gives_back_the_previous_wakeup_fd(flagged: list[int]) -> None:
    before = signal.set_wakeup_fd(-1)
    signal.set_wakeup_fd(before)
    undo = wake_on_signals(threading.Event())
    undo()
    assert signal.set_wakeup_fd(before) == before
