"""The deadline poll every wait goes through, on a fake clock: what it returns and how often it looks."""

from __future__ import annotations

import pytest

from bridge import deadline
from bridge.deadline import poll


class Clock:
    def __init__(self) -> None:
        self.now = 100.0
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(round(seconds, 6))
        self.now += seconds


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    """Stands in for the time module inside bridge.deadline only."""
    fake = Clock()
    monkeypatch.setattr(deadline, "time", fake)
    return fake


def test_returns_the_first_truthy_value(clock: Clock) -> None:
    answers = iter([None, "", 0, "found", "later"])
    assert poll(lambda: next(answers), 10) == "found"
    assert len(clock.sleeps) == 3


def test_returns_none_at_the_deadline_after_a_last_look(clock: Clock) -> None:
    looks: list[float] = []

    def never() -> None:
        looks.append(clock.now)

    assert poll(never, 1.0, delay=0.3, max_delay=0.3) is None
    assert looks[0] == 100.0 and looks[-1] == pytest.approx(101.0), "once at once, once at the deadline"
    assert clock.sleeps == [0.3, 0.3, 0.3, 0.1]


def test_the_pause_grows_to_its_cap(clock: Clock) -> None:
    poll(lambda: None, 1.0, delay=0.01, max_delay=0.1)
    assert clock.sleeps[:5] == [0.01, 0.02, 0.04, 0.08, 0.1]
    assert set(clock.sleeps[4:-1]) == {0.1}


def test_a_zero_timeout_looks_once(clock: Clock) -> None:
    calls: list[int] = []
    assert poll(lambda: calls.append(1), 0) is None
    assert calls == [1] and clock.sleeps == []


def test_an_exception_from_the_check_ends_the_poll(clock: Clock) -> None:
    def broken() -> bool:
        raise RuntimeError("agent exited")

    with pytest.raises(RuntimeError, match="agent exited"):
        poll(broken, 10)
