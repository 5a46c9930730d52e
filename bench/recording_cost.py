"""What recording the agent panes costs: relay latency with recording on and off, side by side in one run, and the
recorders' own CPU while the panes are quiet.

    .venv/bin/python bench/recording_cost.py [--messages 200] [--idle-seconds 30]

Two sim runs on one private tmux server, one recording its panes (worker.cast, reviewer.cast) and one not; the
messages alternate between them, so both see the same machine at the same moment. Latency as in relay_latency.py:
the message file landed → the sim agent's receipt. Idle: the CPU time of the bridge of each run, and of the
recording run's two recorders, over a quiet period. Writes bench/results/recording_cost.json.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from relay_latency import cpu_seconds
from simpair import (
    Relay,
    clean_up,
    describe,
    distribution,
    machine,
    private_tmux,
    start_sims,
    throwaway_repo,
    write_result,
)

from bridge import cast_path
from pairloop.runs.lifecycle import StartOptions
from pairloop.runs.store import Run

RECORDER = b"bridge.recording.recorder"


def recorder_pids(run: Run) -> list[int]:
    pids = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                argv = (proc / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if RECORDER in argv and str(run.dir).encode() in argv:
                pids.append(int(proc.name))
    return pids


def bridge_pid(run: Run) -> int:
    return int((run.dir / "bridge.lock").read_text().strip())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=200, help="per run")
    parser.add_argument("--idle-seconds", type=float, default=30.0)
    args = parser.parse_args()

    repo = throwaway_repo()
    tmux = private_tmux()
    runs: list[Run] = []
    try:
        on = start_sims(tmux, repo, runs, StartOptions("sim", "sim", record=True))
        off = start_sims(tmux, repo, runs, StartOptions("sim", "sim", record=False))
        relays = {"on": Relay(on), "off": Relay(off)}
        latencies: dict[str, list[float]] = {"on": [], "off": []}
        for i in range(args.messages):
            for name in (("on", "off") if i % 2 == 0 else ("off", "on")):
                latencies[name].append(relays[name].latency_ms(f"benchmark message {i}"))
        recorders = recorder_pids(on)
        watched = {"bridge (recording on)": [bridge_pid(on)], "bridge (recording off)": [bridge_pid(off)],
                   "recorders (2)": recorders}
        before = {k: sum(cpu_seconds(p) for p in pids) for k, pids in watched.items()}
        wall = time.monotonic()
        time.sleep(args.idle_seconds)  # the quiet period being measured
        elapsed = time.monotonic() - wall
        idle = {k: round((sum(cpu_seconds(p) for p in pids) - before[k]) / elapsed * 100, 3)
                for k, pids in watched.items()}
        sizes = {role: cast_path(on.dir, role).stat().st_size for role in ("worker", "reviewer")}
    finally:
        clean_up(tmux, runs, repo)
    dist = {name: distribution(values) for name, values in latencies.items()}
    result = {"messages_per_run": args.messages, "latency_ms": dist, "idle_cpu_percent": idle,
              "idle_seconds": args.idle_seconds, "recorders": len(recorders), "cast_bytes": sizes, **machine()}
    write_result("recording_cost", result)
    for name in ("on", "off"):
        print(f"relay latency, recording {name:3} ({args.messages} messages, ms): {describe(dist[name])}")
    for name, value in idle.items():
        print(f"idle CPU over {args.idle_seconds:.0f} s, {name}: {value} % of a core")
    print(f"recordings: {sizes}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
