"""The design's rules about who imports what, checked on the source."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found


def sources() -> dict[str, set[str]]:
    return {str(p.relative_to(ROOT)): imports(p) for pkg in ("bridge", "pairloop") for p in (ROOT / pkg).rglob("*.py")}


def test_bridge_never_imports_pairloop() -> None:
    offenders = [name for name, mods in sources().items() if name.startswith("bridge/") and "pairloop" in mods]
    assert offenders == []


def test_only_one_module_imports_libtmux() -> None:
    assert [name for name, mods in sources().items() if "libtmux" in mods] == ["bridge/panes/tmux.py"]


def test_only_the_cli_talks_click() -> None:
    assert [name for name, mods in sources().items() if "click" in mods] == ["pairloop/cli.py"]
