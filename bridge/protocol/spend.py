"""What the run spends: each agent's tokens (from its own records, through the ledger), the token budget, and the
usage limits the agents ran into. Pure: folded from ledger events like the rest of the protocol."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from bridge.rundir.events import AnyEvent, Relay, TokenUsage, UsageLimit
from bridge.usage import Tokens


def _worker_first(item: tuple[str, Tokens]) -> tuple[bool, str]:
    return item[0] != "worker", item[0]


def compact(n: int) -> str:
    """12345 as 12.3k, 4200000 as 4.2M."""
    if n < 1000:
        return str(n)
    if n < 1_000_000:
        return f"{n / 1000:.1f}k".replace(".0k", "k")
    return f"{n / 1_000_000:.1f}M".replace(".0M", "M")


@dataclass
class Spend:
    tokens: dict[str, Tokens] = field(default_factory=dict)  # role -> its agent's tokens so far
    tokens_allowed: int = 0  # the budget after the human let the run go on past it (0: the configured one)
    limits: list[UsageLimit] = field(default_factory=list)  # every usage or rate limit seen, oldest first
    files: dict[str, tuple[str, ...]] = field(default_factory=dict)  # role -> the record files its count is from

    def apply(self, event: AnyEvent) -> None:
        if isinstance(event, TokenUsage):
            self.tokens[event.role] = Tokens(event.input, event.cached, event.output)
            self.files[event.role] = event.files or self.files.get(event.role, ())
        elif isinstance(event, UsageLimit):
            self.limits.append(event)
        elif isinstance(event, Relay):
            self.tokens_allowed = event.tokens_allowed or self.tokens_allowed

    @property
    def total(self) -> Tokens:
        total = Tokens()
        for used in self.tokens.values():
            total = total + used
        return total

    def budget(self, max_tokens: int) -> int:
        """The budget in force (0: none)."""
        return self.tokens_allowed or max_tokens

    def over_budget(self, max_tokens: int) -> str:
        """Why the run must stop for the human ("" while within its token budget, or with none)."""
        budget = self.budget(max_tokens)
        used = self.total.total
        return f"{used:,} tokens used, over the budget of {budget:,}" if budget and used > budget else ""

    def words(self, max_tokens: int) -> str:
        """For the status line: " · tokens 12.3k" (of the budget, when there is one); "" before any count."""
        if not self.tokens:
            return ""
        budget = self.budget(max_tokens)
        return f" · tokens {compact(self.total.total)}{'/' + compact(budget) if budget else ''}"

    def last_limit(self, role: str) -> UsageLimit | None:
        return next((e for e in reversed(self.limits) if e.role == role), None)

    def summary(self, max_tokens: int) -> dict[str, Any]:
        def shown(t: Tokens) -> dict[str, int]:
            return {"input": t.input, "cached": t.cached, "output": t.output, "total": t.total}

        return {"tokens": {"roles": {role: shown(t) for role, t in sorted(self.tokens.items(), key=_worker_first)},
                           "total": shown(self.total), "max_tokens": self.budget(max_tokens)},
                "usage_limits": [{"role": e.role, "reason": e.reason, "source": e.source, "ts": e.ts}
                                 for e in self.limits]}
