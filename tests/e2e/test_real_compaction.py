"""The role card comes back after a compaction, with the real claude: `/compact` makes claude fire its
SessionStart hook with source "compact"; the bridge sends that agent its role card again, once, and the model
receives it in the compacted conversation."""

from __future__ import annotations

import pytest

from tests.e2e.driver import Pair, split_envelope, unwrap

pytestmark = pytest.mark.e2e

CARD_LINE = "Your context was just compacted"


def test_a_claude_reviewer_that_compacts_gets_its_role_card_again(pair: Pair) -> None:
    pair.start("Say hello.", "codex", "claude")
    # One turn first: there is nothing to compact in an empty conversation.
    note = "Wait for the worker's review request, please."
    pair.send("reviewer", note)
    pair.request_with("anthropic", note)
    pair.wait(lambda: pair.status()["agents"]["reviewer"]["state"] == "ready", 30, "the reviewer to be ready")

    # The human compacts the reviewer's context in its pane (a command to claude, not a prompt).
    pair.type_text("reviewer", "/compact")
    pair.wait(lambda: "/compact" in pair.capture("reviewer"), 10, "/compact typed into the reviewer's box")
    pair.press("reviewer", "Enter")

    card = pair.wait(lambda: next((e for e in pair.received("pairloop") if e.get("topic") == "role-card"), None),
                     60, "the role card in the ledger")
    assert card["to"] == ["reviewer"]
    pair.wait(lambda: pair.delivered(str(card["id"]), "reviewer"), 30, "the role card delivered to the reviewer")
    seen = pair.request_with("anthropic", CARD_LINE, 30)
    parsed = split_envelope(unwrap(seen.newest_user_text))
    assert parsed is not None, seen.newest_user_text
    fields, body = parsed
    assert (fields["id"], fields["sender"]) == (card["id"], "pairloop")
    assert "You are the reviewer of this pair" in body and "pairloop approve" in body
    # The model got it after the compaction: the request carries claude's summary, not the earlier turns.
    assert any("continued from a previous conversation" in t for t in seen.user_texts(include_injected=True))
    assert pair.server.user_texts("anthropic").count(seen.newest_user_text) == 1
    assert len([e for e in pair.received("pairloop") if e.get("topic") == "role-card"]) == 1
    assert not (pair.run_dir / "hook-errors.log").exists(), (pair.run_dir / "hook-errors.log").read_text()
