"""bridge.rundir.events: the ledger's closed set of kinds. Every kind round-trips; anything else is an
InvalidEvent with a reason a human can act on, never a KeyError somewhere later."""

from __future__ import annotations

import json
from typing import get_args

import msgspec
import pytest

from bridge.rundir.events import (
    AgentState,
    Answered,
    AnyEvent,
    BridgeState,
    ConfigChanged,
    Delivered,
    Delivering,
    DoneRefused,
    Event,
    Failed,
    FindingClaims,
    HumanTurn,
    InvalidEvent,
    LedgerRepaired,
    Limits,
    Overruled,
    PhaseChanged,
    ProtocolStarted,
    Queued,
    Received,
    Recording,
    Rejected,
    Relay,
    Round,
    RunState,
    Suppressed,
    TokenUsage,
    UsageLimit,
    Verdict,
    VerifyFinished,
    VerifyStarted,
    as_dict,
    decode,
    encode,
    stamped,
    tag_of,
)

# One of every kind, each field set away from its default so a field lost on the way would show.
SAMPLES: list[AnyEvent] = [
    Received(ts=1.5, seq=3, id="m-1", sender="worker", to=("reviewer", "human"), kind="review", body="ünï\n\"q\"",
             created=1.25, digest="sha", file="m-1.json", note="checkpoint r1", fixed=("F1.1",),
             disputed=("F1.2",), topic="not-done"),
    Queued(ts=2.0, to="worker", ids=("a", "b"), via="x", reason="target busy"),
    Delivering(ts=2.0, to="reviewer", ids=("a",), paste_first_line="[pairloop] #1 message", paste_lines=4),
    Delivered(ts=2.0, to="human", ids=("a",), via="receipt"),
    Failed(ts=2.0, to="worker", ids=("a",), reason="composer did not clear"),
    Suppressed(ts=2.0, to="worker", ids=("a",), reason="bounce"),
    Rejected(ts=2.0, file="x.json", reason="not JSON", moved_to="rejected/x.json"),
    HumanTurn(ts=2.0, role="worker", text="typed", event_file="3-prompt.json"),
    BridgeState(ts=2.0, state="stopped", pid=42, reason="signal"),
    AgentState(ts=2.0, role="reviewer", state="exited", detail="exited (signal 9)"),
    Answered(ts=2.0, role="worker", dialog="trust this folder", keys=("Down", "Enter")),
    LedgerRepaired(ts=2.0, offset=120, cut_bytes=17, reason="an unfinished line"),
    ProtocolStarted(ts=2.0, phase="plan", limits=Limits(max_rounds=3, max_messages=40)),
    Round(ts=2.0, round=2, phase="work", ref="refs/pairloop/r/round-2", commit="c2", tree="t2", unchanged=True,
          error="e"),
    FindingClaims(ts=2.0, fixed=("F1.1",), disputed=("F1.2",)),
    Verdict(ts=2.0, id="v1", by="human", kind="changes", round=1, phase="work", checkpoint="refs/x", tree="t",
            findings=(("F1.1", "add a test"),)),
    PhaseChanged(ts=2.0, phase="work", by="reviewer"),
    Relay(ts=2.0, state="running", by="human", reason="r", rounds_allowed=8, messages_allowed=300),
    DoneRefused(ts=2.0, id="d1", reason="nothing has been approved yet", gate="changed", paths=("a.txt",)),
    VerifyStarted(ts=2.0, round=2, ref="refs/x", commit="c2", command="pytest -q", log="/r/verify-runs/2.log"),
    VerifyFinished(ts=2.0, round=2, ref="refs/x", result="failed", commit="c2", command="pytest -q", exit_status=1,
                   duration=0.5, log="/r/verify-runs/2.log", tail="E assert 1 == 2", detail="d"),
    ConfigChanged(ts=2.0, key="verify", file=".pairloop.toml", was='"pytest"', now='"true"'),
    Overruled(ts=2.0, gate="done", by="human", blocker="the verification failed", note="ship it"),
    RunState(ts=2.0, state="agreed", by="worker", round=2, approved_by="reviewer"),
    Recording(ts=2.0, role="reviewer", state="limit", detail="recording stopped: size limit reached"),
    TokenUsage(ts=2.0, role="worker", input=1234, cached=200, output=56),
    UsageLimit(ts=2.0, role="reviewer", reason="429", source="records", at="2026-12-01T22:39:07.957Z"),
]
BY_TAG: dict[str, AnyEvent] = {tag_of(e): e for e in SAMPLES}
KINDS: tuple[type[Event], ...] = get_args(AnyEvent)


