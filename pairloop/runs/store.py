"""Runs and their directories: create them, find them, read what state they are in.

A run has two folders. Its run directory, under the per-user state root (``PAIRLOOP_HOME``, by default
``$XDG_STATE_HOME/pairloop``), holds everything pairloop trusts or executes: run.json, the ledger, the agents'
settings and briefs, the launch files, control requests. Its mailbox, ``<repo>/.pairloop/runs/<id>/``, is the
only part inside the agents' workspace: their outbox and hook events, read as untrusted data. An agent that can
write anywhere in the repository can therefore still talk, but cannot rewrite what the bridge runs or believes."""

from __future__ import annotations

import os
import re
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from bridge import (
    EVENTS,
    Book,
    Damaged,
    InvalidManifest,
    LedgerRepaired,
    Manifest,
    Protocol,
    events_dir,
    mailbox_of,
    manifest_path,
    outbox_dir,
    private_dir,
    read_ledger,
    read_manifest,
    update_manifest,
    with_state,
)
from bridge import git as git  # noqa: PLC0414 (re-exported: the summary's digest reads it here)
from bridge import (
    ledger_path as ledger_file,
)
from pairloop.errors import NoSuchRun, PairloopError, UsageProblem
from pairloop.runs.launch import LAUNCH

STATE_DIR = ".pairloop"
RUNNING: Literal["running"] = "running"
STOPPED: Literal["stopped"] = "stopped"
AGREED = "agreed"


def repo_root(cwd: Path) -> Path:
    """The git work tree containing ``cwd``, or ``cwd`` itself outside git."""
    try:
        out = git(cwd, "rev-parse", "--show-toplevel")
    except FileNotFoundError:
        return cwd.resolve()
    return Path(out.stdout.strip()).resolve() if out.returncode == 0 else cwd.resolve()


def state_root(env: Mapping[str, str] | None = None) -> Path:
    """Where pairloop keeps its runs for this user: PAIRLOOP_HOME, else the XDG state directory."""
    env = os.environ if env is None else env
    if env.get("PAIRLOOP_HOME"):
        return Path(env["PAIRLOOP_HOME"]).expanduser()
    xdg = env.get("XDG_STATE_HOME") or str(Path(env.get("HOME") or Path.home()) / ".local" / "state")
    return Path(xdg).expanduser() / "pairloop"


def runs_dir(env: Mapping[str, str] | None = None) -> Path:
    """Every run's (trusted) run directory lives here, whatever repository it belongs to."""
    return state_root(env) / "runs"


def mailboxes_dir(repo: Path) -> Path:
    return repo / STATE_DIR / "runs"


def new_run_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(2)


def slug(text: str) -> str:
    """tmux session names cannot hold '.' or ':'; keep them short and plain."""
    return re.sub(r"[^A-Za-z0-9_-]+", "-", text).strip("-")[:40] or "repo"


def exclude_from_git(repo: Path) -> None:
    """Keep run state out of the user's commits without touching their .gitignore."""
    out = git(repo, "rev-parse", "--git-path", "info/exclude")
    if out.returncode != 0:
        return
    exclude = Path(out.stdout.strip())
    if not exclude.is_absolute():
        exclude = repo / exclude
    exclude.parent.mkdir(parents=True, exist_ok=True)
    lines = exclude.read_text().splitlines() if exclude.exists() else []
    if f"/{STATE_DIR}/" not in lines and f"{STATE_DIR}/" not in lines:
        with exclude.open("a") as f:
            f.write(("" if not lines or exclude.read_text().endswith("\n") else "\n") + f"/{STATE_DIR}/\n")


def create_run_dir(repo: Path, run_id: str | None = None) -> tuple[str, Path, Path]:
    """A new run's id, its run directory (private, outside the repository) and its mailbox (in ``repo``: the
    work tree the agents work in, the run's own worktree when it has one)."""
    run_id = run_id or new_run_id()
    run_dir = runs_dir() / run_id
    private_dir(run_dir.parent)
    try:
        run_dir.mkdir(mode=0o700)
    except FileExistsError:  # never another run's directory: its files are that run's
        raise PairloopError(f"run {run_id} exists already ({run_dir}): start again for a new run id") from None
    private_dir(run_dir / LAUNCH)
    private_dir(repo / STATE_DIR)
    mailbox = private_dir(mailboxes_dir(repo) / run_id)
    for folder in (outbox_dir(mailbox), mailbox / EVENTS):
        private_dir(folder)
    exclude_from_git(repo)
    return run_id, run_dir, mailbox


def base_commit(repo: Path) -> str | None:
    out = git(repo, "rev-parse", "HEAD")
    return out.stdout.strip() if out.returncode == 0 else None


@dataclass(frozen=True)
class Replayed:
    """Every view of a run's ledger from one read of it, and what the read had to skip."""

    book: Book
    protocol: Protocol
    damaged: list[Damaged]
    repaired: list[LedgerRepaired]

    def ledger_notes(self) -> list[str]:
        notes = [d.describe() for d in self.damaged]
        notes += [f"ledger: {r.cut_bytes} bytes of an unfinished line were cut off at offset {r.offset}"
                  for r in self.repaired]
        return notes


