"""The digest of a run: facts from the ledger and git, each with where it came from. Deterministic.

Everything the summarizer writes (PLAN.md, PR notes, an LLM's prose) is made from this and nothing else."""

from __future__ import annotations

import re
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from bridge import (
    AGENT_ROLES,
    DISPUTED,
    FIXED,
    OPEN,
    RESOLVED,
    AnyEvent,
    Book,
    FindingClaims,
    HumanTurn,
    Protocol,
    Relay,
    Round,
    RunState,
    VerifyFinished,
    cast_path,
    events_of,
    git,
    is_agent,
)
from bridge import Verdict as VerdictEvent
from pairloop.runs.store import Run

# Commands the agents said they ran: `backticked` spans or "$ " lines that start like a command.
_COMMAND_START = re.compile(
    r"^(?:\./|pytest|python3?|pip|uv|tox|nox|ruff|mypy|black|flake8|npm|npx|pnpm|yarn|node|make|cargo|go|"
    r"gradle|mvn|dotnet|bundle|rake|rspec|bash|sh|just|deno|bun|git diff|git log|git show|tsc|eslint|jest|vitest)\b")
_BACKTICKS = re.compile(r"`([^`\n]{2,200})`")
_DOLLAR = re.compile(r"^\s*\$ (.{2,200})$", re.MULTILINE)
_ROUND_NOTE = re.compile(r"round (\d+) \(")
_VERIFY_WORDS = re.compile(r"\b(ran|run|running|verified|verify|tested|tests? pass|passes|passing|checked)\b",
                           re.IGNORECASE)


def _git_lines(repo: Path, *args: str) -> list[str]:
    out = git(repo, *args)
    return out.stdout.splitlines() if out.returncode == 0 else []


def verification_commands(body: str) -> list[str]:
    """Commands a message says were run to verify the work."""
    found = [c.strip() for c in _DOLLAR.findall(body)]
    if _VERIFY_WORDS.search(body):
        found += [c.strip() for c in _BACKTICKS.findall(body)]
    return [c for c in dict.fromkeys(found) if _COMMAND_START.match(c)]


def group_of(path: str) -> str:
    name = path.lower()
    if re.search(r"(^|/)(tests?|spec)(/|$)|(^|/)test_[^/]*$|_test\.\w+$|\.(test|spec)\.\w+$", name):
        return "Tests"
    if name.endswith((".md", ".rst", ".txt", ".adoc")) or name.startswith("docs/"):
        return "Documentation"
    if name.endswith((".toml", ".cfg", ".ini", ".yaml", ".yml", ".json", ".lock")) or \
            Path(name).name in ("makefile", "dockerfile", "setup.py", "package.json"):
        return "Build and configuration"
    return "Code"


def _commits(repo: Path, base: str, end: str) -> list[dict[str, Any]]:
    if not base or not end:
        return []
    out = []
    for line in _git_lines(repo, "log", "--reverse", "--format=%H%x09%s", f"{base}..{end}"):
        sha, _, subject = line.partition("\t")
        out.append({"sha": sha, "short": sha[:7], "subject": subject})
    return out


def _diffstat(repo: Path, base: str, end: str) -> dict[str, Any]:
    files: list[dict[str, Any]] = []
    if base and end:
        for line in _git_lines(repo, "diff", "--numstat", base, end):
            added, deleted, path = ([*line.split("\t"), "", "", ""])[:3]
            files.append({"path": path, "added": int(added) if added.isdigit() else 0,
                          "deleted": int(deleted) if deleted.isdigit() else 0})
    groups: dict[str, list[str]] = {}
    for f in files:
        groups.setdefault(group_of(f["path"]), []).append(f["path"])
    return {"files": files, "insertions": sum(f["added"] for f in files),
            "deletions": sum(f["deleted"] for f in files), "groups": groups}


