"""bridge.inbox.mailbox: scanning the outbox into arrivals and refusals, and moving files aside safely."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import pytest

from bridge.inbox.mailbox import SETTLE_SECONDS, Arrival, Refusal, Scan, digest, move_aside, scan
from bridge.rundir.message import Message, post

NOT_A_SENDER_FOLDER = "not a sender folder (worker/, reviewer/ or human/)"


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    run = tmp_path / "run"
    run.mkdir()
    return run


@pytest.fixture
def outbox(run_dir: Path) -> Path:
    box = run_dir / "outbox"
    box.mkdir()
    return box


def msg(msg_id: str, sender: str = "worker", created: float = 1.0, body: str = "hi", kind: str = "message",
        to: tuple[str, ...] | None = None) -> Message:
    if to is None:
        to = ("reviewer",) if sender != "reviewer" else ("worker",)
    return Message(msg_id, sender, to, body, kind, created)


def settled(outbox: Path) -> tuple[list[Arrival], list[Refusal]]:
    """Scan as if every file was written long ago, so nothing is still settling."""
    result = scan(outbox, now=time.time() + 3600)
    assert result.unsettled == 0
    return result.arrivals, result.refusals


def write(path: Path, data: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data if isinstance(data, bytes) else json.dumps(data).encode())
    return path


def test_scan_missing_outbox(tmp_path: Path) -> None:
    assert scan(tmp_path / "nope") == Scan([], [], 0)


def test_scan_empty_outbox(outbox: Path) -> None:
    (outbox / "worker").mkdir()
    assert scan(outbox) == Scan([], [], 0)


def test_scan_orders_by_created_across_senders(outbox: Path) -> None:
    late = msg("a-late", "worker", created=30.0)
    first = msg("z-first", "reviewer", created=10.0)
    mid = msg("m-mid", "human", created=20.0)
    for m in (late, first, mid):
        post(outbox, m)
    arrivals, refusals = settled(outbox)
    assert refusals == []
    assert [a.message for a in arrivals] == [first, mid, late]
    assert [a.path for a in arrivals] == [outbox / "reviewer" / "z-first.json", outbox / "human" / "m-mid.json",
                                          outbox / "worker" / "a-late.json"]
    assert arrivals[0] == Arrival(outbox / "reviewer" / "z-first.json", first, digest(first))


def test_scan_breaks_created_ties_by_id(outbox: Path) -> None:
    for m in (msg("c", created=5.0), msg("a", "reviewer", created=5.0), msg("b", created=5.0)):
        post(outbox, m)
    arrivals, _ = settled(outbox)
    assert [a.message.id for a in arrivals] == ["a", "b", "c"]


def test_digest_depends_on_content_not_id_or_time() -> None:
    one = msg("a", created=1.0, body="same")
    assert digest(one) == digest(msg("b", created=2.0, body="same"))
    assert len(digest(one)) == 16
    assert int(digest(one), 16) >= 0
    assert digest(one) != digest(msg("a", body="other"))
    assert digest(one) != digest(msg("a", body="same", kind="done"))
    assert digest(one) != digest(msg("a", "human", body="same"))
    assert digest(one) != digest(msg("a", "human", body="same", to=("reviewer", "worker")))


def test_scan_refuses_bad_files_with_reasons_and_keeps_good_ones(outbox: Path) -> None:
    good = msg("good")
    post(outbox, good)
    bad_json = write(outbox / "worker" / "bad.json", b"{nope")
    empty = write(outbox / "worker" / "empty.json", b"")
    wrong_from = write(outbox / "worker" / "liar.json",
                       {"id": "liar", "from": "reviewer", "to": ["worker"], "body": "x"})
    human_txt = write(outbox / "human" / "note.txt", b"do it")
    bad_name = write(outbox / "reviewer" / "bad name.json", json.dumps(msg("x", "reviewer").to_json()).encode())
    arrivals, refusals = settled(outbox)
    assert [a.message for a in arrivals] == [good]
    assert refusals == [
        Refusal(human_txt, "plain-text files are only for agents; the human must name 'to' in JSON"),
        Refusal(bad_name, "file name has characters outside A-Z a-z 0-9 . _ -"),
        Refusal(bad_json, "unparseable JSON: Expecting property name enclosed in double quotes (line 1)"),
        Refusal(empty, "empty file"),
        Refusal(wrong_from, "'from' is 'reviewer' but the file is in the 'worker' outbox"),
    ]


def test_scan_accepts_a_plain_note_from_an_agent(outbox: Path) -> None:
    path = write(outbox / "reviewer" / "looks-good.md", b"LGTM\n")
    arrivals, refusals = settled(outbox)
    assert refusals == []
    assert len(arrivals) == 1
    assert arrivals[0].path == path
    assert arrivals[0].message.to == ("worker",)
    assert arrivals[0].message.body == "LGTM\n"


def test_scan_ignores_hidden_temp_files_and_folders(outbox: Path) -> None:
    write(outbox / "worker" / ".m-1.json.ab12cd34.tmp", b'{"half": ')
    write(outbox / "worker" / ".m-2.json.ab12cd34.tmp", b"")
    write(outbox / ".hidden" / "x.json", b"junk")
    write(outbox / ".stray", b"junk")
    post(outbox, msg("m-3"))
    arrivals, refusals = settled(outbox)
    assert refusals == []
    assert [a.message.id for a in arrivals] == ["m-3"]


def test_scan_refuses_each_file_in_an_unknown_sender_folder(outbox: Path) -> None:
    one = write(outbox / "bob" / "a.json", msg("a").to_json())
    two = write(outbox / "bob" / "b.txt", b"hi")
    write(outbox / "bob" / ".tmp", b"")
    arrivals, refusals = settled(outbox)
    assert arrivals == []
    assert refusals == [Refusal(one, "unknown sender folder 'bob'"), Refusal(two, "unknown sender folder 'bob'")]


def test_scan_refuses_a_file_where_a_sender_folder_belongs(outbox: Path) -> None:
    stray = write(outbox / "message.json", msg("a").to_json())
    arrivals, refusals = settled(outbox)
    assert arrivals == []
    assert refusals == [Refusal(stray, NOT_A_SENDER_FOLDER)]


def test_scan_refuses_a_symlinked_sender_folder(outbox: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    write(elsewhere / "a.json", msg("a").to_json())
    (outbox / "worker").symlink_to(elsewhere, target_is_directory=True)
    arrivals, refusals = settled(outbox)
    assert arrivals == []
    assert refusals == [Refusal(outbox / "worker", NOT_A_SENDER_FOLDER)]


def test_scan_refuses_a_symlinked_message_file(outbox: Path, tmp_path: Path) -> None:
    target = write(tmp_path / "secret.json", msg("a").to_json())
    (outbox / "worker").mkdir()
    link = outbox / "worker" / "a.json"
    link.symlink_to(target)
    arrivals, refusals = settled(outbox)
    assert arrivals == []
    assert refusals == [Refusal(link, "a symlink, not a file")]


def test_a_fresh_unparseable_file_is_unsettled_not_refused(outbox: Path) -> None:
    path = write(outbox / "worker" / "half.json", b'{"id": ')
    os.utime(path, (1000.0, 1000.0))
    post(outbox, msg("good"))
    fresh = scan(outbox, now=1000.0 + SETTLE_SECONDS / 2)
    assert [a.message.id for a in fresh.arrivals] == ["good"]
    assert fresh.refusals == []
    assert fresh.unsettled == 1
    old = scan(outbox, now=1000.0 + SETTLE_SECONDS)
    assert [a.message.id for a in old.arrivals] == ["good"]
    assert old.refusals == [Refusal(path, "unparseable JSON: Expecting value (line 1)")]
    assert old.unsettled == 0


def test_a_fresh_file_completed_in_place_then_arrives(outbox: Path) -> None:
    path = write(outbox / "worker" / "m.json", b"")
    assert scan(outbox).unsettled == 1
    write(path, msg("m").to_json())
    result = scan(outbox)
    assert [a.message for a in result.arrivals] == [msg("m")]
    assert result.refusals == []
    assert result.unsettled == 0


def test_a_fresh_symlink_is_refused_at_once(outbox: Path, tmp_path: Path) -> None:
    target = write(tmp_path / "secret.json", msg("a").to_json())
    (outbox / "worker").mkdir()
    link = outbox / "worker" / "a.json"
    link.symlink_to(target)
    result = scan(outbox)
    assert result == Scan([], [Refusal(link, "a symlink, not a file")], 0)


def test_fresh_files_in_an_unknown_sender_folder_are_refused_at_once(outbox: Path) -> None:
    path = write(outbox / "bob" / "a.json", b"{")
    assert scan(outbox) == Scan([], [Refusal(path, "unknown sender folder 'bob'")], 0)


# ---- move_aside --------------------------------------------------------------------------------------


def test_move_aside_files_under_the_sender(outbox: Path, run_dir: Path) -> None:
    path = post(outbox, msg("a"))
    dest = move_aside(path, run_dir, "archive")
    assert dest == run_dir / "archive" / "worker" / "a.json"
    assert not path.exists()
    assert json.loads(dest.read_text())["id"] == "a"


def test_move_aside_never_overwrites(outbox: Path, run_dir: Path) -> None:
    first = move_aside(write(outbox / "worker" / "a.json", b"first"), run_dir, "rejected")
    second = move_aside(write(outbox / "worker" / "a.json", b"second"), run_dir, "rejected")
    third = move_aside(write(outbox / "worker" / "a.json", b"third"), run_dir, "rejected")
    assert first == run_dir / "rejected" / "worker" / "a.json"
    assert len({first, second, third}) == 3
    for dest in (second, third):
        assert dest.parent == first.parent
        assert dest.name.startswith("a.json.")
        assert len(dest.name) == len("a.json.") + 6
    assert [p.read_bytes() for p in (first, second, third)] == [b"first", b"second", b"third"]
    assert sorted(p.read_bytes() for p in first.parent.iterdir()) == [b"first", b"second", b"third"]


def test_move_aside_does_not_overwrite_a_dangling_symlink(outbox: Path, run_dir: Path) -> None:
    dest_dir = run_dir / "rejected" / "worker"
    dest_dir.mkdir(parents=True)
    (dest_dir / "a.json").symlink_to(run_dir / "missing")
    dest = move_aside(write(outbox / "worker" / "a.json", b"data"), run_dir, "rejected")
    assert dest != dest_dir / "a.json"
    assert (dest_dir / "a.json").is_symlink()
    assert dest.read_bytes() == b"data"


def test_move_aside_moves_a_link_not_its_target(outbox: Path, run_dir: Path, tmp_path: Path) -> None:
    target = write(tmp_path / "secret", b"secret")
    (outbox / "worker").mkdir()
    link = outbox / "worker" / "a.json"
    link.symlink_to(target)
    dest = move_aside(link, run_dir, "rejected")
    assert dest.is_symlink()
    assert dest.readlink() == target
    assert target.read_bytes() == b"secret"
    assert not link.is_symlink()


def test_move_aside_a_whole_folder(outbox: Path, run_dir: Path) -> None:
    write(outbox / "bob" / "x.json", b"x")
    dest = move_aside(outbox / "bob", run_dir, "rejected")
    assert dest == run_dir / "rejected" / "outbox" / "bob"
    assert (dest / "x.json").read_bytes() == b"x"
