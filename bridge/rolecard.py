"""What the bridge tells an agent about where the run stands. Pure: text from the book and the protocol's state.

- the role card: the agent's role, the phase and round, the verbs that apply (also re-sent after a context
  compaction, so a reviewer does not drift into implementing);
- the notice an agent gets when its session was resumed (the card, and what waits for it);
- the recap an agent gets when its conversation could not be resumed and it started afresh: the task, the
  rounds, the findings and the last messages, from the ledger."""

from __future__ import annotations

from bridge.book import DELIVERED, Book, Entry
from bridge.effects import Effects, Post
from bridge.protocol.referee import VERBS
from bridge.protocol.state import Protocol
from bridge.report import snippet
from bridge.roles import partner_of

RESUMED_TOPIC = "resumed"  # what a resume notice is about (carried in its envelope)
RECAP_TOPIC = "recap"  # ... and the recap an agent started afresh gets
LAST_MESSAGES = 6  # how many of the latest messages a recap quotes


def role_card(role: str, phase: str, round_no: int, paused: str = "") -> str:
    """Who the agent is in this run and what it may do now."""
    lines = [f"You are the {role} of this pair (your partner is the {partner_of(role)}); "
             f"{phase} phase, round {round_no}."]
    if paused:
        lines.append(f"The relay is paused ({paused}): messages wait until the human unpauses it.")
    if role in VERBS:
        lines.append(f"Your verbs: {VERBS[role]}.")
    return "\n".join(lines)


def card_for(role: str, protocol: Protocol) -> str:
    return role_card(role, protocol.phase, protocol.round, protocol.paused)


def line_of(entry: Entry, width: int = 100) -> str:
    """One message, in one short line: its number, kind, sender and first words."""
    msg = entry.message
    return f"#{entry.seq} {msg.kind} from {msg.sender}: {snippet(msg.body, width)}"


def waiting(role: str, book: Book) -> list[Entry]:
    """The messages still owed to ``role`` (the bridge's own notices to it left out)."""
    return [e for e in book.pending(role) if e.message.sender != "pairloop"]


def unanswered(role: str, book: Book) -> Entry | None:
    """The last message delivered to ``role``, when ``role`` has said nothing since: its turn on it may have
    been cut off when the session went down."""
    last: Entry | None = None
    for msg_id in reversed(book.order):
        entry = book.entries[msg_id]
        if entry.message.sender == role:
            return None
        if entry.deliveries.get(role) == DELIVERED and entry.message.sender != "pairloop":
            last = entry
            break
    return last


def _what_waits(role: str, book: Book) -> list[str]:
    lines = []
    pending = waiting(role, book)
    if pending:
        lines.append(f"Waiting for you: {len(pending)} message(s), delivered with or right after this notice: "
                     + "; ".join(f"#{e.seq}" for e in pending) + ".")
    cut = unanswered(role, book)
    if cut is not None:
        lines.append(f"You had not answered the last message you received ({line_of(cut)}): if your turn on it "
                     "was cut off, finish it now.")
    if not lines:
        lines.append("Nothing waits for you: carry on where you were.")
    return lines


def resume_notice(role: str, protocol: Protocol, book: Book) -> str:
    """For an agent that resumed its own conversation."""
    return "\n".join(["The pair session was resumed (the session had gone down); your conversation is the same.",
                      card_for(role, protocol), *_what_waits(role, book)])


def recap(role: str, protocol: Protocol, book: Book, reason: str = "") -> str:
    """For an agent started afresh: what the run did so far, from the ledger."""
    why = f" ({reason})" if reason else ""
    lines = [f"The pair session was resumed, but your earlier conversation could not be{why}: you start afresh. "
             "Here is where the run stands, from its ledger.", card_for(role, protocol)]
    task = next((book.entries[i] for i in book.order if book.entries[i].message.kind == "task"), None)
    if task is not None:
        lines += ["", "The task:", *("  " + t for t in task.message.body.splitlines()[:20])]
    if protocol.checkpoints:
        lines += ["", "Rounds:"]
        for n, cp in sorted(protocol.checkpoints.items()):
            verdicts = [v for v in protocol.verdicts if v.round == n]
            said = ", ".join(f"{v.kind} by the {v.by}" for v in verdicts) or "no verdict yet"
            lines.append(f"  round {n} ({cp.get('phase', '')} phase): checkpoint {cp.get('ref', '') or '-'}; {said}")
    if protocol.findings:
        lines += ["", "Findings:"]
        lines += [f"  {f.id} ({f.status}): {snippet(f.text, 100)}" for f in protocol.findings.values()]
    latest = [book.entries[i] for i in book.order if book.entries[i].message.sender != "pairloop"][-LAST_MESSAGES:]
    if latest:
        lines += ["", "The last messages:", *("  " + line_of(e) for e in latest)]
    lines += ["", *_what_waits(role, book)]
    return "\n".join(lines)


def resumed(request_id: str, role: str, fresh: bool, reason: str, book: Book, protocol: Protocol) -> Effects:
    """`pairloop resume` started ``role`` again: the notice (or the recap) it gets, delivered like any message.
    Its id comes from the request, so a request acted on twice posts it once."""
    body = recap(role, protocol, book, reason) if fresh else resume_notice(role, protocol, book)
    topic = RECAP_TOPIC if fresh else RESUMED_TOPIC
    said = f"the {role} started afresh ({reason}): it gets a recap of the run" if fresh else \
        f"the {role} resumed its conversation: it gets a resume notice"
    return Effects(posts=[Post(f"{request_id}-{role}", (role,), body, "notice", topic)], says=[said])
