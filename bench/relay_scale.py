"""Relay latency on a fresh run and on a run whose ledger already holds 10,000 delivered messages, side by side.

    .venv/bin/python bench/relay_scale.py [--messages 200] [--seed 10000] [--restarts 3]

Both runs start through the normal start path (two sim agents, a private tmux server). Then each run's bridge is
stopped, the second run's ledger is seeded with delivered messages, and both bridges are started again in their
panes as start does (launch_bridge: the keeper, which runs the bridge).

Restart, as the self-healing bridge does it: once the bridge has run steadily (10 s; quicker deaths are a crash
loop, which the keeper backs off from), it is frozen (SIGSTOP), a message from the human is written into the
outbox, and the bridge is SIGKILLed; its keeper starts a new one at once. Timed from the SIGKILL:
  lock     → the new bridge holds the run's lock (the lock file's mtime, written right after taking it);
  ready    → its "bridge started" event (ledger replayed, outbox scanned);
  delivery → the message that waited is submitted in the sim pane (its receipt) — the number that matters.
On the seeded run, the first bridge folds the whole ledger and then keeps a snapshot of its views
(ledger.snapshot, bridge/replay.py): its restarts begin from that. Then, side by side, the same restarts with the
snapshot removed before each kill: the new bridge folds all 20,000 events, as it would without one. The bench
checks from each new bridge's start line that it did what its row says.
Then the human's messages go to the two runs' idle reviewers in turn, and each is timed as in relay_latency.py:
message file landed (`pairloop send` returned) → the prompt submitted in the sim pane. Goals: the seeded run's
p50 within 1.2x the fresh run's; the restart on the seeded ledger within 0.25 s. Prints both and writes
bench/results/relay_scale.json.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import sys
import time
from pathlib import Path
from typing import Literal

from simpair import (
    LedgerTail,
    Receipts,
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

from bridge import Tmux
from bridge.keeper import STEADY_S
from bridge.rundir.snapshot import snapshot_path
from pairloop.runs.lifecycle import bridge_running, launch_bridge, send_message
from pairloop.runs.store import Run

LATENCY_GOAL = 1.2
RESTART_GOAL_S = 0.25
SEEDED_BODY = ("Checked the retry path against the API docs: the header is in seconds, and the limiter now keeps "
               "its counters in the shared store, so two workers no longer double the budget. Tests pass.")


def seed_ledger(run_dir: Path, n: int) -> None:
    """Append ``n`` delivered messages to a run's ledger, as the bridge records them: `received`, then
    `delivered`. From the human to each agent in turn (the governor counts only the agents' messages, so its
    message limit stays out of the measurement). Call it while no bridge runs: the next bridge replays them.

    The only place in the bench that writes ledger events: when their API changes, this is what follows."""
    from bridge.inbox.mailbox import digest
    from bridge.rundir.events import Delivered, Received
    from bridge.rundir.ledger import Ledger
    from bridge.rundir.message import Message

    path = run_dir / "ledger.jsonl"
    seq = 1 + sum(1 for e in LedgerTail(path, from_start=True).new_events() if e.get("ev") == "received")
    created = time.time()
    with Ledger(path) as ledger:
        for i in range(n):
            to: Literal["worker", "reviewer"] = "reviewer" if i % 2 else "worker"
            msg = Message(f"seeded-{i:06d}", "human", (to,), f"{SEEDED_BODY} ({i})", "message", created + i / 1000)
            ledger.append(Received(seq=seq + i, id=msg.id, sender="human", to=(to,), kind="message",
                                   created=msg.created, body=msg.body, digest=digest(msg)))
            ledger.append(Delivered(to=to, ids=(msg.id,), via="receipt"))


def wait_for_snapshot(run: Run, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not snapshot_path(run.dir).exists():
        if time.monotonic() > deadline:
            raise SystemExit(f"the bridge of {run.dir} wrote no ledger snapshot within {timeout:.0f} s")
        time.sleep(0.05)


def stop_bridge(run: Run, timeout: float = 10.0) -> None:
    """SIGTERM to the bridge the run's pane runs (the lock holder wrote its pid into the lock file); wait until
    it let go of the lock. Its pane stays, dead, ready to be respawned."""
    if not bridge_running(run):
        raise SystemExit(f"no bridge runs for {run.dir}")
    os.kill(int((run.dir / "bridge.lock").read_text().strip()), signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while bridge_running(run):
        if time.monotonic() > deadline:
            raise SystemExit(f"the bridge of {run.dir} did not stop within {timeout:.0f} s")
        time.sleep(0.01)


def lock_pid(run: Run) -> int:
    try:
        return int((run.dir / "bridge.lock").read_text().strip() or 0)
    except (OSError, ValueError):
        return 0


def start_bridge(tmux: Tmux, run: Run) -> None:
    """Start the keeper and its bridge in the run's pane, as start_run does; wait for "bridge started"."""
    tail = LedgerTail(run.ledger_path)
    launch_bridge(tmux, str(run.manifest.bridge_pane), run.dir)
    tail.wait_for(lambda e: e.get("ev") == "bridge" and e.get("state") == "started", "bridge start")


