"""Reading tokens and usage limits from the agents' own records (claude's transcript, codex's rollout), in the
shapes claude 2.1.332 and codex 0.171.0 write them; the budget and the limits folded from the ledger."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any

from bridge.protocol.spend import Spend, compact
from bridge.rundir.events import Relay, TokenUsage, UsageLimit
from bridge.usage import CLAUDE, CODEX, READ_BYTES, RecordFile, Tokens


def claude_assistant(msg_id: str, inp: int, out: int, cache_read: int = 0, cache_write: int = 0) -> dict[str, Any]:
    """An assistant entry as claude 2.1.332 writes it (trimmed to the fields that matter, plus some noise)."""
    return {"parentUuid": "p", "isSidechain": False, "type": "assistant", "uuid": f"u-{msg_id}",
            "timestamp": "2026-12-01T22:39:01.591Z", "sessionId": "s", "version": "2.1.332",
            "message": {"id": msg_id, "type": "message", "role": "assistant", "model": "claude-opus-5-5",
                        "content": [{"type": "text", "text": "hello there"}], "stop_reason": "end_turn",
                        "usage": {"input_tokens": inp, "cache_creation_input_tokens": cache_write,
                                  "cache_read_input_tokens": cache_read, "output_tokens": out,
                                  "output_tokens_details": {"thinking_tokens": 0}, "service_tier": "standard"}}}


CLAUDE_429 = {"parentUuid": "p", "isSidechain": False, "type": "assistant", "uuid": "u-err",
              "timestamp": "2026-12-01T22:39:07.957Z",
              "message": {"id": "c3b97a34", "model": "<synthetic>", "role": "assistant", "type": "message",
                          "usage": {"input_tokens": 0, "output_tokens": 0, "cache_creation_input_tokens": 0,
                                    "cache_read_input_tokens": 0},
                          "content": [{"type": "text", "text": "API Error: Request rejected (429) · Number of "
                                                               "request tokens has exceeded your per-minute rate "
                                                               "limit"}]},
              "apiErrorIsTransient": False, "error": "rate_limit", "isApiErrorMessage": True,
              "apiErrorStatus": 429, "apiErrorType": "rate_limit_error"}


def codex_count(inp: int, cached: int, out: int) -> dict[str, Any]:
    usage = {"input_tokens": inp, "cached_input_tokens": cached, "cache_write_input_tokens": 0,
             "output_tokens": out, "reasoning_output_tokens": 0, "total_tokens": inp + out}
    return {"timestamp": "2026-12-01T22:39:51.562Z", "ordinal": 12, "type": "event_msg",
            "payload": {"type": "token_count", "info": {"total_token_usage": usage, "last_token_usage": usage,
                                                          "model_context_window": 258400},
                        "rate_limits": {"limit_id": "codex", "primary": None, "rate_limit_reached_type": None}}}


CODEX_LIMIT = {"timestamp": "2026-12-01T22:39:58.006Z", "ordinal": 20, "type": "event_msg",
               "payload": {"type": "task_complete", "turn_id": "t2", "last_agent_message": None,
                           "error": {"message": "You’ve hit your usage limit. Upgrade to Pro …",
                                     "codex_error_info": "usage_limit_exceeded"}}}


def write(path: Path, *entries: dict[str, Any], tail: str = "") -> None:
    with path.open("a", encoding="utf-8") as f:
        for entry in entries:
            f.write(json.dumps(entry) + "\n")
        f.write(tail)


def test_claude_usage_counts_once_per_message_with_every_kind_of_input(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    write(path, {"type": "user", "message": {"role": "user", "content": "hi"}}, claude_assistant("m1", 1234, 56),
          # The same message written again (one line per content block): counted once.
          claude_assistant("m1", 1234, 56), claude_assistant("m2", 10, 5, cache_read=300, cache_write=40))
    record = RecordFile(str(path), CLAUDE)
    assert record.read()
    assert record.tally.tokens == Tokens(input=1234 + 10 + 300 + 40, cached=300, output=56 + 5)
    assert record.tally.tokens.total == 1234 + 350 + 61
    assert record.tally.limits == []


def test_a_429_in_claudes_transcript_is_a_limit_with_its_text_and_time(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    write(path, claude_assistant("m1", 1, 1), CLAUDE_429)
    record = RecordFile(str(path), CLAUDE)
    record.read()
    (hit,) = record.tally.limits
    assert hit.reason.startswith("API Error: Request rejected (429)")
    assert hit.at == "2026-12-01T22:39:07.957Z"
    assert record.tally.tokens == Tokens(1, 0, 1), "the synthetic error entry's zero usage adds nothing"


def test_codex_keeps_the_latest_running_total_and_a_usage_limit(tmp_path: Path) -> None:
    path = tmp_path / "rollout-2026-12-01T22-39-47-thread.jsonl"
    write(path, {"type": "session_meta", "payload": {"id": "thread"}}, codex_count(1234, 0, 56),
          codex_count(1234, 0, 56), CODEX_LIMIT)
    record = RecordFile(str(path), CODEX)
    record.read()
    assert record.tally.tokens == Tokens(1234, 0, 56)
    (hit,) = record.tally.limits
    assert "usage limit" in hit.reason and hit.at == "2026-12-01T22:39:58.006Z"
    write(path, codex_count(2000, 500, 80))
    assert record.read()
    assert record.tally.tokens == Tokens(2000, 500, 80), "a running total replaces the one before"


def test_reading_goes_on_from_the_offset_and_waits_for_a_partial_last_line(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    line = json.dumps(claude_assistant("m2", 7, 3))
    write(path, claude_assistant("m1", 100, 10), tail=line[:25])
    record = RecordFile(str(path), CLAUDE)
    record.read()
    assert record.tally.tokens == Tokens(100, 0, 10)
    assert not record.read(), "nothing new: nothing read"
    with path.open("a") as f:
        f.write(line[25:] + "\n")
    assert record.read()
    assert record.tally.tokens == Tokens(107, 0, 13), "the line finished later is counted once, whole"


def test_a_missing_file_is_no_problem_and_a_file_cut_short_is_read_again(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    record = RecordFile(str(path), CLAUDE)
    assert not record.read() and record.problem == ""
    write(path, claude_assistant("m1", 100, 10), claude_assistant("m2", 100, 10))
    record.read()
    path.write_text(json.dumps(claude_assistant("m3", 5, 5)) + "\n")
    record.read()
    assert record.tally.tokens == Tokens(5, 0, 5)


def test_garbage_and_unknown_lines_are_passed_over(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    path.write_text('not json\n[1, 2]\n{"type": "assistant", "message": {"usage": {"input_tokens": "many"}}}\n'
                    + json.dumps(claude_assistant("m1", 3, 4)) + "\n")
    record = RecordFile(str(path), CLAUDE)
    record.read()
    assert record.tally.tokens == Tokens(3, 0, 4)


def test_a_fifo_in_place_of_the_record_never_blocks_the_reader(tmp_path: Path) -> None:
    fifo = tmp_path / "t.jsonl"
    os.mkfifo(fifo)
    record = RecordFile(str(fifo), CLAUDE)
    done = threading.Event()

    def read() -> None:
        record.read()
        done.set()

    threading.Thread(target=read, daemon=True).start()
    assert done.wait(5), "reading a FIFO blocked"
    assert "not a regular file" in record.problem


def test_a_huge_record_is_caught_up_over_several_looks(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    entries = [claude_assistant(f"m{i}", 1, 1) for i in range(4000)]
    write(path, *entries)
    assert path.stat().st_size > READ_BYTES
    record = RecordFile(str(path), CLAUDE)
    looks = 0
    while record.read():
        looks += 1
    assert looks >= 2 and record.tally.tokens == Tokens(4000, 0, 4000)


def test_spend_folds_tokens_the_budget_and_limits_from_the_ledger() -> None:
    spend = Spend()
    assert spend.over_budget(0) == "" and spend.words(0) == ""
    spend.apply(TokenUsage(role="worker", input=30_000, cached=10_000, output=2_000))
    spend.apply(TokenUsage(role="reviewer", input=15_000, output=4_000))
    spend.apply(TokenUsage(role="worker", input=40_000, cached=10_000, output=3_000))  # a later count replaces
    assert spend.total == Tokens(55_000, 10_000, 7_000)
    assert spend.over_budget(100_000) == ""
    assert spend.over_budget(50_000) == "62,000 tokens used, over the budget of 50,000"
    assert spend.words(50_000) == " · tokens 62k/50k"
    spend.apply(Relay(state="running", by="human", tokens_allowed=112_000))
    assert spend.over_budget(50_000) == "" and spend.budget(50_000) == 112_000
    spend.apply(UsageLimit(role="reviewer", reason="429", source="screen"))
    assert spend.last_limit("reviewer") is not None and spend.last_limit("worker") is None
    summary = spend.summary(50_000)
    assert summary["tokens"]["roles"]["worker"] == {"input": 40_000, "cached": 10_000, "output": 3_000,
                                                     "total": 43_000}
    assert summary["tokens"]["total"]["total"] == 62_000 and summary["tokens"]["max_tokens"] == 112_000
    assert [u["role"] for u in summary["usage_limits"]] == ["reviewer"]
    assert (compact(999), compact(12_345), compact(4_200_000)) == ("999", "12.3k", "4.2M")


def test_the_other_limit_shapes_codex_and_claude_write(tmp_path: Path) -> None:
    rate = {"timestamp": "2026-12-01T23:00:00.000Z", "type": "event_msg",
            "payload": {"type": "task_complete", "error": {
                "message": "exceeded retry limit, last status: 429 Too Many Requests",
                "codex_error_info": {"response_too_many_failed_attempts": {"http_status_code": 429}}}}}
    other = {"timestamp": "2026-12-01T23:00:01.000Z", "type": "event_msg",
             "payload": {"type": "task_complete", "error": {"message": "stream disconnected",
                                                            "codex_error_info": {"other": {"http_status_code": 500}}}}}
    path = tmp_path / "rollout.jsonl"
    write(path, rate, other)
    record = RecordFile(str(path), CODEX)
    record.read()
    assert [h.reason for h in record.tally.limits] == ["exceeded retry limit, last status: 429 Too Many Requests"]
    billing = {**CLAUDE_429, "error": "billing_error", "apiErrorStatus": 400, "timestamp": "2026-12-01T23:00:02Z"}
    billing["message"] = {"content": [{"type": "text", "text": "Credit balance is too low"}]}
    server = {**CLAUDE_429, "error": "server_error", "apiErrorStatus": 500}
    transcript = tmp_path / "t.jsonl"
    write(transcript, billing, server)
    record = RecordFile(str(transcript), CLAUDE)
    record.read()
    assert [h.reason for h in record.tally.limits] == ["Credit balance is too low"], "a 500 is no limit"
