"""The real agent programs, pinned, installed from the npm registry into a git-ignored cache.

The pinned versions live here and nowhere else. ``install_agents()`` installs
``@anthropic-ai/claude-code@CLAUDE_VERSION`` and ``@openai/codex@CODEX_VERSION`` into
``<repo>/.e2e-cache/agents-<claude>-<codex>/`` once, and reuses the folder while both binaries report the
pinned versions. A file lock keeps two processes (pytest-xdist workers, a benchmark next to a test run) from
installing at the same time.

Canary mode (``PAIRLOOP_E2E_CANARY=1``): install the newest published versions instead, into
``.e2e-cache/canary-<claude>-<codex>/``, to learn early whether a new release breaks the screen rules.

Errors raise ``InstallError`` with a message that says what to do; the pytest fixture turns it into a failure,
never a skip, so CI cannot go green without having run the real programs.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from bridge.deadline import poll

CLAUDE_VERSION = "2.1.332"
CODEX_VERSION = "0.171.0"

CLAUDE_PACKAGE = "@anthropic-ai/claude-code"
CODEX_PACKAGE = "@openai/codex"
CANARY_ENV = "PAIRLOOP_E2E_CANARY"

REPO_ROOT = Path(__file__).resolve().parents[2]
CACHE_DIR = REPO_ROOT / ".e2e-cache"

NPM_TIMEOUT = 900.0
LOCK_TIMEOUT = 1200.0
_VERSION_RE = re.compile(r"\b(\d+\.\d+\.\d+(?:-[0-9A-Za-z.-]+)?)\b")


class InstallError(Exception):
    """The agents could not be installed or do not run; the message says why and what to do."""


@dataclass(frozen=True)
class Agents:
    """Where the installed programs are, and which versions they are."""

    claude: Path
    codex: Path
    claude_version: str
    codex_version: str
    folder: Path
    canary: bool = False

    @property
    def label(self) -> str:
        return f"claude {self.claude_version}, codex {self.codex_version}" + (" (canary)" if self.canary else "")


def canary_requested(env: dict[str, str] | None = None) -> bool:
    return (os.environ if env is None else env).get(CANARY_ENV, "") not in ("", "0")


def _npm() -> str:
    npm = shutil.which("npm")
    if npm is None:
        raise InstallError(
            "npm is not on PATH: the end-to-end tests install the real claude and codex programs from the npm "
            "registry (install Node.js 18+ with npm, e.g. `apt-get install nodejs npm`)")
    if shutil.which("node") is None:
        raise InstallError("node is not on PATH (codex's launcher is a node script): install Node.js 18+")
    return npm


def _tool_env(home: str) -> dict[str, str]:
    """A small, predictable environment for the `--version` probes; HOME is throwaway, no network needed."""
    return {"PATH": os.environ.get("PATH", os.defpath), "HOME": home, "LANG": "C.UTF-8",
            "DISABLE_AUTOUPDATER": "1", "DISABLE_TELEMETRY": "1", "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1"}


def _npm_env() -> dict[str, str]:
    """npm runs in the caller's own environment: its ~/.npmrc may name a registry mirror, a proxy or a CA."""
    return {**os.environ, "NO_UPDATE_NOTIFIER": "1", "npm_config_update_notifier": "false",
            "npm_config_fund": "false", "npm_config_audit": "false"}


def reported_version(binary: Path) -> str | None:
    """What ``binary --version`` says (e.g. ``2.1.197 (Claude Code)`` -> ``2.1.197``), or None if it fails."""
    if not binary.exists():
        return None
    with tempfile.TemporaryDirectory(prefix="pairloop-e2e-probe-") as home:
        try:
            out = subprocess.run([str(binary), "--version"], capture_output=True, text=True, timeout=60,
                                 env=_tool_env(home), check=False, stdin=subprocess.DEVNULL)
        except (OSError, subprocess.TimeoutExpired):
            return None
    if out.returncode != 0:
        return None
    m = _VERSION_RE.search(out.stdout)
    return m.group(1) if m else None


