"""pairloop with the real claude and codex TUIs, driven through its CLI exactly as a user would.

Each test runs `pairloop start ... --no-attach --socket <private>` in a fresh git repo with prepared homes,
talks to it with `pairloop send/status/log/stop` from "another shell", and scripts the model server so the
agents themselves run `pairloop send "..."` through their own shell tools (claude: `Bash`; codex:
`exec_command`). Every check looks at two independent witnesses: what the model received (the scripted
server's recorded requests) and what the bridge wrote down (the run's ledger).
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.e2e.driver import Pair, split_envelope, unwrap
from tests.e2e.model_server import CLIENT_GONE, COMPLETE, Flavor, RecordedRequest, shell, text

pytestmark = pytest.mark.e2e

FLAVOR: dict[str, Flavor] = {"claude": "anthropic", "codex": "openai"}
OTHER = {"claude": "codex", "codex": "claude"}
KIND_LABEL = {"task": "task", "message": "message", "approve": "approval", "done": "done"}


# ---- helpers --------------------------------------------------------------------------------------------


def only(events: list[dict[str, Any]], what: str) -> dict[str, Any]:
    assert len(events) == 1, f"expected exactly one {what}, found {len(events)}: {events}"
    return events[0]


def assert_relayed(req: RecordedRequest, msg_id: str, sender: str, kind: str, body: str) -> None:
    """The request's newest user message is exactly one envelope line for ``msg_id`` and then ``body``."""
    prompt = unwrap(req.newest_user_text)
    parsed = split_envelope(prompt)
    assert parsed is not None, f"the newest user message is not one relayed message: {prompt!r}"
    fields, got_body = parsed
    assert (fields["id"], fields["sender"], fields["kind"]) == (msg_id, sender, KIND_LABEL[kind]), prompt
    # The reply hint names the way back: to the human explicitly, to an agent's partner by default.
    hint = 'pairloop send --to human "<text>"' if sender == "human" else 'pairloop send "<text>"'
    assert prompt.split("\n", 1)[0].endswith(f"· reply: {hint}"), prompt
    assert got_body == body, f"body changed on the way:\n sent {body!r}\n  got {got_body!r}"


def received_from(pair: Pair, sender: str, timeout: float = 30.0) -> dict[str, Any]:
    """Wait for the first message ``sender`` sent (a `received` ledger event)."""
    return pair.wait(lambda: next(iter(pair.received(sender)), None), timeout,
                     f"a message from the {sender} in the ledger")


def wait_delivered(pair: Pair, msg_id: str, to: str, timeout: float = 30.0) -> dict[str, Any]:
    return pair.wait(lambda: pair.delivered(msg_id, to), timeout, f"message {msg_id} delivered to the {to}")


def wait_queued(pair: Pair, msg_id: str, to: str, needle: str, timeout: float = 20.0) -> dict[str, Any]:
    """Wait for a `queued` ledger event for ``msg_id`` whose reason contains ``needle``."""
    def found() -> dict[str, Any] | None:
        return next((e for e in pair.events("queued", msg_id, to) if needle in str(e.get("reason", ""))), None)

    return pair.wait(found, timeout, f"message {msg_id} queued for the {to} with a reason mentioning {needle!r}")


def agent_state(pair: Pair, role: str) -> str:
    return str(pair.status()["agents"][role]["state"])


def wait_idle(pair: Pair, role: str, timeout: float = 30.0) -> None:
    """Wait until `pairloop status` reads the agent as ready (its reply finished, its input box empty)."""
    pair.wait(lambda: agent_state(pair, role) == "ready", timeout, f"the {role} to be ready")


def ran_in_tool(req: RecordedRequest, msg_id: str) -> bool:
    """The follow-up request after a shell tool call carries the tool's output: `pairloop send` prints the id."""
    return msg_id in json.dumps(req.body)


def task_id(pair: Pair) -> str:
    return str(only(pair.received("human"), "task")["id"])


# ---- a, b: a relay each way --------------------------------------------------------------------------------


