"""Start-up time and relay latency of pairloop with the real claude and codex TUIs.

    .venv/bin/python bench/real_tuis.py [--starts 5] [--messages 20]

Uses the end-to-end harness (tests/e2e): the pinned agents from the npm registry (installed into
.e2e-cache/ on first use), prepared homes, and the scripted model server on 127.0.0.1, so the numbers are
pairloop's and the TUIs' own, never a real model's.

* start: from invoking `pairloop start TASK --worker claude --reviewer codex --no-attach` to the command
  returning (it returns once both TUIs and the bridge are up), over --starts runs; and, in the same runs,
  from the invocation to the task being delivered (ledger) and to the model server receiving it.
* relay: from `pairloop send --to ROLE` returning (the message file has landed) to the model server receiving
  the request that carries the message, --messages times per agent, each sent while the agent is idle (its
  previous turn has ended, per its own hook, and `pairloop status` reads it as ready).

Prints p50/p90/max and writes bench/results/real_tuis.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bridge import AGENT_ROLES  # noqa: E402
from tests.e2e.agents_install import Agents, install_agents  # noqa: E402
from tests.e2e.driver import Pair, scratch_root  # noqa: E402
from tests.e2e.model_server import Flavor, ModelServer  # noqa: E402

FLAVOR: dict[str, Flavor] = {"worker": "anthropic", "reviewer": "openai"}  # claude works, codex reviews


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def summary(values: list[float]) -> dict[str, float]:
    return {"n": len(values), "p50": round(percentile(values, 50), 3), "p90": round(percentile(values, 90), 3),
            "max": round(max(values), 3), "mean": round(statistics.mean(values), 3)}


def open_pair(server: ModelServer, agents: Agents) -> Pair:
    return Pair(scratch_root("pairloop-bench-"), server, agents)


def close_pair(pair: Pair) -> None:
    leftovers = pair.close()
    shutil.rmtree(pair.root, ignore_errors=True)
    if leftovers:
        raise SystemExit("processes outlived the tmux server:\n" + "\n".join(leftovers))


def one_start(server: ModelServer, agents: Agents, i: int) -> dict[str, float]:
    pair = open_pair(server, agents)
    try:
        task = f"Benchmark start {i} {uuid.uuid4().hex[:8]}: say hello."
        wall0, mono0 = time.time(), time.monotonic()
        pair.start(task, "claude", "codex")
        returned = time.monotonic() - mono0
        task_id = pair.wait(lambda: next(iter(pair.received("human")), None), 30, "the task in the ledger")["id"]
        delivered = pair.wait(lambda: pair.delivered(task_id, "worker"), 60, "the task delivered")
        request = pair.request_with("anthropic", task, 60)
        pair.stop()
        return {"returned_s": returned, "task_delivered_s": float(delivered["ts"]) - wall0,
                "task_at_model_s": request.t - mono0}
    finally:
        close_pair(pair)


def turn_ends(pair: Pair, role: str) -> int:
    folder = pair.mailbox / "events" / role
    count = 0
    for path in folder.glob("*.json"):
        try:
            count += json.loads(path.read_text()).get("event") == "stop"
        except (OSError, ValueError):
            continue
    return count


def relay(pair: Pair, role: str, messages: int) -> tuple[list[float], list[float]]:
    """(send returned → model received, send returned → ledger says delivered), in seconds, per message."""
    flavor = FLAVOR[role]
    at_model: list[float] = []
    at_ledger: list[float] = []
    for i in range(messages):
        ended = turn_ends(pair, role)
        body = f"relay benchmark {role} {i} {uuid.uuid4().hex[:8]}"
        msg_id = pair.send(role, body)
        returned_mono, returned_wall = time.monotonic(), time.time()
        request = pair.request_with(flavor, body, 60, after=returned_mono - 5)
        at_model.append(request.t - returned_mono)
        delivered = pair.wait(lambda: pair.delivered(msg_id, role), 60, f"{msg_id} delivered")  # noqa: B023
        at_ledger.append(float(delivered["ts"]) - returned_wall)
        # Idle again before the next one: the turn's end reported by the agent's hook, and the screen ready.
        pair.wait(lambda: turn_ends(pair, role) > ended, 60, f"the {role}'s turn to end")  # noqa: B023
        pair.wait(lambda: pair.status()["agents"][role]["state"] == "ready", 60, f"the {role} ready")
    return at_model, at_ledger


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--starts", type=int, default=5)
    parser.add_argument("--messages", type=int, default=20)
    args = parser.parse_args()

    agents = install_agents()
    print(f"agents: {agents.label}")
    starts: list[dict[str, float]] = []
    with ModelServer() as server:
        for i in range(args.starts):
            starts.append(one_start(server, agents, i))
            print(f"start {i + 1}/{args.starts}: returned {starts[-1]['returned_s']:.2f} s, task delivered "
                  f"{starts[-1]['task_delivered_s']:.2f} s, at the model {starts[-1]['task_at_model_s']:.2f} s")

        pair = open_pair(server, agents)
        try:
            pair.start("", "claude", "codex")
            for role in AGENT_ROLES:
                pair.wait(lambda: pair.status()["agents"][role]["state"] == "ready", 60,  # noqa: B023
                          f"the {role} ready")
            relays = {role: relay(pair, role, args.messages) for role in AGENT_ROLES}
            pair.stop()
        finally:
            close_pair(pair)

    result: dict[str, Any] = {
        "agents": {"claude": agents.claude_version, "codex": agents.codex_version, "canary": agents.canary},
        "start_s": {
            "command_returned": summary([s["returned_s"] for s in starts]),
            "task_delivered": summary([s["task_delivered_s"] for s in starts]),
            "task_at_model": summary([s["task_at_model_s"] for s in starts]),
            "samples": starts,
        },
        "relay_ms": {
            f"{role} ({'claude' if role == 'worker' else 'codex'})": {
                "send_returned_to_model_request": summary([v * 1000 for v in model]),
                "send_returned_to_ledger_delivered": summary([v * 1000 for v in ledger]),
                "samples_to_model_request": [round(v * 1000, 1) for v in model],
            }
            for role, (model, ledger) in relays.items()
        },
        "tmux": subprocess.run(["tmux", "-V"], capture_output=True, text=True, check=False).stdout.strip(),
        "cpus": os.cpu_count(),
    }
    out_dir = ROOT / "bench" / "results"
    out_dir.mkdir(exist_ok=True)
    (out_dir / "real_tuis.json").write_text(json.dumps(result, indent=2) + "\n")

    print(f"\nstart, {args.starts} runs (s)            p50     p90     max")
    for name, row in result["start_s"].items():
        if name == "samples":
            continue
        print(f"  {name:<30} {row['p50']:>7.2f} {row['p90']:>7.2f} {row['max']:>7.2f}")
    print(f"relay, {args.messages} messages per agent (ms)  p50     p90     max")
    for who, rows in result["relay_ms"].items():
        for name, row in rows.items():
            if name.startswith("samples"):
                continue
            print(f"  {who:<18} {name:<34} {row['p50']:>7.0f} {row['p90']:>7.0f} {row['max']:>7.0f}")
    print(f"wrote {out_dir / 'real_tuis.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