@dataclass
class Run:
    dir: Path
    manifest: Manifest

    @property
    def id(self) -> str:
        return self.manifest.id

    @property
    def session(self) -> str:
        return self.manifest.tmux.session

    @property
    def socket_path(self) -> str:
        return self.manifest.tmux.socket_path

    @property
    def mailbox(self) -> Path:
        return mailbox_of(self.manifest, self.dir)

    @property
    def outbox(self) -> Path:
        return outbox_dir(self.mailbox)

    def events_dir(self, role: str) -> Path:
        return events_dir(self.mailbox, role)

    @property
    def ledger_path(self) -> Path:
        return ledger_file(self.dir)

    def book(self) -> Book:
        return self.replay().book

    def protocol(self) -> Protocol:
        return self.replay().protocol

    def replay(self) -> Replayed:
        """Both views of the ledger from one read of it; damaged lines are skipped, and named."""
        read = read_ledger(self.ledger_path)
        book, protocol = Book(), Protocol()
        repaired = []
        for event in read.events:
            book.apply(event)
            protocol.apply(event)
            if isinstance(event, LedgerRepaired):
                repaired.append(event)
        return Replayed(book, protocol, read.damaged, repaired)

    @property
    def stopped(self) -> bool:
        """From run.json alone: cheap enough for every `pairloop send`, whatever the ledger's size."""
        return self.manifest.state == STOPPED

    def state_given(self, book: Book) -> str:
        if self.stopped:
            return STOPPED
        return AGREED if book.run_state == AGREED else self.manifest.state

    @property
    def state(self) -> str:
        return self.state_given(self.book())

    def mark(self, state: Literal["running", "stopped"]) -> None:
        self.manifest = update_manifest(self.dir, with_state(state))


def load_run(run_dir: Path) -> Run:
    try:
        return Run(run_dir, read_manifest(run_dir))
    except InvalidManifest as exc:
        raise NoSuchRun(f"{run_dir} is not a pairloop run ({exc.reason})") from None


def all_runs() -> list[Run]:
    """Every run of this user, newest first; folders that are not runs are skipped."""
    folder = runs_dir()
    if not folder.is_dir():
        return []
    out = []
    for child in sorted(folder.iterdir(), reverse=True):
        if manifest_path(child).is_file():
            try:
                out.append(load_run(child))
            except NoSuchRun:
                continue
    return out


def list_runs(repo: Path) -> list[Run]:
    """This repo's runs, newest first: those started in it, and the one whose worktree it is."""
    where = str(repo.resolve())
    return [r for r in all_runs() if where in (r.manifest.repo, r.manifest.workdir)]


def find_run(repo: Path, run_id: str | None, env: dict[str, str] | None = None, active: bool = True) -> Run:
    """The run a command goes to (see :func:`choose_run`)."""
    return choose_run(repo, run_id, env, active).run


@dataclass(frozen=True)
class Chosen:
    """The run a command goes to, and a note for the user when that was a choice among several."""

    run: Run
    note: str = ""


def choose_run(repo: Path, run_id: str | None, env: dict[str, str] | None = None, active: bool = True) -> Chosen:
    """--run ID (or a unique prefix; this repo's runs first, then any of this user's), else the run this agent
    pane belongs to, else the run whose worktree ``repo`` is, else the newest active run started in ``repo``
    (with a note naming the others when several are active)."""
    env = dict(os.environ) if env is None else env
    if run_id:
        return Chosen(_by_id(repo, run_id))
    if env.get("PAIRLOOP_RUN_DIR"):
        try:
            return Chosen(load_run(Path(env["PAIRLOOP_RUN_DIR"])))
        except NoSuchRun as exc:  # a shell left from an agent pane of a run since removed, say
            raise NoSuchRun(f"PAIRLOOP_RUN_DIR names no run: {exc} (unset it, or choose with --run ID)") from None
    where = str(repo.resolve())
    runs = list_runs(repo)
    candidates = [r for r in runs if not r.stopped] if active else runs
    own = [r for r in candidates if r.manifest.workdir == where]
    if own:
        return Chosen(own[0])
    started_here = [r for r in candidates if r.manifest.repo == where]
    if not started_here:
        which = "active run" if active else "run"
        raise NoSuchRun(f"no {which} in {repo} (start one with `pairloop start`)")
    chosen = started_here[0]
    others = [r for r in started_here[1:] if not r.stopped]
    note = ""
    if not chosen.stopped and others:
        note = (f"to run {chosen.id}, the newest of {len(others) + 1} active runs in {repo} (others: "
                f"{', '.join(r.id for r in others)}; choose with --run ID, or run it in that run's worktree)")
    return Chosen(chosen, note)


def _by_id(repo: Path, run_id: str) -> Run:
    for runs in (list_runs(repo), all_runs()):
        matches = [r for r in runs if r.id == run_id] or [r for r in runs if r.id.startswith(run_id)]
        if len(matches) > 1:
            raise UsageProblem(f"{run_id!r} matches several runs: {', '.join(r.id for r in matches)}")
        if matches:
            return matches[0]
    raise NoSuchRun(f"no run {run_id!r} in {repo} (`pairloop ls --all` lists every run)")
