"""What runs comes from the human only: the verify (and notify) command is recorded in run.json at start, and the
bridge never takes it from the working tree during the run. The agents can edit ``.pairloop.toml`` like any file;
this watches the configuration there and flags a change of those settings to the human — never acting on it,
since that would let an agent pass its own gate or run commands outside its sandbox.

The configuration is read as ``pairloop`` reads it: ``.pairloop.toml`` at the top of the working tree, else
``[tool.pairloop]`` in ``pyproject.toml``. Each guarded setting is compared as canonical JSON text.

Two things are kept apart, since with a worktree they differ: the baseline is what the *agents' working tree*
held at start (``config_at_start``: a worktree has only the committed file), and what runs is what the human's
configuration (the checkout's, uncommitted edits included) or flags said at start (``verify``, ``notify`` in
run.json). A change is measured against the first; an alert always names the second."""

from __future__ import annotations

import json
import os
import time
import tomllib
from pathlib import Path
from typing import Any

from bridge.effects import Effects
from bridge.rundir.events import ConfigChanged
from bridge.rundir.manifest import Manifest

CONFIG_FILE, PYPROJECT = ".pairloop.toml", "pyproject.toml"
GUARDED = ("verify", "verify_timeout", "notify")
LOOK_SECONDS = 5.0  # the working tree is not watched: it is looked at this often (two stat calls), and at every pass


def fingerprint(table: dict[str, Any]) -> dict[str, str]:
    """The guarded settings of a configuration table, as canonical JSON text ("" when absent)."""
    return {key: json.dumps(table[key], sort_keys=True) if key in table else "" for key in GUARDED}


def read_table(work_tree: Path) -> tuple[str, dict[str, Any] | str]:
    """The configuration file in effect and its pairloop table, or why it cannot be read."""
    path = work_tree / CONFIG_FILE
    try:
        if path.is_file():
            return CONFIG_FILE, tomllib.loads(path.read_text(encoding="utf-8"))
        pyproject = work_tree / PYPROJECT
        if pyproject.is_file():
            table = tomllib.loads(pyproject.read_text(encoding="utf-8")).get("tool", {}).get("pairloop", {})
            return PYPROJECT, table if isinstance(table, dict) else {}
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        return (CONFIG_FILE if path.exists() else PYPROJECT), f"unreadable: {exc}"
    return CONFIG_FILE, {}


def config_fingerprint(work_tree: Path) -> dict[str, str]:
    """The guarded settings of the configuration in effect in ``work_tree`` now (for run.json at start, and for
    comparing with it later)."""
    _, table = read_table(work_tree)
    return {key: table for key in GUARDED} if isinstance(table, str) else fingerprint(table)


def changes(at_start: dict[str, str], now: dict[str, str], flagged: dict[str, str], file: str) -> list[ConfigChanged]:
    """What to flag: a guarded setting whose value is neither what it was at start nor what was flagged last
    (a setting changed back is said too). Pure."""
    out = []
    for key in GUARDED:
        was, value = at_start.get(key, ""), now.get(key, "")
        if value == flagged.get(key, was):
            continue
        out.append(ConfigChanged(key=key, file=file, was=was, now=value))
    return out


def what_runs(manifest: Manifest) -> dict[str, str]:
    """What the bridge runs for each guarded setting, as an alert says it (from run.json, never the tree)."""
    verify = manifest.verify if isinstance(manifest.verify, str) else list(manifest.verify)
    return {"verify": json.dumps(verify) if verify else "nothing",
            "verify_timeout": json.dumps(manifest.verify_timeout),
            "notify": json.dumps(list(manifest.notify)) if manifest.notify else "nothing"}


class Guard:
    def __init__(self, work_tree: Path, at_start: dict[str, str], runs: dict[str, str] | None = None) -> None:
        self.work_tree = work_tree
        self.at_start = at_start  # what the working tree's configuration said at start: the baseline
        self.runs = runs or {}  # what the bridge runs, per guarded setting (see what_runs)
        self.next_look = 0.0
        self._seen: tuple[object, ...] | None = None

    def _stamp(self) -> tuple[object, ...]:
        stamp: list[object] = []
        for name in (CONFIG_FILE, PYPROJECT):
            try:
                st = os.stat(self.work_tree / name)
                stamp.append((st.st_ino, st.st_size, st.st_mtime_ns))
            except OSError:
                stamp.append(None)
        return tuple(stamp)

    def next_wake(self, now: float) -> float:
        return max(0.0, self.next_look - now)

    def look(self, flagged: dict[str, str], force: bool = False) -> Effects:
        """Flag what changed since start (or since it was last flagged); cheap when nothing did."""
        self.next_look = time.monotonic() + LOOK_SECONDS
        stamp = self._stamp()
        if stamp == self._seen and not force:
            return Effects()
        self._seen = stamp
        file, _ = read_table(self.work_tree)
        events = changes(self.at_start, config_fingerprint(self.work_tree), flagged, file)
        fx = Effects(list(events))
        for event in events:
            if event.now == event.was:
                fx.says.append(f"{event.file}: {event.key} is back to what it said when the run started")
            else:
                runs = self.runs.get(event.key, "what was recorded at start")
                fx.alerts.append(f"pairloop: {event.file} in the working tree changed {event.key} during the run "
                                 f"(now {event.now or 'unset'}; the working tree said {event.was or 'unset'} at "
                                 f"start): ignored — the bridge runs {runs}")
        return fx
