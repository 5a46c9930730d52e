"""Who takes part in a run: the two agents, the human, and who each agent's partner is. Spelled here once, so
a rule about roles (who may send, who a note goes to, who the governor counts) reads the same everywhere."""

from __future__ import annotations

WORKER, REVIEWER, HUMAN = "worker", "reviewer", "human"
AGENT_ROLES = (WORKER, REVIEWER)
SENDERS = (*AGENT_ROLES, HUMAN)
RECIPIENTS = (*AGENT_ROLES, HUMAN)


def is_agent(name: object) -> bool:
    """The worker or the reviewer (not the human, not the bridge's own "pairloop")."""
    return name in AGENT_ROLES


def partner_of(role: str) -> str:
    """The other agent: the worker's partner is the reviewer and the reviewer's the worker (for anyone else,
    the worker, who is where a pair's work starts)."""
    return REVIEWER if role == WORKER else WORKER
