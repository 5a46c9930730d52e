"""The ledger's events: a closed set of kinds, each with its fields. The one owner of their schema.

Every line of ``ledger.jsonl`` is one of these, tagged by ``ev``. Writers build them (the bridge, ``pairloop
stop``); readers get them back validated from :func:`decode`, so a line with a field missing or of the wrong type
is an :class:`InvalidEvent` the caller skips with a note, never a KeyError somewhere later. Fields a later version
adds are ignored by an older reader; an unknown ``ev`` is invalid."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

# Checked when a line is read; plain strings to the code that builds events. \Z, not $: Python's $ also
# matches before a final newline, so "worker\n" would pass.
Recipient = Annotated[str, msgspec.Meta(pattern=r"^(worker|reviewer|human)\Z")]
Sender = Annotated[str, msgspec.Meta(pattern=r"^(worker|reviewer|human|pairloop)\Z")]
MessageKind = Annotated[str, msgspec.Meta(pattern=r"^(message|task|review|approve|changes|done|notice|context)\Z")]
Phase = Literal["plan", "work"]


class InvalidEvent(Exception):
    """A ledger line that is not a valid event; ``reason`` says why in plain words."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Event(msgspec.Struct, tag_field="ev", kw_only=True, frozen=True, omit_defaults=True):
    ts: float = 0.0  # stamped by the ledger when the event is appended


# ---- messages and their deliveries -------------------------------------------------------------------------


class Received(Event, tag="received", frozen=True):
    """A message entered the run (from an outbox file, or made by the bridge itself)."""

    seq: int
    id: str
    sender: Sender = msgspec.field(name="from")
    to: tuple[Recipient, ...]
    kind: MessageKind
    body: str
    created: float = 0.0
    digest: str = ""
    file: str = ""
    note: str = ""  # what the bridge adds for the receiver (the round's checkpoint, finding ids, ...)
    fixed: tuple[str, ...] = ()
    disputed: tuple[str, ...] = ()
    topic: str = ""  # for the bridge's notices: what the notice is about (see protocol.referee.Topic)


class Delivery(Event, tag="delivery-base", frozen=True):
    """A change in how far some messages got to one recipient."""

    to: Recipient
    ids: tuple[str, ...]
    via: str = ""
    reason: str = ""


class Queued(Delivery, tag="queued", frozen=True):
    pass


class Delivering(Delivery, tag="delivering", frozen=True):
    # The exact paste, recorded before it is made: after a crash only text proven to be this is ours to submit.
    paste_first_line: str = ""
    paste_lines: int = 0


class Delivered(Delivery, tag="delivered", frozen=True):
    pass


class Failed(Delivery, tag="failed", frozen=True):
    pass


class Suppressed(Delivery, tag="suppressed", frozen=True):
    pass


class Rejected(Event, tag="rejected", frozen=True):
    """A file in the outbox that could not be a message, set aside (to ``moved_to``); or, with no ``moved_to``, a
    hidden temp file a crashed writer left there, removed after a grace period."""

    file: str
    reason: str
    moved_to: str = ""


class HumanTurn(Event, tag="human_turn", frozen=True):
    """The human typed a prompt straight into an agent's pane."""

    role: Recipient
    text: str
    event_file: str = ""


# ---- the bridge and the agents ---------------------------------------------------------------------------------


class BridgeState(Event, tag="bridge", frozen=True):
    state: Literal["started", "stopped"]
    pid: int = 0
    reason: str = ""


class AgentState(Event, tag="agent", frozen=True):
    role: Recipient
    state: str
    detail: str = ""


class Answered(Event, tag="answered", frozen=True):
    """A dialog the user allowed pairloop to answer (folder trust, with --trust)."""

    role: Recipient
    dialog: str
    keys: tuple[str, ...] = ()


class LedgerRepaired(Event, tag="ledger_repaired", frozen=True):
    """A fragment left by a failed or interrupted write was cut off before the next record."""

    offset: int
    cut_bytes: int
    reason: str = ""


# ---- the pair protocol ----------------------------------------------------------------------------------------


class Limits(msgspec.Struct, frozen=True, kw_only=True):
    max_rounds: int = 6
    max_messages: int = 200
    max_tokens: int = 0  # the run's token budget, both agents together (0: none)


class ProtocolStarted(Event, tag="protocol", frozen=True):
    phase: Phase
    limits: Limits = Limits()


class Round(Event, tag="round", frozen=True):
    round: int
    phase: Phase
    ref: str = ""
    commit: str = ""
    tree: str = ""
    unchanged: bool = False
    error: str = ""


class FindingClaims(Event, tag="findings", frozen=True):
    fixed: tuple[str, ...] = ()
    disputed: tuple[str, ...] = ()


class Verdict(Event, tag="verdict", frozen=True):
    id: str
    by: Literal["reviewer", "human"]
    kind: Literal["approve", "changes"]
    round: int
    phase: Phase
    checkpoint: str = ""
    tree: str = ""
    findings: tuple[tuple[str, str], ...] = ()


class PhaseChanged(Event, tag="phase", frozen=True):
    phase: Phase
    by: str = ""


