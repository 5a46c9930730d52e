"""What a part of the bridge wants done, returned as a value for the relay to carry out in order: events to
record, messages of the bridge's own to deliver, lines to say, calls to the human. Nobody gets a callback."""

from __future__ import annotations

from dataclasses import dataclass, field

from bridge.notify import Call
from bridge.rundir.events import AnyEvent


@dataclass(frozen=True)
class Post:
    """A message from the bridge itself (a notice to an agent, context from the human), delivered like any other."""

    id: str
    to: tuple[str, ...]
    body: str
    kind: str  # "notice" or "context"
    topic: str = ""  # what a notice is about, so an agent (or the sim) need not read it from the wording


@dataclass
class Effects:
    events: list[AnyEvent] = field(default_factory=list)
    posts: list[Post] = field(default_factory=list)
    says: list[str] = field(default_factory=list)
    alerts: list[str | Call] = field(default_factory=list)  # a Call says what about (bridge.notify)
    start_summary: bool = False  # the pair agreed: run what the run asked for on agreement
    wake: list[str] = field(default_factory=list)  # roles worth a look now (say, the relay was unpaused)

    def add(self, other: Effects) -> Effects:
        self.events += other.events
        self.posts += other.posts
        self.says += other.says
        self.alerts += other.alerts
        self.start_summary = self.start_summary or other.start_summary
        self.wake += other.wake
        return self
