"""What an agent can put in its own workspace is read as untrusted data: never followed, never blocked on."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from bridge.rundir.agent_events import InvalidAgentEvent, read_agent_event
from bridge.rundir.files import private_dir, write_atomic


def test_an_event_file_that_is_a_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "1-prompt.json"
    os.mkfifo(fifo)
    outcome: list[str] = []
    reader = threading.Thread(target=lambda: outcome.append(_reason(fifo)), daemon=True)
    reader.start()
    reader.join(timeout=5)
    assert outcome == ["not a regular file"], "a FIFO an agent left must not hang the bridge"


def test_an_event_file_that_is_a_symlink_is_not_followed(tmp_path: Path) -> None:
    secret = tmp_path / "secret.json"
    secret.write_text('{"event": "prompt", "prompt": "from elsewhere"}')
    link = tmp_path / "1-prompt.json"
    link.symlink_to(secret)
    assert _reason(link) == "a symlink, not a file"


def test_a_huge_event_file_is_refused(tmp_path: Path) -> None:
    big = tmp_path / "1-prompt.json"
    with big.open("wb") as f:
        f.truncate(5 * 1024 * 1024)
    assert _reason(big) == "larger than 4 MiB"


def test_a_folder_replaced_by_a_symlink_is_never_written_or_chmodded_through(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir(mode=0o755)
    os.chmod(elsewhere, 0o755)
    mailbox = tmp_path / "mailbox"
    mailbox.mkdir()
    (mailbox / "attachments").symlink_to(elsewhere)
    with pytest.raises(OSError, match="symlink"):
        private_dir(mailbox / "attachments")
    assert oct(elsewhere.stat().st_mode & 0o777) == "0o755", "the link's target kept its mode"
    assert list(elsewhere.iterdir()) == []
    write_atomic(tmp_path / "plain.txt", b"x")  # an ordinary folder still works
    assert private_dir(tmp_path / "fine").is_dir()


def _reason(path: Path) -> str:
    try:
        read_agent_event(path)
    except InvalidAgentEvent as exc:
        return exc.reason
    return "read"
