"""A poll with a deadline: the one way pairloop waits for something another process does on its own clock
(an agent's screen, the bridge's lock, a pane's process, a summary being written)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def poll(check: Callable[[], T | None], timeout: float, *, delay: float = 0.01, max_delay: float = 0.1,
         growth: float = 2.0) -> T | None:
    """Call ``check`` until it returns something truthy and return that; None once ``timeout`` seconds have
    passed. ``check`` runs at least once and once more at the deadline. The pause starts at ``delay`` and grows
    by ``growth`` up to ``max_delay``: quick to see a fast change, cheap while waiting for a slow one
    (``delay == max_delay`` polls at a steady pace). An exception from ``check`` ends the poll."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        left = deadline - time.monotonic()
        if left <= 0:
            return None
        time.sleep(min(delay, left))
        delay = min(delay * growth, max_delay)
