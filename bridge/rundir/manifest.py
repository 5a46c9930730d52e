"""run.json: what the bridge needs to know about a run. ``pairloop`` writes it, the bridge reads it."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bridge.panes.screen import ScreenRules
from bridge.rundir.message import write_atomic

MANIFEST = "run.json"


@dataclass(frozen=True)
class Target:
    """One agent pane and the rules for talking to it."""

    role: str
    agent: str
    pane: str
    submit_key: str
    rules: ScreenRules


def read_manifest(run_dir: Path) -> dict[str, Any]:
    data = json.loads((run_dir / MANIFEST).read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise ValueError(f"{run_dir / MANIFEST} is not a JSON object")
    return data


def write_manifest(run_dir: Path, data: dict[str, Any]) -> None:
    write_atomic(run_dir / MANIFEST, (json.dumps(data, indent=2, ensure_ascii=False) + "\n").encode())


def update_manifest(run_dir: Path, **changes: Any) -> dict[str, Any]:
    data = read_manifest(run_dir)
    data.update(changes)
    write_manifest(run_dir, data)
    return data


def targets(manifest: dict[str, Any]) -> dict[str, Target]:
    out: dict[str, Target] = {}
    for role, spec in manifest.get("roles", {}).items():
        out[role] = Target(role, spec["agent"], spec["pane"], spec["submit_key"],
                           ScreenRules.from_json(spec["screen"]))
    return out
