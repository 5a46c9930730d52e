"""The recordings of the real claude and codex panes: valid asciicast v2, markers at the deliveries, and each one
holding its pane's screen (played through a terminal emulator, the recording ends on what tmux shows)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from functools import partial
from pathlib import Path

import pyte
import pytest

from bridge import Cast, cast_path, read_cast
from tests.e2e.driver import Pair
from tests.e2e.model_server import shell, text
from tests.e2e.test_real_pair import received_from, wait_delivered, wait_idle

pytestmark = pytest.mark.e2e


def emulated(cast: Cast) -> list[str]:
    """The screen the recording ends on, as a terminal emulator draws it."""
    screen = pyte.Screen(cast.header.width, cast.header.height)
    stream = pyte.Stream(screen)
    for event in cast.events:
        if event.code == "o":
            stream.feed(event.data)
        elif event.code == "r":
            cols, rows = (int(n) for n in event.data.split("x"))
            screen.resize(rows, cols)
    return [line.rstrip() for line in screen.display]


def live(pair: Pair, role: str) -> list[str]:
    return [line.rstrip() for line in pair.tmux("capture-pane", "-p", "-t", pair.pane(role)).split("\n")]


def agreement(pair: Pair, role: str) -> float:
    """How many of the pane's non-blank rows the recording ends on, row for row."""
    shown = live(pair, role)
    played = emulated(read_cast(cast_path(pair.run_dir, role)))
    rows = [(i, line) for i, line in enumerate(shown) if line.strip()]
    same = sum(1 for i, line in rows if i < len(played) and played[i] == line)
    return same / max(1, len(rows))


def delivery_marked(pair: Pair, role: str, seq: int) -> bool:
    return any(m.data.startswith("delivered ") and f"#{seq} " in m.data
               for m in read_cast(cast_path(pair.run_dir, role)).markers())


def ends_on_its_screen(pair: Pair, role: str) -> bool:
    return agreement(pair, role) >= 0.9


def test_the_real_panes_are_recorded_with_their_screens(pair: Pair) -> None:
    review = "Ready for review: greet() is in commit abc123, tests in test_greet.py."
    reply = "Looks right; approve from me."
    pair.server.script("anthropic", shell(f'pairloop send "{review}"', then=text("Asked for a review.")),
                       text("Thanks."))
    pair.server.script("openai", shell(f'pairloop send "{reply}"', then=text("Review sent.")))
    pair.start("Add greet(name) to greet.py.", "claude", "codex")
    to_reviewer = received_from(pair, "worker")
    wait_delivered(pair, to_reviewer["id"], "reviewer")
    to_worker = received_from(pair, "reviewer")
    wait_delivered(pair, to_worker["id"], "worker")
    wait_idle(pair, "worker")
    wait_idle(pair, "reviewer")
    for role, msg in (("worker", to_worker), ("reviewer", to_reviewer)):
        cast = read_cast(cast_path(pair.run_dir, role))
        assert not cast.damaged
        size = pair.tmux("display-message", "-p", "-t", pair.pane(role), "#{pane_width}x#{pane_height}").strip()
        assert f"{cast.header.width}x{cast.header.height}" == size
        times = [e.time for e in cast.events]
        assert times == sorted(times)
        pair.wait(partial(delivery_marked, pair, role, int(msg["seq"])), 10,
                  f"the delivery marker in the {role}'s recording")
        # The recording ends on the screen tmux shows (a quiet pane: nothing is left unrecorded).
        pair.wait(partial(ends_on_its_screen, pair, role), 15, f"the {role}'s recording to end on its screen")
    asciinema = shutil.which("asciinema") or str(Path(sys.executable).parent / "asciinema")
    if Path(asciinema).exists():
        for role in ("worker", "reviewer"):
            shown = subprocess.run([asciinema, "cat", str(cast_path(pair.run_dir, role))], capture_output=True,
                                   check=False)
            assert shown.returncode == 0, shown.stderr
