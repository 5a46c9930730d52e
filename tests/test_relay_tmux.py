"""The bridge on real tmux servers (private sockets) with the sim agent."""

from __future__ import annotations

import json
import os
import signal
import sys
from functools import partial
from pathlib import Path

import pytest

from bridge import bridge_running
from bridge.panes.envelope import PASTE_LIMIT, header, parse
from bridge.panes.tmux import Tmux
from bridge.rundir.message import Message, new_message_id, post
from pairloop.runs.lifecycle import StartOptions, send_message
from pairloop.runs.store import Run
from tests.conftest import wait_for
from tests.helpers import (
    book,
    bridge_pane_shows,
    bridge_pid,
    delivered,
    events,
    human_says,
    ledger,
    prompts,
    queued_reason,
    start_sims,
)

pytestmark = pytest.mark.tmux


def body_of(prompt: str, msg_id: str) -> str:
    """The body that followed message ``msg_id``'s envelope line in a prompt."""
    messages, _ = parse(prompt)
    return next(m.body for m in messages if m.id == msg_id)


def flowing(run: Run, at_least: int) -> bool:
    return book(run).count("reviewer", "delivered") >= at_least


def test_a_message_is_relayed_each_way(tmux_server: Tmux, git_repo: Path) -> None:
    run = start_sims(tmux_server, git_repo)
    to_reviewer = send_message(run, "worker", ("reviewer",), "please review commit abc")
    wait_for(lambda: delivered(run, to_reviewer.id, "reviewer"), what="worker → reviewer delivery")
    to_worker = send_message(run, "reviewer", ("worker",), "1. add a test")
    wait_for(lambda: delivered(run, to_worker.id, "worker"), what="reviewer → worker delivery")

    (got_reviewer,) = prompts(run, "reviewer")
    (got_worker,) = prompts(run, "worker")
    assert got_reviewer.startswith("[pairloop] #1 message from worker · id " + to_reviewer.id)
    assert body_of(got_reviewer, to_reviewer.id) == "please review commit abc"
    assert body_of(got_worker, to_worker.id) == "1. add a test"
    delivered_events = [e for e in ledger(run) if e["ev"] == "delivered"]
    assert [(e["to"], e["ids"]) for e in delivered_events] == [
        ("reviewer", [to_reviewer.id]), ("worker", [to_worker.id])]
    assert {e["via"] for e in delivered_events} <= {"receipt", "screen"}


def test_task_is_the_workers_first_prompt(tmux_server: Tmux, git_repo: Path) -> None:
    run = start_sims(tmux_server, git_repo, task="Add rate limiting; prove it with tests")
    wait_for(lambda: prompts(run, "worker"), what="the task prompt")
    (first,) = prompts(run, "worker")
    assert first.startswith("[pairloop] #1 task from human")
    (task,), footer = parse(first)
    assert task.body == "Add rate limiting; prove it with tests"
    assert footer.startswith("you are the worker · work phase · round 0 · pairloop review [NOTE]")
    assert prompts(run, "reviewer") == []


def test_message_to_a_busy_agent_waits_until_it_is_idle(tmux_server: Tmux, git_repo: Path) -> None:
    run = start_sims(tmux_server, git_repo, PAIRLOOP_SIM_WORK_SECONDS="2")
    first = human_says(run, "worker", "first: keeps the worker busy")
    wait_for(lambda: delivered(run, first.id, "worker"), what="first delivery")
    second = human_says(run, "worker", "second: sent while busy")
    wait_for(lambda: queued_reason(run, second.id, "worker") == "target busy", what="queued: target busy")
    assert not delivered(run, second.id, "worker")
    wait_for(lambda: delivered(run, second.id, "worker"), what="second delivery")

    order = sorted(events(run, "worker", "prompt") + events(run, "worker", "stop"),
                   key=lambda e: int(e["file"].split("-")[0]))
    kinds = [(e["event"], body_of(e["prompt"], first.id if "first" in e["prompt"] else second.id)
              if e["event"] == "prompt" else "") for e in order]
    assert kinds[:3] == [("prompt", first.body), ("stop", ""), ("prompt", second.body)]


