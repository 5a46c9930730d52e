"""The roles of a run, spelled once."""

from __future__ import annotations

from bridge.roles import AGENT_ROLES, HUMAN, RECIPIENTS, REVIEWER, SENDERS, WORKER, is_agent, partner_of
from bridge.rundir import message


def test_the_two_agents_and_the_human() -> None:
    assert AGENT_ROLES == ("worker", "reviewer") == (WORKER, REVIEWER)
    assert SENDERS == RECIPIENTS == ("worker", "reviewer", "human")
    assert HUMAN == "human"


def test_partners() -> None:
    assert partner_of(WORKER) == REVIEWER
    assert partner_of(REVIEWER) == WORKER


def test_is_agent() -> None:
    assert is_agent("worker") and is_agent("reviewer")
    assert not any(is_agent(name) for name in ("human", "pairloop", "", None, "Worker"))


def test_the_message_module_still_names_them() -> None:
    assert (message.AGENT_ROLES, message.SENDERS, message.RECIPIENTS) == (AGENT_ROLES, SENDERS, RECIPIENTS)
    assert message.partner_of is partner_of
