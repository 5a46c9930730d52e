"""`pairloop resume` of a run whose tmux server died, until both agents are ready again.

    .venv/bin/python bench/resume.py [--runs 5] [--real-runs 3] [--no-real]

* sim: a sim pair that has talked (one message each way delivered), its tmux server killed (every pane and the
  bridge end with it); then `resume_run` is timed to its return, to both agents and the bridge up
  (`wait_until_ready`), and to both resume notices delivered (ledger).
* real: the same with the real claude and codex against the scripted model server (the end-to-end harness,
  tests/e2e; the pinned agents, installed into .e2e-cache/ on first use): `pairloop resume RUN --no-attach`, the
  command line itself, timed until it returns (it returns once both agents and the bridge are up), and until both
  resume notices are delivered.

Prints p50/max and writes bench/results/resume.json.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from simpair import clean_up, private_tmux, start_sims, throwaway_repo  # noqa: E402

from bridge import Tmux, bridge_running, events_of, poll  # noqa: E402
from pairloop.runs.lifecycle import process_alive, send_message  # noqa: E402
from pairloop.runs.resume import resume_run, wait_until_ready  # noqa: E402
from pairloop.runs.store import Run, load_run  # noqa: E402

ENV = {"PAIRLOOP_SIM_MODE": "quiet", "PAIRLOOP_SIM_WORK_SECONDS": "0"}


def stats(values: list[float]) -> dict[str, float]:
    return {"n": len(values), "p50": round(statistics.median(values), 3), "max": round(max(values), 3),
            "mean": round(statistics.mean(values), 3)}


def notices_delivered(run_dir: Path) -> bool:
    """Both agents were delivered their resume notice (a `received` with topic "resumed", then `delivered`)."""
    from bridge import Delivered, Received

    events = list(events_of(run_dir / "ledger.jsonl"))
    notices = {e.id: e.to[0] for e in events if isinstance(e, Received) and e.topic == "resumed"}
    done = {e.to for e in events if isinstance(e, Delivered) for i in e.ids if i in notices}
    return done >= {"worker", "reviewer"}


def talk(run: Run) -> None:
    """One message each way, delivered, so both agents have a conversation to resume."""
    def delivered(msg_id: str, to: str) -> bool:
        entry = run.book().entries.get(msg_id)
        return entry is not None and entry.deliveries.get(to) == "delivered"

    for to in ("worker", "reviewer"):
        msg = send_message(run, "human", (to,), f"hello {to}")
        poll(lambda: delivered(msg.id, to), 15, delay=0.02, max_delay=0.05)  # noqa: B023


def kill_server(tmux: Tmux, run: Run) -> None:
    pids = tmux.pane_pids(run.session)
    tmux.kill_server()
    if not poll(lambda: not any(process_alive(p) for p in pids) and not bridge_running(run.dir), 15,
                delay=0.02, max_delay=0.05):
        raise SystemExit("the panes or the bridge outlived their tmux server")


def one_sim() -> dict[str, float]:
    tmux, repo = private_tmux(), throwaway_repo()
    runs: list[Run] = []
    try:
        run = start_sims(tmux, repo, runs)
        talk(run)
        kill_server(tmux, run)
        t0 = time.monotonic()
        done = resume_run(tmux, load_run(run.dir), {**os.environ, **ENV})
        returned = time.monotonic() - t0
        wait_until_ready(tmux, done.run)
        ready = time.monotonic() - t0
        poll(lambda: notices_delivered(run.dir), 15, delay=0.01, max_delay=0.02)
        noticed = time.monotonic() - t0
        runs[:] = [load_run(run.dir)]
        return {"returned_s": returned, "ready_s": ready, "notices_s": noticed}
    finally:
        clean_up(tmux, runs, repo)


def one_real(server: Any, agents: Any) -> dict[str, float]:
    from tests.e2e.driver import Pair, scratch_root

    pair = Pair(scratch_root("pairloop-bench-"), server, agents)
    try:
        pair.start("", "claude", "codex")
        for role in ("worker", "reviewer"):  # a turn each (the model's default reply) so both have a conversation
            msg_id = pair.send(role, f"hello {role}")
            pair.wait(lambda: pair.delivered(msg_id, role), 60, f"{msg_id} delivered")  # noqa: B023
        pair.wait(lambda: pair.manifest()["roles"]["reviewer"].get("session_id"), 30, "codex's thread id")
        for role in ("worker", "reviewer"):
            pair.wait(lambda: pair.status()["agents"][role]["state"] == "ready", 60, f"the {role} ready")  # noqa: B023
        pair.tmux("kill-server")
        if pair.survivors(15.0):
            raise SystemExit("the agents outlived their tmux server")
        t0 = time.monotonic()
        pair.pairloop("resume", pair.run_id, "--no-attach", timeout=120)
        returned = time.monotonic() - t0
        pair.wait(lambda: notices_delivered(pair.run_dir), 60, "both resume notices delivered")
        noticed = time.monotonic() - t0
        return {"returned_s": returned, "notices_s": noticed}
    finally:
        left = pair.close()
        subprocess.run(["rm", "-rf", str(pair.root)], check=False)
        if left:
            raise SystemExit("processes outlived the tmux server:\n" + "\n".join(left))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--real-runs", type=int, default=3)
    parser.add_argument("--no-real", action="store_true")
    args = parser.parse_args()
    signal.signal(signal.SIGINT, signal.default_int_handler)
    sims = [one_sim() for _ in range(args.runs)]
    result: dict[str, Any] = {"sim": {k: stats([s[k] for s in sims]) for k in sims[0]}}
    print("sim:", json.dumps(result["sim"]))
    if not args.no_real:
        from tests.e2e.agents_install import install_agents
        from tests.e2e.model_server import ModelServer

        agents = install_agents()
        with ModelServer() as server:
            reals = [one_real(server, agents) for _ in range(args.real_runs)]
        result["real"] = {"agents": agents.label, **{k: stats([r[k] for r in reals]) for k in reals[0]}}
        print("real:", json.dumps(result["real"]))
    out = ROOT / "bench" / "results" / "resume.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
