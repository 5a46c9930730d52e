"""`pairloop resume` with the real claude and codex: the tmux server killed after the first review round, then
resumed; each agent goes on with its own conversation (its model is sent the earlier turns again) and the loop
reaches done, every message delivered once."""

from __future__ import annotations

from collections import Counter

import pytest

from bridge import bridge_running
from tests.e2e.driver import Pair
from tests.e2e.model_server import shell, text

NOTICE = "The pair session was resumed"


@pytest.mark.parametrize(("worker", "reviewer"), [("claude", "codex")])
def test_server_killed_after_the_first_round_resume_continues_both_conversations(
        pair: Pair, worker: str, reviewer: str) -> None:
    (pair.repo / "greet.py").write_text('def greet(name: str) -> str:\n    return f"Hello, {name}!"\n')
    # Round 1: review → changes; the worker acknowledges (the script's default "OK.") and the pair rests there.
    pair.server.script("anthropic", shell('pairloop review "Ready for review: greet() in greet.py"',
                                          then=text("Asked.")))
    pair.server.script("openai", shell('pairloop changes "1. add a test for greet()"', then=text("Asked.")))
    pair.start("Add greet(name) in greet.py.", worker, reviewer)
    changes = pair.wait(lambda: next(iter(pair.received("reviewer")), None), 90, "the changes request")
    pair.wait(lambda: pair.delivered(changes["id"], "worker"), 60, "the changes delivered to the worker")
    pair.request_with("anthropic", "add a test for greet()", 60)
    pair.wait(lambda: pair.manifest()["roles"]["reviewer"].get("session_id"), 30, "codex's thread id in run.json")
    before = pair.manifest()["roles"]
    pair.wait(lambda: pair.status()["agents"]["worker"]["state"] == "ready", 30, "the worker to be idle")
    earlier = len(pair.server.requests())

    # The server dies (a reboot, a logout, `tmux kill-server`): every pane and the bridge with it.
    pair.tmux("kill-server")
    assert not pair.survivors(15.0), "the agents and the bridge end with their tmux server"
    assert not bridge_running(pair.run_dir)

    # After the resume: each agent answers the notice, then the loop goes on to done.
    pair.server.script("anthropic", shell('pairloop review "Fixed: added a test for greet()"', then=text("Asked.")),
                       shell('pairloop done "greet() is approved"', then=text("Done.")))
    pair.server.script("openai", text("Noted: waiting for the fix."),
                       shell('pairloop approve "The test is there."', then=text("Approved.")))
    out = pair.pairloop("resume", pair.run_id, "--no-attach", timeout=120).stdout
    assert "reopened the session" in out
    assert f"worker ({worker}): resumed its own conversation" in out
    assert f"reviewer ({reviewer}): resumed its own conversation" in out
    after = pair.manifest()["roles"]
    assert [after[r]["session_id"] for r in ("worker", "reviewer")] == \
        [before[r]["session_id"] for r in ("worker", "reviewer")]

    agreed = pair.wait(lambda: next((e for e in pair.events("run") if e.get("state") == "agreed"), None), 120,
                       "the pair to agree after the resume")
    assert agreed["round"] == 2

    # Their own conversations: the first request after the resume carries the turns from before it.
    at_worker = pair.request_with("anthropic", NOTICE, 10)
    assert "You are the worker of this pair" in at_worker.newest_user_text
    assert any("Add greet(name) in greet.py." in t for t in at_worker.user_texts()[:-1]), at_worker.user_texts()
    assert any("add a test for greet()" in t for t in at_worker.user_texts()[:-1])
    at_reviewer = pair.request_with("openai", NOTICE, 10)
    assert "You are the reviewer of this pair" in at_reviewer.newest_user_text
    assert any("Ready for review: greet() in greet.py" in t for t in at_reviewer.user_texts()[:-1])
    assert len(pair.server.requests()) > earlier

    # Every message reached each recipient once.
    counts = Counter((i, e["to"]) for e in pair.events("delivered") for i in e["ids"])
    assert counts and set(counts.values()) == {1}, counts
    assert [v["kind"] for v in pair.events("verdict")] == ["changes", "approve"]
