"""Start, watch and stop a run. Every function takes the tmux server it works on."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bridge.panes.screen import EXITED, STARTING
from bridge.panes.tmux import Tmux, TmuxError
from bridge.rundir.ledger import append_once
from bridge.rundir.manifest import targets, write_manifest
from bridge.rundir.message import Message, new_message_id, post, write_atomic
from pairloop.agents.briefs import render_brief
from pairloop.agents.profiles import TRUST_DIALOG, AgentProfile, LaunchContext, profile
from pairloop.errors import MissingTool, PairloopError
from pairloop.runs.config import agent_settings, read_config
from pairloop.runs.store import RUNNING, STOPPED, Run, base_commit, create_run_dir, git, load_run, slug
from pairloop.runs.workspace import launch, open_workspace
from pairloop.summary.plan import template_text

ROLES = ("worker", "reviewer")


def _bin_dir() -> str:
    """Where this pairloop's console scripts live, so `pairloop send` works inside the panes."""
    return str(Path(sys.executable).parent)


def agent_env(base: dict[str, str], run_dir: Path, role: str, prof: AgentProfile) -> dict[str, str]:
    env = {**base, **prof.env, "PAIRLOOP_RUN_DIR": str(run_dir), "PAIRLOOP_ROLE": role}
    path = env.get("PATH", os.defpath)
    if _bin_dir() not in path.split(os.pathsep):
        env["PATH"] = _bin_dir() + os.pathsep + path
    return env


@dataclass(frozen=True)
class StartOptions:
    worker: str = "claude"
    reviewer: str = "codex"
    models: dict[str, str] = field(default_factory=dict)  # role -> model
    extra_args: dict[str, tuple[str, ...]] = field(default_factory=dict)  # role -> arguments
    yolo: bool = False  # each agent's own permission-bypass flag, only when the user asks for it
    trust: bool = False  # answer the agents' trust-this-folder dialogs on the user's behalf
    plan: bool = False  # plan phase first: PLAN.md written and approved before any code
    mirror: bool = True  # what the human tells one agent reaches the other as context
    max_rounds: int = 6
    max_messages: int = 200


