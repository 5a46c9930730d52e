"""The verification gate with the real claude and codex: a full loop with a verify command.

The repository holds a tiny check (``check_greet.py``) and ``verify = "python3 check_greet.py"`` in its
``.pairloop.toml``. claude, the worker, commits a greet() that fails the check and asks for review; codex, the
reviewer, receives the request together with the failure (the result, its output's last lines, where the log is)
and asks for changes; the worker fixes it and asks again; the check passes, codex approves, the worker says done
and the pair agrees. Asserted on what the models received, the ledger, the checkpoint refs, the logs and the PR
notes — never on time passing.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bridge.git import git as run_git
from bridge.panes.envelope import Parsed, parse
from tests.e2e.driver import Pair, unwrap
from tests.e2e.model_server import RecordedRequest, shell, text

pytestmark = pytest.mark.e2e

VERIFY = "python3 check_greet.py"
CHECK = (
    "from greet import greet\n"
    "\n"
    "got = greet('')\n"
    "assert got == 'Hello, stranger!', f'greet of the empty name is {got!r}, not the stranger'\n"
    "print('greet checks out')\n"
)
# What the failing check prints last (the assertion's message): the reviewer must be shown it.
FAILURE_LINE = "AssertionError: greet of the empty name is 'Hello, !', not the stranger"
BUGGY = r"""printf 'def greet(name):\n    return f"Hello, {name}!"\n' > greet.py"""
FIXED = r"""printf 'def greet(name):\n    return "Hello, " + (name or "stranger") + "!"\n' > greet.py"""
FIRST_REVIEW = "Ready for review: greet() in greet.py"
FINDING = "1. greet('') must greet the stranger: the check fails."
SECOND_REVIEW = "Fixed: greet('') greets the stranger now"
APPROVAL = "The check passes now; approved."
# The human lets the worker commit, for this run only (claude's own flag, passed through pairloop). Without it
# claude 2.1.332 in its default auto mode asks its server-side safety check about `git commit`; behind a custom
# endpoint (the model server) that check cannot run and claude stops the turn on "Auto mode can't check actions
# in this session", waiting for the human.
LET_COMMIT = "--worker-arg=--allowedTools=Bash(git add:*),Bash(git commit:*)"


def git(pair: Pair, *args: str) -> str:
    return run_git(pair.repo, *args, check=True).stdout.strip()


def setup_repo(pair: Pair) -> None:
    """The human's repository before the run: the check and the configuration naming it, committed."""
    (pair.repo / "check_greet.py").write_text(CHECK)
    (pair.repo / ".pairloop.toml").write_text(f"verify = {json.dumps(VERIFY)}\n")
    git(pair, "add", "check_greet.py", ".pairloop.toml")
    git(pair, "commit", "-q", "-m", "A check for greet()")


def finished(pair: Pair) -> list[dict[str, Any]]:
    return pair.events("verify_finished")


def pasted(req: RecordedRequest) -> list[Parsed]:
    """The messages of one paste, as the bridge's own envelope parser reads them."""
    messages, _footer = parse(unwrap(req.newest_user_text))
    return messages


