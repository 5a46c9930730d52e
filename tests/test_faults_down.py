"""A send to a run whose bridge (or whole tmux session) is down: the message is kept, `send` says it waits, `log`
shows it waiting, and a bridge started again delivers it once."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest
from click.testing import CliRunner

from bridge import Message, Tmux, bridge_running, new_message_id, post
from pairloop.cli import cli
from pairloop.runs.lifecycle import down_note
from pairloop.runs.store import Run
from tests.conftest import wait_for
from tests.helpers import (
    bridge_pid,
    delivered,
    ids_received,
    restart_bridge,
    run_without_tmux,
    settle,
    start_sims,
)

WAITS = "the message waits in the outbox; it is relayed when the bridge is back (`pairloop resume`)"


def pairloop(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def test_what_a_sender_is_told_when_nothing_relays_its_message() -> None:
    waits = "the message waits in the outbox"
    assert down_note(True, True, "s", waits) == ""
    assert down_note(False, True, "s", waits) == f"the bridge is not running: {WAITS}"
    assert down_note(False, False, "pairloop-x", waits) == f"the tmux session pairloop-x is gone, and with it the " \
                                                           f"bridge: {WAITS}"


def waiting_lines(run: Run) -> list[str]:
    return [line for line in pairloop("log", "--run", run.id)[1].splitlines() if "waiting" in line]


def waiting_json(run: Run) -> list[dict[str, object]]:
    records = [json.loads(line) for line in pairloop("log", "--run", run.id, "--json")[1].splitlines()]
    return [r for r in records if r.get("state") == "waiting"]


def test_a_send_while_the_bridge_is_down_waits_in_the_outbox_and_is_delivered_once_it_is_back(
        tmux_server: Tmux, git_repo: Path) -> None:
    run = start_sims(tmux_server, git_repo)
    os.kill(bridge_pid(run), signal.SIGTERM)  # a bridge that was stopped (a killed one is back within 2 s)
    wait_for(lambda: not bridge_running(run.dir), what="the bridge to be gone")

    code, out, err = pairloop("send", "--to", "reviewer", "sent while the bridge was down")
    msg_id = out.strip()
    assert (code, err) == (0, f"the bridge is not running: {WAITS}\n")
    assert msg_id and (run.outbox / "human" / f"{msg_id}.json").is_file()
    (line,) = waiting_lines(run)
    assert line.endswith("human → reviewer  waiting: not yet picked up by the bridge")
    assert "    sent while the bridge was down" in pairloop("log")[1]
    (record,) = waiting_json(run)
    assert (record["id"], record["waiting"], record["body"]) == (
        msg_id, "not yet picked up by the bridge", "sent while the bridge was down")

    restart_bridge(tmux_server, run)
    wait_for(lambda: delivered(run, msg_id, "reviewer"), what="the waiting message delivered")
    probe = settle(run, "reviewer")  # a second paste of it would have come before this one
    assert ids_received(run, "reviewer") == {msg_id: 1, probe.id: 1}
    assert waiting_lines(run) == [] and waiting_json(run) == []
    code, _, err = pairloop("send", "--to", "reviewer", "and with the bridge back")
    assert (code, err) == (0, ""), "nothing to say when the bridge runs"


def test_a_send_after_the_tmux_server_died_says_the_session_is_gone(tmux_server: Tmux, git_repo: Path) -> None:
    run = start_sims(tmux_server, git_repo)
    tmux_server.kill_server()
    wait_for(lambda: not bridge_running(run.dir), what="the bridge to stop with its session")

    code, out, err = pairloop("send", "--to", "worker", "anyone there?")
    assert code == 0 and out.strip()
    assert err == f"the tmux session {run.session} is gone, and with it the bridge: {WAITS}\n"
    (record,) = waiting_json(run)
    assert record["id"] == out.strip()
    code, _, err = pairloop("pause")
    assert code == 0 and err.startswith(f"the tmux session {run.session} is gone, and with it the bridge: the "
                                        "request waits;")


def test_log_shows_only_plain_messages_as_waiting(git_repo: Path, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """The outbox is anyone's to write: what is not plainly a message (or is already in the ledger) is not shown."""
    monkeypatch.setenv("PAIRLOOP_HOME", str(tmp_path / "state"))
    run_dir = run_without_tmux(git_repo, tmp_path / "state")
    outbox = git_repo / ".pairloop" / "runs" / run_dir.name / "outbox"
    later = post(outbox, Message(new_message_id(), "worker", ("reviewer",), "second \x1b]2;title\x07", created=2.0))
    first = post(outbox, Message(new_message_id(), "human", ("worker",), "first", created=1.0))
    (outbox / "human" / ".tmp-being-written").write_text("{")
    (outbox / "human" / "broken.json").write_text("{")
    (outbox / "reviewer").mkdir()
    (outbox / "reviewer" / "wrong.json").write_text(first.read_text())  # in the wrong sender's folder
    code, out, _ = pairloop("log")
    heads = [line for line in out.splitlines() if not line.startswith("    ")]
    assert code == 0 and [h.split("  ", 1)[1] for h in heads] == [
        "waiting: not yet picked up by the bridge"] * 2
    assert [h.split(" ")[2:5] for h in heads] == [["human", "→", "worker"], ["worker", "→", "reviewer"]]
    assert "\x1b" not in out, "shown inert"
    records = [json.loads(line) for line in pairloop("log", "--json")[1].splitlines()]
    assert [r["id"] for r in records] == [first.stem, later.stem]
    assert records[1]["body"] == "second \x1b]2;title\x07", "--json keeps the exact text"
