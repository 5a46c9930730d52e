"""`pairloop summarize`: the digest, then PLAN.md (in the repo) and PR notes (in the run directory)."""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import msgspec

from bridge import events_of, write_atomic
from pairloop.runs.store import Run
from pairloop.summary import digest as digests
from pairloop.summary.notes import DIFF_BUDGET, pr_body, render_plan, title
from pairloop.summary.plan import template_text
from pairloop.summary.report import write_report


@dataclass(frozen=True)
class Summary:
    title: str
    body: str
    plan_path: Path
    notes_path: Path
    warning: str = ""
    report_path: Path | None = None  # report.html, unless it could not be written (then ``warning`` says why)



PLAN_FILE = "PLAN.md"


def plan_file(run: Run) -> Path:
    """PLAN.md, in the work tree: the run's worktree when it has one, else the repository."""
    return Path(run.manifest.work_tree) / PLAN_FILE


def kept_plan_path(run: Run) -> Path:
    """Where an uncommitted PLAN.md is kept when the run's worktree is removed (see pairloop.runs.worktree)."""
    return run.dir / PLAN_FILE


def pr_notes_path(run: Run) -> Path:
    """The PR notes, in the run directory: `pairloop pr` and the demo read them there."""
    return run.dir / "PR_NOTES.md"


def summarize(run: Run, llm: str | None = None, budget: int = DIFF_BUDGET,
              ask: Callable[[str, dict[str, object]], str] | None = None) -> Summary:
    """Write PLAN.md and PR_NOTES.md. With ``llm``, that agent writes the summary's prose from the digest; the
    facts (changes, review history, provenance) stay as the digest has them. On any failure: the deterministic
    notes, and a warning."""
    events = events_of(run.ledger_path)  # read once: the digest and the report are both made from it
    facts, book = digests.folded(run, events)
    prose, warning = "", ""
    if llm:
        from pairloop.summary.llm import LlmFailed, ask_agent

        try:
            prose = ask(llm, facts) if ask else ask_agent(llm, facts, Path(run.manifest.work_tree))
        except LlmFailed as exc:
            warning = f"--llm {llm} failed ({exc}); wrote the deterministic notes instead"
    body = pr_body(facts, prose, budget)
    notes_path = pr_notes_path(run)
    write_atomic(notes_path, f"# {title(facts)}\n\n{body}".encode())
    # msgspec: the same indented UTF-8 JSON as json.dumps(indent=2), without its pure-Python indenting encoder
    write_atomic(run.dir / "digest.json", msgspec.json.format(msgspec.json.encode(facts), indent=2))
    plan_path = plan_file(run)
    existing = plan_path.read_text(encoding="utf-8") if plan_path.exists() else None
    # Atomically: the bridge's own summary and a user's `pairloop summarize` may overlap, and a reader must
    # never take a half-written PLAN.md for the user's file.
    write_keeping_mode(plan_path, render_plan(facts, template_text(), existing).encode())
    report: Path | None = None
    try:  # the notes stand without the report: a failure here is said, and the notes are still written
        report = write_report(run, events, facts, book)
    except Exception as exc:
        warning = "; ".join(w for w in (warning, f"the run report could not be written: {exc}") if w)
    return Summary(title(facts), body, plan_path, notes_path, warning, report)


def write_keeping_mode(path: Path, data: bytes) -> None:
    """Replace a file in the user's repository atomically, keeping its permissions (a new one gets the
    umask's)."""
    try:
        mode: int | None = stat.S_IMODE(path.stat().st_mode)
    except FileNotFoundError:
        mode = None
    write_atomic(path, data, 0o666)
    if mode is not None:
        os.chmod(path, mode)
