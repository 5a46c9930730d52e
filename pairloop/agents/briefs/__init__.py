"""Role briefs: text files, rendered with the run's task and the exact commands to use."""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from string import Template


def brief_path(run_dir: Path, role: str) -> Path:
    """Where a role's brief is kept, in the (private) run directory."""
    return run_dir / f"brief-{role}.md"


def render_brief(role: str, task: str, partner_agent: str, plan_template: str) -> str:
    text = resources.files(__package__).joinpath(f"{role}.md").read_text(encoding="utf-8")
    return Template(text).safe_substitute(task=task or "(the human will give you the task)",
                                          partner_agent=partner_agent, plan_template=plan_template)
