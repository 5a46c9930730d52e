"""Start, watch and stop a run. Every function takes the tmux server it works on."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from bridge import (
    AGENT_ROLES,
    AGREEMENT_PID,
    EXITED,
    STARTING,
    Answer,
    Limits,
    Manifest,
    Message,
    ProtocolSettings,
    RecordsRoot,
    RoleSpec,
    RunState,
    Tmux,
    TmuxError,
    TmuxPlace,
    append_once,
    child_env,
    config_fingerprint,
    git,
    keeper_argv,
    keeper_pane_hook,
    new_message_id,
    outbox_dir,
    partner_of,
    poll,
    post,
    record_panes,
    targets,
    write_atomic,
    write_manifest,
)
from bridge import bridge_running as lock_held
from bridge import (
    request_control as request,
)
from pairloop.agents.briefs import brief_path, render_brief
from pairloop.agents.profile import TRUST_DIALOG, AgentProfile, LaunchContext, profile
from pairloop.agents.records import records_roots
from pairloop.errors import PairloopError
from pairloop.runs.baseline import worktree_notice
from pairloop.runs.config import agent_settings, read_config, spending_settings, verify_settings
from pairloop.runs.launch import LaunchSpec, write_launch_spec
from pairloop.runs.recording import recording_settings
from pairloop.runs.store import (
    AGREED,
    RUNNING,
    STOPPED,
    Run,
    base_commit,
    create_run_dir,
    load_run,
    new_run_id,
    slug,
)
from pairloop.runs.workspace import launch, open_workspace
from pairloop.runs.worktree import add_worktree, plan_removal, remove
from pairloop.summary.plan import TEMPLATE, template_text


def _bin_dir() -> str:
    """Where this pairloop's console scripts live, so `pairloop send` works inside the panes."""
    return str(Path(sys.executable).parent)


def agent_env(base: dict[str, str], run_dir: Path, role: str, prof: AgentProfile) -> dict[str, str]:
    """The caller's environment, the profile's, and the run and role that make `pairloop send` speak as this
    agent. The caller's tmux variables stay out: the pane gets its own (see pairloop.runs.launch)."""
    env = child_env(base, extra={**prof.env, "PAIRLOOP_RUN_DIR": str(run_dir), "PAIRLOOP_ROLE": role})
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
    record: bool | None = None  # each agent pane recorded into <role>.cast; None: as configured (on by default)
    record_limit_mb: float | None = None  # per recording; at the limit it stops, and says so
    worktree: bool = False  # the run works in a worktree of its own, on a new branch (see pairloop.runs.worktree)
    branch: str | None = None  # that branch's name; None: pairloop/<run id>
    verify: str | tuple[str, ...] | None = None  # the verification gate's command; None: from the configuration
    verify_timeout: float | None = None  # seconds; None: from the configuration (default 600)
    max_tokens: int | None = None  # the run's token budget (0: none); None: from the configuration
    notify: tuple[str, ...] | None = None  # called on each call to the human; None: from the configuration