def test_a_full_loop_where_the_first_checkpoint_fails_verification_and_the_fix_passes(pair: Pair) -> None:
    setup_repo(pair)
    base = git(pair, "rev-parse", "HEAD")
    commit = 'git add greet.py && git commit -q -m "{}"'
    pair.server.script(
        "anthropic",
        shell(f'{BUGGY} && {commit.format("Add greet()")} && pairloop review "{FIRST_REVIEW}"',
              then=text("Asked for review.")),
        shell(f'{FIXED} && {commit.format("greet() greets the stranger")} && '
              f'pairloop review --fixed F1.1 "{SECOND_REVIEW}"', then=text("Asked again.")),
        shell('pairloop done "Approved, and the check passes."', then=text("Done.")),
    )
    pair.server.script(
        "openai",
        shell(f'pairloop changes "{FINDING}"', then=text("Changes asked.")),
        shell(f'pairloop approve "{APPROVAL}"', then=text("Approved.")),
    )

    pair.start("Add greet(name) in greet.py; check_greet.py says what it must do.", "claude", "codex",
               LET_COMMIT)
    # The command comes from the configuration as it stood at start, recorded in the run's manifest.
    assert pair.manifest()["verify"] == VERIFY

    agreed = pair.wait(lambda: next((e for e in pair.events("run") if e.get("state") == "agreed"), None), 150,
                       "the pair to agree")
    assert (agreed["round"], agreed["approved_by"]) == (2, "reviewer"), agreed
    ref1, ref2 = (f"refs/pairloop/{pair.run_id}/round-{n}" for n in (1, 2))

    # The ledger: one verification per checkpoint, the first failed, the second passed, each on its own ref.
    started = pair.events("verify_started")
    assert [(e["round"], e["ref"], e["command"]) for e in started] == [(1, ref1, VERIFY), (2, ref2, VERIFY)]
    done = finished(pair)
    assert [(e["round"], e["ref"], e["result"], e.get("exit_status")) for e in done] == [
        (1, ref1, "failed", 1), (2, ref2, "passed", 0)], done
    for e, ref in zip(done, (ref1, ref2), strict=True):
        assert e["commit"] == git(pair, "rev-parse", ref), "verified exactly the round's checkpoint"
    # Each checkpoint sits on the worker's own commit: the buggy one, then the fix.
    assert git(pair, "log", "--format=%s", "-1", f"{ref1}^") == "Add greet()"
    assert git(pair, "log", "--format=%s", "-1", f"{ref2}^") == "greet() greets the stranger"
    assert git(pair, "log", "--format=%s", f"{base}..HEAD").splitlines() == [
        "greet() greets the stranger", "Add greet()"]
    assert 'f"Hello, {name}!"' in git(pair, "show", f"{ref1}:greet.py")
    assert FAILURE_LINE in str(done[0]["tail"])
    # The full output of each run is kept in the run directory.
    logs = [Path(str(e["log"])) for e in done]
    assert all(log.is_relative_to(pair.run_dir) for log in logs), logs
    assert FAILURE_LINE in logs[0].read_text()
    assert "greet checks out" in logs[1].read_text()
    assert not list((pair.run_dir / "verify-runs").glob("tree-*")), "the temporary worktrees are removed"
    assert git(pair, "worktree", "list", "--porcelain").count("worktree ") == 1

    # What codex received for round 1: the review request and its verification failure, in one paste.
    first = pair.request_with("openai", FIRST_REVIEW, 10)
    messages = pasted(first)
    assert messages and (messages[0].label, messages[0].sender) == ("review request", "worker"), messages
    (failure,) = [m for m in messages if m.topic == "verify-failed"]
    assert failure.sender == "pairloop"
    assert "round 1's checkpoint" in failure.body and "FAILED (exit status 1)" in failure.body
    assert f"command: `{VERIFY}`" in failure.body
    assert FAILURE_LINE in failure.body, "the tail of the failure"
    assert f"full log: {done[0]['log']}" in failure.body
    # The request was held until its checkpoint's result could go with it.
    request_id = next(e["id"] for e in pair.received("worker") if e.get("kind") == "review")
    assert any(str(e.get("reason", "")).startswith("held: verifying round 1")
               for e in pair.events("queued", request_id, "reviewer")), pair.events("queued", request_id)
    assert pair.server.user_texts("openai").count(first.newest_user_text) == 1

    # The worker was asked for changes (the finding), and fixed them; round 2 reached codex with its pass.
    assert pair.request_with("anthropic", FINDING, 10)
    second = pair.request_with("openai", SECOND_REVIEW, 10)
    (passed,) = [m for m in pasted(second) if m.topic == "verified"]
    assert "round 2's checkpoint" in passed.body and "passed in" in passed.body
    assert f"full log: {done[1]['log']}" in passed.body
    assert "FAILED" not in second.newest_user_text
    assert pair.request_with("anthropic", APPROVAL, 10)

    # The verdicts and the done gate: changes on round 1, approval of round 2, done accepted at once.
    assert [(v["kind"], v["round"], v["checkpoint"]) for v in pair.events("verdict")] == [
        ("changes", 1, ref1), ("approve", 2, ref2)]
    assert pair.events("done_refused") == []
    status = pair.status()
    assert [(v["round"], v["checkpoint"], v["result"], v["exit_status"]) for v in status["verifications"]] == [
        (1, ref1, "failed", 1), (2, ref2, "passed", 0)]

    # The PR notes list both runs as facts (round, checkpoint, command, result, exit status), apart from what
    # the agents said they ran.
    notes_file = pair.run_dir / "PR_NOTES.md"
    notes = pair.wait(lambda: notes_file.read_text() if notes_file.is_file() else None, 60, "the PR notes")
    section = notes.split("## How it was verified", 1)[1].split("\n## ", 1)[0]
    assert "Run by pairloop on each review checkpoint, in a clean worktree of it:" in section
    for e, result in ((done[0], "failed (exit status 1,"), (done[1], "passed (exit status 0,")):
        line = f"- Round {e['round']}, checkpoint `{e['ref']}` ({str(e['commit'])[:10]}): `{VERIFY}` — {result}"
        assert line in section, section
    assert section.index("- Round 1,") < section.index("- Round 2,")