def test_the_samples_cover_every_kind_once() -> None:
    assert sorted(BY_TAG) == sorted(str(k.__struct_config__.tag) for k in KINDS)
    assert len(SAMPLES) == len(KINDS)


@pytest.mark.parametrize("event", SAMPLES, ids=tag_of)
def test_every_kind_round_trips(event: AnyEvent) -> None:
    line = encode(event)
    assert b"\n" not in line  # one event, one line
    assert decode(line) == event
    assert decode(line + b"\n") == event
    assert as_dict(event)["ev"] == tag_of(event)
    assert json.loads(line) == as_dict(event)


def test_the_line_is_compact_utf8_with_from_for_the_sender_and_no_defaults() -> None:
    event = Received(seq=1, id="a", sender="worker", to=("reviewer",), kind="message", body="ünï")
    assert encode(event) == ('{"ev":"received","seq":1,"id":"a","from":"worker","to":["reviewer"],'
                             '"kind":"message","body":"ünï"}').encode()
    assert encode(stamped(event, 1700000000.5)).endswith(b',"ts":1700000000.5}')
    assert stamped(event, 3.0).ts == 3.0 and event.ts == 0.0  # a copy; the original is untouched


def _required(kind: type[Event]) -> list[str]:
    """The encoded names of the fields a line of this kind must carry."""
    return [f.encode_name for f in msgspec.structs.fields(kind)
            if f.default is msgspec.NODEFAULT and f.default_factory is msgspec.NODEFAULT]


REQUIRED = [(tag_of(e), name) for e in SAMPLES for name in _required(type(e))]


def test_most_kinds_have_required_fields() -> None:
    kinds_with_none = {tag for tag in BY_TAG if not any(t == tag for t, _ in REQUIRED)}
    assert kinds_with_none == {"findings"}  # both lists may be empty


@pytest.mark.parametrize(("tag", "name"), REQUIRED)
def test_a_required_field_missing_is_invalid(tag: str, name: str) -> None:
    data = as_dict(BY_TAG[tag])
    del data[name]
    with pytest.raises(InvalidEvent) as caught:
        decode(json.dumps(data).encode())
    assert caught.value.reason == f"Object missing required field `{name}`"
    assert str(caught.value) == caught.value.reason


def _wrong(value: object) -> object:
    """A value of another JSON type than ``value``'s."""
    return 5 if isinstance(value, str) else "five"


EVERY_FIELD = [(tag_of(e), name) for e in SAMPLES for name in as_dict(e) if name != "ev"]


@pytest.mark.parametrize(("tag", "name"), EVERY_FIELD)
def test_a_field_of_the_wrong_type_is_invalid_and_named(tag: str, name: str) -> None:
    data = as_dict(BY_TAG[tag])
    data[name] = _wrong(data[name])
    with pytest.raises(InvalidEvent) as caught:
        decode(json.dumps(data).encode())
    assert caught.value.reason.startswith("Expected `")
    assert caught.value.reason.endswith(f" - at `$.{name}`")


@pytest.mark.parametrize(("line", "reason"), [
    (b'{"ev":"received","seq":true,"id":"a","from":"worker","to":["reviewer"],"kind":"message","body":""}',
     "Expected `int`, got `bool` - at `$.seq`"),
    (b'{"ev":"queued","to":"worker","ids":["a",7]}', "Expected `str`, got `int` - at `$.ids[1]`"),
    (b'{"ev":"queued","to":"worker","ids":"a"}', "Expected `array`, got `str` - at `$.ids`"),
    (b'{"ev":"protocol","phase":"work","limits":{"max_rounds":"6"}}',
     "Expected `int`, got `str` - at `$.limits.max_rounds`"),
    (b'{"ev":"verdict","id":"v","by":"reviewer","kind":"approve","round":1,"phase":"work","findings":[["F1"]]}',
     "Expected `array` of length 2 - at `$.findings[0]`"),
])
def test_a_wrong_type_deeper_in_is_named_with_its_path(line: bytes, reason: str) -> None:
    with pytest.raises(InvalidEvent) as caught:
        decode(line)
    assert caught.value.reason == reason


