"""Where the relay's latency goes, message by message: one sim pair, a message from the human to its idle reviewer
at a time (each also mirrored to the worker as context, as by default).

    .venv/bin/python bench/relay_breakdown.py [--messages 30]

For each message, from the ledger's own timestamps and the sim's receipt:
  landed → received      the message file written (`pairloop send` returned) → recorded in the ledger;
  received → delivering  the bridge's pass: the message's effects, the look at the pane, the paste file, the
                         record of the exact paste (everything before the paste itself);
  delivering → receipt   the paste and the submit key through tmux, until the sim records the prompt.
Prints the median and p90 of each, and writes bench/results/relay_breakdown.json.
"""

from __future__ import annotations

import argparse
import time

from simpair import (
    LedgerTail,
    Receipts,
    clean_up,
    distribution,
    machine,
    private_tmux,
    start_sims,
    throwaway_repo,
    write_result,
)

from pairloop.runs.lifecycle import send_message
from pairloop.runs.store import Run

STEPS = ("landed → received", "received → delivering", "delivering → receipt", "total")


def one(run: Run, tail: LedgerTail, receipts: Receipts, body: str) -> tuple[float, float, float, float]:
    msg = send_message(run, "human", ("reviewer",), body)
    landed = time.time()
    seen: dict[str, float] = {}
    deadline = time.monotonic() + 10
    while "delivered" not in seen:
        if time.monotonic() > deadline:
            raise SystemExit(f"message {msg.id} was not delivered within 10 s")
        for event in tail.new_events():
            if event.get("id") == msg.id or (msg.id in event.get("ids", ()) and event.get("to") == "reviewer"):
                seen.setdefault(str(event["ev"]), float(event["ts"]))
        time.sleep(0.002)
    receipt = receipts.time_of(msg.id)
    return (seen["received"] - landed, seen["delivering"] - seen["received"], receipt - seen["delivering"],
            receipt - landed)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=30)
    args = parser.parse_args()
    repo, tmux = throwaway_repo(), private_tmux()
    runs: list[Run] = []
    rows: list[tuple[float, float, float, float]] = []
    try:
        run = start_sims(tmux, repo, runs)
        tail, receipts = LedgerTail(run.ledger_path), Receipts(run, "reviewer")
        for i in range(args.messages):
            rows.append(one(run, tail, receipts, f"benchmark message {i}"))
            time.sleep(0.3)  # the worker's context copy is delivered too before the next one
    finally:
        clean_up(tmux, runs, repo)
    result = {step: distribution([row[k] * 1000 for row in rows]) for k, step in enumerate(STEPS)}
    write_result("relay_breakdown", {"messages": args.messages, "ms": result, **machine()})
    print(f"one sim pair, {args.messages} messages from the human to the idle reviewer (ms):")
    for step in STEPS:
        print(f"  {step:<24} p50 {result[step]['p50']:6.1f}  p90 {result[step]['p90']:6.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