@pytest.mark.parametrize(("worker", "reviewer"), [("claude", "codex"), ("codex", "claude")])
def test_the_pair_relays_task_review_request_and_reply(pair: Pair, worker: str, reviewer: str) -> None:
    task = f"Add greet(name) to greet.py and prove it with a test ({worker} works, {reviewer} reviews)."
    review = "Ready for review: greet() is in commit abc123, tests in test_greet.py."
    reply = "1. greet('') returns 'Hello, !'. Please handle the empty name."
    pair.server.script(FLAVOR[worker], shell(f'pairloop send "{review}"', then=text("Asked for a review.")),
                       text("I will handle the empty name."))
    pair.server.script(FLAVOR[reviewer], shell(f'pairloop send "{reply}"', then=text("Review sent.")))

    pair.start(task, worker, reviewer)
    tid = task_id(pair)

    # The task reaches the worker's model as the worker's first prompt.
    first = pair.request_with(FLAVOR[worker], task)
    assert_relayed(first, tid, "human", "task", task)
    assert [r for r in pair.server.requests(FLAVOR[worker]) if r.t < first.t] == []

    # The worker's model runs `pairloop send` in its own shell tool; the bridge relays it to the reviewer.
    to_reviewer = received_from(pair, "worker")
    assert (to_reviewer["to"], to_reviewer["body"], to_reviewer["kind"]) == (["reviewer"], review, "message")
    assert pair.wait(lambda: any(ran_in_tool(r, to_reviewer["id"]) for r in pair.server.requests(FLAVOR[worker])),
                     20, "the worker's tool result carrying the id `pairloop send` printed")
    at_reviewer = pair.request_with(FLAVOR[reviewer], review)
    assert_relayed(at_reviewer, to_reviewer["id"], "worker", "message", review)

    # The reviewer's model replies the same way; the reply reaches the worker as a new prompt.
    to_worker = received_from(pair, "reviewer")
    assert (to_worker["to"], to_worker["body"]) == (["worker"], reply)
    at_worker = pair.request_with(FLAVOR[worker], reply)
    assert_relayed(at_worker, to_worker["id"], "reviewer", "message", reply)
    assert at_worker.t > first.t

    # The ledger agrees: each message delivered exactly once, to the right agent, with a confirmation.
    for msg_id, to in ((tid, "worker"), (to_reviewer["id"], "reviewer"), (to_worker["id"], "worker")):
        delivered = wait_delivered(pair, msg_id, to)
        assert delivered["via"] in ("receipt", "screen"), delivered
        assert len(pair.events("delivered", msg_id)) == 1
        assert pair.events("failed", msg_id) == []
    # ... and each model saw each message once (a second paste would show up twice in a later history).
    for req, flavor in ((first, FLAVOR[worker]), (at_reviewer, FLAVOR[reviewer]), (at_worker, FLAVOR[worker])):
        assert pair.server.user_texts(flavor).count(req.newest_user_text) == 1
    log = {m["id"]: m for m in pair.log()}
    assert [log[i]["state"] for i in (tid, to_reviewer["id"], to_worker["id"])] == ["delivered"] * 3
    assert [log[i]["seq"] for i in (tid, to_reviewer["id"], to_worker["id"])] == [1, 2, 3]

    # `pairloop stop` closes everything it started: tmux server, bridge, both agents and their children.
    pair.stop()
    stopped = json.loads(pair.pairloop("status", "--json", "--all").stdout)["runs"][0]
    assert (stopped["id"], stopped["state"]) == (pair.run_id, "stopped")
    pair.wait(lambda: not pair.tagged_processes(), 15, "every process of the run to exit after `pairloop stop`")


@pytest.mark.parametrize("agent", ["claude", "codex"])
def test_the_agents_own_hooks_report_each_prompt_and_turn_end(pair: Pair, agent: str) -> None:
    """pairloop wires each agent's hooks per run (claude: settings file; codex: notify): the bridge hears
    every submitted prompt (the delivery receipt) and every turn's end from the agent itself."""
    task = "Say hello."
    pair.start(task, agent, OTHER[agent])
    tid = task_id(pair)
    pair.request_with(FLAVOR[agent], task)
    wait_delivered(pair, tid, "worker")

    def reported() -> list[dict[str, Any]]:
        folder = pair.mailbox / "events" / "worker"
        return [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))]

    def receipt_then_stop() -> bool:
        kinds = [("receipt" if f"id {tid}" in str(e.get("prompt", "")) else e.get("event")) for e in reported()]
        return "receipt" in kinds and "stop" in kinds[kinds.index("receipt"):]

    pair.wait(receipt_then_stop, 20, f"the worker's hooks reporting the prompt carrying {tid}, then the turn's end")
    assert not (pair.run_dir / "hook-errors.log").exists(), (pair.run_dir / "hook-errors.log").read_text()