def _fixing_commits(repo: Path, protocol: Protocol, base: str, round_: int) -> list[dict[str, Any]]:
    """The commits made for a round: from the HEAD under the previous checkpoint to the one under this one."""
    new = protocol.checkpoints.get(round_, {}).get("commit", "")
    if not new:
        return []
    previous = protocol.checkpoints.get(round_ - 1, {}).get("commit", "")
    return _commits(repo, f"{previous}^" if previous else base, f"{new}^")


def build(run: Run, events: Iterable[AnyEvent] | None = None) -> dict[str, Any]:
    """Every fact the summary may state, with its source: a message (#seq), a ledger event, or a commit."""
    return folded(run, events)[0]


def folded(run: Run, events: Iterable[AnyEvent] | None = None) -> tuple[dict[str, Any], Book]:
    """The digest, and the ledger's messages as folded for it: the run report draws on both, so it does not fold
    the ledger a second time."""
    evs = list(events) if events is not None else events_of(run.ledger_path)
    book = Book().apply_all(evs)
    seq_of = {e.message.id: e.seq for e in book.entries.values()}
    protocol = Protocol()
    claims: dict[str, dict[str, Any]] = {}  # finding id -> the round whose review request claimed it
    settled_by: dict[str, dict[str, Any]] = {}  # finding id -> the approval that settled it
    unchanged: set[int] = set()
    current = 0
    for e in evs:
        if isinstance(e, Round):
            current = e.round
            if e.unchanged:
                unchanged.add(current)
        elif isinstance(e, FindingClaims):
            for fid in e.fixed:
                claims[fid] = {"round": current, "disputed": False}
            for fid in e.disputed:
                claims[fid] = {"round": current, "disputed": True}
        elif isinstance(e, VerdictEvent) and e.kind == "approve":
            for f in protocol.open_findings():
                settled_by[f.id] = {"by": e.by, "seq": seq_of.get(e.id)}
        protocol.apply(e)
    repo = Path(run.manifest.work_tree)
    base = run.manifest.base_commit or ""
    head_lines = _git_lines(repo, "rev-parse", "HEAD")
    head = head_lines[0] if head_lines else ""
    last_ref = protocol.checkpoint_ref(max(protocol.checkpoints)) if protocol.checkpoints else ""

    requests: dict[int, Any] = {}  # round -> the review request that opened it (its note starts "round N (")
    for entry in book.entries.values():
        if entry.message.kind == "review":
            m = _ROUND_NOTE.match(entry.note)
            if m:
                requests.setdefault(int(m[1]), entry)
    verdicts_in: dict[int, list[dict[str, Any]]] = {}
    for v in protocol.verdicts:
        verdicts_in.setdefault(v.round, []).append(
            {"by": v.by, "kind": v.kind, "seq": seq_of.get(v.id),
             "text": book.entries[v.id].message.body.strip() if v.id in book.entries else ""})
    rounds = []
    for n, cp in sorted(protocol.checkpoints.items()):
        request = requests.get(n)
        rounds.append({
            "round": n, "phase": cp.get("phase", ""), "ref": cp.get("ref", ""), "commit": cp.get("commit", "")[:10],
            "request": request.message.body.strip() if request else "",
            "request_seq": request.seq if request else None,
            "unchanged": n in unchanged,
            "verdicts": verdicts_in.get(n, []),
        })

    last_verdict_round = max((v.round for v in protocol.verdicts), default=0)
    # round -> the commits made for it: one git call per round (not per finding), several at a time.
    fix_rounds = sorted({int(claims[f.id]["round"]) for f in protocol.findings.values()
                         if f.status == FIXED and f.id in claims})
    with ThreadPoolExecutor(max_workers=4) as pool:
        fixing = dict(zip(fix_rounds, pool.map(lambda n: _fixing_commits(repo, protocol, base, n), fix_rounds),
                          strict=True))
    findings = []
    for f in protocol.findings.values():
        claim = claims.get(f.id, {})
        fixed = f.status == FIXED and bool(claim)
        commits = fixing[int(claim["round"])] if fixed else []
        settled = settled_by.get(f.id, {}) if f.status == RESOLVED else {}
        findings.append({"id": f.id, "text": f.text, "round": f.round, "by": f.by, "status": f.status,
                         "fixed_in_round": claim.get("round") if fixed else None,
                         "fixed_in_commits": [f"{c['short']} {c['subject']}" for c in commits],
                         # A fix is only the worker's word until a verdict on that round (or a later one).
                         "fix_reviewed": fixed and last_verdict_round >= int(claim["round"]),
                         "settled_by": settled.get("by"), "settled_seq": settled.get("seq"),
                         "disputed": bool(claim.get("disputed"))})

    # Agreement is final: a `pairloop stop` afterwards (closing the session) does not undo it.
    agreed = any(isinstance(e, RunState) and e.state == "agreed" for e in evs)
    human = []
    for entry in book.entries.values():
        if entry.message.sender == "human" and entry.message.kind != "task":
            human.append({"seq": entry.seq, "kind": entry.message.kind, "to": list(entry.message.to),
                          "text": entry.message.body.strip()})
    paused = {"by": "", "reason": ""}
    for e in evs:
        if isinstance(e, HumanTurn):
            human.append({"seq": None, "kind": "typed", "to": [e.role], "text": e.text.strip()})
        elif isinstance(e, Relay):
            if e.by == "human" and e.state == "paused":
                human.append({"seq": None, "kind": "paused the relay", "to": [], "text": ""})
            elif e.by == "human":
                after = f"the {paused['by']} had paused it: {paused['reason']}" if paused["by"] == "governor" else ""
                human.append({"seq": None, "kind": "unpaused the relay", "to": [], "text": after})
            paused = {"by": e.by, "reason": e.reason} if e.state == "paused" else {"by": "", "reason": ""}
        elif isinstance(e, RunState) and e.state == "stopped" and not agreed:
            human.append({"seq": None, "kind": "stopped the run", "to": [], "text": ""})

    # What the bridge itself ran on the checkpoints (the verification gate): facts, apart from what the agents said.
    checks = [{"round": e.round, "checkpoint": e.ref, "commit": e.commit[:10], "command": e.command,
               "result": e.result, "exit_status": e.exit_status, "duration": round(e.duration, 1), "log": e.log}
              for e in evs if isinstance(e, VerifyFinished)]
    for o in protocol.gates.overrules:
        human.append({"seq": None, "kind": "overruled the done gate", "to": [],
                      "text": f"the gate said: {o.blocker}" + (f" — {o.note}" if o.note else "")})
    verification = []
    for entry in book.entries.values():
        if is_agent(entry.message.sender):
            for command in verification_commands(entry.message.body):
                verification.append({"command": command, "said_by": entry.message.sender, "seq": entry.seq})

    plan_text = ""
    plan_lines = _git_lines(repo, "show", f"{last_ref}:PLAN.md") if last_ref else []
    if plan_lines:
        plan_text = "\n".join(plan_lines)

    end = last_ref or head
    facts: dict[str, Any] = {
        "run": run.id, "task": run.manifest.task.strip(),
        "state": "agreed" if agreed else book.run_state,
        "base": base, "head": head, "end": end, "phase_plan": run.manifest.protocol.plan,
        "plan_text": plan_text,
        "rounds": rounds, "findings": findings, "human": human, "verification": verification, "checks": checks,
        "commits": _commits(repo, base, head), "diff": _diffstat(repo, base, end),
        "open": [f["id"] for f in findings
                 if f["status"] in (OPEN, DISPUTED) or (f["status"] == FIXED and not f["fix_reviewed"])],
        "governor": protocol.summary()["governor"], "paused": protocol.paused, "paused_by": protocol.paused_by,
        "messages": len(book.order),
        "recordings": [role for role in AGENT_ROLES if cast_path(run.dir, role).exists()],  # <role>.cast files
        **protocol.spend.summary(protocol.limits.max_tokens),  # tokens per agent, from their own records; limits
    }
    return facts, book