@pytest.mark.parametrize(("line", "where"), [
    (b'{"ev":"received","seq":1,"id":"a","from":"robot","to":["reviewer"],"kind":"message","body":""}', "$.from"),
    (b'{"ev":"received","seq":1,"id":"a","from":"worker","to":["pairloop"],"kind":"message","body":""}',
     "$.to[0]"),
    (b'{"ev":"received","seq":1,"id":"a","from":"worker","to":["Reviewer"],"kind":"message","body":""}',
     "$.to[0]"),
    (b'{"ev":"received","seq":1,"id":"a","from":"worker","to":["reviewer"],"kind":"shell","body":""}', "$.kind"),
    (b'{"ev":"queued","to":"reviewer ","ids":["a"]}', "$.to"),
    (b'{"ev":"delivered","to":"","ids":["a"]}', "$.to"),
    (b'{"ev":"human_turn","role":"pairloop","text":"x"}', "$.role"),
    (b'{"ev":"agent","role":"worker\\n","state":"ready"}', "$.role"),
])
def test_a_bad_recipient_sender_or_kind_is_invalid(line: bytes, where: str) -> None:
    with pytest.raises(InvalidEvent) as caught:
        decode(line)
    assert caught.value.reason.startswith("Expected `str` matching regex '^(")
    assert caught.value.reason.endswith(f" - at `{where}`")


@pytest.mark.parametrize(("line", "where"), [
    (b'{"ev":"verdict","id":"v","by":"worker","kind":"approve","round":1,"phase":"work"}', "$.by"),
    (b'{"ev":"verdict","id":"v","by":"reviewer","kind":"maybe","round":1,"phase":"work"}', "$.kind"),
    (b'{"ev":"round","round":1,"phase":"review"}', "$.phase"),
    (b'{"ev":"run","state":"stopping"}', "$.state"),
    (b'{"ev":"bridge","state":"crashed"}', "$.state"),
])
def test_a_value_outside_its_choices_is_invalid(line: bytes, where: str) -> None:
    with pytest.raises(InvalidEvent) as caught:
        decode(line)
    assert caught.value.reason.startswith("Invalid enum value '")
    assert caught.value.reason.endswith(f" - at `{where}`")


@pytest.mark.parametrize("ev", ["nope", "delivery-base", "Received", "", "received "])
def test_an_unknown_ev_is_invalid(ev: str) -> None:
    with pytest.raises(InvalidEvent) as caught:
        decode(json.dumps({"ev": ev, "to": "worker", "ids": []}).encode())
    assert caught.value.reason == f"Invalid value '{ev}' - at `$.ev`"


@pytest.mark.parametrize("line", [b'{"ev":5}', b'{"ev":null}', b'{"ev":["received"]}'])
def test_an_ev_that_is_not_a_string_is_invalid(line: bytes) -> None:
    with pytest.raises(InvalidEvent) as caught:
        decode(line)
    assert caught.value.reason == "Expected `str` - at `$.ev`"


@pytest.mark.parametrize("line", [b"{}", b'{"ts":1.0}', b'{"to":"worker","ids":["a"]}'])
def test_no_ev_is_invalid(line: bytes) -> None:
    with pytest.raises(InvalidEvent) as caught:
        decode(line)
    assert caught.value.reason == "Object missing required field `ev`"


@pytest.mark.parametrize("line", [b"not json", b'{"ev":"queued",', b"\xff\xfe", b"", b'{"ev":"run","state":"agreed"} x',
                                  b'{"ev":"run","state":"agreed"', b"{'ev': 'run'}"])
def test_text_that_is_not_json_is_invalid(line: bytes) -> None:
    with pytest.raises(InvalidEvent) as caught:
        decode(line)
    assert caught.value.reason.startswith("not JSON (")


@pytest.mark.parametrize(("line", "got"), [(b"[1,2]", "array"), (b'[{"ev":"run","state":"agreed"}]', "array"),
                                           (b'"str"', "str"), (b"7", "int"), (b"null", "null"), (b"true", "bool")])
def test_json_that_is_not_an_object_is_invalid(line: bytes, got: str) -> None:
    with pytest.raises(InvalidEvent) as caught:
        decode(line)
    assert caught.value.reason == f"Expected `object`, got `{got}`"


@pytest.mark.parametrize("event", SAMPLES, ids=tag_of)
def test_unknown_extra_fields_are_ignored(event: AnyEvent) -> None:
    data = {**as_dict(event), "added_later": {"nested": [1, 2]}, "v": 2}
    assert decode(json.dumps(data).encode()) == event


def test_decode_never_raises_anything_but_invalid_event() -> None:
    """Every cut of every sample line (a torn or garbled record) decodes or is an InvalidEvent."""
    for event in SAMPLES:
        line = encode(event)
        for cut in range(len(line)):
            for damaged in (line[:cut], line[:cut] + b"\x00" + line[cut + 1:], line[:cut] + line[cut + 1:]):
                try:
                    decode(damaged)
                except InvalidEvent as exc:
                    assert exc.reason
