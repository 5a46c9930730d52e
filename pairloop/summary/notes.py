"""PLAN.md and PR notes, written from the digest alone: every statement cites a message (#seq), a finding,
a checkpoint ref or a commit. Deterministic: the same digest gives the same text."""

from __future__ import annotations

import re
from string import Template
from typing import Any

SECTION = re.compile(r"<!-- pairloop:begin (?P<name>[\w-]+) -->\n.*?<!-- pairloop:end (?P=name) -->", re.DOTALL)
DIFF_BUDGET = 400


def title(digest: dict[str, Any]) -> str:
    first = digest["task"].splitlines()[0].strip() if digest["task"] else f"pairloop run {digest['run']}"
    return first if len(first) <= 72 else first[:71].rstrip() + "…"


def _cite(seq: int | None) -> str:
    return f" (#{seq})" if seq else ""


def _verdict_word(kind: str) -> str:
    return {"approve": "approved", "changes": "asked for changes"}.get(kind, kind)


def _settled(f: dict[str, Any]) -> str:
    who = f"the {f['settled_by']}'s approval" if f.get("settled_by") else "the approval"
    return f"settled by {who}{_cite(f.get('settled_seq'))}"


def _finding_line(f: dict[str, Any]) -> str:
    if f["status"] == "fixed":
        where = "; ".join(f["fixed_in_commits"]) or f"the round {f['fixed_in_round']} checkpoint"
        end = f"fixed in round {f['fixed_in_round']} ({where})"
        if not f.get("fix_reviewed", True):
            end = f"the worker says {end}, not reviewed yet"
    elif f["status"] == "resolved":
        end = _settled(f) + (" after being disputed" if f["disputed"] else "")
    elif f["status"] == "disputed":
        end = "disputed by the worker, not settled"
    else:
        end = "left open"
    return f"- **{f['id']}** ({f['by']}, round {f['round']}): {f['text']} — {end}"


def review_history(digest: dict[str, Any]) -> list[str]:
    lines: list[str] = []
    for r in digest["rounds"]:
        flag = " — nothing changed since the previous round" if r["unchanged"] else ""
        request = r["request"].splitlines()[0] if r["request"] else "(no note)"
        lines.append(f"- Round {r['round']} ({r['phase']}), checkpoint `{r['ref']}` ({r['commit']}): "
                     f"\"{request}\"{_cite(r['request_seq'])}{flag}")
        for v in r["verdicts"]:
            text = v["text"].splitlines()[0] if v["text"] else ""
            lines.append(f"  - {v['by']} {_verdict_word(v['kind'])}{_cite(v['seq'])}: {text}")
    return lines


def changes_section(digest: dict[str, Any]) -> list[str]:
    diff = digest["diff"]
    count = len(diff["files"])
    lines = [f"{count} file{'' if count == 1 else 's'} changed, +{diff['insertions']} −{diff['deletions']} "
             f"(`git diff {digest['base'][:10]} {digest['end']}`)."]
    by_path = {f["path"]: f for f in diff["files"]}
    for group in ("Code", "Tests", "Documentation", "Build and configuration"):
        paths = diff["groups"].get(group, [])
        if paths:
            lines.append(f"\n**{group}**")
            lines += [f"- `{p}` (+{by_path[p]['added']} −{by_path[p]['deleted']})" for p in sorted(paths)]
    if digest["commits"]:
        lines.append("\n**Commits**")
        lines += [f"- {c['short']} {c['subject']}" for c in digest["commits"]]
    return lines


def split_suggestion(digest: dict[str, Any], budget: int) -> list[str]:
    diff = digest["diff"]
    size = diff["insertions"] + diff["deletions"]
    if size <= budget:
        return []
    lines = [f"This diff changes {size} lines, more than the {budget}-line review budget. It splits along the "
             "review rounds' checkpoints:"]
    previous = digest["base"][:10]
    part = 0
    for r in digest["rounds"]:
        if not r["ref"] or r["unchanged"]:  # no checkpoint, or the same tree as the round before: no part
            continue
        part += 1
        lines.append(f"- part {part} (round {r['round']}): `git diff {previous} {r['ref']}`")
        previous = r["ref"]
    return lines