def restart_bridge(run: Run, snapshot: bool = True) -> tuple[float, float, float]:
    """Kill the bridge with a message waiting (see the module's docstring); seconds from the SIGKILL to the new
    bridge's lock, its "bridge started" event and the waiting message's delivery. The bridge has run steadily
    first: deaths in quick succession are a crash loop, which the keeper backs off from on purpose. Without
    ``snapshot`` the ledger's snapshot is removed before the kill: the new bridge folds the whole ledger."""
    time.sleep(STEADY_S + 0.5)
    old = lock_pid(run)
    tail = LedgerTail(run.ledger_path)
    receipts = Receipts(run, "reviewer")
    os.kill(old, signal.SIGSTOP)
    if not snapshot:
        snapshot_path(run.dir).unlink(missing_ok=True)
    msg = send_message(run, "human", ("reviewer",), "waiting while the bridge restarts")
    killed = time.time()
    os.kill(old, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while lock_pid(run) in (0, old) or not bridge_running(run):
        if time.monotonic() > deadline:
            raise SystemExit(f"the bridge of {run.dir} did not come back within 10 s")
        time.sleep(0.002)
    locked = (run.dir / "bridge.lock").stat().st_mtime
    started: float | None = None
    while True:
        event = tail.wait_for(lambda e: (e.get("ev") == "bridge" and e.get("state") == "started")
                              or (e.get("ev") == "delivered" and msg.id in e.get("ids", ())), "restart")
        if event["ev"] == "bridge":
            started = float(event["ts"])
        else:
            break
    assert started is not None, "started is recorded before any delivery"
    delivered = receipts.time_of(msg.id) - killed
    if started_from_snapshot(run) != snapshot:
        raise SystemExit(f"the restarted bridge {'did not start' if snapshot else 'started'} from a snapshot")
    return locked - killed, started - killed, delivered


def started_from_snapshot(run: Run) -> bool:
    """Whether the latest bridge to start began from the ledger's snapshot, as its start line in bridge.log says."""
    lines = [line for line in (run.dir / "bridge.log").read_text().splitlines() if "bridge started ·" in line]
    return bool(lines) and "from its snapshot" in lines[-1]


def restarts_summary(times: list[tuple[float, float, float]]) -> dict[str, float]:
    return {"lock_median_s": round(statistics.median(t[0] for t in times), 3),
            "started_median_s": round(statistics.median(t[1] for t in times), 3),
            "delivery_median_s": round(statistics.median(t[2] for t in times), 3),
            "delivery_max_s": round(max(t[2] for t in times), 3)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=200, help="messages timed per run")
    parser.add_argument("--seed", type=int, default=10_000, help="delivered messages already in the second ledger")
    parser.add_argument("--restarts", type=int, default=5, help="bridge restarts timed per run")
    args = parser.parse_args()
    labels = ("fresh", "seeded")

    repo = throwaway_repo()
    tmux = private_tmux()
    runs: list[Run] = []
    restarts: dict[str, list[tuple[float, float, float]]] = {label: [] for label in (*labels, "whole")}
    latencies: dict[str, list[float]] = {label: [] for label in labels}
    ledger_lines: dict[str, int] = {}
    seed_s = 0.0
    try:
        for label in labels:
            run = start_sims(tmux, repo, runs)
            stop_bridge(run)
            if label == "seeded":
                t0 = time.monotonic()
                seed_ledger(run.dir, args.seed)
                seed_s = time.monotonic() - t0
            ledger_lines[label] = len(LedgerTail(run.ledger_path, from_start=True).new_events())
            start_bridge(tmux, run)
            if label == "seeded":  # the first bridge folds the whole ledger, then keeps a snapshot of it
                wait_for_snapshot(run)
            for _ in range(args.restarts):
                restarts[label].append(restart_bridge(run, snapshot=label == "seeded"))
            if label == "seeded":
                for _ in range(args.restarts):
                    restarts["whole"].append(restart_bridge(run, snapshot=False))
        relays = {label: Relay(run) for label, run in zip(labels, runs, strict=True)}
        for i in range(args.messages):
            for label in labels if i % 2 == 0 else labels[::-1]:  # alternate who goes first: same conditions
                latencies[label].append(relays[label].latency_ms(f"benchmark message {i}"))
    finally:
        clean_up(tmux, runs, repo)

    lat = {label: distribution(latencies[label]) for label in labels}
    ratio = lat["seeded"]["p50"] / lat["fresh"]["p50"]
    restart = {label: restarts_summary(times) for label, times in restarts.items()}
    result = {"messages_per_run": args.messages, "seeded_messages": args.seed, "ledger_events": ledger_lines,
              "latency_ms": lat, "p50_ratio": round(ratio, 2), "p50_ratio_goal": LATENCY_GOAL,
              "bridge_restart": restart, "bridge_restart_goal_s": RESTART_GOAL_S, "restarts": args.restarts,
              "seeding_s": round(seed_s, 1), **machine()}
    write_result("relay_scale", result)

    seeded = f"{args.seed:,} delivered messages in the ledger"
    print(f"relay latency, message file landed → prompt submitted in an idle sim pane, {args.messages} messages "
          "per run, interleaved (ms):")
    print(f"  {'fresh run':<42} {describe(lat['fresh'])}")
    print(f"  {seeded:<42} {describe(lat['seeded'])}")
    print(f"  p50 ratio {ratio:.2f}x (goal ≤ {LATENCY_GOAL}x)")
    print(f"bridge restart, SIGKILLed with a message waiting → its keeper's new bridge holds the lock / "
          f"\"bridge started\" (ledger replayed) / the waiting message delivered, median of {args.restarts}:")
    for label, name in (("fresh", f"fresh run ({ledger_lines['fresh']} events)"),
                        ("seeded", f"{args.seed:,} messages, from the snapshot"),
                        ("whole", f"{args.seed:,} messages, whole ledger ({ledger_lines['seeded']:,} events)")):
        r = restart[label]
        print(f"  {name:<46} {r['lock_median_s']:.3f} s / {r['started_median_s']:.3f} s / "
              f"{r['delivery_median_s']:.3f} s (max {r['delivery_max_s']:.3f} s)")
    print(f"  goal: delivered ≤ {RESTART_GOAL_S} s with {args.seed:,} messages")
    print(f"seeding {args.seed:,} messages ({2 * args.seed:,} ledger events, each fsync'd): {seed_s:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
