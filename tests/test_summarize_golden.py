"""The summarizer on runs the sim agents really played on private tmux servers: golden PR notes and PLAN.md, and
the facts behind them checked against the ledger and git.

Runs are made deterministic where they can be (fixed git dates, so every commit and checkpoint sha repeats; the
sims' fixed scripts, so message numbers repeat); only the run id and the temporary repository path are
normalised. ``PAIRLOOP_UPDATE_GOLDEN=1`` rewrites the golden files."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bridge.git import git as run_git
from bridge.git import git_out as git
from bridge.panes.tmux import Tmux
from pairloop.runs.lifecycle import StartOptions, send_message, stop_run
from pairloop.runs.store import Run
from pairloop.summary.summarize import summarize
from tests.conftest import wait_for
from tests.helpers import auto_summary_written, book, ledger, queued_reason, start_sims

pytestmark = pytest.mark.tmux

GOLDEN = Path(__file__).parent / "golden" / "summarize"
UPDATE = os.environ.get("PAIRLOOP_UPDATE_GOLDEN") == "1"
GIT_DATE = "2026-01-02T03:04:05+00:00"
TASK = "Add a greet(name) function."
SIM = {"PAIRLOOP_SIM_MODE": "pair", "PAIRLOOP_SIM_WORK_SECONDS": "0.1"}
PARTS = "## Review in parts"


@pytest.fixture
def repo(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """Like conftest's git_repo, but every commit — the repo's first, the sims', the bridge's checkpoints — is
    dated the same, so shas repeat from run to run. Set before the tmux server starts, so the bridge has it."""
    monkeypatch.setenv("GIT_AUTHOR_DATE", GIT_DATE)
    monkeypatch.setenv("GIT_COMMITTER_DATE", GIT_DATE)
    path = tmp_path / "repo"
    path.mkdir()
    git(path, "init", "-q", "-b", "main")
    (path / "README.md").write_text("test repo\n")
    git(path, "add", "README.md")
    git(path, "commit", "-q", "-m", "init")
    monkeypatch.chdir(path)
    return path


def normalise(text: str, run: Run) -> str:
    return text.replace(run.id, "<run>").replace(str(run.manifest.repo), "<repo>")


def summarize_and_compare(run: Run, scenario: str) -> tuple[str, str]:
    """Summarize twice (byte-identical), then compare both files to the golden ones."""
    summarize(run)
    notes_path, plan_path = run.dir / "PR_NOTES.md", Path(run.manifest.repo) / "PLAN.md"
    first = notes_path.read_bytes(), plan_path.read_bytes()
    summarize(run)
    assert (notes_path.read_bytes(), plan_path.read_bytes()) == first, "summarizing twice changed the output"
    notes, plan = (normalise(b.decode(), run) for b in first)
    folder = GOLDEN / scenario
    if UPDATE:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "PR_NOTES.md").write_text(notes, encoding="utf-8")
        (folder / "PLAN.md").write_text(plan, encoding="utf-8")
    assert notes == (folder / "PR_NOTES.md").read_text(encoding="utf-8"), f"PR_NOTES.md differs from {folder}"
    assert plan == (folder / "PLAN.md").read_text(encoding="utf-8"), f"PLAN.md differs from {folder}"
    check_citations(run, notes_path.read_text(), plan_path.read_text())
    return notes, plan


def section(text: str, heading: str) -> str:
    """The lines under a markdown heading, up to the next heading, pairloop marker or footnote."""
    m = re.search(rf"^{re.escape(heading)}\n(.*?)(?=^#|^<!--|^<sub>|\Z)", text, re.MULTILINE | re.DOTALL)
    assert m, f"no {heading!r} section"
    return m.group(1).strip()


# ---- every #n is a real message, saying what the notes quote ------------------------------------------------

_VERDICT = re.compile(r"\b(?P<by>reviewer|human) (?P<verb>approved|asked for changes) \(#(?P<seq>\d+)\): (?P<text>.*)$")
_QUOTED = re.compile(r": \"(?P<text>.*)\" \(#(?P<seq>\d+)\)")
_SETTLED = re.compile(r"\b(?P<by>reviewer|human)'s approval \(#(?P<seq>\d+)\)")
_HUMAN = re.compile(r"^- (?P<kind>\w+) to (?P<to>[\w, ]+) \(#(?P<seq>\d+)\): (?P<text>.*)$")
_VERB_KIND = {"approved": "approve", "asked for changes": "changes"}


def check_citations(run: Run, *texts: str) -> None:
    messages = {int(e["seq"]): e for e in ledger(run) if e["ev"] == "received"}

    def first_line(seq: int) -> str:
        assert seq in messages, f"#{seq} is cited but no such message is in the ledger"
        return str(messages[seq]["body"]).strip().splitlines()[0]

    for text in texts:
        cited = checked = 0
        for line in text.splitlines():
            cited += len(re.findall(r"#\d+\b", line))
            for m in _VERDICT.finditer(line):
                seq = int(m["seq"])
                assert m["text"] == first_line(seq), line
                assert (messages[seq]["from"], messages[seq]["kind"]) == (m["by"], _VERB_KIND[m["verb"]]), line
                checked += 1
            for m in _QUOTED.finditer(line):
                seq = int(m["seq"])
                assert m["text"] == first_line(seq), line
                assert (messages[seq]["from"], messages[seq]["kind"]) == ("worker", "review"), line
                checked += 1
            for m in _SETTLED.finditer(line):
                seq = int(m["seq"])
                assert seq in messages, f"#{seq} is cited but no such message is in the ledger"
                assert (messages[seq]["from"], messages[seq]["kind"]) == (m["by"], "approve"), line
                checked += 1
            human = _HUMAN.match(line)
            if human:
                seq = int(human["seq"])
                assert human["text"] == first_line(seq), line
                assert messages[seq]["from"] == "human" and messages[seq]["kind"] == human["kind"], line
                assert messages[seq]["to"] == human["to"].split(", "), line
                checked += 1
        assert cited > 0, "the notes cite no message at all"
        assert checked == cited, f"{cited - checked} #n citation(s) in a form this check does not verify"


# ---- the runs ----------------------------------------------------------------------------------------------


def plain_loop(tmux: Tmux, repo: Path) -> Run:
    """work → review → changes → fix → review → approve → done, plan phase off."""
    run = start_sims(tmux, repo, TASK, StartOptions("sim", "sim", plan=False), **SIM)
    wait_for(lambda: book(run).run_state == "agreed", timeout=60, what="the pair to agree")
    wait_for(lambda: auto_summary_written(run), timeout=30, what="the bridge's own summary")
    return run


def disputed_loop(tmux: Tmux, repo: Path) -> Run:
    run = start_sims(tmux, repo, TASK, StartOptions("sim", "sim", plan=False), **SIM, PAIRLOOP_SIM_DISPUTE="1")
    wait_for(lambda: book(run).run_state == "agreed", timeout=60, what="the pair to agree")
    wait_for(lambda: auto_summary_written(run), timeout=30, what="the bridge's own summary")
    return run


def human_overrule(tmux: Tmux, repo: Path) -> Run:
    """The reviewer asks for changes; the human approves instead, before the worker acts on the changes (a
    draft in the worker's box holds both until the human clears it); the worker is done on that approval."""
    # Slower turns (timing only: the ledger's content is the same) leave the test time to type the draft.
    run = start_sims(tmux, repo, TASK, StartOptions("sim", "sim", plan=False),
                     **{**SIM, "PAIRLOOP_SIM_WORK_SECONDS": "0.5"})
    pane = run.manifest.roles["worker"].pane
    wait_for(lambda: run.protocol().round == 1, timeout=30, what="round 1")
    tmux.send_keys(pane, "let me think about this", literal=True)
    changes = wait_for(lambda: [e for e in ledger(run) if e["ev"] == "verdict"], timeout=30,
                       what="the reviewer's verdict")
    (verdict,) = changes
    assert (verdict["by"], verdict["kind"]) == ("reviewer", "changes")
    wait_for(lambda: queued_reason(run, verdict["id"], "worker").startswith("held: human draft"),
             what="the changes held by the human's draft")
    approval = send_message(run, "human", ("worker",), "Good enough, ship it: the test can come later.", "approve")
    wait_for(lambda: queued_reason(run, approval.id, "worker").startswith("held: human draft"),
             what="the human's approval held behind the same draft")
    tmux.send_keys(pane, "C-u")
    wait_for(lambda: book(run).run_state == "agreed", timeout=60, what="the pair to agree")
    wait_for(lambda: auto_summary_written(run), timeout=30, what="the bridge's own summary")
    return run


def governor_stop(tmux: Tmux, repo: Path) -> Run:
    run = start_sims(tmux, repo, TASK, StartOptions("sim", "sim", plan=False, max_rounds=2), **SIM,
                     PAIRLOOP_SIM_STUBBORN="1")
    wait_for(lambda: run.protocol().paused, timeout=60, what="the governor to pause the relay")
    (review3,) = [e for e in book(run).entries.values() if e.message.kind == "review" and "round 3" in e.note]
    wait_for(lambda: queued_reason(run, review3.message.id, "reviewer").startswith("relay paused"),
             what="round 3 held for the human")
    assert stop_run(tmux, run)
    assert not (run.dir / "PR_NOTES.md").exists(), "no agreement: the bridge must not have summarized"
    return run


def digest_of(run: Run) -> dict[str, Any]:
    from pairloop.summary.digest import build

    return build(run)


# ---- the golden tests --------------------------------------------------------------------------------------


def test_plain_loop(tmux_server: Tmux, repo: Path) -> None:
    run = plain_loop(tmux_server, repo)
    auto = (run.dir / "PR_NOTES.md").read_bytes()
    notes, plan = summarize_and_compare(run, "plain")
    assert (run.dir / "PR_NOTES.md").read_bytes() == auto, "the bridge's summary and ours differ"
    # Provenance: F1.1 was fixed by exactly the commit that added the test, made between round 1 and round 2.
    fix = git(repo, "log", "--format=%H", "--grep=^Add a test for greet()$")
    assert len(fix.split()) == 1
    refs = {n: f"refs/pairloop/{run.id}/round-{n}" for n in (1, 2)}
    def is_ancestor(ref: str) -> bool:
        return run_git(repo, "merge-base", "--is-ancestor", fix, ref).returncode == 0

    assert not is_ancestor(refs[1]) and is_ancestor(refs[2])
    (finding,) = digest_of(run)["findings"]
    assert (finding["id"], finding["status"], finding["fixed_in_round"]) == ("F1.1", "fixed", 2)
    assert finding["fixed_in_commits"] == [f"{fix[:7]} Add a test for greet()"]
    assert f"**F1.1** (reviewer, round 1): greet() has no test: please add one. (reviewed commit " \
           f"{git(repo, 'rev-parse', '--short=7', 'HEAD~1')}) — fixed in round 2 ({fix[:7]} Add a test for greet())" \
           in notes
    assert section(notes, "## Left open") == "- Nothing."
    assert section(notes, "## Human interventions") == "- None."
    assert "The worker and the reviewer agreed the work is done after 2 review round(s)" in notes
    assert PARTS not in notes  # 8 changed lines: well under the budget
    assert section(plan, "## Open follow-ups") == "- None."
    # Closing the agreed run with `pairloop stop` does not undo the agreement.
    assert stop_run(tmux_server, run)
    summarize(run)
    assert normalise((run.dir / "PR_NOTES.md").read_text(), run) == notes
    assert normalise((repo / "PLAN.md").read_text(), run) == plan


def test_a_disputed_finding_settled_by_the_approval(tmux_server: Tmux, repo: Path) -> None:
    run = disputed_loop(tmux_server, repo)
    notes, plan = summarize_and_compare(run, "disputed")
    log = ledger(run)
    assert [e["disputed"] for e in log if e["ev"] == "findings"] == [["F1.1"]]
    assert [(e["kind"], e["round"]) for e in log if e["ev"] == "verdict"] == [("changes", 1), ("approve", 2)]
    assert git(repo, "log", "--format=%s") == "Add greet()\ninit", "the worker disputed without changing code"
    (finding,) = digest_of(run)["findings"]
    assert (finding["status"], finding["disputed"], finding["fixed_in_commits"]) == ("resolved", True, [])
    approval = next(e for e in log if e["ev"] == "received" and e["kind"] == "approve")
    assert f"— settled by the reviewer's approval (#{approval['seq']}) after being disputed" in notes
    assert f"- F1.1 was disputed by the worker and settled by the reviewer's approval (#{approval['seq']})" in plan
    assert "nothing changed since the previous round" in notes  # round 2 is the disputed, unchanged one
    assert section(notes, "## Left open") == "- Nothing."
    # Split along the rounds, the unchanged round 2 is no part of its own.
    parts = section(summarize(run, budget=1).body, PARTS).splitlines()[1:]
    base = (run.manifest.base_commit or "")[:10]
    assert parts == [f"- part 1 (round 1): `git diff {base} refs/pairloop/{run.id}/round-1`"]


def test_a_human_overrules_the_reviewer(tmux_server: Tmux, repo: Path) -> None:
    run = human_overrule(tmux_server, repo)
    notes, plan = summarize_and_compare(run, "human-overrule")
    approval = next(e for e in ledger(run) if e["ev"] == "received" and e["kind"] == "approve")
    assert section(notes, "## Human interventions") == \
        f"- approve to worker (#{approval['seq']}): Good enough, ship it: the test can come later."
    assert f"  - human approved (#{approval['seq']}): Good enough" in notes
    assert f"- Round 1: the human approved (#{approval['seq']}): Good enough" in plan
    agreed = [e for e in ledger(run) if e["ev"] == "run"]
    assert agreed[-1]["approved_by"] == "human"
    (finding,) = digest_of(run)["findings"]
    assert finding["status"] == "resolved", "the human's approval settled the reviewer's finding"
    assert f"— settled by the human's approval (#{approval['seq']})" in notes


def test_a_run_the_governor_paused_and_the_human_stopped(tmux_server: Tmux, repo: Path) -> None:
    run = governor_stop(tmux_server, repo)
    notes, plan = summarize_and_compare(run, "governor-stop")
    reason = "more than 2 review rounds without agreement"
    left_open = section(notes, "## Left open")
    assert f"- The relay is paused: {reason} (paused by the governor)" in left_open
    assert "- The pair has not agreed the work is done." in left_open
    assert f"- The relay is paused: {reason}" in section(plan, "## Open follow-ups")
    assert "The run was stopped before the pair agreed after 3 review round(s)" in notes
    # Round 3's claimed fix never reached the reviewer: it is not a fact, and it is open.
    findings = {f["id"]: f for f in digest_of(run)["findings"]}
    assert findings["F2.1"]["status"] == "fixed" and findings["F2.1"]["fixed_in_round"] == 3
    assert "F2.1" in digest_of(run)["open"]
    assert "**F2.1**" in left_open and "not reviewed yet" in left_open
    assert "**F1.1**" not in left_open
    # The governor is not a human; the human's stop is.
    assert section(notes, "## Human interventions") == "- stopped the run"


# ---- determinism, the user's own PLAN.md text, the split suggestion, the summary on agreement --------------


def test_summarizing_the_same_run_twice_is_byte_identical(tmux_server: Tmux, repo: Path) -> None:
    run = plain_loop(tmux_server, repo)
    outputs = []
    for _ in range(3):
        summary = summarize(run)
        outputs.append((summary.notes_path.read_bytes(), summary.plan_path.read_bytes(),
                        (run.dir / "digest.json").read_bytes()))
    assert outputs[0] == outputs[1] == outputs[2]
    # ... also from a fresh process (hash seeds, dict order), as the bridge runs it.
    subprocess.run([sys.executable, "-m", "pairloop", "summarize", "--run", run.id, "--quiet"], cwd=repo,
                   check=True, capture_output=True, env={**os.environ, "PYTHONHASHSEED": "12345"})
    assert (run.dir / "PR_NOTES.md").read_bytes() == outputs[0][0]
    assert (repo / "PLAN.md").read_bytes() == outputs[0][1]


def test_the_users_edits_to_plan_md_outside_pairloops_sections_survive(tmux_server: Tmux, repo: Path) -> None:
    run = plain_loop(tmux_server, repo)
    plan_path = repo / "PLAN.md"
    written = plan_path.read_text()
    ours = re.findall(r"<!-- pairloop:begin ([\w-]+) -->", written)
    assert ours == ["goal", "steps", "decisions", "follow-ups"]
    edited = written.replace("# Plan: Add a greet(name) function.\n",
                             "# Plan: Add a greet(name) function.\n\nMy preface, kept.\n", 1)
    edited = edited.replace("<!-- pairloop:end steps -->\n",
                            "<!-- pairloop:end steps -->\n\n## Risks (mine)\n- unicode names\n", 1)
    edited += "\n## My own notes\n- ask about i18n\n"
    # An edit inside a pairloop section is pairloop's to replace.
    edited = edited.replace("## Open follow-ups\n- None.", "## Open follow-ups\n- None.\n- scribbled inside", 1)
    plan_path.write_text(edited)
    plan_path.chmod(0o640)
    summarize(run)
    rewritten = plan_path.read_text()
    assert plan_path.stat().st_mode & 0o777 == 0o640, "rewriting PLAN.md keeps its permissions"
    assert rewritten == edited.replace("\n- scribbled inside", "", 1)
    for kept in ("My preface, kept.", "## Risks (mine)\n- unicode names", "## My own notes\n- ask about i18n"):
        assert kept in rewritten
    # A PLAN.md with none of our sections (the user's own) gets them appended, its text untouched.
    plan_path.write_text("# My plan\n\nHand-written.\n")
    summarize(run)
    own = plan_path.read_text()
    assert own.startswith("# My plan\n\nHand-written.\n\n<!-- pairloop:begin goal -->\n")
    assert re.findall(r"<!-- pairloop:begin ([\w-]+) -->", own) == ours
    summarize(run)
    assert plan_path.read_text() == own, "rewriting is idempotent"


def test_a_diff_over_the_budget_is_split_along_the_round_checkpoints(tmux_server: Tmux, repo: Path) -> None:
    run = plain_loop(tmux_server, repo)
    base = run.manifest.base_commit or ""
    total = sum(int(a) + int(d) for a, d, _ in
                (line.split("\t") for line in git(repo, "diff", "--numstat", base, f"refs/pairloop/{run.id}/round-2")
                 .splitlines()))
    assert total == 8
    assert PARTS not in summarize(run).body
    assert PARTS not in summarize(run, budget=total).body, "at the budget is not over it"
    body = summarize(run, budget=total - 1).body
    assert PARTS in (run.dir / "PR_NOTES.md").read_text()
    parts = section(body, PARTS).splitlines()
    assert parts[0] == f"This diff changes {total} lines, more than the {total - 1}-line review budget. It splits " \
                       "along the review rounds' checkpoints:"
    ranges = [re.fullmatch(r"- part (\d) \(round (\d)\): `git diff (\S+) (\S+)`", p) for p in parts[1:]]
    assert all(ranges), parts
    ref = f"refs/pairloop/{run.id}/round-"
    assert [(m[1], m[2], m[3], m[4]) for m in ranges if m] == [
        ("1", "1", base[:10], f"{ref}1"), ("2", "2", f"{ref}1", f"{ref}2")]
    # The parts are real ranges that add up to the whole diff: greet() first, its test second.
    stats = [git(repo, "diff", "--numstat", m[3], m[4]) for m in ranges if m]
    assert [s.split("\t")[2] for s in stats] == ["greeting.py", "test_greeting.py"]
    assert sum(int(s.split("\t")[0]) + int(s.split("\t")[1]) for s in stats) == total
    # The CLI's --budget reaches it too.
    out = subprocess.run([sys.executable, "-m", "pairloop", "summarize", "--run", run.id, "--budget", "7"],
                         cwd=repo, capture_output=True, text=True, check=True).stdout
    assert PARTS in out


def test_the_bridge_writes_the_summary_when_the_pair_agrees(tmux_server: Tmux, repo: Path) -> None:
    run = start_sims(tmux_server, repo, TASK, StartOptions("sim", "sim", plan=False), **SIM)
    notes = run.dir / "PR_NOTES.md"
    wait_for(lambda: book(run).run_state == "agreed", timeout=60, what="the pair to agree")
    # Nobody in this test runs summarize: the bridge must, by itself.
    wait_for(notes.exists, timeout=30, what="PR_NOTES.md written after the agreement")
    wait_for(lambda: auto_summary_written(run), timeout=30, what="the summary to finish")
    text = notes.read_text()
    assert text.startswith(f"# {TASK}\n\n## Summary\n")
    assert "The worker and the reviewer agreed the work is done after 2 review round(s)" in text
    assert f"from run {run.id}:" in text
    assert "<!-- pairloop:begin steps -->" in (repo / "PLAN.md").read_text()
    log = (run.dir / "on-agreement.log").read_text()
    assert "Traceback" not in log and "Error" not in log, log
