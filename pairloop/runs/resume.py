"""``pairloop resume``: bring back whatever of a run is down, and only that.

- the tmux session is gone (a reboot, a logout, ``kill-server``) or the run was stopped: the session is opened
  again with the same layout, each agent is started again on its own conversation, and the bridge restarts
  (it replays the ledger and delivers what was pending, each message once);
- only an agent exited: that pane alone is started again; only the bridge is down: only the bridge restarts;
- everything is up: nothing to do (the command line then attaches).

An agent whose conversation cannot be resumed (no id recorded yet, a TUI that cannot resume, or one that refuses:
its screen says so, or it exits at once) is started afresh, and that is said — here and, through the recap the
bridge sends it, in the ledger. Every agent started again gets a notice from the bridge (bridge/rolecard.py):
its role, the phase and round, and what waits for it."""

from __future__ import annotations

import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import msgspec

from bridge import (
    AGENT_ROLES,
    EXITED,
    STARTING,
    Manifest,
    RunState,
    Tmux,
    TmuxError,
    append_once,
    new_message_id,
    poll,
    read_target,
    record_panes,
    request_control,
    targets,
    update_manifest,
)
from pairloop.agents.briefs import brief_path
from pairloop.agents.profile import AgentProfile, LaunchContext, profile
from pairloop.errors import NoSuchRun, PairloopError, UsageProblem
from pairloop.runs.config import agent_settings, read_config
from pairloop.runs.launch import LaunchSpec, write_launch_spec
from pairloop.runs.lifecycle import agent_env, bridge_running, launch_bridge
from pairloop.runs.store import RUNNING, Run, all_runs, find_run, load_run
from pairloop.runs.workspace import Panes, launch, open_workspace

# How long a relaunched agent has to show it took up its conversation (or to refuse) before we stop waiting.
UP_SECONDS = 30.0


@dataclass(frozen=True)
class Health:
    """What of a run is up right now."""

    session: bool  # its tmux session exists
    bridge: bool  # its bridge holds the run's lock
    exited: tuple[str, ...] = ()  # agents whose pane shows their program ended
    gone: tuple[str, ...] = ()  # agents (or "bridge") whose pane is missing from the session

    @property
    def all_up(self) -> bool:
        return self.session and self.bridge and not self.exited and not self.gone


def health(tmux: Tmux, run: Run) -> Health:
    if not tmux.has_session(run.session):
        return Health(session=False, bridge=bridge_running(run))
    exited, gone = [], []
    for role, target in targets(run.manifest).items():
        info = tmux.pane_info(target.pane)
        if info is None:
            gone.append(role)
        elif info.dead:
            exited.append(role)
    if run.manifest.bridge_pane and tmux.pane_info(run.manifest.bridge_pane) is None:
        gone.append("bridge")
    return Health(session=True, bridge=bridge_running(run), exited=tuple(exited), gone=tuple(gone))


@dataclass(frozen=True)
class Outcome:
    """How one agent came back: on its own conversation, or afresh (and why)."""

    role: str
    agent: str
    resumed: bool
    reason: str = ""

    def line(self) -> str:
        if self.resumed:
            return f"{self.role} ({self.agent}): resumed its own conversation"
        return f"{self.role} ({self.agent}): could not resume its conversation ({self.reason}): started afresh, " \
               "with a recap of the run"


@dataclass
class Resumed:
    """What ``resume`` did: nothing (all was up), or what it brought back."""

    run: Run
    reopened: bool = False  # the whole session was opened again
    bridge: bool = False  # the bridge was started again
    outcomes: list[Outcome] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def nothing_to_do(self) -> bool:
        return not (self.reopened or self.bridge or self.outcomes)

    def lines(self) -> list[str]:
        if self.nothing_to_do:
            return [f"run {self.run.id}: everything is running (session {self.run.session})"]
        what = "reopened the session" if self.reopened else "the session was up"
        out = [f"run {self.run.id}: {what}" + ("; restarted the bridge" if self.bridge else "")]
        return out + [o.line() for o in self.outcomes] + self.notes


def check_place(manifest: Manifest) -> None:
    """The repository (and the run's worktree) must still be where the run recorded them."""
    for what, where in (("repository", manifest.repo), ("worktree", manifest.work_tree)):
        if not Path(where).is_dir():
            raise PairloopError(f"run {manifest.id}: its {what} was at {where} and is not there any more (moved or "
                                "deleted); put it back there to resume the run")