def latest_version(package: str) -> str:
    """The newest published version of an npm package (``npm view PKG version``)."""
    npm = _npm()
    try:
        out = subprocess.run([npm, "view", package, "version"], capture_output=True, text=True, timeout=120,
                             env=_npm_env(), check=False, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise InstallError(f"`npm view {package} version` timed out (is the npm registry reachable?)") from None
    version = out.stdout.strip().splitlines()[-1].strip() if out.stdout.strip() else ""
    if out.returncode != 0 or not _VERSION_RE.fullmatch(version):
        raise InstallError(f"`npm view {package} version` failed (exit {out.returncode}): "
                           f"{_tail(out.stderr or out.stdout)}")
    return version


def _bins(folder: Path) -> tuple[Path, Path]:
    bin_dir = folder / "node_modules" / ".bin"
    return bin_dir / "claude", bin_dir / "codex"


def _installed(folder: Path, claude_version: str, codex_version: str) -> bool:
    claude, codex = _bins(folder)
    return reported_version(claude) == claude_version and reported_version(codex) == codex_version


def _tail(text: str, lines: int = 15) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def _npm_install(folder: Path, claude_version: str, codex_version: str) -> None:
    """Install into a staging folder next to ``folder`` and move it into place only once it works, so an
    interrupted install never leaves a half-filled cache that looks complete."""
    npm = _npm()
    staging = folder.with_name(f".{folder.name}.staging-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    (staging / "package.json").write_text(json.dumps({
        "name": "pairloop-e2e-agents", "private": True,
        "description": "The real agent TUIs for pairloop's end-to-end tests (tests/e2e/agents_install.py).",
        "dependencies": {CLAUDE_PACKAGE: claude_version, CODEX_PACKAGE: codex_version},
    }, indent=2) + "\n")
    argv = [npm, "install", "--no-audit", "--no-fund", "--no-update-notifier", "--loglevel=error"]
    try:
        out = subprocess.run(argv, cwd=staging, capture_output=True, text=True, timeout=NPM_TIMEOUT,
                             env=_npm_env(), check=False, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        shutil.rmtree(staging, ignore_errors=True)
        raise InstallError(f"npm install of {CLAUDE_PACKAGE}@{claude_version} and {CODEX_PACKAGE}@"
                           f"{codex_version} took longer than {NPM_TIMEOUT:.0f}s") from None
    if out.returncode != 0:
        shutil.rmtree(staging, ignore_errors=True)
        raise InstallError(f"npm install of {CLAUDE_PACKAGE}@{claude_version} and {CODEX_PACKAGE}@{codex_version} "
                           f"failed (exit {out.returncode}):\n{_tail(out.stderr or out.stdout)}")
    claude, codex = _bins(staging)
    got = (reported_version(claude), reported_version(codex))
    if got != (claude_version, codex_version):
        shutil.rmtree(staging, ignore_errors=True)
        raise InstallError(f"after npm install, `claude --version` / `codex --version` report {got[0]} / {got[1]}, "
                           f"expected {claude_version} / {codex_version} (is a platform package missing? "
                           f"npm said:\n{_tail(out.stderr or out.stdout)})")
    if folder.exists():
        shutil.rmtree(folder)
    staging.rename(folder)


class _Lock:
    """An exclusive flock on a file in the cache, with a deadline instead of waiting forever."""

    def __init__(self, path: Path, timeout: float = LOCK_TIMEOUT) -> None:
        self.path = path
        self.timeout = timeout
        self.fd = -1

    def __enter__(self) -> _Lock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        # Another process holding it is installing: wait for it, then reuse its result.
        if not poll(self._take, self.timeout, delay=0.2, max_delay=0.2):
            os.close(self.fd)
            raise InstallError(f"another process has held {self.path} for over {self.timeout:.0f}s "
                               "(a stuck npm install?)")
        return self

    def _take(self) -> bool:
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True

    def __exit__(self, *exc: object) -> None:
        fcntl.flock(self.fd, fcntl.LOCK_UN)
        os.close(self.fd)


def install_agents(*, canary: bool | None = None, cache_dir: Path = CACHE_DIR) -> Agents:
    """Install (or reuse) the pinned agents, or the newest ones in canary mode; return their binaries."""
    canary = canary_requested() if canary is None else canary
    if canary:
        claude_version, codex_version = latest_version(CLAUDE_PACKAGE), latest_version(CODEX_PACKAGE)
        name = f"canary-{claude_version}-{codex_version}"
    else:
        claude_version, codex_version = CLAUDE_VERSION, CODEX_VERSION
        name = f"agents-{claude_version}-{codex_version}"
    folder = cache_dir / name
    if not _installed(folder, claude_version, codex_version):
        _npm()  # a clear error before taking the lock when npm is missing
        with _Lock(cache_dir / f"{name}.lock"):
            if not _installed(folder, claude_version, codex_version):  # someone may have finished meanwhile
                _npm_install(folder, claude_version, codex_version)
    claude, codex = _bins(folder)
    return Agents(claude.absolute(), codex.absolute(), claude_version, codex_version, folder, canary)


if __name__ == "__main__":
    started = time.monotonic()
    agents = install_agents()
    print(f"{agents.label} in {agents.folder} ({time.monotonic() - started:.1f}s)")
    print(f"claude: {agents.claude}\ncodex:  {agents.codex}")
