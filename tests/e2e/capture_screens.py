"""Capture the screen fixtures of tests/test_screen_real.py from the real, pinned claude and codex.

``python -m tests.e2e.capture_screens [--out DIR] [--only NAME…]`` drives each agent into every state listed in
tests/test_screen_real.py's EXPECTED (idle, busy, draft, dialogs, …) against the scripted model server, at
100x30 and 200x50, and writes one ``tmux capture-pane -p -J`` per state and size: exactly the text the bridge
reads. A new TUI release is then: bump the pins, run this, run tests/test_screen_real.py, fix the rules.
``PAIRLOOP_E2E_CANARY=1`` captures the newest releases instead: give it ``--out`` so the fixtures stay those of
the pinned versions. The fixtures hold the machine's temp paths (the throwaway repo's folder), nothing else of it.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bridge.deadline import poll
from tests.e2e import model_server
from tests.e2e.agents_install import install_agents
from tests.e2e.driver import Pair, scratch_root
from tests.e2e.homes import shell_command
from tests.e2e.model_server import ModelServer, error, shell, text

SIZES = ((100, 30), (200, 50))
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "screens"
HUMAN_DRAFT = "half typed draft by a hum"
ENVELOPE = ('[pairloop] #3 task from codex · id m-7f3a · reply: pairloop send "<text>"\n'
            "Please look at the retry path.\nIt drops the last attempt.\n(pairloop) end of message")
CLAUDE_IDLE = "❯\u00a0"
STEP_TIMEOUT = 40.0

# While set, the model server holds every script-consuming request before answering it, so a capture can show
# an agent waiting for its first token ("thinking" / "Working").
_STALL = threading.Event()


def _stalling(original: Callable[[Any, dict[str, Any]], None]) -> Callable[[Any, dict[str, Any]], None]:
    def handler(self: Any, body: dict[str, Any]) -> None:
        if body.get("tools") or body.get("input"):
            poll(lambda: not _STALL.is_set(), 60.0, delay=0.05, max_delay=0.05)
        original(self, body)
    return handler


def _install_stall() -> None:
    """Wrap the model server's two API handlers (in this process only) so that _STALL can hold them."""
    for name in ("_anthropic", "_openai"):
        setattr(model_server._Handler, name, _stalling(getattr(model_server._Handler, name)))


class Capturer:
    """One Pair world; each state is captured in a fresh agent window of the wanted size."""

    def __init__(self, out: Path, only: set[str]) -> None:
        self.out = out
        self.only = only
        self.server = ModelServer().start()
        self.pair = Pair(scratch_root("pairloop-capture-"), self.server, install_agents())
        self.pair.tmux("-f", "/dev/null", "new-session", "-d", "-x", "80", "-y", "24", "sleep 100000")
        self.pane = ""

    def close(self) -> None:
        _STALL.clear()
        left = self.pair.close()
        self.server.stop()
        if left:
            print("processes outlived the tmux server:", *left, sep="\n  ")

    # ---- panes --------------------------------------------------------------------------------------

    def launch(self, argv: list[str], size: tuple[int, int]) -> None:
        cmd = shell_command(self.pair.env, argv, self.pair.repo)
        self.pane = self.pair.tmux("new-window", "-d", "-P", "-F", "#{pane_id}", cmd).strip()
        self.pair.tmux("resize-window", "-t", self.pane, "-x", str(size[0]), "-y", str(size[1]))

    def screen(self) -> str:
        return self.pair.capture(self.pane)

    # The drivers below chain these, so each returns the capturer.
    def wait(self, what: str, predicate: Callable[[str], object], timeout: float = STEP_TIMEOUT) -> Capturer:
        if not poll(lambda: predicate(self.screen()), timeout, delay=0.03, max_delay=0.1):
            raise RuntimeError(f"timed out waiting for {what}:\n{self.screen()}")
        return self

    def keys(self, *keys: str) -> Capturer:
        self.pair.tmux("send-keys", "-t", self.pane, *keys)
        return self

    def type(self, literal: str) -> Capturer:
        self.pair.tmux("send-keys", "-t", self.pane, "-l", literal)
        return self

    def reply(self, flavor: model_server.Flavor, reply: model_server.Reply) -> Capturer:
        self.server.script(flavor, reply)
        return self

    def stall(self) -> Capturer:
        _STALL.set()
        return self

    def pause(self, seconds: float) -> Capturer:
        time.sleep(seconds)
        return self

    def paste(self, body: str) -> Capturer:
        with tempfile.NamedTemporaryFile("w", suffix=".txt", dir=self.pair.root, delete=False) as f:
            f.write(body)
        self.pair.tmux("load-buffer", "-b", "capture", f.name)
        self.pair.tmux("paste-buffer", "-p", "-d", "-b", "capture", "-t", self.pane)
        Path(f.name).unlink()
        return self

    def submit(self, body: str, key: str) -> Capturer:
        """Paste and submit; press the key once more if the prompt did not leave the box."""
        flavor: model_server.Flavor = "anthropic" if key == "Enter" else "openai"
        self.paste(body)
        time.sleep(0.3)
        self.keys(key)
        seen = poll(lambda: any(body in t for t in self.server.user_texts(flavor)) or _STALL.is_set(), 5.0)
        if not seen and body in self.screen().rsplit("\n", 8)[-1]:
            self.keys(key)
        return self

    def save(self, name: str, size: tuple[int, int]) -> None:
        time.sleep(0.4)  # let the frame settle
        path = self.out / f"{name}-{size[0]}x{size[1]}.txt"
        path.write_text(self.screen(), encoding="utf-8")
        print("captured", path.name)

    @contextmanager
    def state(self, name: str, argv: list[str], size: tuple[int, int],
              ready: Callable[[str], object]) -> Iterator[None]:
        self.server.clear()
        _STALL.clear()
        self.launch(argv, size)
        self.wait(f"{name}: the agent to start", ready)
        time.sleep(1.0)  # an Enter right after the first paint can be dropped
        try:
            yield
            self.save(name, size)
        finally:
            _STALL.clear()
            self.pair.tmux("kill-pane", "-t", self.pane, check=False)

    def wanted(self, name: str) -> bool:
        return not self.only or name in self.only


