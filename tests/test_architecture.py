"""The design's rules about who imports what, checked on the source."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

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


def imported_modules(path: Path) -> set[str]:
    """Every module ``path`` imports, by its full dotted name."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def product_sources() -> list[Path]:
    """The product's side of bridge's face: pairloop, and the helpers its tests drive it with. (The benchmarks
    use the face too, but one fabricates a long ledger the way only the bridge writes it.)"""
    return sorted([*(ROOT / "pairloop").rglob("*.py"), ROOT / "tests" / "helpers.py"])


def test_the_product_uses_only_bridge_s_public_face() -> None:
    offenders = {str(p.relative_to(ROOT)): sorted(m for m in imported_modules(p) if m.startswith("bridge."))
                 for p in product_sources()}
    assert {name: mods for name, mods in offenders.items() if mods} == {}


def face() -> tuple[list[str], set[str], set[str], set[str]]:
    """bridge's ``__all__``, the names its lazy table loads, the names it imports for the type checker, and the
    names it binds at once."""
    tree = ast.parse((ROOT / "bridge" / "__init__.py").read_text())
    exported: list[str] = []
    table: set[str] = set()
    typed: set[str] = set()
    eager: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.Assign | ast.AugAssign | ast.AnnAssign):
            target = node.targets[0] if isinstance(node, ast.Assign) else node.target
            if isinstance(target, ast.Name) and target.id == "__all__":
                exported += ast.literal_eval(node.value)  # type: ignore[arg-type]
            elif isinstance(target, ast.Name) and target.id == "_HOME":
                table = set(ast.literal_eval(node.value))  # type: ignore[arg-type]
        elif isinstance(node, ast.If):  # if TYPE_CHECKING:
            typed |= {a.asname or a.name for n in node.body if isinstance(n, ast.ImportFrom) for a in n.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("bridge."):
            eager |= {a.asname or a.name for a in node.names}
    return exported, table, typed, eager


def test_bridge_s_face_is_one_list_of_names() -> None:
    exported, table, typed, eager = face()
    assert len(exported) == len(set(exported))
    assert set(exported) == table | eager
    assert table == typed, "each lazily loaded name is imported for the type checker too"
    assert not table & eager


def test_bridge_s_own_modules_import_each_other_by_full_path() -> None:
    """The face is for the product; a bridge module going through it could close an import cycle."""
    offenders = [str(p.relative_to(ROOT)) for p in (ROOT / "bridge").rglob("*.py")
                 if p.name != "__init__.py" and "bridge" in imported_modules(p)]
    assert offenders == []


EVERY_MODULE = ("import importlib, pkgutil, types; import bridge; "
                "[importlib.import_module(m.name) for m in pkgutil.walk_packages(bridge.__path__, 'bridge.')]")
NO_MODULE_FOR_A_NAME = ("import types, bridge; "
                        "bad = [n for n in bridge.__all__ if isinstance(getattr(bridge, n), types.ModuleType)]; "
                        "assert not bad, f'these names give a submodule, not what the face promises: {bad}'")


@pytest.mark.parametrize("order", [
    "from bridge import *; import bridge.__main__",
    "import bridge.__main__; from bridge import *",
    f"{EVERY_MODULE}; {NO_MODULE_FOR_A_NAME}",  # a name that is also a submodule's stays the name
])
def test_every_name_of_the_face_loads(order: str) -> None:
    proc = subprocess.run([sys.executable, "-c", order], cwd=ROOT, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr


def test_importing_bridge_loads_only_what_it_binds_at_once() -> None:
    """A hook an agent runs on every turn uses two names of the face; it must not pay for the rest."""
    lone = "import sys, bridge; print(sorted(m for m in sys.modules if m.startswith('bridge.')))"
    proc = subprocess.run([sys.executable, "-c", lone], cwd=ROOT, capture_output=True, text=True, check=True)
    assert proc.stdout.strip() == "['bridge.git']"


# Every file and folder of a run directory (and of its mailbox) has ONE owning module: only it spells the name,
# everyone else asks it for the path. A name is a whole string constant (or the fixed start of an f-string).
RUN_DIR_OWNERS = {
    "run.json": "bridge/rundir/manifest.py",
    ".run.json.lock": "bridge/rundir/manifest.py",
    "ledger.jsonl": "bridge/rundir/ledger.py",
    "ledger.snapshot": "bridge/rundir/snapshot.py",
    ".cast": "bridge/rundir/cast.py",  # worker.cast, reviewer.cast: the panes' recordings
    "bridge.lock": "bridge/rundir/lock.py",
    "bridge.log": "bridge/report.py",
    "outbox": "bridge/rundir/message.py",
    "events": "bridge/rundir/agent_events.py",
    "control": "bridge/rundir/control.py",
    "rejected": "bridge/inbox/mailbox.py",
    "attachments": "bridge/panes/envelope.py",
    "on-agreement.log": "bridge/protocol/referee.py",
    "on-agreement.pid": "bridge/protocol/referee.py",
    ".paste-": "bridge/courier.py",
    "launch": "pairloop/runs/launch.py",
    "brief-": "pairloop/agents/briefs/__init__.py",
    "claude-settings-": "pairloop/agents/claude.py",
    "hook-errors.log": "pairloop/agents/hook.py",
    "PLAN.template.md": "pairloop/summary/plan.py",
    "digest.json": "pairloop/summary/summarize.py",
    "PR_NOTES.md": "pairloop/summary/summarize.py",
    "report.html": "pairloop/summary/report.py",
    "verify-runs": "bridge/verify.py",  # the verify command's logs, and its temporary worktrees
}
_PREFIXES = {name for name in RUN_DIR_OWNERS if name.endswith("-")}


def _not_paths(tree: ast.AST) -> set[int]:
    """Strings that cannot be a file name: dict keys, subscripts and a class's keywords (an event's tag)."""
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Dict):
            skip |= {id(k) for k in node.keys if k is not None}
        elif isinstance(node, ast.Subscript):
            skip.add(id(node.slice))
        elif isinstance(node, ast.ClassDef):
            skip |= {id(k.value) for k in node.keywords}
    return skip


def _names_spelled(path: Path) -> set[str]:
    found: set[str] = set()
    tree = ast.parse(path.read_text())
    skip = _not_paths(tree)
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            if node.value in RUN_DIR_OWNERS:
                found.add(node.value)
        elif isinstance(node, ast.JoinedStr) and node.values:
            head = node.values[0]
            if isinstance(head, ast.Constant) and isinstance(head.value, str):
                found |= {p for p in _PREFIXES if head.value.startswith(p)}
    return found


def test_each_run_directory_file_has_one_owner() -> None:
    spelled: dict[str, list[str]] = {}
    for pkg in ("bridge", "pairloop"):
        for path in sorted((ROOT / pkg).rglob("*.py")):
            for name in _names_spelled(path):
                spelled.setdefault(name, []).append(str(path.relative_to(ROOT)))
    strays = {name: [w for w in where if w != RUN_DIR_OWNERS[name]] for name, where in spelled.items()}
    assert {n: w for n, w in strays.items() if w} == {}, "a run-directory name is spelled outside its owner"
    assert set(spelled) == set(RUN_DIR_OWNERS), "every owner still spells its name"
