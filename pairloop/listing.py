"""What `pairloop ls` shows: every run of this user on this machine, whatever repository it belongs to.

The registry is the state root's ``runs/`` folder itself: each run's directory holds its run.json, so there is
no second list to fall out of step with it. A folder there that is not a readable run is listed as damaged,
with the reason, and never hides the others."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bridge import Tmux, TmuxMissing, TmuxStuck, inert
from pairloop.errors import NoSuchRun
from pairloop.runs.store import AGREED, STOPPED, Run, load_run, runs_dir
from pairloop.views import run_status

DAMAGED = "damaged"
TMUX_TIMEOUT = 2.0  # seconds a tmux call of `ls` may take: a stuck server (stopped, swapped out) never hangs it


@dataclass(frozen=True)
class Entry:
    """One folder of the registry: a run, or why it is not one."""

    dir: Path
    run: Run | None
    damage: str = ""


def registry() -> list[Entry]:
    """Every folder under the state root's runs/, newest first (run ids start with their start time)."""
    folder = runs_dir()
    try:
        children = sorted((c for c in folder.iterdir() if c.is_dir()), reverse=True)
    except OSError:
        return []
    out = []
    for child in children:
        try:
            out.append(Entry(child, load_run(child)))
        except NoSuchRun as exc:
            out.append(Entry(child, None, str(exc)))
    return out


def needs_human(status: dict[str, Any]) -> list[str]:
    """Why this run waits for the human, if it does: what `ls` flags."""
    why = []
    state = status["state"]
    if state == AGREED:
        why.append("agreed: read the PR notes, then `pairloop pr`")
    if status["relay"]["paused"]:
        why.append(f"relay paused: {status['relay']['reason']}")
    if state not in (STOPPED, AGREED) and not status["session_alive"]:
        why.append("session gone: `pairloop resume`")
    elif status["session_alive"] and status["bridge"] != "running":
        why.append("bridge not running")
    for role, agent in status["agents"].items():
        if agent["state"] in ("dialog", "exited"):
            why.append(f"{role} {agent['state']}" + (f" ({agent['detail']})" if agent.get("detail") else ""))
        if agent["failed"]:
            why.append(f"{agent['failed']} message(s) to the {role} failed")
    if status.get("problem"):
        why.append(f"disk: {status['problem']}")
    return why


def ls_record(entry: Entry) -> dict[str, Any]:
    """One run as `ls --json` shows it; a damaged folder as its id, its folder and the reason."""
    if entry.run is None:
        return {"id": entry.dir.name, "dir": str(entry.dir), "state": DAMAGED, "reason": entry.damage}
    run = entry.run
    m = run.manifest
    tmux: Tmux | None = None
    stuck = ""
    if not run.stopped:
        with contextlib.suppress(TmuxMissing):
            tmux = Tmux(socket_path=run.socket_path, timeout=TMUX_TIMEOUT)
    if tmux is not None:
        try:
            tmux.run("has-session", "-t", f"={run.session}")
        except TmuxStuck as exc:  # asked once: its other calls would wait as long, so it is not asked again
            tmux, stuck = None, str(exc)
        except Exception:  # no server, no session: run_status says so
            pass
    try:
        status = run_status(run, tmux)
    except Exception as exc:  # one run's damage never hides the others
        return {"id": run.id, "dir": str(run.dir), "repo": m.repo, "state": DAMAGED,
                "reason": f"{type(exc).__name__}: {exc}"}
    why = needs_human(status)
    if stuck:
        why = [w for w in why if not w.startswith("session gone")] + [stuck]
    return {
        "id": run.id, "dir": str(run.dir), "repo": m.repo, "workdir": m.work_tree, "branch": _branch(run),
        "session": run.session, "state": status["state"], "session_alive": status["session_alive"],
        "bridge": status["bridge"], "phase": status["phase"], "round": status["round"],
        "agents": {role: {"agent": a["agent"], "state": a["state"]} for role, a in status["agents"].items()},
        "needs_human": bool(why), "why": why, "task": m.task,
    }


def _branch(run: Run) -> str:
    """The run's own branch, else the branch its repository is on (read from .git, not by running git)."""
    if run.manifest.branch:
        return run.manifest.branch
    try:
        head = (Path(run.manifest.repo) / ".git" / "HEAD").read_text().strip()
    except OSError:
        return ""
    return head.removeprefix("ref: refs/heads/") if head.startswith("ref: ") else head[:12]


def listing(show_all: bool) -> list[dict[str, Any]]:
    """`ls`: the live runs (not stopped), newest first; with ``show_all`` the stopped ones too. Damaged folders
    are always listed: they need someone to look."""
    return [ls_record(e) for e in registry() if show_all or e.run is None or not e.run.stopped]


def ls_lines(records: list[dict[str, Any]]) -> list[str]:
    """The text form: one line per run, then its task and what it needs from the human."""
    lines = []
    for r in records:
        if r["state"] == DAMAGED:
            lines.append(f"{r['id']}  DAMAGED  {inert(r['reason'])}")
            continue
        agents = " ".join(f"{role}={inert(a['agent'])}:{a['state']}" for role, a in r["agents"].items())
        flag = "  NEEDS YOU" if r["needs_human"] else ""
        lines.append(f"{r['id']}  {r['state']}  {inert(r['repo'])}  [{inert(r['branch'] or '-')}]  "
                     f"round {r['round']} ({r['phase']})  {agents}{flag}")
        if r["workdir"] != r["repo"]:
            gone = "" if Path(r["workdir"]).is_dir() else " (removed)"
            lines.append(f"    worktree {inert(r['workdir'])}{gone}")
        if r["task"]:
            lines.append(f"    task: {inert(r['task'].splitlines()[0][:100])}")
        lines += [f"    needs you: {inert(why)}" for why in r["why"]]
    return lines
