"""The record paths the agents' events name are untrusted: only a regular file (never a link, a FIFO or a
device), read in bounded chunks, under the role's own records roots (recorded at start from the agent's
environment), and not another role's; a refused path is said once and never read."""

from __future__ import annotations

import json
import os
from pathlib import Path

import msgspec

from bridge.meter import Meter
from bridge.protocol.referee import Referee
from bridge.rundir.events import ProtocolStarted, TokenUsage
from bridge.rundir.manifest import Manifest, RecordsRoot, RoleSpec, TmuxPlace, parse_manifest, targets
from bridge.usage import CLAUDE, CODEX, READ_BYTES, RecordFile, refusal
from pairloop.agents.claude import CLAUDE_RULES
from pairloop.agents.claude import PROFILE as CLAUDE_PROFILE
from pairloop.agents.codex import PROFILE as CODEX_PROFILE
from pairloop.agents.records import records_roots
from pairloop.agents.sim import PROFILE as SIM_PROFILE
from tests.test_meter_unit import Screens
from tests.test_usage import claude_assistant


def _line(msg: str, tokens_in: int, tokens_out: int) -> str:
    return json.dumps(claude_assistant(msg, tokens_in, tokens_out)) + "\n"


def _meter(tmp_path: Path, roots: dict[str, tuple[RecordsRoot, ...]]) -> tuple[Referee, Meter]:
    spec = RoleSpec(agent="claude", pane="%1", submit_key="Enter", screen=CLAUDE_RULES, records=CLAUDE)
    manifest = Manifest(id="r1", repo=str(tmp_path), tmux=TmuxPlace(socket_path="/x", session="s"),
                        roles={"worker": msgspec.structs.replace(spec, records_roots=roots["worker"]),
                               "reviewer": msgspec.structs.replace(spec, pane="%2", records_roots=roots["reviewer"])})
    referee = Referee(manifest, tmp_path)
    referee.apply(ProtocolStarted(phase="work", limits=manifest.protocol.limits))
    meter = Meter(Screens(), targets(manifest), {r: s.records for r, s in manifest.roles.items()})  # type: ignore[arg-type]
    meter.roots = {role: spec.records_roots for role, spec in manifest.roles.items()}
    return referee, meter


def test_only_a_file_named_as_records_under_the_roles_roots_is_read(tmp_path: Path) -> None:
    projects = tmp_path / "claude" / "projects"
    (projects / "p").mkdir(parents=True)
    roots = (RecordsRoot(dir=str(projects), name="*.jsonl"),)
    assert refusal(str(projects / "p" / "s.jsonl"), roots) == ""
    assert refusal(str(tmp_path / "elsewhere.jsonl"), roots) != ""
    assert refusal(str(projects / "p" / "notes.txt"), roots) != "", "not named as records"
    assert refusal(str(projects / "p" / ".." / ".." / "x.jsonl"), roots) != "", "no way out with .."
    assert refusal("p/s.jsonl", roots) != "", "a relative path"
    outside = tmp_path / "outside"
    outside.mkdir()
    (projects / "link").symlink_to(outside)
    assert refusal(str(projects / "link" / "s.jsonl"), roots) != "", "a linked folder leading out"
    assert refusal(str(tmp_path / "x.jsonl"), ()) == "", "a run from before roots were recorded"


def test_a_fifo_is_never_opened_for_reading_and_does_not_block(tmp_path: Path) -> None:
    fifo = tmp_path / "r.jsonl"
    os.mkfifo(fifo)
    record = RecordFile(str(fifo), CLAUDE)
    assert record.read() is False  # returns at once: a blocking open would hang the test here
    assert "not a regular file" in record.problem


def test_a_symlink_is_not_followed_even_to_a_real_record(tmp_path: Path) -> None:
    real = tmp_path / "real.jsonl"
    real.write_text(_line("m1", 100, 10))
    link = tmp_path / "link.jsonl"
    link.symlink_to(real)
    record = RecordFile(str(link), CLAUDE)
    assert record.read() is False
    assert "symlink" in record.problem and record.tally.tokens.total == 0


