"""claude's auto mode behind a custom endpoint (here the model server): its safety check cannot run, so a command
it would check stops on a screen that waits for the human. The bridge must read it as a dialog and call the human,
never answer it."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

from pairloop.agents.claude import AUTO_MODE_UNCHECKED
from tests.e2e.driver import Pair
from tests.e2e.model_server import shell, text


def test_auto_modes_unchecked_screen_holds_the_relay_and_calls_the_human(pair: Pair) -> None:
    got = pair.root / "notified.jsonl"
    script = pair.root / "notify.py"
    script.write_text(f"import sys\nwith open({str(got)!r}, 'a') as f:\n    f.write(sys.stdin.read())\n")
    (pair.repo / ".pairloop.toml").write_text(f"notify = {json.dumps([sys.executable, str(script)])}\n")
    pair.server.script("anthropic", shell("git commit --allow-empty -m 'wip: greet'", then=text("Committed.")))
    pair.start("Commit your work.", "claude", "codex")

    def calls() -> list[dict[str, Any]]:
        lines = got.read_text().splitlines() if got.exists() else []
        return [c for c in map(json.loads, lines) if c["kind"] == "dialog" and c["role"] == "worker"]

    pair.wait(lambda: "Auto mode can" in pair.capture("worker") or None, 60, "claude's auto mode screen")
    # The bridge looks at a pane when it has something for it (no hook fires for this screen): a message.
    msg = pair.send("worker", "Are you there?")
    queued = pair.wait(lambda: next((e for e in pair.events("queued", msg, "worker")
                                     if AUTO_MODE_UNCHECKED in str(e.get("reason", ""))), None), 30,
                       "the message held for the dialog")
    assert "dialog" in queued["reason"], queued
    (call,) = pair.wait(calls, 20, "the notify command's call for the worker's dialog")
    assert call["reason"] == AUTO_MODE_UNCHECKED, call
    assert pair.status()["agents"]["worker"]["state"] == "dialog"
    # Held, not answered: the message waits, the screen stays up and the commit is not made.
    pair.holds(lambda: pair.delivered(msg, "worker") is None, 3, "the message to the worker waiting")
    assert "Auto mode can" in pair.capture("worker")
    log = subprocess.run(["git", "-C", str(pair.repo), "log", "--format=%s"], capture_output=True, text=True,
                         check=True).stdout
    assert "wip: greet" not in log
