"""PLAN.md's template: shipped inside the wheel, read from the source tree in a checkout."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

TEMPLATE = "PLAN.template.md"


def template_text() -> str:
    packaged = resources.files("pairloop").joinpath(TEMPLATE)
    if packaged.is_file():
        return packaged.read_text(encoding="utf-8")
    return (Path(__file__).resolve().parents[2] / TEMPLATE).read_text(encoding="utf-8")
