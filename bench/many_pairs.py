"""Eight sim pairs at once on one machine: relay latency per pair, and what the bridges cost while idle.

    .venv/bin/python bench/many_pairs.py [--pairs 8] [--messages 40] [--idle-seconds 30]

All pairs start through the normal start path on one private tmux server (one repository, a session each).
Latency, two ways: the human's messages go to each pair's idle reviewer one pair at a time (the others live and
idle), then in rounds of one message to every pair at the same moment; each is timed from its file landing in the
outbox (`pairloop send` returned) to the prompt submitted in that pair's sim pane (its receipt).
Idle: CPU time (utime + stime from /proc/<pid>/stat) over a quiet period of every process serving
a run — each bridge, each bridge pane's keeper, each pane recorder where the run has them — as % of one core,
all pairs together and by kind (the sim agents themselves are shown apart: they are not pairloop's cost).
Goals: each pair's p50 ≤ 50 ms; the bridges' (and their keepers') idle CPU all together ≤ 1 % of a core.
Prints a table and writes bench/results/many_pairs.json.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path

from simpair import (
    LedgerTail,
    Receipts,
    clean_up,
    describe,
    distribution,
    machine,
    private_tmux,
    start_sims,
    throwaway_repo,
    write_result,
)

from pairloop.runs.lifecycle import send_message
from pairloop.runs.store import Run

P50_GOAL_MS = 50.0
IDLE_GOAL_PERCENT = 1.0
TICKS = os.sysconf("SC_CLK_TCK")
# What a process serving a run is, by the module it runs (its command line names the run directory).
KINDS = (("bridge.keeper", "keeper"), ("bridge.recording", "recorder"), ("pairloop.agents.sim_agent", "agent"),
         ("-m\0bridge\0", "bridge"))


def cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICKS


def processes(runs: list[Run]) -> dict[int, str]:
    """Every process whose command line names one of the runs' directories, by kind (bridge, keeper, ...)."""
    dirs = [str(run.dir).encode() for run in runs]
    found: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if not any(d in cmdline for d in dirs):
            continue
        for needle, kind in KINDS:
            if needle.encode() in cmdline:
                found[int(entry.name)] = kind
                break
    # The keeper forks its bridge: both have the keeper's command line, and the bridge is the keeper's child.
    for pid, kind in list(found.items()):
        if kind == "keeper" and found.get(parent_of(pid)) == "keeper":
            found[pid] = "bridge"
    return found