def left_open(digest: dict[str, Any]) -> list[str]:
    """What the run leaves for someone to decide: open findings, unreviewed fixes, a paused relay, no agreement."""
    lines = [_finding_line(f) for f in digest["findings"] if f["id"] in digest["open"]]
    if digest["paused"]:
        by = f" (paused by the {digest['paused_by']})" if digest.get("paused_by") else ""
        lines.append(f"- The relay is paused: {digest['paused']}{by}")
    if digest["state"] != "agreed":
        lines.append("- The pair has not agreed the work is done.")
    checks = digest.get("checks", [])
    if checks and checks[-1]["result"] != "passed":
        last = checks[-1]
        lines.append(f"- The last verification (round {last['round']}, `{last['checkpoint']}`) did not pass: "
                     f"{last['result']}.")
    return lines


def check_line(c: dict[str, Any]) -> str:
    """One verification the bridge ran, as facts: round, checkpoint, command, exit status, duration."""
    status = f"exit status {c['exit_status']}" if c["exit_status"] is not None else "no exit status"
    return (f"- Round {c['round']}, checkpoint `{c['checkpoint']}` ({c['commit']}): `{c['command']}` — "
            f"{c['result']} ({status}, {c['duration']:.1f} s)")


def spending(digest: dict[str, Any]) -> list[str]:
    """Tokens per agent, as the agents' own records count them, and the usage limits they hit ([] when the
    agents reported none: a custom agent, or a run before any turn ended)."""
    tokens = digest.get("tokens") or {}
    limits = digest.get("usage_limits") or []
    if not tokens.get("roles") and not limits:
        return []
    out = ["", "## Tokens", ""]
    for role, t in tokens.get("roles", {}).items():
        out.append(f"- {role}: {t['total']:,} ({t['input']:,} in, of them {t['cached']:,} from a cache; "
                   f"{t['output']:,} out)")
    if tokens.get("roles"):
        budget = f", of a budget of {tokens['max_tokens']:,}" if tokens.get("max_tokens") else ""
        out.append(f"- Total: {tokens['total']['total']:,}{budget} (from the agents' own records)")
    out += [f"- The {e['role']} hit a usage or rate limit: {e['reason']}" for e in limits]
    return out


def proof_of_work(digest: dict[str, Any]) -> list[str]:
    """Where the run report is, and how to watch the panes again (when they were recorded)."""
    run = digest["run"]
    lines = [f"- The run report, `report.html` in the run's directory: the verdict, every round's checkpoint with "
             f"its diff, findings and verification, and both panes' screens at each checkpoint. "
             f"`pairloop report --run {run} --open` opens it."]
    recorded = digest.get("recordings") or []
    if recorded:
        which = "Both panes were" if len(recorded) > 1 else f"The {recorded[0]}'s pane was"
        lines.append(f"- {which} recorded (asciicast v2, in the run's directory): `pairloop replay --run {run} "
                     f"--role {recorded[0]}` plays one back, `--from-round N` from a round's checkpoint.")
    return lines