# ---- c: a message to a busy agent waits for the turn to end ------------------------------------------------


@pytest.mark.parametrize("agent", ["codex", "claude"])
def test_a_message_to_an_agent_streaming_a_reply_waits_for_the_turn_to_end(pair: Pair, agent: str) -> None:
    # Line by line: claude paints a streamed reply a line at a time. While codex streams, its busy line
    # is hidden and the bottom of its screen looks exactly idle.
    slow = "\n".join(f"slow line {i:02d} of the long answer" for i in range(1, 21))
    note = "Human here: also cover the empty name, please."
    flavor = FLAVOR[agent]
    pair.server.script(flavor, text(slow, stream_seconds=10, chunks=20), text("Noted."))
    task = "Explain your plan at length."
    pair.start(task, agent, OTHER[agent])

    streaming = pair.request_with(flavor, task)
    pair.wait(lambda: "slow line 03" in pair.capture("worker"), 20, "the slow reply showing on screen")
    note_id = pair.send("worker", note)
    assert not pair.server.current(streaming).outcome, "test timing: the slow reply ended before the send"

    wait_queued(pair, note_id, "worker", "busy")

    def finished() -> RecordedRequest | None:
        now = pair.server.current(streaming)
        return now if now.outcome else None

    streaming = pair.wait(finished, 30, "the slow reply to finish")
    later = pair.request_with(flavor, note)

    # The turn in progress was not interrupted: its reply went out whole, and the agent kept all of it.
    assert streaming.outcome == COMPLETE, f"the agent hung up on its own reply ({CLIENT_GONE})"
    assert slow in later.assistant_texts(), later.assistant_texts()
    # The message arrived afterwards, as its own prompt: the newest user message of a later request.
    assert later.t > streaming.ended
    assert_relayed(later, note_id, "human", "message", note)
    assert all(note not in t for t in streaming.user_texts())
    # And the bridge never started pasting while the reply was streaming.
    first_paste = min(e["ts"] for e in pair.events("delivering", note_id, "worker"))
    assert first_paste >= streaming.ended_wall, (
        f"the bridge began delivering {streaming.ended_wall - first_paste:.2f}s before the reply ended")
    wait_delivered(pair, note_id, "worker")


# ---- d: a human's half-typed draft is never clobbered ------------------------------------------------------


# A human presses Enter; codex also submits a typed draft with Tab (its key for queueing while busy).
@pytest.mark.parametrize(("agent", "submit"), [("claude", "Enter"), ("codex", "Enter"), ("codex", "Tab")])
def test_a_human_draft_holds_delivery_until_the_human_submits_it(pair: Pair, agent: str, submit: str) -> None:
    flavor = FLAVOR[agent]
    task = "Wait for my notes."
    pair.server.script(flavor, text("Waiting."), text("Draft read."), text("Message read."))
    pair.start(task, agent, OTHER[agent])
    pair.request_with(flavor, task)
    wait_delivered(pair, task_id(pair), "worker")
    wait_idle(pair, "worker")

    draft = "half typed draft by a human"
    pair.type_text("worker", draft)
    pair.wait(lambda: draft in pair.capture("worker"), 10, "the draft in the input box")
    note = "Bridge message sent while the human is typing."
    note_id = pair.send("worker", note)

    wait_queued(pair, note_id, "worker", "draft")
    assert agent_state(pair, "worker") == "draft"
    pair.holds(lambda: draft in pair.capture("worker") and not pair.events("delivering", note_id), 2.0,
               "the draft untouched and the message held")
    assert not [r for r in pair.server.requests(flavor) if note in r.newest_user_text]

    pair.press("worker", submit)  # the human submits their own text
    draft_req = pair.request_with(flavor, draft)
    assert draft_req.newest_user_text == draft, "the human's prompt was changed or merged with ours"
    note_req = pair.request_with(flavor, note)
    assert note_req.t > pair.server.current(draft_req).ended > 0, "the message was pasted into the human's turn"
    assert_relayed(note_req, note_id, "human", "message", note)
    wait_delivered(pair, note_id, "worker")
    # The bridge knows the human spoke to the agent directly (from the agent's own prompt hook).
    pair.wait(lambda: any(e.get("text") == draft for e in pair.events("human_turn")), 20,
              "the human's own turn in the ledger")