def test_messages_queued_meanwhile_arrive_together_in_order(tmux_server: Tmux, git_repo: Path) -> None:
    run = start_sims(tmux_server, git_repo, PAIRLOOP_SIM_WORK_SECONDS="2")
    first = human_says(run, "reviewer", "keep busy")
    wait_for(lambda: delivered(run, first.id, "reviewer"), what="first delivery")
    later = [human_says(run, "reviewer", f"queued {i}") for i in range(3)]
    wait_for(lambda: all(delivered(run, m.id, "reviewer") for m in later), what="queued batch")
    got = prompts(run, "reviewer")
    assert len(got) == 2, "the three queued messages arrive in one paste"
    batch = got[1]
    positions = [batch.index(f"· id {m.id} ·") for m in later]
    assert positions == sorted(positions)
    assert [body_of(batch, m.id) for m in later] == ["queued 0", "queued 1", "queued 2"]


def test_human_draft_holds_delivery_until_submitted(tmux_server: Tmux, git_repo: Path) -> None:
    run = start_sims(tmux_server, git_repo)
    pane = run.manifest.roles["worker"].pane
    tmux_server.send_keys(pane, "half typed -- thought", literal=True)
    wait_for(lambda: "› half typed -- thought" in tmux_server.capture(pane), what="draft on screen")

    msg = human_says(run, "worker", "from the other shell")
    wait_for(lambda: queued_reason(run, msg.id, "worker") == "held: human draft in the input box",
             what="held: human draft")
    assert prompts(run, "worker") == []
    assert "› half typed -- thought" in tmux_server.capture(pane), "the draft is untouched"

    tmux_server.send_keys(pane, "Enter")
    wait_for(lambda: delivered(run, msg.id, "worker"), what="delivery after the human submitted")
    got = prompts(run, "worker")
    assert got[0] == "half typed -- thought", "the human's own text went in first, exactly as typed"
    assert body_of(got[1], msg.id) == "from the other shell"
    turns = [e for e in ledger(run) if e["ev"] == "human_turn"]
    assert [(t["role"], t["text"]) for t in turns] == [("worker", "half typed -- thought")]


def test_human_draft_cleared_releases_delivery(tmux_server: Tmux, git_repo: Path) -> None:
    run = start_sims(tmux_server, git_repo)
    pane = run.manifest.roles["reviewer"].pane
    tmux_server.send_keys(pane, "never mind", literal=True)
    wait_for(lambda: "› never mind" in tmux_server.capture(pane), what="draft on screen")
    msg = human_says(run, "reviewer", "hello")
    wait_for(lambda: queued_reason(run, msg.id, "reviewer").startswith("held"), what="held")
    tmux_server.send_keys(pane, "C-u")
    wait_for(lambda: delivered(run, msg.id, "reviewer"), what="delivery after the draft was cleared")
    (got,) = prompts(run, "reviewer")
    assert body_of(got, msg.id) == "hello"


TRICKY = [
    "-n starts with a dash",
    "ends with a semicolon;",
    "quotes \"double\" and 'single', $(whoami) `uname` ${HOME} \\back\\slashes\\ and a tab\there",
    "multi-line\n  indented -- line\n\nafter a blank line; && || > /dev/null\n# hash line\n/slash line",
    "unicode: café ✓ 🚀 — no-break\u00a0space",
]


def test_tricky_bodies_arrive_byte_exact(tmux_server: Tmux, git_repo: Path) -> None:
    run = start_sims(tmux_server, git_repo)
    sent = []
    for body in TRICKY:
        msg = human_says(run, "worker", body)
        wait_for(partial(delivered, run, msg.id, "worker"), what=f"delivery of {body[:20]!r}")
        sent.append(msg)
    bodies = {m.id: m.body for prompt in prompts(run, "worker") for m in parse(prompt)[0]}
    for msg in sent:
        assert bodies[msg.id] == msg.body


