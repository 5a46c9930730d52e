"""Nothing from a message or an agent reaches a human's terminal as control codes, and nothing reaches tmux as a
format it would run or expand: the bridge pane, `pairloop log` and `status`, the status line, tmux messages,
pane titles. `--json` keeps the exact text, JSON-escaped."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pexpect
import pytest

from bridge.childenv import child_env
from bridge.panes.sanitize import inert
from bridge.panes.tmux import Tmux, tmux_literal
from bridge.rundir.agent_events import AgentEvent, write_agent_event
from pairloop.runs.lifecycle import send_message
from pairloop.runs.store import Run
from pairloop.runs.workspace import open_workspace
from pairloop.views import json_line, log_output, message_lines, run_status, status_lines
from tests.conftest import wait_for
from tests.helpers import book, delivered, human_says, start_sims

# What an attacker puts in a body: a terminal title (OSC 2), the clipboard (OSC 52), screen and colour control
# (CSI), their 8-bit forms (C1 CSI and OSC), a bell, and tmux's own format syntax.
HOSTILE = ("title \x1b]2;owned-title\x07 clip \x1b]52;c;b3duZWQ=\x07 csi \x1b[2J\x1b[31mred\x1b[0m "
           "c1 \x9b31m \x9d2;owned8\x07 bell \x07 tmux #(touch {marker}) #{{pane_id}} #[fg=red]")
RAW = ("\x1b", "\x07", "\x9b", "\x9d")


def no_raw_controls(text: str) -> bool:
    return not any(c in text for c in RAW)


def test_tmux_literal_shows_text_exactly_as_written() -> None:
    assert tmux_literal("a #(cmd) #{pane_id} #[fg=red] ## \x1b]2;t\x07") == \
        "a ##(cmd) ##{pane_id} ##[fg=red] #### \\x1b]2;t\\x07"


@pytest.mark.tmux
def test_tmux_expands_nothing_of_a_literal(tmux_server: Tmux, tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    text = HOSTILE.format(marker=marker)
    tmux_server.new_session("t", tmp_path, "sleep 600")
    (out,) = tmux_server.run("display-message", "-p", tmux_literal(text))
    assert f"#(touch {marker}) #{{pane_id}}" in out and out.startswith(inert(text)[:100])
    time.sleep(0.3)  # a #(command) runs in the background: give it the chance to show it ran
    assert not marker.exists()


def attach(tmux: Tmux, session: str) -> pexpect.spawn:
    return pexpect.spawn("tmux", ["-L", str(tmux.server.socket_name), "attach", "-t", f"={session}"],
                         env=child_env(), encoding="utf-8", dimensions=(30, 400), timeout=15)


@pytest.mark.tmux
def test_pane_titles_and_tmux_messages_are_drawn_literally(tmux_server: Tmux, tmp_path: Path) -> None:
    """Drawn on a real terminal (a tmux client on a pty): a title or an alert holding "#[fg=red]" shows those
    characters, runs nothing, styles nothing, and a control character in it is a visible escape."""
    marker = tmp_path / "ran"
    title = f"worker · evil#(touch {marker})#[fg=red]RED#{{pane_id}}\x1b]2;t\x07"
    open_workspace(tmux_server, "t", tmp_path, {"worker": title, "reviewer": "reviewer · sim", "bridge": "bridge"})
    client = attach(tmux_server, "t")
    try:
        client.expect_exact(f"worker · evil#(touch {marker})#[fg=red]RED#{{pane_id}}\\x1b]2;t\\x07")
        alert = f"pairloop: the worker waits for you: #(touch {marker}) #[fg=red]X #{{session_name}} \x1b]52;c;aGk=\x07"
        tmux_server.display("=t:", alert)
        client.expect_exact(f"waits for you: #(touch {marker}) #[fg=red]X #{{session_name}} \\x1b]52;c;aGk=\\x07")
    finally:
        client.terminate(force=True)
        client.close()
    assert not marker.exists()
    assert tmux_server.run("list-buffers") == []


@pytest.mark.tmux
def test_escapes_in_a_body_change_no_title_and_no_buffer(tmux_server: Tmux, git_repo: Path, tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    body = HOSTILE.format(marker=marker)
    tmux_server.new_session("probe", tmp_path, "sleep 600")  # the server, with the clipboard open to panes
    tmux_server.run("set-option", "-s", "set-clipboard", "on")
    run = start_sims(tmux_server, git_repo)
    panes = [run.manifest.bridge_pane, *(role.pane for role in run.manifest.roles.values())]
    titles = {pane: pane_title(tmux_server, pane) for pane in panes}
    # The body to the human is shown in the bridge pane, line by line; to the reviewer it is pasted (and quoted
    # in the bridge pane); an agent's attention message goes to the bridge pane and the tmux status line.
    to_human = send_message(run, "worker", ("human",), body + "\nsecond line \x1b]2;owned-too\x07")
    to_reviewer = human_says(run, "reviewer", body)
    wait_for(lambda: delivered(run, to_human.id, "human"), what="the body shown to the human")
    wait_for(lambda: delivered(run, to_reviewer.id, "reviewer"), what="the body pasted to the reviewer")
    shown = wait_for(lambda: "second line" in (s := tmux_server.capture(run.manifest.bridge_pane, 50)) and s,
                     what="the body in the bridge pane")
    assert "\\x1b]2;owned-title\\x07" in str(shown), "shown visibly, as an escape"
    assert {pane: pane_title(tmux_server, pane) for pane in panes} == titles
    assert tmux_server.run("list-buffers", "-F", "#{buffer_name}: #{buffer_sample}") == []
    assert not marker.exists()
    bridge_log = (run.dir / "bridge.log").read_text(encoding="utf-8")
    assert "owned-title" in bridge_log and no_raw_controls(bridge_log)
    # The control: the same bytes printed raw do both (the checks above can see a title or a buffer change).
    probe = tmux_server.run("display-message", "-p", "-t", "=probe:", "#{pane_id}")[0]
    tmux_server.respawn(probe, "printf '\\033]2;owned-raw\\007\\033]52;c;b3duZWQ=\\007'; sleep 600")
    wait_for(lambda: pane_title(tmux_server, probe) == "owned-raw", what="a raw OSC 2 to change a title")
    wait_for(lambda: tmux_server.run("list-buffers"), what="a raw OSC 52 to fill a buffer")

    # `pairloop log` and `status`, as text: inert. As JSON: the exact text.
    assert_views(run, tmux_server, body, to_reviewer.id)


@pytest.mark.tmux
def test_an_agent_s_attention_message_runs_nothing_on_an_attached_terminal(tmux_server: Tmux, git_repo: Path,
                                                                         tmp_path: Path) -> None:
    """A hook's permission message is the agent's text: the bridge's alert shows it (bridge pane, tmux message)
    and tmux, with a client attached, would run a "#(command)" in it."""
    marker = tmp_path / "ran"
    run = start_sims(tmux_server, git_repo)
    client = attach(tmux_server, run.session)
    try:
        wait_for(lambda: tmux_server.run("list-clients"), what="the client attached")
        text = f"allow #(touch {marker})? \x1b]2;owned\x07"
        write_agent_event(run.mailbox, "worker", AgentEvent(event="attention", message=text))
        client.expect_exact(f"waits for you: allow #(touch {marker})? \\x1b]2;owned\\x07")
        wait_for(lambda: "waits for you: allow" in tmux_server.capture(run.manifest.bridge_pane, 50),
                 what="the alert in the bridge pane")
    finally:
        client.terminate(force=True)
        client.close()
    time.sleep(0.3)  # a #(command) runs in the background: give it the chance to show it ran
    assert not marker.exists()
    assert pane_title(tmux_server, run.manifest.bridge_pane) != "owned"


def pane_title(tmux: Tmux, pane: str) -> str:
    return tmux.run("display-message", "-p", "-t", pane, "#{pane_title}")[0]


def assert_views(run: Run, tmux: Tmux, body: str, msg_id: str) -> None:
    text = "\n".join(log_output(run))
    assert no_raw_controls(text)
    assert "\\x1b]52;c;b3duZWQ=\\x07" in text and "\\x9b31m" in text
    records = [json.loads(line) for line in log_output(run, as_json=True)]
    assert next(r["body"] for r in records if r["id"] == msg_id) == body
    assert all(no_raw_controls(line) for line in log_output(run, as_json=True))
    status = run_status(run, tmux)
    assert no_raw_controls("\n".join(status_lines(status)))
    cli = subprocess.run([sys.executable, "-m", "pairloop", "log", "--run", run.id, "--json"], cwd=run.manifest.repo,
                         capture_output=True, env=child_env(), check=True)
    assert not any(c.encode() in cli.stdout for c in ("\x1b", "\x07")) and b"\xc2\x9b" not in cli.stdout
    assert body in [json.loads(line)["body"] for line in cli.stdout.decode().splitlines()]
    assert book(run).entries[msg_id].message.body == body


def test_log_lines_show_every_control_visibly() -> None:
    from bridge.book import Entry
    from bridge.rundir.message import Message

    body = "a\x1b]2;t\x07b\n\x9b2Jc\u2028d"
    entry = Entry(Message("m-1", "worker", ("reviewer",), body, "message", 0.0), seq=1, digest="d")
    lines = message_lines(entry)
    assert lines[1:] == ["    a\\x1b]2;t\\x07b", "    \\x9b2Jc\\u2028d"]


def test_status_text_shows_hostile_names_reasons_and_tasks_inert() -> None:
    status: dict[str, Any] = {
        "id": "r1", "state": "running", "session": "s", "session_alive": True, "bridge": "running",
        "task": "do it\x1b]2;owned\x07", "relay": {"paused": True, "reason": "why\x1b[2J"},
        "phase": "work", "round": 1, "governor": {"max_rounds": 6, "bounces_suppressed": 0}, "verdicts": [],
        "agents": {"worker": {"agent": "ev\x1bil", "state": "exited", "queued": 0, "delivered": 0, "failed": 0,
                              "detail": "agent exited (status 3)\x07"}},
        "rejected": 0, "ledger": ["ledger line 2 skipped: \x9b31m"],
    }
    text = "\n".join(status_lines(status))
    assert no_raw_controls(text)
    for shown in ("do it\\x1b]2;owned\\x07", "why\\x1b[2J", "ev\\x1bil", "(agent exited (status 3)\\x07)",
                  "\\x9b31m"):
        assert shown in text


def test_json_lines_keep_the_exact_text_and_escape_every_control() -> None:
    data = {"body": "é \x1b]2;t\x07 \x9b31m \x9d0;x\x07 \x7f \u2028 \u2029 ok"}
    line = json_line(data)
    assert json.loads(line) == data
    assert no_raw_controls(line) and "\x7f" not in line and "\u2028" not in line
    assert "é" in line, "readable: only controls are escaped"