def start_run(tmux: Tmux, repo: Path, task: str, options: StartOptions,
              env: dict[str, str] | None = None) -> Run:
    """Create the run directory and manifest, open the workspace, start both agents and the bridge, and
    queue the task as the worker's first prompt (the bridge delivers it once the worker is ready)."""
    env = dict(os.environ) if env is None else env
    if git(repo, "rev-parse", "--git-dir").returncode != 0:
        raise PairloopError(f"{repo} is not a git repository (pairloop reviews commits: run `git init` first)")
    config = read_config(repo)
    agents = {"worker": options.worker, "reviewer": options.reviewer}
    settings = {role: agent_settings(config, agents[role], env) for role in AGENT_ROLES}
    profiles = {role: profile(agents[role], settings[role]) for role in AGENT_ROLES}
    for prof in profiles.values():
        prof.check_installed()
    run_id = new_run_id()
    # With a worktree, the agents, the checkpoints and the summary work there, and the user's checkout is left alone.
    work, branch = add_worktree(repo, run_id, options.branch) if options.worktree else (repo, None)
    if branch:  # the worktree has the committed configuration; the checkout's (the human's, now) is what runs
        flags = {"verify": options.verify, "verify_timeout": options.verify_timeout, "notify": options.notify,
                 "max_tokens": options.max_tokens}
        said = worktree_notice(work, config, {key for key, value in flags.items() if value is not None})
        if said:
            print(said, file=sys.stderr)
    session = f"pairloop-{slug(repo.name)}-{run_id}"
    yolo = " · YOLO: permission checks off" if options.yolo else ""
    titles = {role: f"{role} · {profiles[role].name}{yolo}" for role in AGENT_ROLES} | {"bridge": "bridge"}
    made: list[Path] = []
    try:  # a run that could not be set up leaves no worktree, branch or run directory without run.json behind
        run_id, run_dir, mailbox = create_run_dir(work, run_id)
        made += [run_dir, mailbox]
        panes = open_workspace(tmux, session, work, titles)
    except BaseException:
        if branch:
            remove(plan_removal(run_id, repo, work, branch), force=True)
        for folder in made:
            shutil.rmtree(folder, ignore_errors=True)
        raise
    try:
        contexts = {}
        template = mailbox / TEMPLATE  # for the agents to read, in their own workspace
        write_atomic(template, template_text().encode("utf-8"))
        for role in AGENT_ROLES:
            partner = profiles[partner_of(role)].name
            brief = render_brief(role, task, partner, str(template))
            brief_file = brief_path(run_dir, role)
            write_atomic(brief_file, brief.encode("utf-8"))
            model = options.models.get(role) or settings[role].get("model")
            contexts[role] = LaunchContext(run_dir, role, brief, brief_file, str(model) if model else None,
                                           (*settings[role].get("args", []), *options.extra_args.get(role, ())),
                                           options.yolo)
        argvs = {role: profiles[role].argv(contexts[role]) for role in AGENT_ROLES}
        manifest = Manifest(
            id=run_id, task=task, repo=str(repo), base_commit=base_commit(repo),
            created=time.strftime("%Y-%m-%dT%H:%M:%S%z"), state=RUNNING, yolo=options.yolo,
            tmux=TmuxPlace(socket_path=tmux.socket_path(), session=session), mailbox=str(mailbox),
            workdir=str(work) if branch else None, branch=branch,
            bridge_pane=panes.bridge,
            # What the bridge runs on every checkpoint, from the human only: the flag, or the configuration now.
            verify=options.verify if options.verify is not None else verify_settings(config)[0],
            verify_timeout=options.verify_timeout or verify_settings(config)[1],
            config_at_start=config_fingerprint(work),
            notify=options.notify if options.notify is not None else spending_settings(config)[0],
            recording=recording_settings(config, env, options.record, options.record_limit_mb),
            # What the bridge runs once the pair agrees: the summary, written without anyone asking.
            on_agreement=(sys.executable, "-m", "pairloop", "summarize", "--run", run_id, "--quiet"),
            protocol=ProtocolSettings(plan=options.plan, mirror=options.mirror,
                                      limits=Limits(max_rounds=options.max_rounds, max_messages=options.max_messages,
                                                    max_tokens=spending_settings(config)[1] if options.max_tokens
                                                    is None else options.max_tokens)),
            roles={role: role_spec(profiles[role], panes.by_role()[role], contexts[role], argvs[role], options.trust,
                                   records_roots(profiles[role], agent_env(env, run_dir, role, profiles[role]),
                                                 run_dir, role))
                   for role in AGENT_ROLES},
        )
        write_manifest(run_dir, manifest)
        record_panes(tmux, run_dir, manifest)  # before the agents start, so their first output is recorded
        if task.strip():
            post(outbox_dir(mailbox), Message(new_message_id(), "human", ("worker",), task, "task"))
        launch_bridge(tmux, panes.bridge, run_dir)
        for role in AGENT_ROLES:
            write_launch_spec(run_dir, role, LaunchSpec(argv=tuple(argvs[role]), cwd=str(work),
                                                        env=agent_env(env, run_dir, role, profiles[role])))
            launch(tmux, panes.by_role()[role], [sys.executable, "-m", "pairloop.runs.launch", str(run_dir), role])
    except BaseException:
        tmux.kill_session(session)
        if branch:  # a worktree nothing was done in yet
            remove(plan_removal(run_id, repo, work, branch), force=True)
        raise
    return load_run(run_dir)


def launch_bridge(tmux: Tmux, pane: str, run_dir: Path) -> None:
    """(Re)start the run's bridge in ``pane``: its keeper, which runs the bridge and starts it again when it dies
    (see bridge.keeper); the pane itself is started again if the keeper is killed. For start and resume alike."""
    tmux.run(*keeper_pane_hook(pane))
    launch(tmux, pane, keeper_argv(sys.executable, run_dir))


def role_spec(prof: AgentProfile, pane: str, ctx: LaunchContext, argv: list[str], trust: bool,
              roots: tuple[RecordsRoot, ...] = ()) -> RoleSpec:
    """What run.json says of one role: everything the bridge needs, and what to resume it with later."""
    answers = {TRUST_DIALOG: Answer(keys=prof.trust_keys, choose=prof.trust_choice)} \
        if trust and (prof.trust_keys or prof.trust_choice) else {}
    return RoleSpec(agent=prof.name, pane=pane, submit_key=prof.submit_key, screen=prof.rules,
                    turn_hooks=prof.turn_hooks, answers=answers,
                    session_id=ctx.session_id if prof.sets_session_id else None, model=ctx.model, command=argv[0],
                    args=ctx.extra_args, records=prof.records, records_roots=roots)


