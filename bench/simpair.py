"""What the relay benchmarks share: sim pairs on a private tmux server, and the relay latency to them.

Latency runs from the moment a message file lands in the outbox (when `pairloop send` returns) to the moment the
sim agent in an idle pane records the submitted prompt (its receipt event file). The measuring side tails the
ledger instead of replaying it at every poll, so a long ledger costs the bench nothing and the bridge has the CPU.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bridge import Tmux, ids_in  # noqa: E402
from pairloop.runs.lifecycle import StartOptions, send_message, start_run, stop_run, wait_until_running  # noqa: E402
from pairloop.runs.store import Run  # noqa: E402

POLL_S = 0.002


def throwaway_repo() -> Path:
    """A git repository with one empty commit, for the runs to live in."""
    repo = Path(tempfile.mkdtemp(prefix="pairloop-bench-"))
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    subprocess.run(["git", "-c", "user.name=b", "-c", "user.email=b@b.invalid", "commit", "-q", "--allow-empty",
                    "-m", "init"], cwd=repo, check=True)
    return repo


def private_tmux() -> Tmux:
    """A tmux server of our own (-L NAME): nothing the user runs is touched, and killing it ends everything."""
    return Tmux(socket_name=f"pairloop-bench-{uuid.uuid4().hex[:8]}")


def start_sims(tmux: Tmux, repo: Path, runs: list[Run], options: StartOptions | None = None) -> Run:
    """A run through the normal start path, with two sim agents that only record what they receive. It joins
    ``runs`` before it is waited for, so clean_up stops it even if it never gets ready."""
    env = {**os.environ, "PAIRLOOP_SIM_MODE": "quiet", "PAIRLOOP_SIM_WORK_SECONDS": "0"}
    env.pop("TMUX", None)
    run = start_run(tmux, repo, "", options or StartOptions("sim", "sim"), env)
    runs.append(run)
    wait_until_running(tmux, run)
    return run


def clean_up(tmux: Tmux, runs: Iterable[Run], repo: Path) -> None:
    """Stop each run (its panes' processes, by their ids), then the private server; keep the repo on request."""
    try:
        for run in runs:
            stop_run(tmux, run)
    finally:
        tmux.kill_private_server()
        if not os.environ.get("PAIRLOOP_BENCH_KEEP"):
            shutil.rmtree(repo, ignore_errors=True)


class LedgerTail:
    """The ledger's events from where we last read: each poll parses only the lines appended since.

    It reads the file's lines as JSON (the few fields it looks at: ev, to, ids, state, ts) rather than through
    the ledger module, so the bench watches a run from outside, as any reader of ledger.jsonl would."""

    def __init__(self, path: Path, *, from_start: bool = False) -> None:
        self.path = path
        self.offset = 0 if from_start or not path.exists() else path.stat().st_size

    def new_events(self) -> list[dict[str, Any]]:
        try:
            with self.path.open("rb") as f:
                f.seek(self.offset)
                data = f.read()
        except FileNotFoundError:
            return []
        out = []
        for raw in data.splitlines(keepends=True):
            if not raw.endswith(b"\n"):
                break  # being written: read again next time
            self.offset += len(raw)
            try:
                event = json.loads(raw)
            except ValueError:
                continue
            if isinstance(event, dict):
                out.append(event)
        return out

    def wait_for(self, match: Callable[[dict[str, Any]], bool], what: str, timeout: float = 10.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for event in self.new_events():
                if match(event):
                    return event
            time.sleep(POLL_S)
        raise SystemExit(f"no {what} in the ledger within {timeout:.0f} s")


class Receipts:
    """When the sim agent recorded each message id it was prompted with; new receipt files only."""

    def __init__(self, run: Run, role: str) -> None:
        self.folder = run.events_dir(role)
        self.seen: set[str] = set()
        self.times: dict[str, float] = {}

    def time_of(self, msg_id: str) -> float:
        for path in self.folder.glob("*-prompt.json"):
            if path.name not in self.seen:
                self.seen.add(path.name)
                data = json.loads(path.read_text())
                for received in ids_in(data["prompt"]):
                    self.times[received] = float(data["ts"])
        if msg_id not in self.times:
            raise SystemExit(f"message {msg_id} was delivered but the sim agent has no receipt for it")
        return self.times[msg_id]


class Relay:
    """Sends one message at a time from the human to an idle sim agent and times it (ms)."""

    def __init__(self, run: Run, role: str = "reviewer") -> None:
        self.run, self.role = run, role
        self.tail = LedgerTail(run.ledger_path)
        self.receipts = Receipts(run, role)

    def latency_ms(self, body: str) -> float:
        msg = send_message(self.run, "human", (self.role,), body)
        sent_at = time.time()
        event = self.tail.wait_for(lambda e: e.get("ev") in ("delivered", "failed") and msg.id in e.get("ids", ())
                                   and e.get("to") == self.role, f"delivery of message {msg.id}")
        if event["ev"] != "delivered":
            raise SystemExit(f"message {msg.id} failed: {event.get('reason', '')}")
        return (self.receipts.time_of(msg.id) - sent_at) * 1000


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def distribution(values: list[float]) -> dict[str, float]:
    return {"p50": round(percentile(values, 50), 1), "p90": round(percentile(values, 90), 1),
            "p99": round(percentile(values, 99), 1), "max": round(max(values), 1),
            "mean": round(statistics.mean(values), 1)}


def describe(dist: dict[str, float]) -> str:
    return f"p50 {dist['p50']}  p90 {dist['p90']}  p99 {dist['p99']}  max {dist['max']}"


def write_result(name: str, result: dict[str, Any]) -> None:
    out_dir = ROOT / "bench" / "results"
    out_dir.mkdir(exist_ok=True)
    (out_dir / f"{name}.json").write_text(json.dumps(result, indent=2) + "\n")


def machine() -> dict[str, Any]:
    return {"tmux": subprocess.run(["tmux", "-V"], capture_output=True, text=True, check=False).stdout.strip(),
            "cpus": os.cpu_count()}
