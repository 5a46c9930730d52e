"""The wheel ships both packages, the briefs and PLAN.template.md, and installs the console script."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

from pairloop.summary.plan import template_text

ROOT = Path(__file__).resolve().parent.parent


def test_plan_template_is_readable() -> None:
    text = template_text()
    assert text == (ROOT / "PLAN.template.md").read_text()
    assert "<!-- pairloop:begin steps -->" in text


def test_wheel_contents(tmp_path: Path) -> None:
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(tmp_path), str(ROOT)], check=True, capture_output=True)
    (wheel,) = tmp_path.glob("pairloop-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for required in ("pairloop/PLAN.template.md", "pairloop/cli.py", "pairloop/agents/briefs/worker.md",
                     "pairloop/agents/briefs/reviewer.md", "bridge/relay.py", "bridge/panes/tmux.py"):
        assert required in names, required
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert "pairloop = pairloop.cli:main" in zipfile.ZipFile(wheel).read(entry_points).decode()
    assert not [n for n in names if n.startswith("tests/")]
