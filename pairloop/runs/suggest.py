"""A verify command to suggest when none is configured, guessed from what the repository holds. The guess is pure
(:func:`suggest_verify` reads nothing); :func:`repo_files` gathers what it looks at."""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Mapping
from pathlib import Path

# The files at the top of a repository the guess looks at; the content only of those it reads.
READ = ("Makefile", "makefile", "GNUmakefile", "package.json", "pyproject.toml", "setup.cfg", "tox.ini", "justfile")
LOOKED_AT = (*READ, "Cargo.toml", "go.mod", "pytest.ini", "conftest.py", "tests", "test", "gradlew", "pom.xml",
             "deno.json", "mix.exs", "Gemfile")
NPM_PLACEHOLDER = "no test specified"
_MAKE_TEST = re.compile(r"^test\s*:", re.MULTILINE)
_JUST_TEST = re.compile(r"^test\b[^:\n]*:", re.MULTILINE)


def suggest_verify(files: Mapping[str, str | None]) -> str:
    """The command that most likely runs this repository's tests, or "" when nothing says.

    ``files`` maps the names found at the repository's top (see LOOKED_AT) to their text (None when not read or
    not a file). A project's own entry point (make, just, npm scripts) wins over a language's default runner."""
    def text(name: str) -> str:
        return files.get(name) or ""

    if any(_MAKE_TEST.search(text(n)) for n in ("Makefile", "makefile", "GNUmakefile")):
        return "make test"
    if _JUST_TEST.search(text("justfile")):
        return "just test"
    if "package.json" in files:
        try:
            scripts = json.loads(text("package.json") or "{}").get("scripts", {})
        except (ValueError, AttributeError):
            scripts = {}
        test = scripts.get("test", "") if isinstance(scripts, dict) else ""
        if isinstance(test, str) and test and NPM_PLACEHOLDER not in test:
            return "npm test"
    if "Cargo.toml" in files:
        return "cargo test"
    if "go.mod" in files:
        return "go test ./..."
    python = ("pytest.ini" in files or "conftest.py" in files or "[tool.pytest" in text("pyproject.toml")
              or "[tool:pytest]" in text("setup.cfg") or "[pytest]" in text("tox.ini"))
    if python or (("tests" in files or "test" in files) and ("pyproject.toml" in files or "setup.cfg" in files)):
        return "python -m pytest"
    if "tox.ini" in files:
        return "tox"
    if "gradlew" in files:
        return "./gradlew test"
    if "pom.xml" in files:
        return "mvn test"
    if "mix.exs" in files:
        return "mix test"
    if "deno.json" in files:
        return "deno test"
    return ""


def repo_files(repo: Path) -> dict[str, str | None]:
    """What :func:`suggest_verify` looks at in ``repo``: the names present at its top, and the small text files'
    content."""
    found: dict[str, str | None] = {}
    for name in LOOKED_AT:
        path = repo / name
        if not path.exists():
            continue
        content = None
        if name in READ and path.is_file():
            try:
                content = path.read_text(encoding="utf-8", errors="replace")[:200_000]
            except OSError:
                content = None
        found[name] = content
    return found


def advice(repo: Path) -> str:
    """How to configure one, naming the guess when there is one."""
    guess = suggest_verify(repo_files(repo))
    if guess:
        return (f"this repository looks like `{guess}`: add verify = \"{guess}\" to .pairloop.toml, or start "
                f"with --verify '{guess}'")
    return "set verify = \"…\" in .pairloop.toml (the command that runs your tests), or start with --verify CMD"


def hint(repo: Path) -> str:
    """One line for `start` when no verify command is configured."""
    return f"no verify command: checkpoints are not checked; {advice(repo)}"


def verify_line(command: str | tuple[str, ...], timeout: float) -> str:
    """What the run verifies each checkpoint with, for `start` and `doctor`."""
    shown = command if isinstance(command, str) else shlex.join(command)
    return f"`{shown}` on every review checkpoint (timeout {timeout:g} s)"