def wait_until_running(tmux: Tmux, run: Run, timeout: float = 30.0) -> dict[str, str]:
    """Poll until the bridge runs and both agent screens show they are up (ready, busy or a dialog);
    fail if an agent exits."""
    from bridge import read_target

    states: dict[str, str] = {}

    def up() -> dict[str, str] | None:
        for role, target in targets(run.manifest).items():
            reading = read_target(tmux, target)
            states[role] = reading.state
            if reading.state == EXITED:
                raise PairloopError(f"the {role} ({target.agent}) exited at start: {reading.detail}; "
                                    f"see its pane with `tmux -S {run.socket_path} attach -t ={run.session}`")
        return states if all(s != STARTING for s in states.values()) and bridge_running(run) else None

    if poll(up, timeout, delay=0.05, max_delay=0.05) is None:
        waiting = ", ".join([r for r, s in states.items() if s == STARTING] or ["bridge"])
        raise PairloopError(f"timed out after {timeout:.0f}s waiting for the {waiting} to start")
    return states


def send_message(run: Run, sender: str, to: tuple[str, ...], body: str, kind: str = "message",
                 fixed: tuple[str, ...] = (), disputed: tuple[str, ...] = ()) -> Message:
    if run.stopped:
        raise PairloopError(f"run {run.id} is stopped; start a new one with `pairloop start`")
    message = Message(new_message_id(), sender, to, body, kind, fixed=fixed, disputed=disputed)
    Message.from_json(message.to_json())  # the same validation the bridge applies
    post(run.outbox, message)
    return message


def request_control(run: Run, action: Literal["pause", "unpause"]) -> None:
    """Ask the bridge to pause or unpause the relay: a file in control/, like everything else."""
    if run.stopped:
        raise PairloopError(f"run {run.id} is stopped")
    request(run.dir, new_message_id(), action)


def overrule_done(run: Run, note: str) -> None:
    """The human accepts the work as it is, over the done gate (`pairloop done --force`): a request in control/,
    in the run directory, where the agents do not write (their outbox is in their workspace)."""
    if run.stopped:
        raise PairloopError(f"run {run.id} is stopped")
    request(run.dir, new_message_id(), "done", note=note)


def bridge_running(run: Run) -> bool:
    """Whether the run's bridge holds its lock (asked without taking it: a starting bridge is never disturbed)."""
    return lock_held(run.dir)


def down_note(bridge_up: bool, session_up: bool, session: str, waits: str) -> str:
    """What to tell someone whose message (or request) was written for a bridge that is not there to relay it:
    it is not lost, it ``waits``; "" when the bridge runs."""
    if bridge_up:
        return ""
    why = "the bridge is not running" if session_up else \
        f"the tmux session {session} is gone, and with it the bridge"
    return f"{why}: {waits}; it is relayed when the bridge is back (`pairloop resume`)"


def relay_note(run: Run, waits: str) -> str:
    """:func:`down_note` for the run as it is now: its bridge's lock, and its tmux session."""
    if bridge_running(run):
        return ""
    try:
        session_up = tmux_for(run).has_session(run.session)
    except TmuxError:  # tmux itself missing: no session either
        session_up = False
    return down_note(False, session_up, run.session, waits)


def stop_run(tmux: Tmux, run: Run, timeout: float = 10.0) -> bool:
    """Mark the run stopped, close its session (the bridge exits on the hangup) and wait for the bridge.
    Returns False when the run was already stopped."""
    if run.stopped:
        return False
    append_once(run.ledger_path, RunState(state="stopped", by="human"))
    run.mark(STOPPED)
    pids: list[int] = []
    try:
        if tmux.has_session(run.session):
            pids = tmux.pane_pids(run.session)
            tmux.kill_session(run.session)
    except TmuxError:
        pass
    poll(lambda: not bridge_running(run), timeout, delay=0.05, max_delay=0.05)
    end_panes(pids)
    wait_for_summary(run, timeout=30.0)
    return True


def process_alive(pid: int) -> bool:
    """Whether ``pid`` still runs as ours (a zombie waiting to be reaped does not count)."""
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
                if process_alive(pid):
                    with contextlib.suppress(OSError):
                        os.killpg(pid, sig)
        if poll(lambda: not any(process_alive(p) for p in pids), grace, delay=0.05, max_delay=0.05):
            return


def wait_for_summary(run: Run, timeout: float) -> bool:
    """The summary the bridge started on agreement runs in its own session: let it finish (it takes well
    under a second) so nothing of the run is left running. True when none is running any more.

    The bridge records the agreement first and starts the summary a moment later: while it still runs, a
    summary that is due but not started yet is waited for too."""
    def started() -> int | None:
        try:
            return int((run.dir / AGREEMENT_PID).read_text().strip())
        except (OSError, ValueError):
            return None

    pid = started()
    if pid is None and run.manifest.on_agreement and run.book().run_state == AGREED:
        gone = -1  # the bridge that would start it is no longer running: none will start
        pid = poll(lambda: started() or (None if bridge_running(run) else gone), timeout, delay=0.02,
                   max_delay=0.05)
        if pid is None:
            return False  # due, and still not started
    if pid is None or pid < 0:
        return True
    return bool(poll(lambda: not process_alive(pid), timeout, delay=0.05, max_delay=0.05))


def tmux_for(run: Run) -> Tmux:
    """The tmux server the run's session lives on."""
    return Tmux(socket_path=run.socket_path)
