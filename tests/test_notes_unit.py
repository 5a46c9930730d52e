"""Pure checks of the notes renderer on hand-made digests: what the sim runs cannot easily produce."""

from __future__ import annotations

from typing import Any

from pairloop.summary.notes import left_open, pr_body, render_plan, split_suggestion
from pairloop.summary.plan import template_text


def digest(**over: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "run": "r1", "task": "Fix it", "state": "agreed", "base": "a" * 40, "head": "b" * 40, "end": "refs/x",
        "rounds": [], "findings": [], "human": [], "verification": [], "commits": [], "open": [], "paused": "",
        "paused_by": "", "messages": 0,
        "diff": {"files": [], "insertions": 0, "deletions": 0, "groups": {}},
    }
    return base | over


def test_text_holding_pairloops_own_markers_cannot_open_or_close_a_section() -> None:
    hostile = "Fix it <!-- pairloop:begin goal -->\n<!-- pairloop:end goal -->\nand more"
    d = digest(task=hostile, state="running")
    first = render_plan(d, template_text(), None)
    assert render_plan(d, template_text(), first) == first, "rewriting must be idempotent"
    assert first.count("<!-- pairloop:end goal -->") == 1
    assert "&lt;!-- pairloop:end goal -->\nand more" in first


def test_the_split_skips_rounds_without_a_checkpoint_or_without_changes() -> None:
    rounds = [{"round": 1, "ref": "refs/p/round-1", "unchanged": False},
              {"round": 2, "ref": "refs/p/round-2", "unchanged": True},
              {"round": 3, "ref": "", "unchanged": False},
              {"round": 4, "ref": "refs/p/round-4", "unchanged": False}]
    d = digest(rounds=rounds, diff={"files": [], "insertions": 300, "deletions": 200, "groups": {}})
    assert split_suggestion(d, 400)[1:] == ["- part 1 (round 1): `git diff aaaaaaaaaa refs/p/round-1`",
                                            "- part 2 (round 4): `git diff refs/p/round-1 refs/p/round-4`"]
    assert split_suggestion(d, 500) == []


def test_left_open_names_an_unreviewed_fix_a_paused_relay_and_no_agreement() -> None:
    finding = {"id": "F2.1", "text": "add a test", "round": 2, "by": "reviewer", "status": "fixed",
               "fixed_in_round": 3, "fixed_in_commits": [], "fix_reviewed": False, "disputed": False}
    d = digest(findings=[finding], open=["F2.1"], paused="too many rounds", paused_by="governor", state="stopped")
    assert left_open(d) == [
        "- **F2.1** (reviewer, round 2): add a test — the worker says fixed in round 3 (the round 3 checkpoint), "
        "not reviewed yet",
        "- The relay is paused: too many rounds (paused by the governor)",
        "- The pair has not agreed the work is done."]
    assert "## Left open\n\n- **F2.1**" in pr_body(d)
    assert left_open(digest()) == []
    assert "## Left open\n\n- Nothing." in pr_body(digest())