def test_escape_sequences_cannot_end_the_paste_or_act_as_keys(tmux_server: Tmux, git_repo: Path) -> None:
    run = start_sims(tmux_server, git_repo)
    body = "before\x1b[201~after the fake paste end\r\nline two\x03\x1b]0;title\x07 end"
    msg = human_says(run, "worker", body)
    wait_for(lambda: delivered(run, msg.id, "worker"), what="delivery")
    (got,) = prompts(run, "worker")
    assert body_of(got, msg.id) == "beforeafter the fake paste end\nline two end"


def test_large_body_is_saved_as_a_file(tmux_server: Tmux, git_repo: Path) -> None:
    run = start_sims(tmux_server, git_repo)
    body = "x" * (PASTE_LIMIT + 10) + "\nEND;"
    msg = human_says(run, "reviewer", body)
    wait_for(lambda: delivered(run, msg.id, "reviewer"), what="delivery")
    (got,) = prompts(run, "reviewer")
    saved = run.mailbox / "attachments" / f"{msg.id}.txt"
    assert f"read {saved}" in got
    assert saved.read_text() == body
    assert len(got) < 1000


def test_malformed_files_are_set_aside_and_the_next_message_arrives(tmux_server: Tmux, git_repo: Path) -> None:
    run = start_sims(tmux_server, git_repo)
    pid = bridge_pid(run)
    human = run.outbox / "human"
    human.mkdir(exist_ok=True)
    (human / "a-latin1.json").write_bytes(b'{"body": "caf\xe9"}')
    (human / "b-empty.json").write_bytes(b"")
    (human / "c-broken.json").write_text('{"id": "x", "from": ')
    (human / "d-link.json").symlink_to("/etc/hostname")
    (human / "e-wrong.json").write_text('{"id": "e1", "from": "worker", "to": ["reviewer"], "body": "hi"}')
    for bad in human.iterdir():
        os.utime(bad, (1e9, 1e9), follow_symlinks=False)  # finished files, not ones still being written
    good = human_says(run, "worker", "still flowing")
    wait_for(lambda: delivered(run, good.id, "worker"), what="the good message")
    rejected = {e["file"]: e["reason"] for e in ledger(run) if e["ev"] == "rejected"}
    assert rejected == {
        "outbox/human/a-latin1.json": "not UTF-8 (byte 13)",
        "outbox/human/b-empty.json": "empty file",
        "outbox/human/c-broken.json": "unparseable JSON: Expecting value (line 1)",
        "outbox/human/d-link.json": "a symlink, not a file",
        "outbox/human/e-wrong.json": "'from' is 'worker' but the file is in the 'human' outbox",
    }
    assert sorted(p.name for p in (run.mailbox / "rejected" / "human").iterdir()) == [
        "a-latin1.json", "b-empty.json", "c-broken.json", "d-link.json", "e-wrong.json"]
    assert list(human.iterdir()) == []
    assert bridge_pid(run) == pid, "the bridge kept running"
    assert "rejected outbox/human/c-broken.json: unparseable JSON" in (run.dir / "bridge.log").read_text()


def _new_bridge(run: Run, old: int) -> bool:
    """A bridge other than ``old`` holds the run's lock (its keeper started it)."""
    try:
        return int((run.dir / "bridge.lock").read_text().strip() or 0) not in (0, old) and bridge_running(run.dir)
    except (OSError, ValueError):
        return False


