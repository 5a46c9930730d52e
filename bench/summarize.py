"""The deterministic summarizer on a long run: a 10,000-message ledger over a real throwaway git repository.

    .venv/bin/python bench/summarize.py [--messages 10000] [--rounds 100] [--repeat 5]

The ledger is written the way the bridge writes it: every message received (with the referee's note), queued,
delivering and delivered; agent state changes; per review round a real checkpoint ref (checkpoint.snapshot)
on top of real commits, the worker's fixed/disputed claims and the reviewer's verdict with numbered findings;
chatter naming the commands the agents ran; the human steering now and then (messages, a verdict, typing in a
pane, a pause); the governor pausing once; done and agreement at the end. Times `digest.build` alone and the
whole `summarize` (digest, PR_NOTES.md, digest.json, PLAN.md) over several runs; prints the numbers and writes
bench/results/summarize.json. Target: summarize ≤ 1 s.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from unittest import mock

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bridge import (  # noqa: E402
    AGENT_ROLES,
    CastHeader,
    cast_path,
    changes_between,
    encode_event,
    git,
    git_out,
    parse_findings,
    partner_of,
    round_label,
    snapshot,
)
from pairloop.runs.store import Run, load_run  # noqa: E402
from pairloop.summary import digest  # noqa: E402
from pairloop.summary import summarize as summarizer  # noqa: E402
from pairloop.summary.report import write_report  # noqa: E402
from pairloop.summary.summarize import summarize  # noqa: E402

TARGET_S = 1.0
RUN_ID = "20260102-030405-bench"
CHATTER = [
    "I ran `pytest -q tests/test_limits.py` and it passes; the 429 path is covered now.",
    "Why does the limiter keep its state per process? With two workers the budget doubles.",
    "Good point. I moved the counters into the shared store; see the last commit.",
    "Checked the error message wording against the API docs: it matches.\n$ ruff check .",
    "The retry-after header is in seconds, not milliseconds: please double-check the conversion.",
    "Verified with `python -m pytest -x` and `mypy --strict src/`: all green.",
    "Can you split the config parsing out of the middleware? It is getting long.",
    "Done: parsing lives in config.py now, the middleware only reads the parsed limits.",
]


class Writer:
    """Writes ledger lines in the bridge's own format (ts first, compact JSON), without its per-line fsync."""

    def __init__(self, path: Path) -> None:
        self.f = path.open("w", encoding="utf-8")
        self.seq = 0
        self.events = 0
        self.ts = 1767323045.0
        self.rng = random.Random(7)

    def emit(self, event: dict[str, Any]) -> None:
        self.ts += 0.05
        self.f.write(json.dumps({"ts": round(self.ts, 6), **event}, ensure_ascii=False, separators=(",", ":")) + "\n")
        self.events += 1

    def message(self, sender: str, to: tuple[str, ...], body: str, kind: str = "message", note: str = "",
                msg_id: str = "", **extra: Any) -> str:
        self.seq += 1
        msg_id = msg_id or f"{int(self.ts * 1000):x}-{self.seq:04x}"
        record: dict[str, Any] = {"ev": "received", "seq": self.seq, "digest": f"{self.seq:016x}",
                                  "file": f"{msg_id}.json", "id": msg_id, "from": sender, "to": list(to),
                                  "kind": kind, "created": self.ts, "body": body, **extra}
        if note:
            record["note"] = note
        self.emit(record)
        for role in to:
            if role == "human":
                self.emit({"ev": "delivered", "to": role, "ids": [msg_id], "via": "bridge pane"})
                continue
            if self.rng.random() < 0.3:
                self.emit({"ev": "queued", "to": role, "ids": [msg_id], "reason": "target busy"})
                self.emit({"ev": "agent", "role": role, "state": "ready", "detail": ""})
            self.emit({"ev": "delivering", "to": role, "ids": [msg_id]})
            self.emit({"ev": "delivered", "to": role, "ids": [msg_id], "via": "receipt"})
            self.emit({"ev": "agent", "role": role, "state": "busy", "detail": "working"})
        return msg_id

    def close(self) -> None:
        self.f.close()