# ---- e: bodies arrive byte-exact ------------------------------------------------------------------------------


# No tab: claude turns a tab into 4 spaces in its input box (FINDINGS.md §6), which pairloop cannot prevent.
TRICKY = (
    "-leading dash line\n"
    "quotes \"double\" and 'single'; $(echo not-expanded) `backticks` $HOME ${PATH} && || | > < & * ? ~ !\n"
    "\\back\\slashes\\n and a literal \\t\n"
    "\n"
    "    indented by four spaces\n"
    "unicode: ünïcödé — “curly” ✓\n"
    "last line ends with semicolon;"
)


def test_a_tricky_multiline_body_reaches_both_models_byte_exact(pair: Pair) -> None:
    pair.server.script("anthropic", text("Task read."), text("Body read."))
    pair.start("Read the next message.", "claude", "codex")
    pair.request_with("anthropic", "Read the next message.")
    wait_delivered(pair, task_id(pair), "worker")
    wait_idle(pair, "worker")
    wait_idle(pair, "reviewer")

    msg_id = pair.send("both", TRICKY)  # `pairloop send --to both -- "-leading…"`
    assert only([e for e in pair.received("human") if e["id"] == msg_id], "message")["body"] == TRICKY
    for agent, role in (("claude", "worker"), ("codex", "reviewer")):
        req = pair.request_with(FLAVOR[agent], "last line ends with semicolon;")
        assert_relayed(req, msg_id, "human", "message", TRICKY)
        wait_delivered(pair, msg_id, role)


def test_a_tricky_body_from_stdin_reaches_the_model_byte_exact(pair: Pair) -> None:
    pair.start("", "codex", "claude")
    wait_idle(pair, "worker")
    msg_id = pair.send("worker", TRICKY, stdin=True)  # `pairloop send --to worker -` with the body on stdin
    req = pair.request_with("openai", "last line ends with semicolon;")
    assert_relayed(req, msg_id, "human", "message", TRICKY)


# ---- f: start-up dialogs ----------------------------------------------------------------------------------


def test_a_trust_dialog_holds_delivery_and_is_reported(pair: Pair) -> None:
    pair.prepare(trust=False)
    task = "This task must wait for the human to answer the dialog."
    started = pair.start(task, "claude", "codex")
    assert "dialog" in started.stdout, started.stdout  # `pairloop start` says so right away
    tid = task_id(pair)

    queued = wait_queued(pair, tid, "worker", "dialog")
    assert "trust" in queued["reason"], queued
    status = pair.status()
    assert status["agents"]["worker"]["state"] == "dialog", status
    assert status["agents"]["reviewer"]["state"] == "dialog", status
    assert status["agents"]["worker"]["queued"] == 1
    pair.holds(lambda: not pair.server.requests("anthropic") and not pair.events("delivering", tid), 2.0,
               "the task held while the dialog is up")
    assert "Yes, I trust this folder" in pair.capture("worker")
    assert (log := pair.log()) and log[0]["state"] == "queued" and "trust" in log[0]["reasons"]["worker"]


def test_start_with_trust_answers_the_trust_dialogs_and_the_task_arrives(pair: Pair) -> None:
    pair.prepare(trust=False)
    task = "Trusted by the --trust flag."
    pair.server.script("anthropic", text("On it."))
    pair.start(task, "claude", "codex", "--trust")
    tid = task_id(pair)

    req = pair.request_with("anthropic", task)
    assert_relayed(req, tid, "human", "task", task)
    wait_delivered(pair, tid, "worker")
    # codex's dialog was answered too: a message to the reviewer reaches its model.
    note = "Reviewer, you are trusted too."
    note_id = pair.send("reviewer", note)
    assert_relayed(pair.request_with("openai", note), note_id, "human", "message", note)
    # Answered with "yes", as the user would: both agents recorded the folder as trusted.
    claude_json = json.loads(pair.homes.claude_json.read_text())
    assert claude_json["projects"][str(pair.repo)]["hasTrustDialogAccepted"] is True
    assert f'[projects."{pair.repo}"]' in pair.homes.codex_config.read_text()
