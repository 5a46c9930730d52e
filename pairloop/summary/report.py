"""`pairloop report`: one self-contained report.html in the run directory, from the ledger, git and the panes'
recordings (nothing else): the verdict and the rounds first, each round's checkpoint with its diff, findings,
verification and both screens as they stood, then the human's part and the whole timeline.

Gathering is here; the page itself is drawn by :mod:`pairloop.summary.report_html` from what this collects."""

from __future__ import annotations

import webbrowser
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bridge import (
    AGENT_ROLES,
    AnyEvent,
    Book,
    Cast,
    HumanTurn,
    InvalidCast,
    Received,
    Relay,
    Round,
    RunState,
    as_dict,
    cast_path,
    events_of,
    git,
    read_cast,
    write_atomic,
)
from pairloop.runs.store import Run
from pairloop.summary import digest as digests
from pairloop.summary import screens as screens_
from pairloop.summary.report_html import render

REPORT = "report.html"
DIFF_MAX_LINES = 3000  # per round: a longer diff is cut, and the page gives the git command for the rest
DIFF_MAX_BYTES = 200_000
DIFF_ALL_BYTES = 2_000_000  # all rounds together: the rounds past it show their git command only


def report_path(run: Run) -> Path:
    return run.dir / REPORT


@dataclass(frozen=True)
class Shot:
    """One pane's screen at one moment, ready for the page (already escaped)."""

    html: str
    width: int
    height: int
    at: float  # unix time, when known (0 otherwise)
    partial: bool = False  # replayed from the recording's last few MB only (see screens.WINDOW)


@dataclass
class RoundFacts:
    number: int
    phase: str
    ref: str
    commit: str
    ts: float
    error: str = ""
    diff: str = ""
    diff_cut: bool = False
    since: str = ""  # what the diff is taken from (the previous checkpoint, or the base)
    screens: dict[str, Shot | None] = field(default_factory=dict)


@dataclass(frozen=True)
class MessageFacts:
    seq: int
    ts: float
    sender: str
    to: tuple[str, ...]
    kind: str
    body: str
    note: str
    states: dict[str, str]
    reasons: dict[str, str]


@dataclass
class ReportFacts:
    digest: dict[str, Any]
    agents: dict[str, str]
    rounds: list[RoundFacts]
    messages: list[MessageFacts]
    human: list[dict[str, Any]]
    verifications: list[dict[str, Any]]
    recordings: dict[str, str]  # role -> what became of its recording ("" when it was replayed)
    final: dict[str, Shot | None]
    started: float
    ended: float


# ---- the ledger ----------------------------------------------------------------------------------------------


def _tag(event: AnyEvent) -> str:
    return str(type(event).__struct_config__.tag)


_VERIFYING: dict[type, bool] = {}  # event type -> whether it is the verifier's (asked once per type, not per event)


def _is_verification(event: AnyEvent) -> bool:
    kind = type(event)
    found = _VERIFYING.get(kind)
    if found is None:
        found = _VERIFYING[kind] = _tag(event).startswith("verif")
    return found


_VERIFY_FIELDS = {
    "command": ("command", "cmd"), "round": ("round",), "ref": ("checkpoint", "ref"),
    "outcome": ("outcome", "result", "state", "status"), "exit": ("exit", "exit_code", "returncode", "exit_status"),
    "duration": ("duration", "duration_s", "seconds", "elapsed"), "log": ("log", "log_path", "log_file"),
    "tail": ("tail", "output_tail"), "by": ("by",), "reason": ("detail", "reason", "note"),
}
_UNFINISHED = {"started", "running", "queued", "pending"}


def verification_of(data: dict[str, Any]) -> dict[str, Any]:
    """A verification event's facts under fixed names, whatever the names it was written with; a field of an
    unexpected type is dropped, never trusted."""
    out: dict[str, Any] = {"ts": data.get("ts", 0.0)}
    for name, keys in _VERIFY_FIELDS.items():
        for key in keys:
            if key in data and data[key] is not None:
                out[name] = data[key]
                break
    if isinstance(out.get("outcome"), bool):
        out["outcome"] = "pass" if out["outcome"] else "fail"
    if "outcome" not in out and isinstance(data.get("passed", data.get("ok")), bool):
        out["outcome"] = "pass" if data.get("passed", data.get("ok")) else "fail"
    if "outcome" not in out and isinstance(out.get("exit"), int):
        out["outcome"] = "pass" if out["exit"] == 0 else "fail"
    if "outcome" not in out and "start" in str(data.get("ev", "")):
        out["outcome"] = "running"
    for name, kinds in (("round", (int,)), ("exit", (int,)), ("duration", (int, float)), ("ts", (int, float))):
        if name in out and (not isinstance(out[name], kinds) or isinstance(out[name], bool)):
            del out[name]
    for name in ("command", "ref", "outcome", "log", "tail", "by", "reason"):
        if name in out:
            value = out[name]
            out[name] = " ".join(map(str, value)) if isinstance(value, list) else str(value)
    return out