def resume_run(tmux: Tmux, run: Run, env: dict[str, str], timeout: float = UP_SECONDS) -> Resumed:
    """Bring back what is down; see the module's docstring. Raises for what makes that impossible."""
    check_place(run.manifest)
    profiles = _profiles(run, env)
    for prof in profiles.values():
        prof.check_installed()
    state = health(tmux, run)
    if not run.stopped and state.all_up:
        return Resumed(run)
    if run.stopped or not state.session or state.gone:
        return _reopen(tmux, run, profiles, env, state, timeout)
    done = Resumed(run)
    restart = {role: _plan(run, profiles[role], role) for role in state.exited}
    for role, ctx in restart.items():
        _spawn(tmux, run, profiles[role], role, run.manifest.roles[role].pane, ctx, env)
    done.outcomes = _settle(tmux, run, profiles, restart, env, timeout)
    _tell_bridge(run, done.outcomes)  # before a bridge that starts now: its first pass posts them
    if not state.bridge:
        _wait_bridge_gone(run)
        launch_bridge(tmux, run.manifest.bridge_pane, run.dir)
        done.bridge = True
    done.run = load_run(run.dir)
    return done


def _profiles(run: Run, env: dict[str, str]) -> dict[str, AgentProfile]:
    """Each role's agent, with the configuration as it is now (its command, environment)."""
    config = read_config(Path(run.manifest.work_tree))
    return {role: profile(spec.agent, agent_settings(config, spec.agent, env))
            for role, spec in run.manifest.roles.items()}


def _reopen(tmux: Tmux, run: Run, profiles: dict[str, AgentProfile], env: dict[str, str], state: Health,
            timeout: float) -> Resumed:
    done = Resumed(run, reopened=True, bridge=True)
    if state.session:  # stopped with its session somehow still there, or a pane of it gone: start clean
        tmux.kill_session(run.session)
    _wait_bridge_gone(run)
    if run.stopped:
        append_once(run.ledger_path, RunState(state="running", by="human"))
        run.mark(RUNNING)
        done.notes.append("the run was stopped: it is running again")
    yolo = " · YOLO: permission checks off" if run.manifest.yolo else ""
    titles = {role: f"{role} · {profiles[role].name}{yolo}" for role in AGENT_ROLES} | {"bridge": "bridge"}
    panes = open_workspace(tmux, run.session, Path(run.manifest.work_tree), titles)
    try:
        run.manifest = update_manifest(run.dir, lambda m: _on_panes(m, panes))
        record_panes(tmux, run.dir, run.manifest)  # the recordings go on, from the agents' first output
        restart = {role: _plan(run, profiles[role], role) for role in AGENT_ROLES}
        for role, ctx in restart.items():
            _spawn(tmux, run, profiles[role], role, panes.by_role()[role], ctx, env)
        done.outcomes = _settle(tmux, run, profiles, restart, env, timeout)
        # The bridge comes last, with the notices already asked for: at its first pass it records them behind
        # what was pending, and delivers each agent everything it is owed once that agent is ready.
        _tell_bridge(run, done.outcomes)
        launch_bridge(tmux, panes.bridge, run.dir)
    except BaseException:
        tmux.kill_session(run.session)
        raise
    done.run = load_run(run.dir)
    return done


def _on_panes(m: Manifest, panes: Panes) -> Manifest:
    roles = {role: msgspec.structs.replace(spec, pane=panes.by_role()[role]) for role, spec in m.roles.items()}
    return msgspec.structs.replace(m, roles=roles, bridge_pane=panes.bridge)


def _plan(run: Run, prof: AgentProfile, role: str) -> LaunchContext:
    """How to start ``role`` again: on its recorded conversation when its agent can resume one, else afresh."""
    spec = run.manifest.roles[role]
    brief_file = brief_path(run.dir, role)
    try:
        brief = brief_file.read_text(encoding="utf-8")
    except OSError:
        brief = ""
    resume = spec.session_id if prof.resumable and spec.session_id else None
    return LaunchContext(run.dir, role, brief, brief_file, spec.model, spec.args, run.manifest.yolo, resume_id=resume)


def _fresh_reason(prof: AgentProfile) -> str:
    if not prof.resumable:
        return f"{prof.name} cannot resume a conversation"
    return "no conversation id was recorded for it yet"


def _spawn(tmux: Tmux, run: Run, prof: AgentProfile, role: str, pane: str, ctx: LaunchContext,
           env: dict[str, str]) -> None:
    """Start the agent in its pane (killing what is left there) and record the conversation it is on."""
    argv = prof.argv(ctx)
    # Afresh, claude gets a new id chosen here; codex's new thread id is recorded by its hook at its first turn.
    session_id = ctx.resume_id or (ctx.session_id if prof.sets_session_id else None)
    run.manifest = update_manifest(run.dir, lambda m: _with_role(m, role, pane, session_id))
    write_launch_spec(run.dir, role, LaunchSpec(argv=tuple(argv), cwd=run.manifest.work_tree,
                                                env=agent_env(env, run.dir, role, prof)))
    launch(tmux, pane, [sys.executable, "-m", "pairloop.runs.launch", str(run.dir), role])


