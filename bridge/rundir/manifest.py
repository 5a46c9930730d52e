"""``run.json``, the run's manifest: what the bridge needs to know about a run, and what resuming it needs.
``pairloop`` writes it at start (and agents' hooks add their session ids); the bridge reads it. Parsing validates:
a manifest with a field missing or of the wrong type is an :class:`InvalidManifest`, not a KeyError later."""

from __future__ import annotations

import fcntl
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import msgspec

from bridge.panes.screen import ScreenRules
from bridge.rundir.events import Limits
from bridge.rundir.files import PRIVATE_FILE, write_atomic

MANIFEST = "run.json"
_LOCK = ".run.json.lock"


class InvalidManifest(Exception):
    """run.json is missing, unreadable or not a valid manifest; ``reason`` says which."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Answer(msgspec.Struct, frozen=True, kw_only=True):
    """How to answer a dialog the user allowed pairloop to answer: fixed keys, or the option's text to choose."""

    keys: tuple[str, ...] = ()
    choose: str = ""


class RecordsRoot(msgspec.Struct, frozen=True, kw_only=True):
    """Where an agent's own records may be: a file named like ``name`` (a glob) anywhere under ``dir``. The hook
    events that name a record file are written by the agents, so the bridge reads only what is in these."""

    dir: str
    name: str = "*.jsonl"


class RoleSpec(msgspec.Struct, frozen=True, kw_only=True):
    """One role's agent and pane, and the rules for talking to it."""

    agent: str
    pane: str
    submit_key: str
    screen: ScreenRules
    turn_hooks: bool = False
    answers: dict[str, Answer] = {}
    session_id: str | None = None  # the agent's own conversation id, for resuming it
    model: str | None = None
    command: str = ""
    args: tuple[str, ...] = ()  # the user's extra arguments for the agent (configuration, --<role>-arg): for resuming
    records: str = ""  # the shape of the agent's own records, read for its tokens and limits (bridge.usage)
    # Where those records may be, from the agent's environment at start (none: an old run, not constrained).
    records_roots: tuple[RecordsRoot, ...] = ()


class TmuxPlace(msgspec.Struct, frozen=True, kw_only=True):
    socket_path: str
    session: str


class ProtocolSettings(msgspec.Struct, frozen=True, kw_only=True):
    plan: bool = False
    mirror: bool = True
    limits: Limits = Limits()


class RecordingSettings(msgspec.Struct, frozen=True, kw_only=True):
    """Each agent pane recorded into ``<role>.cast`` (see bridge.recording), up to ``limit_mb`` per recording."""

    enabled: bool = True
    limit_mb: float = 50.0


class Manifest(msgspec.Struct, frozen=True, kw_only=True):
    version: int = 1
    id: str
    task: str = ""
    repo: str
    base_commit: str | None = None
    created: str = ""
    state: Literal["running", "stopped"] = "running"
    yolo: bool = False
    tmux: TmuxPlace
    # Where the agents write (outbox/, events/): inside their workspace, so a sandboxed agent can still talk.
    # Everything else of the run, which pairloop trusts or executes, lives where the agents cannot write.
    mailbox: str = ""
    # The run's own git worktree (`start --worktree`), where the agents, checkpoints and summary work, and its
    # branch; None: they work in ``repo`` itself.
    workdir: str | None = None
    branch: str | None = None
    bridge_pane: str = ""
    on_agreement: tuple[str, ...] = ()  # what the bridge runs once the pair agrees (the summary)
    protocol: ProtocolSettings = ProtocolSettings()
    roles: dict[str, RoleSpec] = {}
    recording: RecordingSettings = RecordingSettings()
    # The verification gate, from the human only (`--verify`, or the configuration as it stood at start): a string
    # runs through the shell, a list as it is; "" or (): none. The bridge never reads it from the working tree.
    verify: str | tuple[str, ...] = ""
    verify_timeout: float = 600.0
    # Called with one JSON object per call to the human (bridge.notify), from the human only, like verify.
    notify: tuple[str, ...] = ()
    # What the agents' working tree's configuration said at start of the settings the bridge runs (verify, notify),
    # as JSON text ("" when absent): the baseline a change during the run is flagged against (see bridge.guard),
    # never obeyed. With a worktree it holds the committed file; what runs (above) is the human's checkout's.
    config_at_start: dict[str, str] = {}

    @property
    def work_tree(self) -> str:
        """Where the agents work and the bridge checkpoints: the run's worktree, else the repository."""
        return self.workdir or self.repo


@dataclass(frozen=True)
class Target:
    """One agent pane and the rules for talking to it."""

    role: str
    agent: str
    pane: str
    submit_key: str
    rules: ScreenRules


_decoder = msgspec.json.Decoder(Manifest)


def parse_manifest(data: bytes) -> Manifest:
    try:
        return _decoder.decode(data)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise InvalidManifest(str(exc)) from None


def manifest_path(run_dir: Path) -> Path:
    return run_dir / MANIFEST


def read_manifest(run_dir: Path) -> Manifest:
    try:
        data = manifest_path(run_dir).read_bytes()
    except OSError as exc:
        raise InvalidManifest(f"cannot read {MANIFEST}: {exc.strerror}") from None
    return parse_manifest(data)


def write_manifest(run_dir: Path, manifest: Manifest) -> None:
    write_atomic(manifest_path(run_dir), msgspec.json.format(msgspec.json.encode(manifest), indent=2) + b"\n")


@contextmanager
def _locked(run_dir: Path) -> Iterator[None]:
    fd = os.open(run_dir / _LOCK, os.O_WRONLY | os.O_CREAT, PRIVATE_FILE)  # 0600 whatever the umask
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def update_manifest(run_dir: Path, change: Callable[[Manifest], Manifest]) -> Manifest:
    """Read, change and write run.json under a lock, so two writers (a hook, `pairloop stop`) never lose an
    update of the other's."""
    with _locked(run_dir):
        manifest = change(read_manifest(run_dir))
        write_manifest(run_dir, manifest)
        return manifest


def with_state(state: Literal["running", "stopped"]) -> Callable[[Manifest], Manifest]:
    return lambda m: msgspec.structs.replace(m, state=state)


def with_session_id(role: str, session_id: str) -> Callable[[Manifest], Manifest]:
    """Keep the agent's conversation id for resuming later; the first one recorded wins."""
    def change(m: Manifest) -> Manifest:
        spec = m.roles.get(role)
        if spec is None or spec.session_id:
            return m
        roles = {**m.roles, role: msgspec.structs.replace(spec, session_id=session_id)}
        return msgspec.structs.replace(m, roles=roles)
    return change


def mailbox_of(manifest: Manifest, run_dir: Path) -> Path:
    """The run's mailbox: the folder the agents write their messages and hook events into."""
    return Path(manifest.mailbox) if manifest.mailbox else run_dir


def targets(manifest: Manifest) -> dict[str, Target]:
    return {role: Target(role, spec.agent, spec.pane, spec.submit_key, spec.screen)
            for role, spec in manifest.roles.items()}