def verifications(evs: Sequence[AnyEvent]) -> list[dict[str, Any]]:
    """The verifier's results, in order: for each round and command its last word (a run still going is kept
    only when nothing finished after it)."""
    found: dict[tuple[Any, Any], dict[str, Any]] = {}
    for e in evs:
        if _is_verification(e):
            v = verification_of(as_dict(e))
            key = (v.get("round"), v.get("command"))
            if str(v.get("outcome", "")).lower() in _UNFINISHED and key in found:
                continue
            found.pop(key, None)
            found[key] = v
    return list(found.values())


def _messages(book: Book, received_at: dict[str, float]) -> list[MessageFacts]:
    out = []
    for msg_id in book.order:
        e = book.entries[msg_id]
        m = e.message
        out.append(MessageFacts(e.seq, received_at.get(msg_id, m.created), m.sender, tuple(m.to), m.kind, m.body,
                                e.note, dict(e.deliveries), dict(e.reasons)))
    return out


def _human(evs: Sequence[AnyEvent], book: Book) -> list[dict[str, Any]]:
    """What the human did, in order: messages and verdicts sent, prompts typed into a pane, the relay paused or
    released, the run stopped."""
    out: list[dict[str, Any]] = []
    agreed = any(isinstance(e, RunState) and e.state == "agreed" for e in evs)
    for e in evs:
        if isinstance(e, Received) and e.sender == "human":
            entry = book.entries.get(e.id)
            out.append({"ts": e.ts, "kind": e.kind, "to": list(e.to), "text": e.body, "seq": e.seq,
                        "state": entry.state if entry else ""})
        elif isinstance(e, HumanTurn):
            out.append({"ts": e.ts, "kind": "typed", "to": [e.role], "text": e.text, "seq": None, "state": ""})
        elif isinstance(e, Relay) and e.by == "human":
            out.append({"ts": e.ts, "kind": "paused the relay" if e.state == "paused" else "released the relay",
                        "to": [], "text": e.reason, "seq": None, "state": ""})
        elif isinstance(e, RunState) and e.state == "stopped" and not agreed:
            out.append({"ts": e.ts, "kind": "stopped the run", "to": [], "text": "", "seq": None, "state": ""})
    return out


# ---- git -----------------------------------------------------------------------------------------------------


def _cut(diff: str) -> tuple[str, bool]:
    lines = diff.splitlines()
    if len(lines) <= DIFF_MAX_LINES and len(diff) <= DIFF_MAX_BYTES:
        return diff, False
    kept, size = [], 0
    for line in lines[:DIFF_MAX_LINES]:
        size += len(line) + 1
        if size > DIFF_MAX_BYTES:
            break
        kept.append(line)
    return "\n".join(kept), True


def round_diffs(repo: Path, pairs: Sequence[tuple[str, str]]) -> list[str]:
    """``git diff old new`` for every pair of commits, from one git process. diff-tree --stdin reads "commit
    parent" lines and heads each non-empty diff with the commit; the new ends are all different here (each
    round's own checkpoint), so every part is told apart, and an empty diff is simply absent."""
    if not pairs:
        return []
    out = git(repo, "diff-tree", "--stdin", "-p", "-M", "--no-color", "--no-ext-diff",
              input="".join(f"{new} {old}\n" for old, new in pairs), errors="replace")
    if out.returncode != 0:
        return [""] * len(pairs)
    heads = {new: i for i, (_, new) in enumerate(pairs)}
    parts: list[list[str]] = [[] for _ in pairs]
    current: list[str] | None = None
    for line in out.stdout.splitlines():
        if line in heads:
            current = parts[heads[line]]
        elif current is not None:
            current.append(line)
    return ["\n".join(p) for p in parts]


