"""Runs and their directories: create them, find them, read what state they are in."""

from __future__ import annotations

import os
import re
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from bridge import (
    Book,
    Damaged,
    InvalidManifest,
    LedgerRepaired,
    Manifest,
    Protocol,
    read_ledger,
    read_manifest,
    update_manifest,
    with_state,
)
from bridge import git as git  # noqa: PLC0414 (re-exported: the summary's digest reads it here)
from bridge import (
    ledger_path as ledger_file,
)
from pairloop.errors import NoSuchRun, UsageProblem

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


def runs_dir(repo: Path) -> Path:
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


def create_run_dir(repo: Path) -> tuple[str, Path]:
    root = repo / STATE_DIR
    root.mkdir(mode=0o700, exist_ok=True)
    os.chmod(root, 0o700)
    runs_dir(repo).mkdir(mode=0o700, exist_ok=True)
    run_id = new_run_id()
    run_dir = runs_dir(repo) / run_id
    run_dir.mkdir(mode=0o700)
    for sub in ("outbox", "events", "launch"):
        (run_dir / sub).mkdir(mode=0o700)
    exclude_from_git(repo)
    return run_id, run_dir


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


def list_runs(repo: Path) -> list[Run]:
    """This repo's runs, newest first; folders that are not runs are skipped."""
    folder = runs_dir(repo)
    if not folder.is_dir():
        return []
    out = []
    for child in sorted(folder.iterdir(), reverse=True):
        if (child / "run.json").is_file():
            try:
                out.append(load_run(child))
            except NoSuchRun:
                continue
    return out


def find_run(repo: Path, run_id: str | None, env: dict[str, str] | None = None, active: bool = True) -> Run:
    """--run ID (or a unique prefix), else the run this agent pane belongs to, else the newest active run."""
    env = dict(os.environ) if env is None else env
    runs = list_runs(repo)
    if run_id:
        matches = [r for r in runs if r.id == run_id] or [r for r in runs if r.id.startswith(run_id)]
        if not matches:
            raise NoSuchRun(f"no run {run_id!r} in {repo}")
        if len(matches) > 1:
            raise UsageProblem(f"{run_id!r} matches several runs: {', '.join(r.id for r in matches)}")
        return matches[0]
    if env.get("PAIRLOOP_RUN_DIR"):
        return load_run(Path(env["PAIRLOOP_RUN_DIR"]))
    candidates = [r for r in runs if not r.stopped] if active else runs
    if not candidates:
        which = "active run" if active else "run"
        raise NoSuchRun(f"no {which} in {repo} (start one with `pairloop start`)")
    return candidates[0]