class Relay(Event, tag="relay", frozen=True):
    state: Literal["paused", "running"]
    by: str = ""
    reason: str = ""
    rounds_allowed: int = 0
    messages_allowed: int = 0
    tokens_allowed: int = 0


# ---- what the agents spend (bridge/usage.py reads their own records) ------------------------------------------


class TokenUsage(Event, tag="tokens", frozen=True):
    """An agent's tokens so far in this run, as its own records count them (all input, cache reads included;
    ``cached`` is the part read from a cache)."""

    role: Recipient
    input: int = 0
    cached: int = 0
    output: int = 0
    files: tuple[str, ...] = ()  # the record files counted (a new conversation, /clear, starts another one)


class UsageLimit(Event, tag="usage_limit", frozen=True):
    """An agent ran into a usage or rate limit: seen on its ``screen`` or in its ``records`` (``at``: the
    record's own timestamp, so a limit read again after a restart is known)."""

    role: Recipient
    reason: str
    source: Literal["screen", "records"]
    at: str = ""


class DoneRefused(Event, tag="done_refused", frozen=True):
    id: str
    reason: str
    gate: str = ""  # which check refused (see protocol.donegate): changed, verify, verdict, ...
    paths: tuple[str, ...] = ()  # for "changed": what changed since the approved checkpoint


# ---- the verification gate (bridge/verify.py) and what guards it -------------------------------------------


VerifyResult = Literal["passed", "failed", "timed out", "error", "interrupted"]


class VerifyStarted(Event, tag="verify_started", frozen=True):
    """The run's verify command started on a round's checkpoint, in a temporary worktree of it."""

    round: int
    ref: str
    commit: str = ""
    command: str = ""  # as the human gave it (shown, not run: run.json holds what runs)
    log: str = ""  # where its full output is


class VerifyFinished(Event, tag="verify_finished", frozen=True):
    round: int
    ref: str
    result: VerifyResult
    commit: str = ""
    command: str = ""
    exit_status: int | None = None  # None: it did not exit by itself (timed out, could not start)
    duration: float = 0.0
    log: str = ""
    tail: str = ""  # the last lines of a failure's output, as it was written (shown only through the sanitizer)
    detail: str = ""  # why it could not run, or how it was ended


class ConfigChanged(Event, tag="config_changed", frozen=True):
    """The working tree's pairloop configuration no longer says what it said at start for a setting the bridge
    runs (verify, notify): flagged to the human, never acted on."""

    key: str
    file: str
    was: str = ""
    now: str = ""


class Overruled(Event, tag="overruled", frozen=True):
    """The human overruled a gate (``pairloop done --force``): what the gate said at that moment."""

    gate: str
    by: str = "human"
    blocker: str = ""
    note: str = ""


class RunState(Event, tag="run", frozen=True):
    state: Literal["agreed", "stopped", "running"]  # running: a stopped run was resumed
    by: str = ""
    round: int = 0
    approved_by: str = ""


class Recording(Event, tag="recording", frozen=True):
    """A pane's recording (``<role>.cast``) changed course: ``state`` "limit" when it reached its size limit and
    stopped (see bridge.recording)."""

    role: Recipient
    state: str
    detail: str = ""


AnyEvent = (Received | Queued | Delivering | Delivered | Failed | Suppressed | Rejected | HumanTurn | BridgeState
            | AgentState | Answered | LedgerRepaired | ProtocolStarted | Round | FindingClaims | Verdict
            | PhaseChanged | Relay | DoneRefused | RunState | VerifyStarted | VerifyFinished | ConfigChanged
            | Overruled | Recording | TokenUsage | UsageLimit)
DELIVERY_EVENTS: dict[str, type[Queued | Delivering | Delivered | Failed | Suppressed]] = {
    "queued": Queued, "delivering": Delivering, "delivered": Delivered, "failed": Failed, "suppressed": Suppressed,
}

_decoder = msgspec.json.Decoder(AnyEvent)
_encoder = msgspec.json.Encoder()


def decode(line: bytes) -> AnyEvent:
    """One ledger line, validated; raise InvalidEvent with the first problem found."""
    try:
        return _decoder.decode(line)
    except msgspec.ValidationError as exc:
        raise InvalidEvent(str(exc)) from None
    except msgspec.DecodeError as exc:
        raise InvalidEvent(f"not JSON ({exc})") from None


def decode_lines(data: bytes) -> list[AnyEvent]:
    """Every line of an intact ledger in one call (blank lines are skipped); InvalidEvent if any is not valid."""
    try:
        return _decoder.decode_lines(data)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise InvalidEvent(str(exc)) from None


def encode(event: Event) -> bytes:
    return _encoder.encode(event)


def as_dict(event: Event) -> dict[str, object]:
    """The event as plain JSON data (for --json views and tests), exactly as it is written."""
    data = msgspec.json.decode(encode(event))
    assert isinstance(data, dict)
    return data


def tag_of(event: Event) -> str:
    """The event's kind, as written in its ``ev`` field."""
    return str(type(event).__struct_config__.tag)


def stamped(event: AnyEvent, ts: float) -> AnyEvent:
    return msgspec.structs.replace(event, ts=ts)
