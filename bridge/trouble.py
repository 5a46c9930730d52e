"""Trouble the bridge lives through without stopping: writes the disk refuses (full, over quota, read-only).

Pure. The relay reports each pass's failed writes; this decides whether an episode begins (say it once, loudly),
goes on (quietly, trying again later and later) or ends (say that once too), and when to try again. Nothing is
lost meanwhile: a message not yet recorded stays in the outbox, an event not yet written waits in memory, a paste
not yet recorded is not made."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

FIRST_RETRY_SECONDS = 0.5
MAX_RETRY_SECONDS = 8.0


@dataclass(frozen=True)
class Trouble:
    problem: str = ""  # what fails now, for the status line and `pairloop status` ("" when nothing does)
    since: float = 0.0  # when the episode began
    attempts: int = 0  # passes in a row that found a write failing
    retry_at: float = 0.0  # when to try the failing writes again


@dataclass(frozen=True)
class Step:
    trouble: Trouble
    alert: str = ""  # the episode began: get the human's attention
    say: str = ""  # the episode ended: a line for the pane


def retry_delay(attempts: int) -> float:
    """Half a second after the first failure, doubling, at most eight."""
    return min(FIRST_RETRY_SECONDS * float(1 << min(max(attempts - 1, 0), 16)), MAX_RETRY_SECONDS)


def next_retry(trouble: Trouble, now: float) -> float:
    """When a write failing now is tried again: at the episode's next retry, so that every failing write is
    tried again in the same pass (the one that can end the episode)."""
    if trouble.problem and now < trouble.retry_at:
        return trouble.retry_at
    return now + retry_delay(trouble.attempts + 1)


def after_pass(trouble: Trouble, failures: Sequence[str], now: float, wrote: bool = False) -> Step:
    """The trouble after one pass of the relay that saw ``failures`` (what could not be written, in order) and,
    with ``wrote``, made something durable (a message's record, a paste's).

    Only a pass at the retry time counts as a retry: one woken earlier by something else moves nothing (a write
    it tried early and saw fail says nothing new; one it did not try proves nothing). The episode ends at a retry
    that finds every write working, or at any pass that wrote and saw nothing fail: space is back, and what waits
    for the retry can be tried at once."""
    if not failures:
        if not trouble.problem or (now < trouble.retry_at and not wrote):
            return Step(trouble)
        return Step(Trouble(), say=f"DISK: writing works again (after {now - trouble.since:.0f} s): relaying "
                                   "what waited")
    problem = failures[0]
    if not trouble.problem:
        return Step(Trouble(problem, now, 1, now + retry_delay(1)),
                    alert=f"pairloop: DISK: {problem}: nothing is lost (messages wait in the outbox and the "
                          "queue); retrying until it can be written")
    if now < trouble.retry_at:
        return Step(replace(trouble, problem=problem))
    attempts = trouble.attempts + 1
    return Step(Trouble(problem, trouble.since, attempts, now + retry_delay(attempts)))
