"""Who may say what to whom: the sender a command speaks for, and where each verb's message goes. Pure.

Inside an agent's pane the environment names the sender (the pane was started with its run and role);
anywhere else the sender is the human. A verb either has a fixed recipient (a verdict always goes to the
worker) or goes where ``--to`` says, defaulting to the sender's partner.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from bridge import AGENT_ROLES, partner_of
from pairloop.errors import UsageProblem

HUMAN = "human"
TO_CHOICES = ("worker", "reviewer", "both", HUMAN)


@dataclass(frozen=True)
class Verb:
    name: str
    kind: str  # the message kind it sends
    to: str | None  # its fixed recipient; None: --to, or the sender's partner
    senders: tuple[str, ...]  # who may use it
    default_text: str | None = None  # None: the text is required

    def refusal(self, sender: str) -> str:
        """Why ``sender`` may not use this verb, pointing at the one it wants."""
        if self.senders == ("worker",):
            over = "; the human accepts the work over the done gate with `pairloop done --force`" \
                if self.name == "done" else ""
            return f"`pairloop {self.name}` is the worker's verb (run it in the worker's pane){over}"
        return (f"`pairloop {self.name}` is the reviewer's (or the human's) verb; the worker uses "
                "`pairloop review` and `pairloop done`")


ANYONE = ("worker", "reviewer", HUMAN)
VERBS: dict[str, Verb] = {v.name: v for v in (
    Verb("send", "message", None, ANYONE),
    Verb("review", "review", "reviewer", ("worker",), "Ready for review."),
    Verb("done", "done", "reviewer", ("worker",), "Done."),
    # Verdicts go to the worker, from the reviewer or (overruling it) from the human.
    Verb("approve", "approve", "worker", ("reviewer", HUMAN), "Approved."),
    Verb("changes", "changes", "worker", ("reviewer", HUMAN)),
)}


def sender_from(env: Mapping[str, str]) -> str:
    """The agent whose pane this is, or the human anywhere else."""
    role = env.get("PAIRLOOP_ROLE", "")
    return role if role in AGENT_ROLES and env.get("PAIRLOOP_RUN_DIR") else HUMAN


def run_env(sender: str, env: Mapping[str, str]) -> dict[str, str]:
    """The environment a run is looked up in: a pane's run directory speaks only for the agent in it."""
    return {k: v for k, v in env.items() if sender != HUMAN or k != "PAIRLOOP_RUN_DIR"}


def recipients(verb: Verb, sender: str, to: str | None = None) -> tuple[str, ...]:
    """Where ``sender``'s use of ``verb`` goes; UsageProblem when it cannot go anywhere."""
    if sender not in verb.senders:
        raise UsageProblem(verb.refusal(sender))
    to = verb.to or to
    if to is None:
        if sender == HUMAN:
            raise UsageProblem("from outside an agent pane, say who it is for: --to worker|reviewer|both")
        to = partner_of(sender)
    wanted = ("worker", "reviewer") if to == "both" else (to,)
    found = tuple(r for r in wanted if r != sender)
    if not found:
        raise UsageProblem(f"the {sender} cannot send a message to itself")
    return found


def body_of(text: str, read_stdin: Callable[[], str]) -> str:
    """The message body: the text itself, or standard input for exactly '-'; never empty."""
    body = read_stdin() if text == "-" else text
    if not body.strip():
        raise UsageProblem("the message is empty")
    return body
