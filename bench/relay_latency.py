"""Relay latency and idle cost of the bridge, with the sim agent on a private tmux server.

    .venv/bin/python bench/relay_latency.py [--messages 200] [--idle-seconds 30]

Latency: from the moment a message file lands in the outbox (when `pairloop send` returns) to the moment the
sim agent in an idle pane records the submitted prompt. Idle: the bridge's CPU time and resident memory over
a quiet period with nothing to deliver. Prints a table and writes bench/results/relay_latency.json.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

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

from pairloop.runs.store import Run

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=200)
    parser.add_argument("--idle-seconds", type=float, default=30.0)
    args = parser.parse_args()

    repo = throwaway_repo()
    tmux = private_tmux()
    runs: list[Run] = []
    try:
        t_start = time.monotonic()
        run = start_sims(tmux, repo, runs)
        startup = time.monotonic() - t_start
        relay = Relay(run)
        latencies = [relay.latency_ms(f"benchmark message {i}") for i in range(args.messages)]

        bridge_pid = int((run.dir / "bridge.lock").read_text().strip())
        cpu_before, wall_before = cpu_seconds(bridge_pid), time.monotonic()
        time.sleep(args.idle_seconds)  # the quiet period being measured
        idle_cpu = (cpu_seconds(bridge_pid) - cpu_before) / (time.monotonic() - wall_before) * 100
        rss = rss_mib(bridge_pid)
    finally:
        clean_up(tmux, runs, repo)
    lat = distribution(latencies)
    result = {"messages": len(latencies), "latency_ms": lat, "bridge_idle_cpu_percent": round(idle_cpu, 3),
              "idle_seconds": args.idle_seconds, "bridge_rss_mib": round(rss, 1),
              "start_to_ready_s": round(startup, 2), **machine()}
    write_result("relay_latency", result)
    print(f"relay latency over {len(latencies)} messages (ms): {describe(lat)}")
    print(f"bridge idle: {result['bridge_idle_cpu_percent']} % of a core over {args.idle_seconds:.0f} s, "
          f"RSS {result['bridge_rss_mib']} MiB;  start to ready: {result['start_to_ready_s']} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
