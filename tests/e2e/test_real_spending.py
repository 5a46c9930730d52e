"""What the real claude and codex spend, read from their own records, and a usage limit from the model server
holding the relay and calling the human."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.driver import Pair
from tests.e2e.model_server import Flavor, error, shell, text, with_usage

FLAVOR: dict[str, Flavor] = {"claude": "anthropic", "codex": "openai"}
OTHER = {"claude": "codex", "codex": "claude"}
# What each API says when an account is over its limit.
LIMIT_BODY: dict[str, dict[str, Any]] = {
    "anthropic": {"type": "error", "error": {"type": "rate_limit_error",
                                             "message": "Number of request tokens has exceeded your rate limit"}},
    "openai": {"error": {"type": "usage_limit_reached", "message": "The usage limit has been reached",
                         "plan_type": "plus", "resets_in_seconds": 3600}},
}


def served(pair: Pair, flavor: Flavor) -> int:
    """The tokens the model server reported in its replies to one agent's turns (its titles are not the agent's
    conversation and are kept out of its records)."""
    return sum(r.usage[0] + r.usage[1] for r in pair.server.requests(flavor))


def tokens_of(pair: Pair) -> dict[str, int]:
    return {role: t["total"] for role, t in pair.status()["tokens"]["roles"].items()}


def notify_config(pair: Pair) -> Path:
    got = pair.root / "notified.jsonl"
    script = pair.root / "notify.py"
    script.write_text(f"import sys\nwith open({str(got)!r}, 'a') as f:\n    f.write(sys.stdin.read())\n")
    (pair.repo / ".pairloop.toml").write_text(f"notify = {json.dumps([sys.executable, str(script)])}\n")
    return got


@pytest.mark.parametrize(("worker", "reviewer"), [("claude", "codex")])
def test_tokens_per_agent_are_what_the_model_server_reported(pair: Pair, worker: str, reviewer: str) -> None:
    (pair.repo / "greet.py").write_text('def greet(name: str) -> str:\n    return f"Hello, {name}!"\n')
    pair.server.script(FLAVOR[worker],
                       with_usage(shell('pairloop review "Ready for review: greet()"', then=text("Asked.")), 1200, 34),
                       with_usage(shell('pairloop done "approved"', then=text("Done.")), 1500, 21))
    pair.server.script(FLAVOR[reviewer], with_usage(shell('pairloop approve "Right."', then=text("Approved.")),
                                                    2100, 55))
    pair.start("Add greet(name) in greet.py.", worker, reviewer, "--max-tokens", "1000000")
    pair.wait(lambda: any(e.get("state") == "agreed" for e in pair.events("run")), 90, "the pair to agree")

    def every_reply_served() -> dict[str, int] | None:
        # Both scripted turns of the worker with their follow-ups, the reviewer's, and its answer to `done`.
        now = {"worker": served(pair, FLAVOR[worker]), "reviewer": served(pair, FLAVOR[reviewer])}
        done = now["worker"] >= 2 * (1200 + 34) + 2 * (1500 + 21) and now["reviewer"] > 2 * (2100 + 55)
        return now if done and all(r.outcome for r in pair.server.requests()) else None

    expected = pair.wait(every_reply_served, 30, "every scripted reply to be served")
    pair.wait(lambda: tokens_of(pair) == expected or None, 30,
              f"pairloop to count {expected} from the agents' records")
    status = pair.status()
    assert status["tokens"]["total"]["total"] == sum(expected.values())
    assert status["tokens"]["max_tokens"] == 1_000_000
    assert not status["relay"]["paused"]
    notes = pair.pairloop("summarize", "--run", pair.run_id).stdout
    assert f"- worker: {expected['worker']:,}" in notes and f"- reviewer: {expected['reviewer']:,}" in notes


@pytest.mark.parametrize("agent", ["claude", "codex"])
def test_a_usage_limit_from_the_model_server_holds_the_relay_and_calls_the_human(pair: Pair, agent: str) -> None:
    got = notify_config(pair)
    pair.server.script(FLAVOR[agent], error(429, body=LIMIT_BODY[FLAVOR[agent]], repeat=20))
    pair.start("Add greet(name) in greet.py.", agent, OTHER[agent])
    limit = pair.wait(lambda: next(iter(pair.events("usage_limit")), None), 60, f"{agent}'s usage limit")
    assert limit["role"] == "worker", limit
    paused = pair.wait(lambda: next((e for e in pair.events("relay") if e.get("state") == "paused"), None), 10,
                       "the relay to pause")
    assert (paused["by"], paused["reason"]) == ("usage limit", "the worker hit a usage or rate limit")

    def calls() -> list[dict[str, Any]]:
        lines = got.read_text().splitlines() if got.exists() else []
        return [c for c in map(json.loads, lines) if c["kind"] == "usage-limit"]

    (call,) = pair.wait(calls, 20, "the notify command's call")
    assert (call["run"], call["role"]) == (pair.run_id, "worker")
    status = pair.status()
    assert status["relay"]["by"] == "usage limit"
    assert {u["source"] for u in status["usage_limits"]} <= {"screen", "records"}
    # What pairloop tells claude for the run: never continue by itself when a limit resets.
    if agent == "claude":
        settings = json.loads((pair.run_dir / "claude-settings-worker.json").read_text())
        assert settings["autoContinueAtUsageLimit"] is False
    # Held: the human's message to the worker waits until the human unpauses.
    msg = pair.send("worker", "Are you there?")
    pair.holds(lambda: pair.delivered(msg, "worker") is None, 3, "the message to the worker waiting")