def _rounds(evs: Sequence[AnyEvent], repo: Path, base: str) -> list[RoundFacts]:
    rounds: dict[int, RoundFacts] = {}
    for e in evs:
        if isinstance(e, Round):
            rounds[e.round] = RoundFacts(e.round, e.phase, e.ref, e.commit, e.ts, e.error)
    ordered = [rounds[n] for n in sorted(rounds)]
    pairs, wanted = [], []
    previous = base
    for r in ordered:
        if r.commit:
            if previous and previous != r.commit:
                pairs.append((previous, r.commit))
                wanted.append(r)
            r.since = previous
            previous = r.commit
    left = DIFF_ALL_BYTES
    for r, diff in zip(wanted, round_diffs(repo, pairs), strict=True):
        r.diff, r.diff_cut = _cut(diff[:left + 1] if len(diff) > left else diff) if left > 0 else ("", True)
        r.diff_cut = r.diff_cut or len(diff) > left
        left -= len(r.diff)
    return ordered


# ---- the recordings --------------------------------------------------------------------------------------------


def _read_cast(run: Run, role: str) -> tuple[Cast | None, str]:
    path = cast_path(run.dir, role)
    if not path.exists():
        return None, "no recording of this pane"
    try:
        return read_cast(path), ""
    except InvalidCast as exc:
        return None, f"the recording cannot be read: {exc.reason}"


def _screens(run: Run, rounds: list[RoundFacts], recordings: dict[str, str],
             final: dict[str, Shot | None]) -> None:
    """Each pane's screen at each checkpoint (the recording's "round N opened" marker, else the checkpoint's
    time on the recording's clock, which is real time), and as the recording ends."""
    for role in AGENT_ROLES:
        cast, problem = _read_cast(run, role)
        recordings[role] = problem
        final[role] = None
        for r in rounds:
            r.screens[role] = None
        if cast is None:
            continue
        start = float(cast.header.timestamp)
        marks = screens_.round_marks(cast, (r.number for r in rounds))
        moments = [marks.get(r.number, r.ts - start if r.ts else -1.0) for r in rounds]
        end = cast.events[-1].time if cast.events else 0.0
        shots = screens_.screens_at(cast, [*moments, end + 1.0])
        for r, shot, t in zip(rounds, shots, moments, strict=False):
            if t >= 0:
                r.screens[role] = Shot(screens_.screen_html(shot), shot.width, shot.height, start + t, shot.partial)
        last = shots[-1]
        final[role] = Shot(screens_.screen_html(last), last.width, last.height, start + end, last.partial)


# ---- the report ------------------------------------------------------------------------------------------------


def gather(run: Run, evs: Sequence[AnyEvent] | None = None, facts: dict[str, Any] | None = None,
           book: Book | None = None) -> ReportFacts:
    """``book``: the ledger's messages as the digest folded them (given with ``facts``), else folded here."""
    events = list(evs) if evs is not None else events_of(run.ledger_path)
    if facts is None or book is None:
        facts, book = digests.folded(run, events)
    digest = facts
    received_at = {e.id: e.ts for e in events if isinstance(e, Received)}
    repo = Path(run.manifest.work_tree)  # a worktree shares its repository's refs
    rounds = _rounds(events, repo, run.manifest.base_commit or "")
    recordings: dict[str, str] = {}
    final: dict[str, Shot | None] = {}
    _screens(run, rounds, recordings, final)
    stamps = [e.ts for e in events if e.ts]
    return ReportFacts(
        digest=digest, agents={role: spec.agent for role, spec in run.manifest.roles.items()}, rounds=rounds,
        messages=_messages(book, received_at), human=_human(events, book), verifications=verifications(events),
        recordings=recordings, final=final, started=min(stamps, default=0.0), ended=max(stamps, default=0.0))


def write_report(run: Run, evs: Sequence[AnyEvent] | None = None, facts: dict[str, Any] | None = None,
                 book: Book | None = None) -> Path:
    """Write report.html (atomically) and return its path. ``evs``, ``facts`` and ``book``: the ledger's events,
    the digest and its folded messages when the caller has them already (the summarizer), so the ledger is read
    and folded once."""
    path = report_path(run)
    write_atomic(path, render(gather(run, evs, facts, book)).encode("utf-8"))
    return path


def open_in_browser(path: Path) -> bool:
    """Show the report in the user's browser; False when none could be started (the file is there anyway)."""
    try:
        return webbrowser.open(path.resolve().as_uri())
    except webbrowser.Error:
        return False
