"""The run report's page, drawn from what :mod:`pairloop.summary.report` gathered. Pure: facts in, HTML out.

One self-contained file: the stylesheet inline, no script, no external asset, and a Content-Security-Policy
that forbids loading anything or running any script, so the page works from file:// and offline. Every piece
of text from the run (task, messages, findings, diffs, screens) goes through :func:`esc`: HTML-escaped, quotes
included, with control characters and bidi overrides shown as visible escapes."""

from __future__ import annotations

import html
import re
import time
from importlib import resources
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pairloop.summary.report import MessageFacts, ReportFacts, RoundFacts, Shot

CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'"
_SHOWN = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069]")
DIFF_OPEN_LINES = 150  # a round's diff up to this long is shown open; a longer one starts folded
BODY_LINES = 6  # a message body longer than this shows its start, the rest folded
TIMELINE_MAX = 2000  # messages in the timeline: a longer run shows its first and last thousand


def shown(text: str) -> str:
    """Control characters and bidi overrides as visible escapes (``\\x1b``, ``\\u202e``); CRLF as LF."""
    text = text.replace("\r\n", "\n")
    return _SHOWN.sub(lambda m: f"\\x{ord(m[0]):02x}" if ord(m[0]) < 0x100 else f"\\u{ord(m[0]):04x}", text)


def esc(text: object) -> str:
    return html.escape(shown(str(text)), quote=True)


def clock(ts: float) -> str:
    return time.strftime("%H:%M:%S", time.gmtime(ts)) if ts else "–"


def when(ts: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(ts)) if ts else "–"


