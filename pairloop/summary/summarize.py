"""`pairloop summarize`: the digest, then PLAN.md (in the repo) and PR notes (in the run directory)."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bridge import write_atomic
from pairloop.runs.store import Run
from pairloop.summary import digest as digests
from pairloop.summary.notes import DIFF_BUDGET, pr_body, render_plan, title
from pairloop.summary.plan import template_text


@dataclass(frozen=True)
class Summary:
    title: str
    body: str
    plan_path: Path
    notes_path: Path
    warning: str = ""



def pr_notes_path(run: Run) -> Path:
    """The PR notes, in the run directory: `pairloop pr` and the demo read them there."""
    return run.dir / "PR_NOTES.md"


def summarize(run: Run, llm: str | None = None, budget: int = DIFF_BUDGET,
              ask: Callable[[str, dict[str, object]], str] | None = None) -> Summary:
    """Write PLAN.md and PR_NOTES.md. With ``llm``, that agent writes the summary's prose from the digest; the
    facts (changes, review history, provenance) stay as the digest has them. On any failure: the deterministic
    notes, and a warning."""
    facts = digests.build(run)
    prose, warning = "", ""
    if llm:
        from pairloop.summary.llm import LlmFailed, ask_agent

        try:
            prose = ask(llm, facts) if ask else ask_agent(llm, facts, Path(run.manifest.repo))
        except LlmFailed as exc:
            warning = f"--llm {llm} failed ({exc}); wrote the deterministic notes instead"
    body = pr_body(facts, prose, budget)
    notes_path = pr_notes_path(run)
    write_atomic(notes_path, f"# {title(facts)}\n\n{body}".encode())
    write_atomic(run.dir / "digest.json", json.dumps(facts, indent=2, ensure_ascii=False).encode())
    plan_path = Path(run.manifest.repo) / "PLAN.md"
    existing = plan_path.read_text(encoding="utf-8") if plan_path.exists() else None
    # Atomically: the bridge's own summary and a user's `pairloop summarize` may overlap, and a reader must
    # never take a half-written PLAN.md for the user's file.
    write_keeping_mode(plan_path, render_plan(facts, template_text(), existing).encode())
    return Summary(title(facts), body, plan_path, notes_path, warning)


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