@pytest.mark.parametrize("watch", ["inotify", "poll"])
def test_bridge_sigkilled_mid_stream_loses_and_duplicates_nothing(
    tmux_server: Tmux, git_repo: Path, monkeypatch: pytest.MonkeyPatch, watch: str
) -> None:
    if watch == "poll":
        monkeypatch.setenv("PAIRLOOP_WATCH", "poll")  # the private server (and so the bridge) inherits it
    run = start_sims(tmux_server, git_repo)
    outbox = run.outbox
    sent: list[str] = []
    kills = 0
    for i in range(100):
        msg = Message(new_message_id(), "human", ("reviewer",), f"message {i:03d}; body -x $(y)")
        post(outbox, msg)
        sent.append(msg.id)
        if i in (30, 65):
            wait_for(partial(flowing, run, i - 10), what="deliveries flowing")
            pid = bridge_pid(run)
            if i == 65:
                # messages that arrive while no bridge acts (stopped, then killed) are picked up when it starts
                os.kill(pid, signal.SIGSTOP)
                for j in range(5):
                    late = Message(new_message_id(), "human", ("reviewer",), f"while down {j}")
                    post(outbox, late)
                    sent.append(late.id)
            os.kill(pid, signal.SIGKILL)
            kills += 1
            # nobody starts it again: its keeper does, within 2 s
            wait_for(partial(_new_bridge, run, pid), timeout=2, what="the bridge back by itself")
    wait_for(lambda: all(delivered(run, m, "reviewer") for m in sent), timeout=60, what="all 105 delivered")

    received: list[str] = []
    from bridge.panes.envelope import ids_in

    for prompt in prompts(run, "reviewer"):
        found = [line.split("· id ")[1].split(" ·")[0] for line in prompt.split("\n") if "· id " in line]
        assert set(found) == ids_in(prompt)
        received += found
    assert sorted(received) == sorted(sent), "every message exactly once"
    assert len(received) == len(set(received)) == 105
    starts = [e for e in ledger(run) if e["ev"] == "bridge" and e["state"] == "started"]
    assert len(starts) == 1 + kills


def test_dialog_holds_delivery_and_says_so(tmux_server: Tmux, git_repo: Path) -> None:
    run = start_sims(tmux_server, git_repo, PAIRLOOP_SIM_DIALOG="1")
    msg = human_says(run, "worker", "after the dialog")
    reason = "dialog on screen (trust this folder): answer it in the worker pane"
    wait_for(lambda: queued_reason(run, msg.id, "worker") == reason, what="held by the dialog")
    bridge_pane_shows(tmux_server, run, f"queued: {reason}",
                      "pairloop: the worker waits for you: trust this folder (answer it in its pane)")
    tmux_server.send_keys(run.manifest.roles["worker"].pane, "Enter")  # the human answers it
    wait_for(lambda: delivered(run, msg.id, "worker"), what="delivery after the dialog")
    (got,) = prompts(run, "worker")
    assert body_of(got, msg.id) == "after the dialog"


def test_a_dead_agent_pane_keeps_messages_queued_and_reported(tmux_server: Tmux, git_repo: Path) -> None:
    run = start_sims(tmux_server, git_repo)
    pane = run.manifest.roles["reviewer"].pane
    tmux_server.send_keys(pane, "C-d")  # the sim quits on C-d at an empty prompt
    wait_for(lambda: tmux_server.pane_info(pane).dead, what="the reviewer to exit")  # type: ignore[union-attr]
    msg = human_says(run, "reviewer", "anyone there?")
    wait_for(lambda: queued_reason(run, msg.id, "reviewer").startswith("agent exited"), what="queued: exited")
    assert book(run).entries[msg.id].state == "queued"
    assert "anyone there?" not in tmux_server.capture(pane)
    other = human_says(run, "worker", "the other side still works")
    wait_for(lambda: delivered(run, other.id, "worker"), what="delivery to the live agent")


def test_agent_panes_inherit_the_start_environment(tmux_server: Tmux, git_repo: Path) -> None:
    run = start_sims(tmux_server, git_repo, PAIRLOOP_TEST_MARKER="from-the-caller")
    for role in ("worker", "reviewer"):
        info = tmux_server.pane_info(run.manifest.roles[role].pane)
        assert info is not None
        environ = Path(f"/proc/{info.pid}/environ").read_bytes().split(b"\0")
        env = dict(item.decode().split("=", 1) for item in environ if b"=" in item)
        assert env["PAIRLOOP_TEST_MARKER"] == "from-the-caller"
        assert env["PAIRLOOP_ROLE"] == role
        assert env["PAIRLOOP_RUN_DIR"] == str(run.dir)
        assert env["TMUX"].split(",")[0] == run.socket_path, "TMUX points at the pane's own server"
    assert list((run.dir / "launch").iterdir()) == [], "the launch files with the environment are gone"


def test_envelope_header_names_the_reply_command(tmux_server: Tmux, git_repo: Path) -> None:
    run = start_sims(tmux_server, git_repo)
    msg = human_says(run, "worker", "hi")
    wait_for(lambda: delivered(run, msg.id, "worker"), what="delivery")
    (got,) = prompts(run, "worker")
    assert got.split("\n")[0] == header(book(run).entries[msg.id])
    assert got.split("\n")[0].endswith('reply: pairloop send --to human "<text>"')