def _claude_ready(s: str) -> bool:
    return CLAUDE_IDLE in s and "───" in s


def _codex_ready(s: str) -> bool:
    return "for agents" in s and "Ask Codex to do anything" in s


def capture_claude(c: Capturer, size: tuple[int, int]) -> None:
    argv = [str(c.pair.agents.claude)]
    busy = "esc to interrupt"
    steps: dict[str, Callable[[], object]] = {
        "claude-idle-fresh": lambda: None,
        "claude-idle-after-turn": lambda: (c.reply("anthropic", text("Hi there, ready.")),
                                           c.submit("say hi", "Enter"), c.wait("turn end", lambda s: "✻ " in s)),
        "claude-busy-thinking": lambda: (c.stall(), c.submit("think first", "Enter"),
                                         c.wait("spinner", lambda s: busy in s)),
        "claude-busy-streaming": lambda: (c.reply("anthropic", text("streaming a long answer " * 30,
                                                                            stream_seconds=20, chunks=40)),
                                          c.submit("stream please", "Enter"),
                                          c.wait("streamed text", lambda s: "streaming a long" in s and busy in s)),
        "claude-busy-tool": lambda: (c.reply("anthropic", shell("sleep 15")), c.submit("run a tool", "Enter"),
                                     c.wait("tool", lambda s: "Running sleep 15" in s)),
        "claude-draft": lambda: (c.type(HUMAN_DRAFT), c.wait("draft", lambda s: HUMAN_DRAFT in s)),
        "claude-paste-in-box": lambda: (c.paste(ENVELOPE), c.wait("placeholder", lambda s: "[Pasted text" in s)),
        "claude-queued": lambda: (c.reply("anthropic", shell("sleep 15")), c.submit("run a tool", "Enter"),
                                  c.wait("tool", lambda s: "Running sleep 15" in s), c.paste("a queued message"),
                                  c.keys("Enter"), c.wait("queued", lambda s: "queued messages" in s)),
        # `/compact` ends with "⎿  Compacted …" and no "✻ … for Ns" line.
        "claude-idle-after-compact": lambda: (c.reply("anthropic", text("Hi there, ready.")),
                                              c.submit("say hi", "Enter"), c.wait("turn end", lambda s: "✻ " in s),
                                              c.type("/compact"), c.pause(0.5), c.keys("Enter"),
                                              c.wait("compacted", lambda s: "Compacted" in s)),
        # An API error ends the turn; the empty box then shows a hint ("Resend your message to try again").
        "claude-error-turn-ended": lambda: (c.reply("anthropic", error(429, repeat=50)),
                                            c.submit("fail please", "Enter"),
                                            c.wait("error", lambda s: "API Error" in s and "───" in s)),
        # Auto mode's safety check runs on Anthropic's side: behind the model server (any custom endpoint) a
        # command it would check stops on "Auto mode can't check actions in this session".
        "claude-auto-mode-unchecked": lambda: (c.reply("anthropic", shell("git commit --allow-empty -m capture")),
                                               c.submit("commit please", "Enter"),
                                               c.wait("the auto mode screen", lambda s: "t check actions" in s)),
    }
    for name, drive in steps.items():
        if c.wanted(name):
            with c.state(name, argv, size, _claude_ready):
                drive()
    if c.wanted("claude-permission-dialog"):
        # claude's own default (auto mode) decides most tools itself; the dialog shows in the default mode.
        with c.state("claude-permission-dialog", [*argv, "--permission-mode", "default"], size, _claude_ready):
            c.server.script("anthropic", shell("echo hi > made-by-claude.txt"))
            c.submit("write a file", "Enter")
            c.wait("permission dialog", lambda s: "Do you want to proceed?" in s)
    if c.wanted("claude-trust-dialog"):
        c.pair.prepare(trust=False)
        with c.state("claude-trust-dialog", argv, size, lambda s: "trust this folder" in s):
            pass
    if c.wanted("claude-api-key-dialog"):
        homes = c.pair.prepare(claude_api_key=True)
        data = json.loads(homes.claude_json.read_text())
        data.pop("customApiKeyResponses", None)
        homes.claude_json.write_text(json.dumps(data, indent=2) + "\n")
        with c.state("claude-api-key-dialog", argv, size, lambda s: "use this API key" in s):
            pass
    c.pair.prepare()