def lasted(seconds: float) -> str:
    total = max(0, round(seconds))
    h, rest = divmod(total, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h {m:02d}m" if h else f"{m}m {s:02d}s" if m else f"{s}s"


def _stylesheet() -> str:
    return resources.files("pairloop.summary").joinpath("report.css").read_text(encoding="utf-8")


def who(role: str) -> str:
    """A role as a coloured tag (the role names are the ledger's validated ones; anything else is escaped)."""
    cls = role if role in ("worker", "reviewer", "human", "pairloop") else "other"
    return f'<span class="who {cls}">{esc(role)}</span>'


def badge(text: str, tone: str) -> str:
    return f'<span class="badge {tone}">{esc(text)}</span>'


_STATE_TONE = {"delivered": "good", "queued": "warn", "delivering": "warn", "failed": "bad", "suppressed": "muted"}


def _finding_end(f: dict[str, Any]) -> tuple[str, str]:
    """How a finding ended, in words, and its tone."""
    if f["status"] == "fixed":
        where = "; ".join(f.get("fixed_in_commits") or []) or f"the round {f.get('fixed_in_round')} checkpoint"
        if not f.get("fix_reviewed", True):
            return f"the worker says fixed in round {f.get('fixed_in_round')} ({where}), not reviewed yet", "warn"
        return f"fixed in round {f.get('fixed_in_round')} ({where})", "good"
    if f["status"] == "resolved":
        by = f"the {f['settled_by']}'s approval" if f.get("settled_by") else "the approval"
        seq = f" (#{f['settled_seq']})" if f.get("settled_seq") else ""
        return f"settled by {by}{seq}" + (" after being disputed" if f.get("disputed") else ""), "good"
    if f["status"] == "disputed":
        return "disputed by the worker, not settled", "warn"
    return "left open", "bad"


def _body(text: str, cls: str = "body") -> str:
    lines = shown(text.strip()).split("\n")
    if len(lines) <= BODY_LINES:
        return f'<div class="{cls}">{html.escape(chr(10).join(lines), quote=True)}</div>'
    head, rest = "\n".join(lines[:BODY_LINES]), "\n".join(lines[BODY_LINES:])
    return (f'<div class="{cls}">{html.escape(head, quote=True)}<details class="more"><summary>'
            f'{len(lines) - BODY_LINES} more line(s)</summary>{html.escape(rest, quote=True)}</details></div>')


# ---- the top: verdict, numbers, rounds at a glance -------------------------------------------------------------


def _verdict(facts: ReportFacts) -> str:
    d = facts.digest
    rounds = len(d["rounds"])
    open_ = len(d["open"])
    if d["state"] == "agreed":
        approvals = [v for r in d["rounds"] for v in r["verdicts"] if v["kind"] == "approve"]
        by = f", approved by the {approvals[-1]['by']}" if approvals else ""
        head, tone = "Agreed", "good"
        line = f"The worker and the reviewer agreed the work is done after {rounds} review round(s){by}."
    elif d["state"] == "stopped":
        head, tone = "Stopped", "bad"
        line = f"The run was stopped before the pair agreed, after {rounds} review round(s)."
    else:
        head, tone = "Not agreed yet", "warn"
        line = f"The pair has not agreed yet: {rounds} review round(s) so far."
    if d.get("paused"):
        line += f" The relay is paused: {d['paused']}."
    if open_:
        line += f" {open_} finding(s) left open."
    return f'<div class="verdict {tone}"><div class="big">{esc(head)}</div><div>{esc(line)}</div></div>'


def _numbers(facts: ReportFacts) -> str:
    d = facts.digest
    findings = d["findings"]
    settled = sum(1 for f in findings if f["status"] in ("fixed", "resolved"))
    diff = d["diff"]
    items = [
        ("rounds", str(len(d["rounds"]))), ("messages", str(d["messages"])),
        ("findings", f"{settled}/{len(findings)} settled" if findings else "none"),
        ("changed", f"{len(diff['files'])} file(s) +{diff['insertions']} −{diff['deletions']}"),
        ("commits", str(len(d["commits"]))),
        ("lasted", lasted(facts.ended - facts.started) if facts.started else "–"),
    ]
    verified = [v for v in facts.verifications if v.get("outcome")]
    if verified:
        passed = sum(1 for v in verified if str(v["outcome"]).lower() in ("pass", "passed", "ok", "success"))
        items.append(("verification", f"{passed}/{len(verified)} passed"))
    items += _spending(d)
    return '<div class="numbers">' + "".join(
        f'<div class="num"><div class="n">{esc(value)}</div><div class="l">{esc(label)}</div></div>'
        for label, value in items) + "</div>"


def _spending(d: dict[str, Any]) -> list[tuple[str, str]]:
    """Tokens from the agents' own records (the run, each agent, the budget) and the usage limits they hit, as
    the digest has them; nothing when the agents reported none."""
    tokens = d.get("tokens") or {}
    roles: dict[str, Any] = tokens.get("roles") or {}
    items = []
    if roles:
        each = " · ".join(f"{role} {t['total']:,}" for role, t in roles.items())
        budget = f" · budget {tokens['max_tokens']:,}" if tokens.get("max_tokens") else ""
        items.append((f"tokens ({each}{budget})", f"{tokens['total']['total']:,}"))
    limits = d.get("usage_limits") or []
    if limits:
        last = limits[-1]
        items.append((f"usage limits (last: the {last['role']}, {last['reason']})", str(len(limits))))
    return items


def _last_verdict(r: dict[str, Any]) -> str:
    if not r["verdicts"]:
        return badge("no verdict", "muted")
    v = r["verdicts"][-1]
    word = "approved" if v["kind"] == "approve" else "changes asked"
    return badge(f"{word} by the {v['by']}", "good" if v["kind"] == "approve" else "warn")


def _overview(facts: ReportFacts) -> str:
    d = facts.digest
    if not d["rounds"]:
        return '<p class="muted">No review was requested.</p>'
    raised: dict[int, int] = {}
    for f in d["findings"]:
        raised[f["round"]] = raised.get(f["round"], 0) + 1
    checks = _checks_by_round(facts)
    rows = []
    for r in d["rounds"]:
        request = r["request"].splitlines()[0] if r["request"] else "(no note)"
        vs = checks.get(r["round"], [])
        check = " ".join(_check_badge(v) for v in vs) if vs else '<span class="muted">–</span>'
        flag = ' <span class="muted">(unchanged)</span>' if r["unchanged"] else ""
        rows.append(
            f'<tr><td><a href="#round-{int(r["round"])}">Round {int(r["round"])}</a></td><td>{esc(r["phase"])}</td>'
            f'<td class="req">{esc(request)}{flag}</td><td>{_last_verdict(r)}</td>'
            f'<td class="c">{raised.get(r["round"], 0) or "–"}</td><td>{check}</td>'
            f'<td><code>{esc(r["commit"][:7])}</code></td></tr>')
    return ('<table class="overview"><thead><tr><th>round</th><th>phase</th><th>the worker asked</th>'
            '<th>verdict</th><th>findings</th><th>verification</th><th>checkpoint</th></tr></thead><tbody>'
            + "".join(rows) + "</tbody></table>")


# ---- findings and verification ---------------------------------------------------------------------------------


def _findings(findings: list[dict[str, Any]]) -> str:
    if not findings:
        return '<p class="muted">The reviewer raised no findings.</p>'
    rows = []
    for f in findings:
        end, tone = _finding_end(f)
        rows.append(f'<tr class="finding"><td><b>{esc(f["id"])}</b></td><td>{esc(f["text"])}</td>'
                    f'<td>{who(f["by"])} <span class="muted">round {int(f["round"])}</span></td>'
                    f'<td>{badge(f["status"], tone)} {esc(end)}</td></tr>')
    return ('<table class="findings"><thead><tr><th>id</th><th>finding</th><th>raised by</th><th>how it ended</th>'
            "</tr></thead><tbody>" + "".join(rows) + "</tbody></table>")


def _passed(v: dict[str, Any]) -> bool | None:
    outcome = str(v.get("outcome", "")).lower()
    if outcome in ("pass", "passed", "ok", "success", "succeeded"):
        return True
    if outcome in ("fail", "failed", "failure", "error", "timeout", "timed out", "timed-out"):
        return False
    return None


def _check_badge(v: dict[str, Any]) -> str:
    ok = _passed(v)
    label = str(v.get("outcome") or "?")
    return badge(label, "good" if ok else "bad" if ok is False else "muted")


def _checks_by_round(facts: ReportFacts) -> dict[int, list[dict[str, Any]]]:
    out: dict[int, list[dict[str, Any]]] = {}
    for v in facts.verifications:
        if isinstance(v.get("round"), int):
            out.setdefault(v["round"], []).append(v)
    return out


def _check(v: dict[str, Any]) -> str:
    bits = []
    if "exit" in v:
        bits.append(f"exit {v['exit']}")
    if "duration" in v:
        bits.append(f"{float(v['duration']):.1f} s")
    if v.get("ref"):
        bits.append(f"on {v['ref']}")
    if v.get("log"):
        bits.append(f"log: {v['log']}")
    if v.get("by"):
        bits.append(f"by the {v['by']}")
    tail = f'<pre class="tail">{esc(v["tail"])}</pre>' if v.get("tail") else ""
    reason = f' <span class="muted">{esc(v["reason"])}</span>' if v.get("reason") else ""
    where = f"round {int(v['round'])}: " if isinstance(v.get("round"), int) else ""
    return (f'<div class="check">{_check_badge(v)} {esc(where)}<code>{esc(v.get("command", "(command)"))}</code> '
            f'<span class="muted">{esc(" · ".join(bits))}</span>{reason}{tail}</div>')


def _verification(facts: ReportFacts) -> str:
    said = facts.digest["verification"]
    out = []
    if facts.verifications:
        out.append('<h3>Run by the bridge on each checkpoint</h3>' + "".join(_check(v) for v in facts.verifications))
    else:
        out.append('<p class="muted">No verification command ran on the checkpoints.</p>')
    if said:
        out.append('<h3>What the agents said they ran</h3><ul class="said">' + "".join(
            f'<li><code>{esc(v["command"])}</code> — {who(v["said_by"])} <span class="muted">#{int(v["seq"])}</span>'
            "</li>" for v in said) + "</ul>")
    return "".join(out)


# ---- rounds --------------------------------------------------------------------------------------------------------


def diff_stat(diff: str) -> tuple[int, int, int]:
    files = added = deleted = 0
    for line in diff.split("\n"):
        if line.startswith("diff --git "):
            files += 1
        elif line.startswith("+") and not line.startswith("+++ "):
            added += 1
        elif line.startswith("-") and not line.startswith("--- "):
            deleted += 1
    return files, added, deleted


def diff_html(diff: str) -> str:
    out = []
    for line in diff.split("\n"):
        if line.startswith("diff --git "):
            cls = "fh"
        elif line.startswith(("+++ ", "--- ", "index ", "new file", "deleted file", "similarity", "rename ",
                              "old mode", "new mode", "Binary files")):
            cls = "mh"
        elif line.startswith("@@"):
            cls = "hk"
        elif line.startswith("+"):
            cls = "ad"
        elif line.startswith("-"):
            cls = "dl"
        else:
            cls = ""
        text = esc(line)
        out.append(f'<span class="{cls}">{text}</span>' if cls else text)
    return "\n".join(out)


def _diff(r: RoundFacts, previous: str) -> str:
    if r.error:
        return f'<p class="bad-text">No checkpoint: {esc(r.error)}</p>'
    if not r.commit:
        return ""
    command = f"git diff {r.since[:10]} {r.ref or r.commit[:10]}" if r.since else ""
    if not r.diff and r.diff_cut:
        return (f'<p class="muted">The diff since {esc(previous)} is left out (the report holds enough diff '
                f'already): <code>{esc(command)}</code></p>')
    if not r.diff:
        return f'<p class="muted">No change since {esc(previous)}.</p>'
    files, added, deleted = diff_stat(r.diff)
    cut = (f'<p class="muted">The diff is cut here; all of it: <code>{esc(command)}</code></p>' if r.diff_cut else "")
    opened = " open" if r.diff.count("\n") < DIFF_OPEN_LINES else ""
    return (f'<details class="diff"{opened}><summary>Diff since {esc(previous)}: {files} file(s), '
            f'<span class="plus">+{added}</span> <span class="minus">−{deleted}</span> '
            f'<code class="muted">{esc(command)}</code></summary><pre class="code">{diff_html(r.diff)}</pre>{cut}'
            "</details>")


def _shot(role: str, agent: str, shot: Shot | None, caption: str, problem: str) -> str:
    head = f'<figcaption>{who(role)} <span class="agent">{esc(agent)}</span> {esc(caption)}</figcaption>'
    if shot is None:
        why = problem or "the recording has nothing yet at that moment"
        return f'<figure class="pane">{head}<div class="noscreen">{esc(why)}</div></figure>'
    # --cols lets the stylesheet size the font so that the pane's whole width fits its half of the page.
    return (f'<figure class="pane">{head}<pre class="term" style="--cols:{int(shot.width)}" '
            f'data-rows="{int(shot.height)}">{shot.html}</pre></figure>')


def _screens(facts: ReportFacts, shots: dict[str, Shot | None], when_: str) -> str:
    figures = []
    for role in ("worker", "reviewer"):
        shot = shots.get(role)
        caption = f"{when_} ({clock(shot.at)} UTC)" if shot is not None and shot.at else when_
        if shot is not None and shot.partial:
            caption += " — replayed from the recording's last few MB only: older lines may be missing"
        figures.append(_shot(role, facts.agents.get(role, ""), shot, caption, facts.recordings.get(role, "")))
    return f'<div class="screens">{"".join(figures)}</div>'


def _verdict_block(v: dict[str, Any]) -> str:
    word = "approved" if v["kind"] == "approve" else "asked for changes"
    seq = f' <span class="muted">#{int(v["seq"])}</span>' if v.get("seq") else ""
    return (f'<div class="msg {"approve" if v["kind"] == "approve" else "changes"}"><div class="mh2">{who(v["by"])} '
            f'{badge(word, "good" if v["kind"] == "approve" else "warn")}{seq}</div>{_body(v["text"])}</div>')


def _round(facts: ReportFacts, r: dict[str, Any], rf: RoundFacts | None, previous: str) -> str:
    n = int(r["round"])
    ts = f' <span class="muted">{esc(clock(rf.ts))} UTC</span>' if rf and rf.ts else ""
    ref = f'<code>{esc(r["ref"])}</code> <span class="muted">({esc(r["commit"][:10])})</span>' if r["ref"] else ""
    parts = [f'<section class="round" id="round-{n}"><h2>Round {n} <span class="phase">{esc(r["phase"])}</span>'
             f" {_last_verdict(r)}{ts}</h2>"]
    if ref:
        parts.append(f'<div class="ref">checkpoint {ref}'
                     + (' <span class="muted">— nothing changed since the previous round</span>'
                        if r["unchanged"] else "") + "</div>")
    if r["request"]:
        seq = f' <span class="muted">#{int(r["request_seq"])}</span>' if r.get("request_seq") else ""
        parts.append(f'<div class="msg review"><div class="mh2">{who("worker")} {badge("review", "muted")}{seq}</div>'
                     f'{_body(r["request"])}</div>')
    claimed = [f for f in facts.digest["findings"] if f.get("fixed_in_round") == n]
    if claimed:
        parts.append('<div class="claims">Fixes claimed in this round: ' + ", ".join(
            f"<b>{esc(f['id'])}</b>" for f in claimed) + "</div>")
    for v in _checks_by_round(facts).get(n, []):
        parts.append(_check(v))
    parts += [_verdict_block(v) for v in r["verdicts"]]
    raised = [f for f in facts.digest["findings"] if f["round"] == n]
    if raised:
        items = []
        for f in raised:
            end, tone = _finding_end(f)
            items.append(f'<li><b>{esc(f["id"])}</b> {esc(f["text"])} — {badge(f["status"], tone)} {esc(end)}</li>')
        parts.append(f'<div class="raised"><h3>Findings raised</h3><ul>{"".join(items)}</ul></div>')
    if rf is not None:
        parts.append(_diff(rf, previous))
        parts.append(_screens(facts, rf.screens, f"at the round {n} checkpoint"))
    parts.append("</section>")
    return "".join(parts)


# ---- the human, the timeline ---------------------------------------------------------------------------------------


def _human(facts: ReportFacts) -> str:
    if not facts.human:
        return '<p class="muted">The human did not step in.</p>'
    rows = []
    for h in facts.human:
        to = " → " + " ".join(who(t) for t in h["to"]) if h["to"] else ""
        seq = f' <span class="muted">#{int(h["seq"])}</span>' if h.get("seq") else ""
        state = f' {badge(h["state"], _STATE_TONE.get(h["state"], "muted"))}' if h.get("state") else ""
        text = _body(h["text"]) if h["text"] else ""
        rows.append(f'<div class="msg human"><div class="mh2"><span class="muted">{esc(clock(h["ts"]))}</span> '
                    f'{who("human")} <b>{esc(h["kind"])}</b>{to}{seq}{state}</div>{text}</div>')
    return "".join(rows)


def _states(m: MessageFacts) -> str:
    out = []
    for recipient in m.to:
        state = m.states.get(recipient, "")
        reason = m.reasons.get(recipient, "") if state != "delivered" else ""
        title = f' title="{esc(reason)}"' if reason else ""
        word = state or "not picked up"
        tone = _STATE_TONE.get(state, "muted")
        out.append(f'<span class="st"{title}>{who(recipient)} <span class="badge {tone}">{esc(word)}</span>'
                   + (f' <span class="muted">{esc(reason)}</span>' if reason else "") + "</span>")
    return "<br>".join(out)


def _timeline(facts: ReportFacts) -> str:
    if not facts.messages:
        return '<p class="muted">No messages.</p>'
    rows = []
    messages: list[MessageFacts | None] = list(facts.messages)
    gap = len(messages) - TIMELINE_MAX
    if gap > 0:  # a page that still opens quickly: the start and the end of a long run
        half = TIMELINE_MAX // 2
        messages = [*messages[:half], None, *messages[-half:]]
    for m in messages:
        if m is None:
            rows.append(f'<tr class="gap"><td colspan="6">… {gap} more messages: <code>pairloop log --run '
                        f'{esc(facts.digest["run"])}</code></td></tr>')
            continue
        cls = "notice" if m.sender == "pairloop" else ""
        rows.append(f'<tr class="{cls}"><td class="c">#{int(m.seq)}</td><td>{esc(clock(m.ts))}</td>'
                    f"<td>{who(m.sender)}</td><td>{badge(m.kind, 'kind')}</td><td>{_states(m)}</td>"
                    f'<td>{_body(m.body)}{_body(m.note, "note") if m.note else ""}</td></tr>')
    return ('<table class="timeline"><thead><tr><th>#</th><th>time (UTC)</th><th>from</th><th>kind</th>'
            '<th>to · state</th><th>message</th></tr></thead><tbody>' + "".join(rows) + "</tbody></table>")


# ---- the page --------------------------------------------------------------------------------------------------------


def render(facts: ReportFacts) -> str:
    d = facts.digest
    first = d["task"].splitlines()[0].strip() if d["task"] else f"pairloop run {d['run']}"
    by_number = {r.number: r for r in facts.rounds}
    rounds_html = []
    previous = "the base commit"
    for r in d["rounds"]:
        rounds_html.append(_round(facts, r, by_number.get(int(r["round"])), previous))
        previous = f"round {int(r['round'])}"
    agents = " · ".join(f"{who(role)} {esc(agent)}" for role, agent in facts.agents.items())
    nav = "".join(f'<a href="#{a}">{esc(label)}</a>' for a, label in (
        ("rounds", "Rounds"), ("findings", "Findings"), ("verification", "Verification"), ("human", "Human"),
        ("timeline", "Timeline"), ("screens", "Screens")))
    return "".join([
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{esc(first)} — pairloop report</title><style>{_stylesheet()}</style></head><body>",
        f'<header><div class="brand">pairloop run report</div><h1>{esc(first)}</h1>',
        f'<div class="meta">run <code>{esc(d["run"])}</code> · {agents} · {esc(when(facts.started))}'
        f" · {d['messages']} messages</div><nav>{nav}</nav></header><main>",
        _verdict(facts), _numbers(facts),
        '<section id="rounds"><h2>Rounds at a glance</h2>', _overview(facts), "</section>",
        '<section id="task"><h2>The task</h2>', f'<pre class="task">{esc(d["task"] or "(no task given)")}</pre>',
        "</section>",
        '<section id="findings"><h2>Findings</h2>', _findings(d["findings"]), "</section>",
        *rounds_html,
        '<section id="verification"><h2>Verification</h2>', _verification(facts), "</section>",
        '<section id="human"><h2>The human’s turns and verdicts</h2>', _human(facts), "</section>",
        '<section id="timeline"><h2>Timeline of the messages</h2>', _timeline(facts), "</section>",
        '<section id="screens"><h2>The panes as the recordings end</h2>',
        _screens(facts, facts.final, "as the recording ends"), "</section>",
        f'</main><footer>Made by <code>pairloop report</code> from the run’s ledger, git and the panes’ '
        f'recordings. Replay a pane: <code>pairloop replay --run {esc(d["run"])} --role worker</code> '
        f'(or <code>--role reviewer</code>, <code>--from-round N</code>).</footer></body></html>\n',
    ])