def start_run(tmux: Tmux, repo: Path, task: str, options: StartOptions,
              env: dict[str, str] | None = None) -> Run:
    """Create the run directory and manifest, open the workspace, start both agents and the bridge, and
    queue the task as the worker's first prompt (the bridge delivers it once the worker is ready)."""
    env = dict(os.environ) if env is None else env
    if git(repo, "rev-parse", "--git-dir").returncode != 0:
        raise PairloopError(f"{repo} is not a git repository (pairloop reviews commits: run `git init` first)")
    config = read_config(repo)
    agents = {"worker": options.worker, "reviewer": options.reviewer}
    settings = {role: agent_settings(config, agents[role], env) for role in ROLES}
    profiles = {role: profile(agents[role], settings[role]) for role in ROLES}
    for prof in profiles.values():
        prof.check_installed()
    run_id, run_dir = create_run_dir(repo)
    session = f"pairloop-{slug(repo.name)}-{run_id}"
    yolo = " · YOLO: permission checks off" if options.yolo else ""
    titles = {role: f"{role} · {profiles[role].name}{yolo}" for role in ROLES} | {"bridge": "bridge"}
    panes = open_workspace(tmux, session, repo, titles)
    try:
        contexts = {}
        template = run_dir / "PLAN.template.md"
        template.write_text(template_text(), encoding="utf-8")
        for role in ROLES:
            partner = profiles["reviewer" if role == "worker" else "worker"].name
            brief = render_brief(role, task, partner, str(template))
            brief_file = run_dir / f"brief-{role}.md"
            brief_file.write_text(brief, encoding="utf-8")
            model = options.models.get(role) or settings[role].get("model")
            contexts[role] = LaunchContext(run_dir, role, brief, brief_file, str(model) if model else None,
                                           (*settings[role].get("args", []), *options.extra_args.get(role, ())),
                                           options.yolo)
        argvs = {role: profiles[role].argv(contexts[role]) for role in ROLES}
        manifest: dict[str, Any] = {
            "version": 1, "id": run_id, "task": task, "repo": str(repo), "base_commit": base_commit(repo),
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "state": RUNNING, "yolo": options.yolo,
            "tmux": {"socket_path": tmux.socket_path(), "session": session},
            "bridge_pane": panes.bridge,
            # What the bridge runs once the pair agrees: the summary, written without anyone asking.
            "on_agreement": [sys.executable, "-m", "pairloop", "summarize", "--run", run_id, "--quiet"],
            "protocol": {"plan": options.plan, "mirror": options.mirror,
                         "limits": {"max_rounds": options.max_rounds, "max_messages": options.max_messages}},
            "roles": {role: role_spec(profiles[role], panes.by_role()[role], contexts[role], argvs[role],
                                      options.trust) for role in ROLES},
        }
        write_manifest(run_dir, manifest)
        if task.strip():
            post(run_dir / "outbox", Message(new_message_id(), "human", ("worker",), task, "task"))
        launch(tmux, panes.bridge, [sys.executable, "-m", "bridge", str(run_dir)])
        for role in ROLES:
            spec = {"argv": argvs[role], "cwd": str(repo), "env": agent_env(env, run_dir, role, profiles[role])}
            spec_path = run_dir / "launch" / f"{role}.json"
            fd = os.open(spec_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as f:
                json.dump(spec, f)
            launch(tmux, panes.by_role()[role], [sys.executable, "-m", "pairloop.runs.launch", str(run_dir), role])
    except BaseException:
        tmux.kill_session(session)
        raise
    return load_run(run_dir)


def role_spec(prof: AgentProfile, pane: str, ctx: LaunchContext, argv: list[str], trust: bool) -> dict[str, Any]:
    """What run.json says of one role: everything the bridge needs, and what to resume it with later."""
    return {
        "agent": prof.name, "pane": pane, "submit_key": prof.submit_key, "screen": prof.rules.to_json(),
        "turn_hooks": prof.turn_hooks,
        "answers": {TRUST_DIALOG: {"keys": list(prof.trust_keys), "choose": prof.trust_choice}}
        if trust and (prof.trust_keys or prof.trust_choice) else {},
        "session_id": ctx.session_id if prof.sets_session_id else None,
        "model": ctx.model, "command": argv[0],
    }


def wait_until_running(tmux: Tmux, run: Run, timeout: float = 30.0) -> dict[str, str]:
    """Poll until the bridge runs and both agent screens show they are up (ready, busy or a dialog);
    fail if an agent exits."""
    from bridge.panes.delivery import read_target

    deadline = time.monotonic() + timeout
    states: dict[str, str] = {}
    while True:
        for role, target in targets(run.manifest).items():
            reading = read_target(tmux, target)
            states[role] = reading.state
            if reading.state == EXITED:
                raise PairloopError(f"the {role} ({target.agent}) exited at start: {reading.detail}; "
                                    f"see its pane with `tmux -S {run.socket_path} attach -t ={run.session}`")
        if all(s != STARTING for s in states.values()) and bridge_running(run):
            return states
        if time.monotonic() > deadline:
            waiting = ", ".join([r for r, s in states.items() if s == STARTING] or ["bridge"])
            raise PairloopError(f"timed out after {timeout:.0f}s waiting for the {waiting} to start")
        time.sleep(0.05)


def send_message(run: Run, sender: str, to: tuple[str, ...], body: str, kind: str = "message",
                 fixed: tuple[str, ...] = (), disputed: tuple[str, ...] = ()) -> Message:
    if run.stopped:
        raise PairloopError(f"run {run.id} is stopped; start a new one with `pairloop start`")
    message = Message(new_message_id(), sender, to, body, kind, fixed=fixed, disputed=disputed)
    Message.from_json(message.to_json())  # the same validation the bridge applies
    post(run.dir / "outbox", message)
    return message


def request_control(run: Run, action: str) -> None:
    """Ask the bridge to pause or unpause the relay: a file in control/, like everything else."""
    if run.stopped:
        raise PairloopError(f"run {run.id} is stopped")
    folder = run.dir / "control"
    folder.mkdir(exist_ok=True, mode=0o700)
    write_atomic(folder / f"{new_message_id()}-{action}.json", json.dumps({"action": action}).encode())


def bridge_running(run: Run) -> bool:
    """The bridge holds an exclusive lock on bridge.lock for as long as it runs."""
    path = run.dir / "bridge.lock"
    if not path.exists():
        return False
    fd = os.open(path, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def stop_run(tmux: Tmux, run: Run, timeout: float = 10.0) -> bool:
    """Mark the run stopped, close its session (the bridge exits on the hangup) and wait for the bridge.
    Returns False when the run was already stopped."""
    if run.stopped:
        return False
    append_once(run.ledger_path, {"ev": "run", "state": STOPPED, "by": "human"})
    run.mark(STOPPED)
    pids: list[int] = []
    try:
        if tmux.has_session(run.session):
            pids = tmux.pane_pids(run.session)
            tmux.kill_session(run.session)
    except TmuxError:
        pass
    deadline = time.monotonic() + timeout
    while bridge_running(run) and time.monotonic() < deadline:
        time.sleep(0.05)
    end_panes(pids)
    wait_for_summary(run, timeout=30.0)
    return True


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return False  # no longer ours
    try:  # a zombie waiting for tmux to reap it is gone for our purposes
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def end_panes(pids: list[int], grace: float = 3.0) -> None:
    """Closing the session hangs up every pane; an agent that ignores the hangup (a TUI busy starting up)
    gets SIGTERM, then SIGKILL: each pane's process group, which pairloop started, and nothing else."""
    for sig in (None, signal.SIGTERM, signal.SIGKILL):
        if sig is not None:
            for pid in pids:
                if _alive(pid):
                    with contextlib.suppress(OSError):
                        os.killpg(pid, sig)
        deadline = time.monotonic() + grace
        while any(_alive(p) for p in pids) and time.monotonic() < deadline:
            time.sleep(0.05)
        if not any(_alive(p) for p in pids):
            return


def wait_for_summary(run: Run, timeout: float) -> bool:
    """The summary the bridge started on agreement runs in its own session: let it finish (it takes well
    under a second) so nothing of the run is left running. True when none is running any more."""
    try:
        pid = int((run.dir / "on-agreement.pid").read_text().strip())
    except (OSError, ValueError):
        return True
    deadline = time.monotonic() + timeout
    while _alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def tmux_for(run: Run) -> Tmux:
    try:
        return Tmux(socket_path=run.socket_path)
    except TmuxError as exc:
        raise MissingTool(str(exc)) from None