def pr_body(digest: dict[str, Any], prose: str = "", budget: int = DIFF_BUDGET) -> str:
    states = {"agreed": "The worker and the reviewer agreed the work is done",
              "stopped": "The run was stopped before the pair agreed"}
    state = states.get(digest["state"], "The pair has not agreed yet")
    verdicts = [v for r in digest["rounds"] for v in r["verdicts"]]
    summary = (f"{state} after {len(digest['rounds'])} review round(s) and {digest['messages']} relayed messages"
               f"{' (relay paused: ' + digest['paused'] + ')' if digest['paused'] else ''}.")
    out = ["## Summary", "", prose.strip() if prose.strip() else digest["task"] or "(no task given)", "", summary, ""]
    out += ["## Changes", "", *changes_section(digest), ""]
    split = split_suggestion(digest, budget)
    if split:
        out += ["## Review in parts", "", *split, ""]
    out += ["## Review history", ""]
    out += review_history(digest) or ["- No review was requested."]
    if digest["findings"]:
        out += ["", "Findings:", *[_finding_line(f) for f in digest["findings"]]]
    out.append("")
    out += ["## Human interventions", ""]
    out += [f"- {h['kind']}{' to ' + ', '.join(h['to']) if h['to'] else ''}{_cite(h['seq'])}"
            f"{': ' + h['text'].splitlines()[0] if h['text'] else ''}" for h in digest["human"]] or ["- None."]
    out += ["", "## How it was verified", ""]
    checks = digest.get("checks", [])
    if checks:
        out += ["Run by pairloop on each review checkpoint, in a clean worktree of it:", ""]
        out += [check_line(c) for c in checks]
        out += ["", "What the agents said they ran:", ""]
    out += [f"- `{v['command']}` — {v['said_by']}{_cite(v['seq'])}" for v in digest["verification"]] or [
        "- The agents named no command they ran."]
    if not verdicts:
        out.append("- No verdict was given.")
    out += spending(digest)
    out += ["", "## Left open", ""]
    out += left_open(digest) or ["- Nothing."]
    out += ["", "## Proof of work", "", *proof_of_work(digest)]
    out += ["", f"<sub>Written by `pairloop summarize` from run {digest['run']}: every statement above comes from "
            "the run's ledger (#n are its message numbers) or from git.</sub>", ""]
    return "\n".join(out)


def plan_sections(digest: dict[str, Any]) -> dict[str, str]:
    """The text of each pairloop-owned section of PLAN.md."""
    steps = []
    for r in digest["rounds"]:
        last = r["verdicts"][-1] if r["verdicts"] else None
        status = _verdict_word(last["kind"]) + f" by the {last['by']}" if last else "awaiting review"
        request = (r["request"].splitlines()[0] if r["request"] else "(no note)").replace("|", "\\|")
        steps.append(f"| {r['round']} | {request} | {status} | `{r['ref']}` |")
    decisions = []
    for r in digest["rounds"]:
        for v in r["verdicts"]:
            text = v["text"].splitlines()[0] if v["text"] else ""
            decisions.append(f"- Round {r['round']}: the {v['by']} {_verdict_word(v['kind'])}{_cite(v['seq'])}: {text}")
    for f in digest["findings"]:
        if f["disputed"]:
            settled = " and " + _settled(f) if f["status"] == "resolved" else ""
            decisions.append(f"- {f['id']} was disputed by the worker{settled}")
    follow_ups = left_open(digest)
    return {
        "goal": f"## Goal\n{digest['task'] or '(no task given)'}",
        "steps": "## Steps\n| # | step | status | checkpoint |\n|---|------|--------|------------|\n"
                 + ("\n".join(steps) if steps else "| – | no review yet | – | – |"),
        "decisions": "## Decisions and why\n" + ("\n".join(decisions) if decisions else "- None recorded."),
        "follow-ups": "## Open follow-ups\n" + ("\n".join(follow_ups) if follow_ups else "- None."),
    }


def _inert(text: str) -> str:
    """Text from the run (a task, a finding) that holds our own markers must not open or close a section: it
    would make each rewrite keep, and repeat, what follows it. Shown the same, parsed as text."""
    return text.replace("<!-- pairloop:", "&lt;!-- pairloop:")


def render_plan(digest: dict[str, Any], template: str, existing: str | None) -> str:
    """PLAN.md: the template filled in, or the existing file with only pairloop's sections replaced (anything
    the user wrote outside them stays; a file without our sections gets them appended)."""
    sections = plan_sections(digest)

    def block(name: str) -> str:
        return f"<!-- pairloop:begin {name} -->\n{_inert(sections[name])}\n<!-- pairloop:end {name} -->"

    if existing is None:
        filled = Template(template).safe_substitute(title=_inert(title(digest)), goal="", steps="", decisions="",
                                                    follow_ups="")
        return SECTION.sub(lambda m: block(m["name"]) if m["name"] in sections else m.group(0), filled)
    present = {m["name"] for m in SECTION.finditer(existing)}
    text = SECTION.sub(lambda m: block(m["name"]) if m["name"] in sections else m.group(0), existing)
    missing = [name for name in sections if name not in present]
    if missing:
        text = text.rstrip("\n") + "\n\n" + "\n\n".join(block(name) for name in missing) + "\n"
    return text