def _with_role(m: Manifest, role: str, pane: str, session_id: str | None) -> Manifest:
    roles = {**m.roles, role: msgspec.structs.replace(m.roles[role], pane=pane, session_id=session_id)}
    return msgspec.structs.replace(m, roles=roles)


def refusal(screen: str, prof: AgentProfile) -> str:
    """The line of ``screen`` where the agent says it cannot resume the conversation ("" when none)."""
    for pattern in prof.resume_refused:
        for line in screen.splitlines():
            if re.search(pattern, line):
                return line.strip()
    return ""


def _settle(tmux: Tmux, run: Run, profiles: dict[str, AgentProfile], started: dict[str, LaunchContext],
            env: dict[str, str], timeout: float) -> list[Outcome]:
    """Wait until each agent started on its conversation shows it took it up, or that it refused (its screen
    says so, or it exited at once); a refusal is followed by a fresh start in the same pane."""
    outcomes: dict[str, Outcome] = {}
    for role, ctx in started.items():
        if ctx.resume_id is None:
            outcomes[role] = Outcome(role, profiles[role].name, False, _fresh_reason(profiles[role]))
    trying = [role for role in started if role not in outcomes]
    verdicts: dict[str, str] = {}  # role -> "" (took it up) or why it refused

    def judged() -> bool:
        for role in trying:
            if role in verdicts:
                continue
            target = targets(run.manifest)[role]
            reading = read_target(tmux, target)
            said = refusal(reading.screen or _last_screen(tmux, target.pane), profiles[role])
            if said:
                verdicts[role] = f"it said: {said}"
            elif reading.state == EXITED:
                verdicts[role] = f"it exited at once: {reading.detail}"
            elif reading.state != STARTING:
                verdicts[role] = ""
        return all(role in verdicts for role in trying)

    poll(judged, timeout, delay=0.05, max_delay=0.1)
    for role in trying:
        why = verdicts.get(role)
        if why is None:  # still starting: it has not refused, and the bridge waits for it to be ready
            outcomes[role] = Outcome(role, profiles[role].name, True)
        elif why:
            prof = profiles[role]
            fresh = LaunchContext(run.dir, role, started[role].brief, started[role].brief_file, started[role].model,
                                  started[role].extra_args, started[role].yolo)
            _spawn(tmux, run, prof, role, run.manifest.roles[role].pane, fresh, env)
            outcomes[role] = Outcome(role, prof.name, False, why)
        else:
            outcomes[role] = Outcome(role, profiles[role].name, True)
    return [outcomes[role] for role in started]


def _last_screen(tmux: Tmux, pane: str) -> str:
    """A dead pane keeps what its program printed last (remain-on-exit), above tmux's "Pane is dead" line: in
    the pane's history, not on its visible screen."""
    try:
        return tmux.capture(pane, history=200)
    except TmuxError:  # a pane that is gone shows nothing
        return ""


def _tell_bridge(run: Run, outcomes: list[Outcome]) -> None:
    """Ask the bridge to tell each agent started again where the run stands (a recap for a fresh start)."""
    for o in outcomes:
        request_control(run.dir, new_message_id(), "resumed", role=o.role, fresh=not o.resumed, reason=o.reason)


def _wait_bridge_gone(run: Run, timeout: float = 10.0) -> None:
    """A bridge whose session died exits on the hangup (or at its next look): a new one must not find it there."""
    if not poll(lambda: not bridge_running(run), timeout, delay=0.05, max_delay=0.1):
        raise PairloopError(f"run {run.id}: its bridge is still running after {timeout:.0f}s without a session")


def wait_until_ready(tmux: Tmux, run: Run, timeout: float = 30.0) -> float:
    """Seconds until the bridge runs and both agents show they are up (ready, busy or a dialog)."""
    t0 = time.monotonic()

    def up() -> bool:
        return bridge_running(run) and all(
            read_target(tmux, t).state not in (STARTING, EXITED) for t in targets(run.manifest).values())

    if not poll(up, timeout, delay=0.02, max_delay=0.05):
        raise PairloopError(f"run {run.id}: not every agent was up {timeout:.0f}s after resuming")
    return time.monotonic() - t0


def find_to_resume(repo: Path, run_id: str | None, env: dict[str, str]) -> Run:
    """RUN (an id or a unique prefix) of this repository, else of any repository; without RUN, this
    repository's newest run, stopped or not."""
    try:
        return find_run(repo, run_id, env, active=False)
    except NoSuchRun:
        if not run_id:
            raise
    runs = all_runs()
    matches = [r for r in runs if r.id == run_id] or [r for r in runs if r.id.startswith(run_id)]
    if not matches:
        raise NoSuchRun(f"no run {run_id!r} (not in {repo}, nor in any other repository)")
    if len(matches) > 1:
        raise UsageProblem(f"{run_id!r} matches several runs: {', '.join(r.id for r in matches)}")
    return matches[0]
