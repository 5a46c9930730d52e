"""bridge.rundir.message: validation of decoded JSON, refusals of outbox files, atomic posting, sortable ids."""

from __future__ import annotations

import json
import os
import re
import stat
import time
from pathlib import Path
from typing import Any

import pytest

from bridge.rundir.files import write_atomic
from bridge.rundir.message import (
    MAX_FILE_BYTES,
    MalformedMessage,
    Message,
    new_message_id,
    partner_of,
    post,
    read_message_file,
)


def _good(**overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {"v": 1, "id": "m-1", "from": "worker", "to": ["reviewer"], "kind": "message",
                            "created": 12.5, "body": "hello"}
    data.update(overrides)
    return data


def _refusal(data: Any) -> str:
    with pytest.raises(MalformedMessage) as info:
        Message.from_json(data)
    assert str(info.value) == info.value.reason
    return info.value.reason


@pytest.fixture
def outbox(tmp_path: Path) -> Path:
    box = tmp_path / "outbox"
    for sender in ("worker", "reviewer", "human"):
        (box / sender).mkdir(parents=True)
    return box


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _read_refusal(path: Path, outbox: Path) -> str:
    with pytest.raises(MalformedMessage) as info:
        read_message_file(path, outbox)
    return info.value.reason


# ---- Message.from_json -------------------------------------------------------------------------------


def test_from_json_accepts_a_full_message() -> None:
    msg = Message.from_json(_good())
    assert msg == Message("m-1", "worker", ("reviewer",), "hello", "message", 12.5)


def test_from_json_defaults_kind_and_created() -> None:
    data = _good()
    del data["kind"], data["created"]
    msg = Message.from_json(data)
    assert msg.kind == "message"
    assert msg.created == 0.0
    assert isinstance(msg.created, float)


def test_from_json_accepts_to_as_a_string() -> None:
    assert Message.from_json(_good(to="reviewer")).to == ("reviewer",)


def test_from_json_deduplicates_recipients_keeping_order() -> None:
    msg = Message.from_json(_good(**{"from": "human", "to": ["reviewer", "worker", "reviewer"]}))
    assert msg.to == ("reviewer", "worker")


def test_from_json_int_created_becomes_float() -> None:
    msg = Message.from_json(_good(created=7))
    assert msg.created == 7.0
    assert isinstance(msg.created, float)


@pytest.mark.parametrize("kind", ["message", "task", "approve", "done"])
def test_from_json_accepts_every_kind(kind: str) -> None:
    assert Message.from_json(_good(kind=kind)).kind == kind


def test_to_json_round_trips() -> None:
    msg = Message("abc", "human", ("worker", "reviewer"), "body ü", "task", 3.25)
    data = msg.to_json()
    assert data == {"v": 1, "id": "abc", "from": "human", "to": ["worker", "reviewer"], "kind": "task",
                    "created": 3.25, "body": "body ü"}
    assert Message.from_json(json.loads(json.dumps(data))) == msg


@pytest.mark.parametrize("data", [None, [], "text", 3, ["id", "m"]])
def test_from_json_refuses_non_objects(data: Any) -> None:
    assert _refusal(data) == "not a JSON object"


@pytest.mark.parametrize("msg_id", [None, 5, "", ".hidden", "-dash", "../escape", "has space", "a/b", "x" * 82,
                                    "ünï", "m-1\n", "m-1\r\n"])
def test_from_json_refuses_bad_ids(msg_id: Any) -> None:
    data = _good(id=msg_id)
    if msg_id is None:
        del data["id"]
    assert _refusal(data) == "missing or invalid 'id'"


def test_from_json_accepts_longest_id() -> None:
    assert Message.from_json(_good(id="x" * 81)).id == "x" * 81


@pytest.mark.parametrize("sender", [None, "bridge", "Worker", "", 1])
def test_from_json_refuses_unknown_sender(sender: Any) -> None:
    assert _refusal(_good(**{"from": sender})) == "'from' must be one of worker, reviewer, human"


@pytest.mark.parametrize("to", [None, [], "", "bob", ["reviewer", "bob"], {"reviewer": 1}, 3])
def test_from_json_refuses_bad_recipients(to: Any) -> None:
    assert _refusal(_good(to=to)) == "'to' must name one or more of worker, reviewer, human"


@pytest.mark.parametrize(("sender", "to"), [("worker", ["worker"]), ("human", ["reviewer", "human"]),
                                            ("reviewer", "reviewer")])
def test_from_json_refuses_a_message_to_oneself(sender: str, to: Any) -> None:
    assert _refusal(_good(**{"from": sender, "to": to})) == "a sender cannot message itself"


@pytest.mark.parametrize("kind", ["approval", "", None, "MESSAGE"])
def test_from_json_refuses_unknown_kind(kind: Any) -> None:
    assert _refusal(_good(kind=kind)) == "'kind' must be one of message, task, review, approve, changes, done"


@pytest.mark.parametrize("body", [None, "", "   \n\t ", 42, ["text"]])
def test_from_json_refuses_empty_or_non_text_body(body: Any) -> None:
    data = _good(body=body)
    if body is None:
        del data["body"]
    assert _refusal(data) == "empty or missing 'body'"


@pytest.mark.parametrize("created", ["12", None, [1]])
def test_from_json_refuses_non_numeric_created(created: Any) -> None:
    assert _refusal(_good(created=created)) == "'created' must be a number"


def test_from_json_reports_the_first_problem() -> None:
    assert _refusal({"id": "ok", "from": "nobody", "to": [], "body": ""}) == (
        "'from' must be one of worker, reviewer, human")


def test_partner_of() -> None:
    assert partner_of("worker") == "reviewer"
    assert partner_of("reviewer") == "worker"


# ---- read_message_file -------------------------------------------------------------------------------


def test_read_accepts_a_json_message(outbox: Path) -> None:
    path = _write(outbox / "worker" / "m-1.json", json.dumps(_good(body="héllo")).encode())
    assert read_message_file(path, outbox) == Message("m-1", "worker", ("reviewer",), "héllo", "message", 12.5)


def test_read_refuses_non_utf8(outbox: Path) -> None:
    path = _write(outbox / "worker" / "m.json", b'{"body": "\xff"}')
    assert _read_refusal(path, outbox) == "not UTF-8 (byte 10)"


def test_read_refuses_an_empty_file(outbox: Path) -> None:
    path = _write(outbox / "worker" / "m.json", b"")
    assert _read_refusal(path, outbox) == "empty file"


def test_read_refuses_unparseable_json(outbox: Path) -> None:
    path = _write(outbox / "worker" / "m.json", b'{"id": "m",\n oops}')
    assert _read_refusal(path, outbox) == (
        "unparseable JSON: Expecting property name enclosed in double quotes (line 2)")


def test_read_refuses_json_that_is_not_a_message(outbox: Path) -> None:
    path = _write(outbox / "worker" / "m.json", b"[1, 2]")
    assert _read_refusal(path, outbox) == "not a JSON object"


def test_read_refuses_a_symlink(outbox: Path, tmp_path: Path) -> None:
    target = _write(tmp_path / "elsewhere.json", json.dumps(_good()).encode())
    link = outbox / "worker" / "m-1.json"
    link.symlink_to(target)
    assert _read_refusal(link, outbox) == "a symlink, not a file"


def test_read_refuses_a_symlink_to_a_file_inside_the_outbox(outbox: Path) -> None:
    real = _write(outbox / "worker" / "real.json", json.dumps(_good()).encode())
    link = outbox / "worker" / "m-1.json"
    link.symlink_to(real)
    assert _read_refusal(link, outbox) == "a symlink, not a file"


def test_read_refuses_a_symlinked_sender_folder(tmp_path: Path) -> None:
    outbox = tmp_path / "outbox"
    outbox.mkdir()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (outbox / "worker").symlink_to(elsewhere, target_is_directory=True)
    path = _write(elsewhere / "m-1.json", json.dumps(_good()).encode())
    assert _read_refusal(outbox / "worker" / path.name, outbox) == "the sender folder is a symlink"


def test_read_refuses_a_file_outside_a_sender_folder(outbox: Path, tmp_path: Path) -> None:
    stray = _write(outbox / "m-1.json", json.dumps(_good()).encode())
    assert _read_refusal(stray, outbox) == "not in a sender's outbox folder (worker, reviewer, human)"
    (outbox / "bob").mkdir()
    unknown = _write(outbox / "bob" / "m-1.json", json.dumps(_good()).encode())
    assert _read_refusal(unknown, outbox) == "not in a sender's outbox folder (worker, reviewer, human)"
    other = tmp_path / "other" / "worker"
    other.mkdir(parents=True)
    foreign = _write(other / "m-1.json", json.dumps(_good()).encode())
    assert _read_refusal(foreign, outbox) == "not in a sender's outbox folder (worker, reviewer, human)"


def test_read_refuses_from_that_disagrees_with_the_folder(outbox: Path) -> None:
    path = _write(outbox / "worker" / "m-1.json",
                  json.dumps(_good(**{"from": "reviewer", "to": ["worker"]})).encode())
    assert _read_refusal(path, outbox) == "'from' is 'reviewer' but the file is in the 'worker' outbox"


@pytest.mark.parametrize("name", ["has space.json", "-rf.json", "semi;colon.json", "ünï.json", "a$b.json",
                                  "x" * 117 + ".json", "m-1.json\n"])
def test_read_refuses_bad_file_names(outbox: Path, name: str) -> None:
    path = _write(outbox / "worker" / name, json.dumps(_good()).encode())
    assert _read_refusal(path, outbox) == "file name has characters outside A-Z a-z 0-9 . _ -"


def test_read_accepts_the_longest_file_name(outbox: Path) -> None:
    name = "x" * 116 + ".json"
    assert len(name) == 121
    path = _write(outbox / "worker" / name, json.dumps(_good()).encode())
    assert read_message_file(path, outbox).id == "m-1"


def test_read_refuses_a_directory(outbox: Path) -> None:
    path = outbox / "worker" / "m-1.json"
    path.mkdir()
    assert _read_refusal(path, outbox) == "not a regular file"


def test_read_refuses_an_unknown_suffix(outbox: Path) -> None:
    path = _write(outbox / "worker" / "m-1.yaml", b"body: hi\n")
    assert _read_refusal(path, outbox) == (
        "unknown file type: use .json (or .txt/.md for a plain note to the partner)")


@pytest.mark.parametrize(("sender", "partner"), [("worker", "reviewer"), ("reviewer", "worker")])
@pytest.mark.parametrize("suffix", [".txt", ".md"])
def test_read_plain_note_from_an_agent_goes_to_its_partner(outbox: Path, sender: str, partner: str,
                                                           suffix: str) -> None:
    text = "Please look at\n  `foo()` — it's $(odd)\n"
    path = _write(outbox / sender / f"note-7{suffix}", text.encode())
    os.utime(path, (1000.0, 1234.5))
    msg = read_message_file(path, outbox)
    assert re.fullmatch(r"note-7-[0-9a-f]{8}", msg.id)
    assert msg == Message(msg.id, sender, (partner,), text, "message", 1234.5)
    assert read_message_file(path, outbox).id == msg.id, "read again after a crash: the same message"


def test_two_plain_notes_with_the_same_name_are_different_messages(outbox: Path) -> None:
    path = _write(outbox / "worker" / "reply.txt", b"first")
    first = read_message_file(path, outbox)
    path.write_bytes(b"second")
    os.utime(path, (1000.0, 2000.0))
    second = read_message_file(path, outbox)
    assert first.id != second.id
    assert first.id.startswith("reply-") and second.id.startswith("reply-")


def test_read_plain_note_with_a_stem_too_long_for_an_id_gets_a_fresh_id(outbox: Path) -> None:
    name = "n" * 90 + ".txt"
    path = _write(outbox / "worker" / name, b"hi")
    msg = read_message_file(path, outbox)
    assert re.fullmatch(r"note-[0-9a-f]{8}", msg.id)
    assert msg.body == "hi"
    assert msg.to == ("reviewer",)


def test_read_refuses_a_plain_note_from_the_human(outbox: Path) -> None:
    path = _write(outbox / "human" / "note.txt", b"do this")
    assert _read_refusal(path, outbox) == "plain-text files are only for agents; the human must name 'to' in JSON"


def test_read_refuses_a_blank_plain_note(outbox: Path) -> None:
    path = _write(outbox / "worker" / "note.txt", b"  \n\t\n")
    assert _read_refusal(path, outbox) == "empty body"


def test_read_refuses_a_plain_note_that_is_not_utf8(outbox: Path) -> None:
    path = _write(outbox / "worker" / "note.txt", b"ok \xc3\x28")
    assert _read_refusal(path, outbox) == "not UTF-8 (byte 3)"


def test_read_refuses_an_oversize_file(outbox: Path) -> None:
    path = outbox / "worker" / "big.json"
    with path.open("wb") as f:
        f.truncate(MAX_FILE_BYTES + 1)
    assert _read_refusal(path, outbox) == "larger than 4 MiB"


def test_read_size_limit_is_inclusive(outbox: Path) -> None:
    body = "x" * (MAX_FILE_BYTES - len(json.dumps(_good(body=""))))
    data = json.dumps(_good(body=body)).encode()
    assert len(data) == MAX_FILE_BYTES
    path = _write(outbox / "worker" / "m-1.json", data)
    assert read_message_file(path, outbox).body == body


# ---- post / write_atomic / new_message_id ---------------------------------------------------------


def test_post_writes_the_message_file_and_reads_back(tmp_path: Path) -> None:
    outbox = tmp_path / "outbox"
    msg = Message("abc-1", "reviewer", ("worker",), "ünïcødé \"q\" $(x)\n", "approve", 99.0)
    path = post(outbox, msg)
    assert path == outbox / "reviewer" / "abc-1.json"
    assert json.loads(path.read_bytes().decode("utf-8")) == msg.to_json()
    assert "ünïcødé" in path.read_text(encoding="utf-8")  # not \u-escaped
    assert read_message_file(path, outbox) == msg
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert sorted(p.name for p in (outbox / "reviewer").iterdir()) == ["abc-1.json"]


def test_post_leaves_no_temp_file_when_it_replaces(tmp_path: Path) -> None:
    outbox = tmp_path / "outbox"
    post(outbox, Message("a", "worker", ("reviewer",), "one", created=1.0))
    post(outbox, Message("a", "worker", ("reviewer",), "two", created=2.0))
    post(outbox, Message("b", "worker", ("reviewer",), "three", created=3.0))
    assert sorted(p.name for p in (outbox / "worker").iterdir()) == ["a.json", "b.json"]
    assert json.loads((outbox / "worker" / "a.json").read_text())["body"] == "two"


def test_write_atomic_renames_a_hidden_temp_file_into_place(tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[tuple[str, str]] = []
    real_replace = os.replace

    def spy(src: Any, dst: Any) -> None:
        seen.append((Path(src).name, Path(dst).name))
        assert not Path(dst).exists()  # readers never see the target before it is complete
        assert Path(src).read_bytes() == b"payload"
        real_replace(src, dst)

    folder = tmp_path / "dir"
    folder.mkdir()
    monkeypatch.setattr(os, "replace", spy)
    write_atomic(folder / "f.json", b"payload", mode=0o640)
    assert len(seen) == 1
    assert re.fullmatch(r"\.f\.json\.[0-9a-f]{8}\.tmp", seen[0][0])
    assert seen[0][1] == "f.json"
    assert [p.name for p in folder.iterdir()] == ["f.json"]
    assert (folder / "f.json").read_bytes() == b"payload"
    assert stat.S_IMODE((folder / "f.json").stat().st_mode) == 0o640 & ~_umask()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_new_message_id_is_a_valid_id_and_sortable_by_time(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = iter([1_700_000_000_000 * 1_000_000 + i * 1_000_000 for i in (0, 1, 2, 1000, 86_400_000)])
    monkeypatch.setattr(time, "time_ns", lambda: next(clock))
    ids = [new_message_id() for _ in range(5)]
    assert ids[0].startswith(f"{1_700_000_000_000:x}-")
    for msg_id in ids:
        assert re.fullmatch(r"[0-9a-f]{11}-[0-9a-f]{4}", msg_id)
        assert Message.from_json(_good(id=msg_id)).id == msg_id
    assert sorted(ids) == ids


def test_new_message_id_unique_within_one_millisecond(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(time, "time_ns", lambda: 1_700_000_000_000 * 1_000_000)
    ids = {new_message_id() for _ in range(50)}
    assert len(ids) >= 45  # 16 random bits: a handful of collisions in 50 is astronomically unlikely
