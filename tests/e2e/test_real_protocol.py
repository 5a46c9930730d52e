"""One full review loop with the real claude and codex: review → approve → done, through the agents' own
shell tools, asserted on what the models received, on the ledger and on the checkpoint refs."""

from __future__ import annotations

import json
from typing import Any

import pytest

from bridge.git import git as run_git
from bridge.panes.envelope import parse
from tests.e2e.driver import Pair, unwrap
from tests.e2e.model_server import Flavor, shell, text

FLAVOR: dict[str, Flavor] = {"claude": "anthropic", "codex": "openai"}


def instructions(flavor: str, body: dict[str, Any]) -> str:
    """The system (claude) or developer (codex) instructions a request carried: where a role brief belongs."""
    if flavor == "anthropic":
        system = body.get("system", [])
        return json.dumps(system) if not isinstance(system, str) else system
    return json.dumps([item for item in body.get("input", []) if item.get("role") == "developer"])


def git(pair: Pair, *args: str) -> str:
    return run_git(pair.repo, *args, check=True).stdout


@pytest.mark.parametrize(("worker", "reviewer"), [("claude", "codex"), ("codex", "claude")])
def test_a_full_loop_review_approve_done(pair: Pair, worker: str, reviewer: str) -> None:
    # The worker's work, left uncommitted on purpose: the checkpoint must hold it all the same.
    (pair.repo / "greet.py").write_text('def greet(name: str) -> str:\n    return f"Hello, {name}!"\n')
    pair.server.script(FLAVOR[worker],
                       shell('pairloop review "Ready for review: greet() in greet.py"', then=text("Asked.")),
                       shell('pairloop done "greet() is approved"', then=text("Done.")))
    pair.server.script(FLAVOR[reviewer], shell('pairloop approve "greet() is right."', then=text("Approved.")))

    pair.start("Add greet(name) in greet.py.", worker, reviewer)
    agreed = pair.wait(lambda: next((e for e in pair.events("run") if e.get("state") == "agreed"), None), 90,
                       "the pair to agree")
    assert agreed["round"] == 1 and agreed["approved_by"] == "reviewer"

    # The checkpoint of round 1 holds the uncommitted greet.py; the user's index and branch are untouched.
    ref = f"refs/pairloop/{pair.run_id}/round-1"
    assert git(pair, "for-each-ref", "--format=%(refname)", f"refs/pairloop/{pair.run_id}/").split() == [ref]
    assert "Hello, {name}!" in git(pair, "show", f"{ref}:greet.py")
    assert git(pair, "status", "--porcelain").strip() == "?? greet.py"

    # What the reviewer's model was shown: the review request, the round's checkpoint and how to diff it.
    at_reviewer = pair.request_with(FLAVOR[reviewer], "Ready for review: greet() in greet.py")
    (request,), footer = parse(unwrap(at_reviewer.newest_user_text))
    assert (request.label, request.sender) == ("review request", "worker")
    assert request.note.startswith(f"round 1 (work phase) · checkpoint {ref}")
    assert f"git diff {pair.manifest()['base_commit']} {ref}" in request.note
    assert "greet.py" in request.note
    assert footer.startswith("you are the reviewer · work phase · round 1 · pairloop approve")

    # What the worker's model was shown: the approval, tied to round 1's checkpoint.
    at_worker = pair.request_with(FLAVOR[worker], "greet() is right.")
    (approval,), _ = parse(unwrap(at_worker.newest_user_text))
    assert (approval.label, approval.sender) == ("approval", "reviewer")
    assert approval.note.startswith(f"approved: round 1 ({ref})")

    # Each role's brief reached its agent as instructions (claude: --append-system-prompt; codex:
    # developer_instructions), not as a message, and names the verbs to use.
    for agent, role, verb in ((worker, "WORKER", "pairloop review"), (reviewer, "REVIEWER", "pairloop approve")):
        recorded = next(r for r in pair.server.requests(FLAVOR[agent]) if "[pairloop] #" in r.newest_user_text)
        said = instructions(FLAVOR[agent], recorded.body)
        assert f"You are the {role} in a pairloop pair-programming session" in said
        assert verb in said
        assert f"You are the {role}" not in recorded.newest_user_text

    # The ledger's verdict and `pairloop status --json` say the same.
    (verdict,) = pair.events("verdict")
    assert (verdict["by"], verdict["kind"], verdict["round"], verdict["checkpoint"]) == (
        "reviewer", "approve", 1, ref)
    status = pair.status()
    assert (status["state"], status["round"], status["phase"]) == ("agreed", 1, "work")
    assert status["checkpoints"]["1"]["ref"] == ref
    assert [v["kind"] for v in status["verdicts"]] == ["approve"]
