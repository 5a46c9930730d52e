"""Where each agent keeps its own records (the files the bridge reads its tokens and limits from), worked out at
start from the environment pairloop launches it with, and recorded per role in run.json. The hook events that
name a record file are written by the agents, so the bridge reads only files under these roots (bridge.usage)."""

from __future__ import annotations

import os
from pathlib import Path

from bridge import CLAUDE_TRANSCRIPT, CODEX_ROLLOUT, RecordsRoot
from pairloop.agents.profile import AgentProfile

SIM = "sim"


def _home(env: dict[str, str]) -> Path:
    return Path(env.get("HOME") or os.path.expanduser("~"))


def records_roots(prof: AgentProfile, env: dict[str, str], run_dir: Path, role: str) -> tuple[RecordsRoot, ...]:
    """The sim writes ``sim-usage-<role>.jsonl`` in the run directory (pairloop.agents.sim_agent); claude its
    transcripts under ``<CLAUDE_CONFIG_DIR or ~/.claude>/projects/``; codex its rollouts under
    ``<CODEX_HOME or ~/.codex>/sessions/``. An agent with no records of a known shape has none."""
    if prof.name == SIM:
        return (RecordsRoot(dir=str(run_dir), name=f"sim-usage-{role}.jsonl"),)
    if prof.records == CLAUDE_TRANSCRIPT:
        config = env.get("CLAUDE_CONFIG_DIR") or str(_home(env) / ".claude")
        return (RecordsRoot(dir=str(Path(config) / "projects"), name="*.jsonl"),)
    if prof.records == CODEX_ROLLOUT:
        codex = env.get("CODEX_HOME") or str(_home(env) / ".codex")
        return (RecordsRoot(dir=str(Path(codex) / "sessions"), name="rollout-*.jsonl"),)
    return ()