def test_a_huge_file_is_read_in_bounded_chunks(tmp_path: Path) -> None:
    big = tmp_path / "big.jsonl"
    line = _line("m", 1, 1)
    count = 3 * READ_BYTES // len(line) + 1
    with big.open("w") as f:
        for n in range(count):
            f.write(_line(f"m{n}", 1, 1))
    size = big.stat().st_size
    record = RecordFile(str(big), CLAUDE)
    assert record.read() and record.offset <= READ_BYTES, "one look reads at most READ_BYTES"
    looks = 1
    while record.read():
        looks += 1
        assert record.offset <= looks * READ_BYTES
    assert record.offset == size and looks >= 3
    assert record.tally.tokens.output == count, "every line counted once across the looks"


def test_the_meter_counts_the_roles_own_records_and_refuses_the_rest_once(tmp_path: Path) -> None:
    worker_root, reviewer_root = tmp_path / "w", tmp_path / "r"
    worker_root.mkdir()
    reviewer_root.mkdir()
    mine = worker_root / "mine.jsonl"
    mine.write_text(_line("m1", 1000, 50))
    forged = tmp_path / "forged.jsonl"
    forged.write_text(_line("m2", 10**9, 10**9))
    referee, meter = _meter(tmp_path, {"worker": (RecordsRoot(dir=str(worker_root)),),
                                       "reviewer": (RecordsRoot(dir=str(reviewer_root)),)})
    fx = meter.read({"worker": [str(mine), str(forged)], "reviewer": [str(mine)]}, referee, now=0.0)
    usage = [e for e in fx.events if isinstance(e, TokenUsage)]
    assert usage == [TokenUsage(role="worker", input=1000, output=50, files=(str(mine),))], "the legitimate path"
    assert sum("forged.jsonl" in line and "ignored" in line for line in fx.says) == 1
    assert sum("mine.jsonl" in line and "reviewer" in line for line in fx.says) == 1, "not the reviewer's"
    fx = meter.read({"worker": [str(mine), str(forged)], "reviewer": [str(mine)]}, referee, now=1.0)
    assert fx.says == [], "said once"


def test_the_same_record_named_by_both_roles_counts_for_the_first_only(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    mine = shared / "w.jsonl"
    mine.write_text(_line("m1", 7, 3))
    roots = (RecordsRoot(dir=str(shared)),)
    referee, meter = _meter(tmp_path, {"worker": roots, "reviewer": roots})
    fx = meter.read({"worker": [str(mine)]}, referee, now=0.0)
    assert [e.role for e in fx.events if isinstance(e, TokenUsage)] == ["worker"]
    fx = meter.read({"worker": [str(mine)], "reviewer": [str(mine)]}, referee, now=1.0)
    assert not [e for e in fx.events if isinstance(e, TokenUsage) and e.role == "reviewer"]
    assert any("counted for the worker already" in line for line in fx.says)


def test_the_roots_come_from_the_agents_environment(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    env = {"HOME": str(tmp_path / "home")}
    assert records_roots(CLAUDE_PROFILE, env, run_dir, "worker") == (
        RecordsRoot(dir=str(tmp_path / "home" / ".claude" / "projects"), name="*.jsonl"),)
    assert records_roots(CLAUDE_PROFILE, {**env, "CLAUDE_CONFIG_DIR": str(tmp_path / "c")}, run_dir, "worker")[0] \
        .dir == str(tmp_path / "c" / "projects")
    assert records_roots(CODEX_PROFILE, {**env, "CODEX_HOME": str(tmp_path / "x")}, run_dir, "reviewer") == (
        RecordsRoot(dir=str(tmp_path / "x" / "sessions"), name="rollout-*.jsonl"),)
    assert records_roots(SIM_PROFILE, env, run_dir, "reviewer") == (
        RecordsRoot(dir=str(run_dir), name="sim-usage-reviewer.jsonl"),)
    assert CODEX_PROFILE.records == CODEX


def test_an_old_run_json_without_roots_still_reads() -> None:
    spec = RoleSpec(agent="claude", pane="%1", submit_key="Enter", screen=CLAUDE_RULES, records=CLAUDE)
    data = msgspec.json.encode(Manifest(id="r1", repo="/r", tmux=TmuxPlace(socket_path="/x", session="s"),
                                        roles={"worker": spec}))
    assert b"records_roots" not in data or b'"records_roots":[]' in data
    raw = json.loads(data)
    raw["roles"]["worker"].pop("records_roots", None)
    assert parse_manifest(json.dumps(raw).encode()).roles["worker"].records_roots == ()