def capture_codex(c: Capturer, size: tuple[int, int]) -> None:
    argv = [str(c.pair.agents.codex), "--no-daemon"]
    working = "esc to interrupt"
    if c.wanted("codex-starting"):
        c.server.clear()
        c.launch(argv, size)
        c.wait("the logo and input row before the model line",
               lambda s: "› " in s and "for agents" not in s and ("OpenAI Codex" in s), 20)
        path = c.out / f"codex-starting-{size[0]}x{size[1]}.txt"
        path.write_text(c.screen(), encoding="utf-8")
        print("captured", path.name)
        c.pair.tmux("kill-pane", "-t", c.pane, check=False)
    steps: dict[str, Callable[[], object]] = {
        "codex-idle-fresh": lambda: None,
        "codex-idle-after-turn": lambda: (c.reply("openai", text("Hi there, ready.")),
                                          c.submit("say hi", "Tab"), c.wait("turn end", lambda s: "Worked for" in s)),
        "codex-busy-working": lambda: (c.stall(), c.submit("think first", "Tab"),
                                       c.wait("Working", lambda s: working in s)),
        "codex-busy-streaming": lambda: (c.reply("openai", text("streaming a long answer " * 30,
                                                                        stream_seconds=20, chunks=40)),
                                         c.submit("stream please", "Tab"),
                                         c.wait("streamed text", lambda s: "streaming a long" in s)),
        "codex-busy-tool": lambda: (c.reply("openai", shell("sleep 15")), c.submit("run a tool", "Tab"),
                                    c.wait("tool", lambda s: "background terminal" in s and working in s)),
        "codex-draft": lambda: (c.type(HUMAN_DRAFT), c.wait("draft", lambda s: HUMAN_DRAFT in s)),
        "codex-draft-while-busy": lambda: (c.stall(), c.submit("think first", "Tab"),
                                           c.wait("Working", lambda s: working in s), c.type(HUMAN_DRAFT),
                                           c.wait("draft", lambda s: HUMAN_DRAFT in s)),
        "codex-queued": lambda: (c.stall(), c.submit("think first", "Tab"),
                                 c.wait("Working", lambda s: working in s), c.paste("a queued message"),
                                 c.pause(0.3), c.keys("Tab"), c.wait("queued", lambda s: "Queued" in s)),
        "codex-paste-in-box": lambda: (c.paste(ENVELOPE), c.wait("paste", lambda s: "[pairloop] #3" in s)),
        "codex-approval-dialog": lambda: (
            c.reply("openai", shell("touch /root/outside-the-workspace", codex_extra={
                "sandbox_permissions": "require_escalated", "justification": "write outside the workspace"})),
            c.submit("write outside", "Tab"),
            c.wait("approval", lambda s: "Would you like to run the following command?" in s)),
        "codex-error-turn-ended": lambda: (c.reply("openai", error(500, repeat=50)),
                                           c.submit("fail please", "Tab"), c.wait("error", lambda s: "■ " in s)),
    }
    for name, drive in steps.items():
        if c.wanted(name):
            with c.state(name, argv, size, _codex_ready):
                drive()
    if c.wanted("codex-thread-open-elsewhere"):
        # A second codex resuming a thread that a live codex still holds: it waits on a screen of its own.
        with c.state("codex-idle-after-turn", argv, size, _codex_ready):
            c.server.script("openai", text("Hi there, ready."))
            c.submit("say hi", "Tab")
            c.wait("turn end", lambda s: "Worked for" in s)
            first = c.pane
            thread = next(c.pair.homes.codex_home.rglob("rollout-*.jsonl")).stem[-36:]
            c.launch([argv[0], "resume", thread, *argv[1:]], size)
            c.wait("the thread-is-open screen", lambda s: "open in another app" in s)
            c.save("codex-thread-open-elsewhere", size)
            c.pair.tmux("kill-pane", "-t", c.pane, check=False)
            c.pane = first
    if c.wanted("codex-trust-dialog"):
        c.pair.prepare(trust=False)
        with c.state("codex-trust-dialog", argv, size, lambda s: "Trust and continue" in s):
            pass
    if c.wanted("codex-model-nudge"):
        homes = c.pair.prepare()
        config = homes.codex_config.read_text()
        homes.codex_config.write_text(config.split("[notice.model_migrations]")[0])
        with c.state("codex-model-nudge", argv, size, lambda s: "Try new model" in s):
            pass
    c.pair.prepare()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--out", type=Path, default=FIXTURES)
    parser.add_argument("--only", nargs="*", default=[], help="state names, e.g. claude-draft codex-queued")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    _install_stall()
    c = Capturer(args.out, set(args.only))
    try:
        for size in SIZES:
            capture_claude(c, size)
            capture_codex(c, size)
    finally:
        c.close()


if __name__ == "__main__":
    main()
