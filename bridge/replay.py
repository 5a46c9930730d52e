"""The ledger folded into the run's views when the bridge starts, in as little time as the history allows.

A replay makes objects for every event (the decoded event, each message's entry in the book) and all of them live
on: a garbage collector left running would walk the growing heap again and again while they are made, for nothing.
So it is paused while the ledger is read and folded, and what the replay made is then moved out of its sight
(``gc.freeze``): the live relay's collections stay as short with 10,000 messages in the book as with 10."""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

from bridge.record import Record
from bridge.rundir.events import AnyEvent


@contextmanager
def collector_paused() -> Iterator[None]:
    """No garbage collection inside; afterwards everything alive is frozen (kept, never scanned again)."""
    was_on = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if was_on:
            gc.enable()


def fold(record: Record, events: Sequence[AnyEvent], *also: Callable[[AnyEvent], None]) -> None:
    """Every event the ledger holds, learnt by the run's views (``record``) and by each of ``also``, in order."""
    learn = record.learn
    for event in events:
        learn(event)
        for view in also:
            view(event)