def test_a_file_still_being_written_is_not_refused(tmux_server: Tmux, git_repo: Path) -> None:
    """A sender that writes in place (`echo > file`) is read once the file is complete, not refused half-way."""
    run = start_sims(tmux_server, git_repo)
    path = run.outbox / "human" / "slow-writer.json"
    path.parent.mkdir(exist_ok=True)
    path.write_text('{"id": "slow1", "from": "human", "to": ["worker"], ')
    other = human_says(run, "reviewer", "scanned while the other file was half written")
    wait_for(lambda: delivered(run, other.id, "reviewer"), what="a scan that saw the half-written file")
    assert path.exists()
    with path.open("a") as f:
        f.write('"body": "written in two steps"}')
    wait_for(lambda: delivered(run, "slow1", "worker"), what="the slowly written message")
    assert not [e for e in ledger(run) if e["ev"] == "rejected"]


def test_a_composer_that_never_clears_is_retried_once_then_failed_loudly(tmux_server: Tmux, git_repo: Path) -> None:
    run = start_sims(tmux_server, git_repo, PAIRLOOP_SIM_STUCK="1")
    msg = human_says(run, "reviewer", "will not go through")
    wait_for(lambda: msg.id in book(run).entries and book(run).entries[msg.id].state == "failed", timeout=20,
             what="the failure")
    entry = book(run).entries[msg.id]
    assert entry.reasons["reviewer"] == "the input box did not clear after two submit presses"
    bridge_pane_shows(tmux_server, run,
                      'human → reviewer  #1 "will not go through" FAILED: the input box did not clear')
    sends = [e for e in ledger(run) if e["ev"] == "delivering" and msg.id in e["ids"]]
    assert len(sends) == 1, "one paste; the retry is one more submit press, never a second paste"
    pane = run.manifest.roles["reviewer"].pane
    assert "› [pairloop] #1 message from human" in tmux_server.capture(pane), "the text stays for the human to see"


def test_a_permission_prompt_reported_by_a_hook_calls_the_human_and_holds_delivery(
    tmux_server: Tmux, git_repo: Path
) -> None:
    run = start_sims(tmux_server, git_repo)
    event = run.events_dir("worker") / "9999999999999999999-attention.json"
    event.write_text('{"event": "attention", "message": "Claude needs your permission"}')
    bridge = run.manifest.bridge_pane
    wait_for(lambda: "the worker waits for you: Claude needs your permission" in tmux_server.capture(bridge),
             what="the human called")
    status = wait_for(lambda: "waiting for you" in "".join(tmux_server.run(
        "show-options", "-v", "-t", f"={run.session}:", "status-right")), what="the status line")
    assert status
    msg = human_says(run, "worker", "not now")
    wait_for(lambda: queued_reason(run, msg.id, "worker").startswith("dialog on screen (permission prompt"),
             what="held while the agent waits on a permission prompt")


def test_a_custom_agent_declared_in_pairloop_toml_takes_part(tmux_server: Tmux, git_repo: Path) -> None:
    """Any TUI with a command line, screen markers and a submit key: here the sim, declared as 'mytui'."""
    (git_repo / ".pairloop.toml").write_text(f"""
[agents.mytui]
command = [{json.dumps(sys.executable)}, "-m", "pairloop.agents.sim_agent"]
submit_key = "Enter"
input = '^› (?P<text>.*)$'
ready = ['enter to submit']
busy = ['esc to interrupt']
brief_file_arg = "--brief"
""")
    run = start_sims(tmux_server, git_repo, options=StartOptions("mytui", "sim"))
    assert run.manifest.roles["worker"].agent == "mytui"
    msg = human_says(run, "worker", "hello, custom agent")
    wait_for(lambda: delivered(run, msg.id, "worker"), what="delivery to the custom agent")
    (got,) = prompts(run, "worker")
    assert body_of(got, msg.id) == "hello, custom agent"
