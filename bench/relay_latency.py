"""Relay latency and idle cost of the bridge, with the sim agent on a private tmux server.

    .venv/bin/python bench/relay_latency.py [--messages 200] [--idle-seconds 30]

Latency: from the moment a message file lands in the outbox (when `pairloop send` returns) to the moment the
sim agent in an idle pane records the submitted prompt. Idle: the bridge's CPU time and resident memory over
a quiet period with nothing to deliver. Prints a table and writes bench/results/relay_latency.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bridge.panes.tmux import Tmux  # noqa: E402
from pairloop.runs.lifecycle import StartOptions, send_message, start_run, stop_run, wait_until_running  # noqa: E402
from pairloop.runs.store import Run  # noqa: E402

TICKS = os.sysconf("SC_CLK_TCK")


def receipt_times(run: Run, role: str) -> dict[str, float]:
    from bridge.panes.envelope import ids_in

    out: dict[str, float] = {}
    for path in (run.dir / "events" / role).glob("*-prompt.json"):
        data = json.loads(path.read_text())
        for msg_id in ids_in(data["prompt"]):
            out[msg_id] = float(data["ts"])
    return out


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=200)
    parser.add_argument("--idle-seconds", type=float, default=30.0)
    args = parser.parse_args()

    repo = Path(tempfile.mkdtemp(prefix="pairloop-bench-"))
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    subprocess.run(["git", "-c", "user.name=b", "-c", "user.email=b@b.invalid", "commit", "-q", "--allow-empty",
                    "-m", "init"], cwd=repo, check=True)
    tmux = Tmux(socket_name=f"pairloop-bench-{uuid.uuid4().hex[:8]}")
    env = {**os.environ, "PAIRLOOP_SIM_MODE": "quiet", "PAIRLOOP_SIM_WORK_SECONDS": "0"}
    env.pop("TMUX", None)
    t_start = time.monotonic()
    run = start_run(tmux, repo, "", StartOptions("sim", "sim"), env)
    wait_until_running(tmux, run)
    startup = time.monotonic() - t_start
    try:
        latencies = []
        for i in range(args.messages):
            msg = send_message(run, "human", ("reviewer",), f"benchmark message {i}")
            sent_at = time.time()
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                entry = run.book().entries.get(msg.id)
                if entry is not None and entry.state == "delivered":
                    break
                time.sleep(0.002)
            else:
                raise SystemExit(f"message {i} was not delivered within 10 s")
            latencies.append((receipt_times(run, "reviewer")[msg.id] - sent_at) * 1000)

        bridge_pid = int((run.dir / "bridge.lock").read_text().strip())
        cpu_before, wall_before = cpu_seconds(bridge_pid), time.monotonic()
        time.sleep(args.idle_seconds)  # the quiet period being measured
        idle_cpu = (cpu_seconds(bridge_pid) - cpu_before) / (time.monotonic() - wall_before) * 100
        result = {
            "messages": len(latencies),
            "latency_ms": {"p50": round(percentile(latencies, 50), 1), "p90": round(percentile(latencies, 90), 1),
                           "p99": round(percentile(latencies, 99), 1), "max": round(max(latencies), 1),
                           "mean": round(statistics.mean(latencies), 1)},
            "bridge_idle_cpu_percent": round(idle_cpu, 3),
            "idle_seconds": args.idle_seconds,
            "bridge_rss_mib": round(rss_mib(bridge_pid), 1),
            "start_to_ready_s": round(startup, 2),
            "tmux": subprocess.run(["tmux", "-V"], capture_output=True, text=True, check=False).stdout.strip(),
            "cpus": os.cpu_count(),
        }
    finally:
        stop_run(tmux, run)
        tmux.kill_private_server()
        if not os.environ.get("PAIRLOOP_BENCH_KEEP"):
            shutil.rmtree(repo, ignore_errors=True)
    out_dir = ROOT / "bench" / "results"
    out_dir.mkdir(exist_ok=True)
    (out_dir / "relay_latency.json").write_text(json.dumps(result, indent=2) + "\n")
    lat = result["latency_ms"]
    print(f"relay latency over {result['messages']} messages (ms): p50 {lat['p50']}  p90 {lat['p90']}  "  # type: ignore[index]
          f"p99 {lat['p99']}  max {lat['max']}")  # type: ignore[index]
    print(f"bridge idle: {result['bridge_idle_cpu_percent']} % of a core over {args.idle_seconds:.0f} s, "
          f"RSS {result['bridge_rss_mib']} MiB;  start to ready: {result['start_to_ready_s']} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