def parent_of(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return 0


def measure_latency(runs: list[Run], rounds: int, together: bool) -> list[list[float]]:
    """Per pair, the latency (ms) of each round's message: all pairs get theirs at the same moment (``together``),
    or one pair after the other, each message delivered before the next is sent (the others live, idle)."""
    tails = [LedgerTail(run.ledger_path) for run in runs]
    receipts = [Receipts(run, "reviewer") for run in runs]
    out: list[list[float]] = [[] for _ in runs]
    for i in range(rounds):
        for group in ([list(range(len(runs)))] if together else [[k] for k in range(len(runs))]):
            _round(runs, group, i, tails, receipts, out)
    return out


def _round(runs: list[Run], group: list[int], i: int, tails: list[LedgerTail], receipts: list[Receipts],
           out: list[list[float]]) -> None:
    sent = {}
    for k in group:
        msg = send_message(runs[k], "human", ("reviewer",), f"round {i} message")
        sent[k] = (msg.id, time.time())
    for k, (msg_id, sent_at) in sent.items():
        event = tails[k].wait_for(lambda e, m=msg_id: e.get("ev") in ("delivered", "failed")  # type: ignore[misc]
                                  and m in e.get("ids", ()), f"delivery of {msg_id}", timeout=30)
        if event["ev"] != "delivered":
            raise SystemExit(f"message {msg_id} failed: {event.get('reason', '')}")
        out[k].append((receipts[k].time_of(msg_id) - sent_at) * 1000)


def measure_idle(runs: list[Run], seconds: float) -> dict[str, float]:
    """% of one core, by kind, over ``seconds`` with nothing to relay."""
    procs = processes(runs)
    before = {pid: cpu_seconds(pid) for pid in procs}
    wall = time.monotonic()
    time.sleep(seconds)  # the quiet period being measured
    elapsed = time.monotonic() - wall
    per_kind: dict[str, float] = defaultdict(float)
    for pid, kind in procs.items():
        per_kind[kind] += (cpu_seconds(pid) - before[pid]) / elapsed * 100
    counts: dict[str, int] = defaultdict(int)
    for kind in procs.values():
        counts[kind] += 1
    return {**{k: round(v, 3) for k, v in per_kind.items()}, **{f"{k}_count": v for k, v in counts.items()}}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=8)
    parser.add_argument("--messages", type=int, default=40, help="messages per pair (one round each)")
    parser.add_argument("--idle-seconds", type=float, default=30.0)
    args = parser.parse_args()

    repo = throwaway_repo()
    tmux = private_tmux()
    runs: list[Run] = []
    try:
        t0 = time.monotonic()
        for _ in range(args.pairs):
            start_sims(tmux, repo, runs)
        startup = time.monotonic() - t0
        alone = measure_latency(runs, args.messages, together=False)
        latencies = measure_latency(runs, args.messages, together=True)
        time.sleep(2.0)  # let the last deliveries' follow-ups (screen checks, status line) settle
        idle = measure_idle(runs, args.idle_seconds)
    finally:
        clean_up(tmux, runs, repo)

    per_pair = [distribution(lat) for lat in latencies]
    p50s = [d["p50"] for d in per_pair]
    alone_pairs = [distribution(lat) for lat in alone]
    alone_p50s = [d["p50"] for d in alone_pairs]
    served = round(idle.get("bridge", 0.0) + idle.get("keeper", 0.0), 3)
    result = {"pairs": args.pairs, "messages_per_pair": args.messages,
              "one_at_a_time": {"latency_ms": alone_pairs, "p50_max_ms": max(alone_p50s),
                                "p50_median_ms": statistics.median(alone_p50s)},
              "all_at_once": {"latency_ms": per_pair, "p50_max_ms": max(p50s),
                              "p50_median_ms": statistics.median(p50s)}, "p50_goal_ms": P50_GOAL_MS,
              "idle_cpu_percent": idle, "bridges_and_keepers_idle_percent": served,
              "idle_goal_percent": IDLE_GOAL_PERCENT, "idle_seconds": args.idle_seconds,
              "start_all_s": round(startup, 1), **machine()}
    write_result("many_pairs", result)

    print(f"{args.pairs} sim pairs on one tmux server, {args.messages} messages per pair (ms, file landed → prompt "
          "submitted); one pair's message at a time, the others live and idle:")
    for k, dist in enumerate(alone_pairs):
        print(f"  pair {k + 1}: {describe(dist)}")
    print(f"  p50 per pair: median {statistics.median(alone_p50s):.1f}, worst {max(alone_p50s):.1f} "
          f"(goal ≤ {P50_GOAL_MS:g} each)")
    print("every pair's message at the same moment (8 deliveries competing for 2 cores):")
    for k, dist in enumerate(per_pair):
        print(f"  pair {k + 1}: {describe(dist)}")
    print(f"  p50 per pair: median {statistics.median(p50s):.1f}, worst {max(p50s):.1f}")
    print(f"idle CPU over {args.idle_seconds:.0f} s, % of one core, all pairs together:")
    for kind in ("bridge", "keeper", "recorder", "agent"):
        if f"{kind}_count" in idle:
            note = "  (the sim agents: not pairloop's cost)" if kind == "agent" else ""
            print(f"  {kind + 's':<10} ×{idle[f'{kind}_count']:<3} {idle.get(kind, 0.0):.3f} %{note}")
    print(f"  bridges + keepers: {served:.3f} % (goal ≤ {IDLE_GOAL_PERCENT:g} %)")
    print(f"starting all {args.pairs} pairs: {startup:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