def build_run(root: Path, messages: int, rounds: int) -> Run:
    repo = root / "repo"
    repo.mkdir()
    env_id = {"GIT_AUTHOR_NAME": "bench", "GIT_AUTHOR_EMAIL": "bench@example.invalid",
              "GIT_COMMITTER_NAME": "bench", "GIT_COMMITTER_EMAIL": "bench@example.invalid"}
    os.environ.update(env_id)
    git_out(repo, "init", "-q", "-b", "main")
    # As `pairloop start` does: the mailbox folder (here also the run directory) stays out of the checkpoints.
    (repo / ".git" / "info").mkdir(parents=True, exist_ok=True)
    (repo / ".git" / "info" / "exclude").write_text("/.pairloop/\n")
    (repo / "README.md").write_text("bench repo\n")
    git_out(repo, "add", "-A")
    git_out(repo, "commit", "-q", "-m", "init")
    base = git_out(repo, "rev-parse", "HEAD")
    run_dir = repo / ".pairloop" / "runs" / RUN_ID
    run_dir.mkdir(parents=True)
    task = "Add rate limiting to the API; prove it with tests.\nKeep the public interface unchanged."
    manifest: dict[str, Any] = {"version": 1, "id": RUN_ID, "task": task, "repo": str(repo), "base_commit": base,
                "state": "running", "tmux": {"socket_path": "", "session": ""},
                "protocol": {"plan": False, "mirror": True,
                                                 "limits": {"max_rounds": rounds // 2, "max_messages": 100000}}}
    (run_dir / "run.json").write_text(json.dumps(manifest))
    w = Writer(run_dir / "ledger.jsonl")
    w.emit({"ev": "bridge", "state": "started", "pid": 1})
    w.emit({"ev": "protocol", "phase": "work", "limits": manifest["protocol"]["limits"]})
    w.message("human", ("worker",), task, "task")
    per_round = max(4, (messages - 4) // rounds)
    open_ids: list[str] = []
    previous_ref = ""
    for n in range(1, rounds + 1):
        # The work: real commits touching code, tests and docs, so the diff and the fixing commits are real.
        for k, (folder, ext) in enumerate((("src/limits", "py"), ("tests", "py"), ("docs", "md"))[: 1 + n % 3]):
            path = repo / folder / f"part_{n % 40}_{k}.{ext}"
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("a") as f:
                f.write("".join(f"line {n}.{i}\n" for i in range(1 + n % 7)))
        git_out(repo, "add", "-A")
        git_out(repo, "commit", "-q", "-m", f"Round {n}: limiter work, part {n}")
        # Some chatter first; the human steps in now and then.
        for i in range(per_round - 3):
            sender = AGENT_ROLES[i % 2]
            w.message(sender, (partner_of(sender),), CHATTER[(n + i) % len(CHATTER)])
        if n % 10 == 0:
            hid = w.message("human", ("worker",), f"Round {n}: keep the public interface unchanged, please.")
            w.message("pairloop", ("reviewer",), f"For context, the human told the worker: round {n}", "context",
                      msg_id=f"{hid}-context")
        if n % 15 == 0:
            w.emit({"ev": "human_turn", "role": "reviewer", "text": f"look at the retry path too ({n})",
                    "event_file": f"reviewer/{n}-prompt.json"})
        # The review request: a real checkpoint, what the worker says it fixed or disputes.
        # Every fourth round the worker disputes one of the findings instead of fixing it.
        fixed, disputed = (open_ids[:-1], open_ids[-1:]) if n % 4 == 0 else (open_ids, [])
        body = f"Round {n}: ready for review ({git_out(repo, 'rev-parse', '--short', 'HEAD')})."
        ref = f"refs/pairloop/{RUN_ID}/round-{n}"
        snap = snapshot(repo, ref, f"pairloop round {n} (work phase): {body[:60]}")
        w.emit({"ev": "round", "round": n, "ref": ref, "commit": snap.commit, "tree": snap.tree, "phase": "work",
                "unchanged": False})
        if fixed or disputed:
            w.emit({"ev": "findings", "fixed": fixed, "disputed": disputed})
        note = "\n".join([f"round {n} (work phase) · checkpoint {ref} ({snap.commit[:10]})",
                          f"changes since {'round ' + str(n - 1) if previous_ref else 'the start'} "
                          f"(git diff {previous_ref or base} {ref}):",
                          changes_between(repo, previous_ref or base, ref) if n % 10 == 1 else "1 file changed"])
        w.message("worker", ("reviewer",), body, "review", note, fixed=fixed, disputed=disputed)
        previous_ref = ref
        if n == rounds // 2:
            w.emit({"ev": "relay", "state": "paused", "by": "governor",
                    "reason": f"more than {rounds // 2} review rounds without agreement"})
            w.emit({"ev": "relay", "state": "running", "by": "human", "rounds_allowed": rounds * 2,
                    "messages_allowed": 200000})
        # The verdict: changes with numbered findings, an approval at the end (once by the human).
        if n < rounds:
            text = "\n".join(f"{i}. finding {i} of round {n}: handle the edge case in part {n}"
                             for i in range(1, 2 + n % 3))
            by = "human" if n == rounds // 3 else "reviewer"
            vid = w.message(by, ("worker",), text, "changes", f"changes requested for round {n}")
            ids = [f"F{n}.{i}" for i in range(1, len(parse_findings(text)) + 1)]
            w.emit({"ev": "verdict", "id": vid, "by": by, "kind": "changes", "round": n, "checkpoint": ref,
                    "tree": snap.tree, "phase": "work", "findings": [[f, t] for f, t in zip(ids, parse_findings(text),
                                                                                          strict=True)]})
            open_ids = ids
        else:
            vid = w.message("reviewer", ("worker",), "Approved: the limiter is tested.", "approve",
                            f"approved: round {n} ({ref})")
            w.emit({"ev": "verdict", "id": vid, "by": "reviewer", "kind": "approve", "round": n, "checkpoint": ref,
                    "tree": snap.tree, "phase": "work", "findings": []})
    while w.seq < messages - 1:
        w.message("worker", ("reviewer",), CHATTER[w.seq % len(CHATTER)])
    done = w.message("worker", ("reviewer",), "Finished: rate limiting is in, tested and approved.", "done")
    w.emit({"ev": "run", "state": "agreed", "by": done, "round": rounds, "approved_by": "reviewer"})
    w.close()
    return load_run(run_dir)


def write_casts(run: Run, rounds: int, repaints: int = 20) -> int:
    """Both panes' recordings, as the recorder writes them: per round, full-screen repaints of a 120x40 pane in
    colour, and the round's marker. Returns their size in bytes."""
    total = 0
    for role in AGENT_ROLES:
        with cast_path(run.dir, role).open("wb") as f:
            f.write(CastHeader(120, 40, 1767323045).encode())
            t = 0.0
            for n in range(1, rounds + 1):
                for k in range(repaints):
                    t += 0.5
                    screen = "\r\n".join(f"\x1b[1;3{(n + row) % 7 + 1}m●\x1b[0m {role} round {n} step {k} "
                                          f"\x1b[38;5;{(row * 7) % 255}m{CHATTER[(n + row) % len(CHATTER)][:90]}"
                                          "\x1b[0m" for row in range(38))
                    f.write(encode_event(t, "o", "\x1b[H\x1b[2J" + screen))
                f.write(encode_event(t, "m", round_label(n)))
            total += f.tell()
    return total


def timed(fn: Any, repeat: int) -> list[float]:
    out = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        out.append(time.perf_counter() - start)
    return out


def stats(values: list[float]) -> dict[str, float]:
    return {"min": round(min(values), 3), "median": round(statistics.median(values), 3), "max": round(max(values), 3)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--keep", action="store_true", help="keep the throwaway repository")
    parser.add_argument("--profile", action="store_true", help="print a cProfile of one summarize")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="pairloop-bench-summarize-"))
    try:
        start = time.perf_counter()
        run = build_run(root, args.messages, args.rounds)
        setup = time.perf_counter() - start
        facts = digest.build(run)
        assert facts["messages"] == args.messages, facts["messages"]
        assert facts["state"] == "agreed" and len(facts["rounds"]) == args.rounds
        if args.profile:
            import cProfile
            import pstats

            profiler = cProfile.Profile()
            profiler.runcall(summarize, run)
            pstats.Stats(profiler).sort_stats("cumulative").print_stats(25)
        build_s = timed(lambda: digest.build(run), args.repeat)
        # The summary writes the run report too: timed with and without it, then the report alone, first with no
        # recordings, then with both panes' recordings to replay.
        summarize_s, without_s = [], []
        for _ in range(args.repeat):  # interleaved, so a busy moment of the machine falls on both
            summarize_s += timed(lambda: summarize(run), 1)
            with mock.patch.object(summarizer, "write_report", lambda *a, **k: run.dir):
                without_s += timed(lambda: summarize(run), 1)
        report_s = timed(lambda: write_report(run), args.repeat)
        cast_bytes = write_casts(run, args.rounds)
        report_casts_s = timed(lambda: write_report(run), args.repeat)
        notes = (run.dir / "PR_NOTES.md").read_text()
        result = {
            "messages": facts["messages"], "ledger_events": sum(1 for _ in run.ledger_path.open()),
            "ledger_mib": round(run.ledger_path.stat().st_size / 2**20, 2), "rounds": len(facts["rounds"]),
            "findings": len(facts["findings"]), "commits": len(facts["commits"]),
            "verification_commands": len(facts["verification"]), "human_interventions": len(facts["human"]),
            "pr_notes_kib": round(len(notes.encode()) / 1024, 1),
            "digest_build_s": stats(build_s), "summarize_s": stats(summarize_s), "target_s": TARGET_S,
            "summarize_without_report_s": stats(without_s), "report_s": stats(report_s),
            "report_with_recordings_s": stats(report_casts_s), "recordings_mib": round(cast_bytes / 2**20, 1),
            "report_kib": round(write_report(run).stat().st_size / 1024),
            "repeat": args.repeat, "setup_s": round(setup, 1), "cpus": os.cpu_count(),
            "python": sys.version.split()[0],
            "git": git(None, "--version").stdout.strip(),
        }
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
        else:
            print(f"kept {root}")
    print(f"ledger: {result['messages']} messages, {result['ledger_events']} events ({result['ledger_mib']} MiB), "
          f"{result['rounds']} rounds, {result['findings']} findings, {result['commits']} commits")
    for name in ("digest_build_s", "summarize_s", "summarize_without_report_s", "report_s",
                 "report_with_recordings_s"):
        s = result[name]
        print(f"{name:26} min {s['min']:.3f} s · median {s['median']:.3f} s · max {s['max']:.3f} s"
              f"  ({args.repeat} runs)")
    print(f"recordings: {result['recordings_mib']} MiB in all; report.html {result['report_kib']} KiB")
    ok = result["summarize_s"]["max"] <= TARGET_S
    print(f"target: summarize ≤ {TARGET_S} s: {'met' if ok else 'MISSED'}")
    out = ROOT / "bench" / "results" / "summarize.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
