"""Temp files a crashed writer left in an outbox are removed after a grace period, with a note.

A writer renames its hidden temp file into place when complete; one that nothing has written for
ABANDONED_SECONDS will never be finished. mtimes are fabricated with os.utime: no test waits ten minutes."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import cast

import pytest

from bridge.book import Book
from bridge.inbox.intake import Intake
from bridge.inbox.mailbox import ABANDONED_SECONDS, scan
from bridge.panes.tmux import Tmux
from bridge.protocol.referee import Referee
from bridge.rundir.message import Message, post
from pairloop.runs.lifecycle import send_message
from tests.conftest import wait_for
from tests.helpers import bridge_pane_shows, delivered, ledger, start_sims

LONG_AGO = ABANDONED_SECONDS + 60


def aged(path: Path, seconds: float, data: bytes = b'{"v": 1, "id": "half') -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    then = time.time() - seconds
    os.utime(path, (then, then))
    return path


def test_only_hidden_files_untouched_for_the_grace_period_are_litter(tmp_path: Path) -> None:
    outbox = tmp_path / "outbox"
    old_tmp = aged(outbox / "worker" / ".1a2b.json.5f3c9e01.tmp", LONG_AGO)
    aged(outbox / "worker" / ".fresh.json.0000.tmp", ABANDONED_SECONDS - 60)  # a slow writer, still in time
    old_top = aged(outbox / ".stray", LONG_AGO)
    hidden_dir = outbox / "reviewer" / ".a-folder"
    hidden_dir.mkdir(parents=True)
    os.utime(hidden_dir, (time.time() - LONG_AGO,) * 2)  # folders are never removed
    post(outbox, Message("m-1", "worker", ("reviewer",), "a real message"))
    os.utime(outbox / "worker" / "m-1.json", (time.time() - LONG_AGO,) * 2)
    link = outbox / "human" / ".dangling"
    link.parent.mkdir()
    link.symlink_to(tmp_path / "nowhere")
    os.utime(link, (time.time() - LONG_AGO,) * 2, follow_symlinks=False)

    found = scan(outbox)
    assert sorted(item.path for item in found.litter) == sorted([old_tmp, old_top, link])
    assert all(item.age >= LONG_AGO - 5 for item in found.litter)
    assert [a.message.id for a in found.arrivals] == ["m-1"], "a message is never litter, however old"
    assert found.refusals == []


def intake(tmp_path: Path) -> tuple[Intake, Path]:
    mailbox = tmp_path / "mailbox"
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    box = Intake(run_dir, mailbox, ("worker", "reviewer"))
    box.prepare()
    return box, mailbox


def pass_over(box: Intake) -> list[str]:
    """One pass of the bridge over the outbox (no referee is needed when nothing arrives)."""
    assert list(box.arrivals(Book(), cast(Referee, None))) == []
    return [r.said for r in box.refusals()]


def test_the_bridge_removes_litter_and_says_so(tmp_path: Path) -> None:
    box, mailbox = intake(tmp_path)
    litter = aged(mailbox / "outbox" / "worker" / ".m-2.json.deadbeef.tmp", LONG_AGO)
    fresh = aged(mailbox / "outbox" / "worker" / ".m-3.json.cafe0000.tmp", 5)
    assert list(box.arrivals(Book(), cast(Referee, None))) == []
    (done,) = box.refusals()
    assert done.removed
    assert done.event.file == "outbox/worker/.m-2.json.deadbeef.tmp"
    assert done.event.moved_to == ""
    assert "crashed" in done.event.reason and done.event.reason.endswith("removed")
    assert done.said.startswith("removed outbox/worker/.m-2.json.deadbeef.tmp: a hidden temp file nothing had "
                                "written for 11 minutes")
    assert not litter.exists()
    assert fresh.exists(), "a temp file still inside the grace period is left to its writer"
    assert pass_over(box) == [], "said once: it is gone"


def test_a_temp_file_written_again_after_the_scan_is_kept(tmp_path: Path) -> None:
    box, mailbox = intake(tmp_path)
    tmp = aged(mailbox / "outbox" / "reviewer" / ".m-4.json.00ff00ff.tmp", LONG_AGO)
    assert list(box.arrivals(Book(), cast(Referee, None))) == []
    os.utime(tmp)  # the writer was only slow: it writes again before the bridge acts
    assert [r.said for r in box.refusals()] == []
    assert tmp.exists()


def test_litter_that_cannot_be_removed_is_a_trouble_not_a_crash(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    box, mailbox = intake(tmp_path)
    tmp = aged(mailbox / "outbox" / "worker" / ".m-5.json.0badf00d.tmp", LONG_AGO)

    def refuse(self: Path, missing_ok: bool = False) -> None:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(Path, "unlink", refuse)
    assert pass_over(box) == []
    monkeypatch.undo()
    assert box.take_troubles() == ["cannot remove an abandoned temp file: Permission denied"]
    assert tmp.exists()
    assert len(pass_over(box)) == 1 and not tmp.exists(), "removed at the next pass"


@pytest.mark.tmux
def test_a_running_bridge_cleans_an_outbox_and_notes_it_in_the_ledger_and_its_log(tmux_server: Tmux,
                                                                                   git_repo: Path) -> None:
    run = start_sims(tmux_server, git_repo)
    litter = aged(run.outbox / "worker" / ".m-6.json.12345678.tmp", LONG_AGO)
    msg = send_message(run, "worker", ("reviewer",), "a message after a crash")  # the bridge scans the outbox
    wait_for(lambda: delivered(run, msg.id, "reviewer"), what="the message")
    wait_for(lambda: not litter.exists(), what="the litter removed")
    (rejected,) = [e for e in ledger(run) if e["ev"] == "rejected"]
    assert rejected["file"] == "outbox/worker/.m-6.json.12345678.tmp" and "moved_to" not in rejected
    log = (run.dir / "bridge.log").read_text()
    assert "removed outbox/worker/.m-6.json.12345678.tmp: a hidden temp file nothing had written for" in log
    bridge_pane_shows(tmux_server, run, "removed outbox/worker/.m-6.json.12345678.tmp", history=50)
