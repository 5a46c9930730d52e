"""A simulated coding-agent TUI for the demo and for fast tests. No model, no account.

It behaves like the real ones where the bridge cares: an input line when idle that takes bracketed paste and a
submit key, a busy footer while it works, an optional startup dialog, and replies through ``pairloop send``.
It writes a receipt for every submitted prompt into the run's events folder, as the real agents' hooks do.
The strings it paints are the ones ``pairloop.agents.sim.SIM_RULES`` looks for.

Like the real ones it can be resumed: it keeps its conversation (transcript, what it has reviewed, a turn cut
off midway) in a file of the run directory named by its session id, and ``--resume ID`` picks it up again; with
no such file it refuses the way claude does ("No conversation found with session ID: …") and exits 1. Told
``/compact`` it compacts its context and reports a ``compacted`` event, as claude's SessionStart hook does.
"""

from __future__ import annotations

import argparse
import codecs
import json
import os
import re
import select
import signal
import subprocess
import sys
import termios
import time
import tty
from dataclasses import dataclass, field
from pathlib import Path

from bridge import (
    RECAP_TOPIC,
    RESUMED_TOPIC,
    AgentEvent,
    InvalidManifest,
    Parsed,
    Topic,
    git,
    mailbox_of,
    parse_envelope,
    read_manifest,
    write_agent_event,
    write_atomic,
)

PASTE_START, PASTE_END = "\x1b[200~", "\x1b[201~"
IDLE_FOOTER = "? for shortcuts · enter to submit"
COMPACT_COMMAND = "/compact"  # typed into its box, it compacts its context (as claude's /compact does)
BUSY_FOOTER = "● working… ({secs}s · esc to interrupt)"
# Transcript lines start with "> ", "│ " or "· ", so quoted text can never pass for these.
DIALOG = ["Do you trust the files in this folder?", "", "  1. Yes, proceed   (enter)", "  2. No, exit"]
_ESCAPE = re.compile(r"\x1b(\[[0-?]*[ -/]*[@-~]|O.|[^\[O])", re.DOTALL)
_CUT_ESCAPE = re.compile(r"\x1b(\[[0-?]*[ -/]*|O)?")  # the start of a sequence whose end has not come yet
PLAN_TEXT = "# Plan: greet(name)\n\n## Goal\nA greet(name) function with a test.\n\n## Steps\n" \
            "1. Write greet() in greeting.py.\n2. Test it in test_greeting.py.\n"
GREETING = 'def greet(name: str) -> str:\n    """Say hello."""\n    return f"Hello, {name}!"\n'
GREETING_TEST = 'from greeting import greet\n\n\ndef test_greet() -> None:\n    assert greet("Ada") == "Hello, Ada!"\n'


@dataclass
class Sim:
    role: str
    mode: str
    work_seconds: float
    run_dir: Path | None  # where it writes its hook events: the run's mailbox
    input: str = ""
    transcript: list[str] = field(default_factory=list)
    queue: list[str] = field(default_factory=list)
    busy_since: float | None = None
    current: str = ""
    dialog: bool = False
    reviews: int = 0
    stuck: bool = False  # a composer that never submits: for testing how failures are reported
    stubborn: bool = False  # a reviewer that never approves: for testing the governor
    dispute: bool = False  # a worker that disputes the first changes request instead of changing code
    lenient: bool = False  # a reviewer that approves every review, whatever the verification said
    disputed: bool = False
    state_file: Path | None = None  # where its conversation is kept, for resuming (None: nowhere)
    unfinished: str = ""  # the prompt of a turn that was cut off (the session went down before it ended)
    answered: bool = False  # the current turn has sent its reply (a turn cut off after that is not redone)
    usage_file: Path | None = None  # where it writes what each turn "used", in claude's transcript shape
    tokens: tuple[int, int] = (0, 0)  # (input, output) tokens each turn reports
    limit_after: int = 0  # after this many turns it hits a usage limit and stops working (0: never)
    turns: int = 0
    _pending: str = ""
    _paste: str | None = None

    # ---- keys in --------------------------------------------------------------------------------------

    def feed(self, data: str) -> None:
        self._pending += data
        while self._pending:
            if self._paste is not None:
                end = self._pending.find(PASTE_END)
                if end < 0:
                    keep = len(self._pending) - (len(PASTE_END) - 1)
                    if keep > 0:
                        self._paste += self._pending[:keep]
                        self._pending = self._pending[keep:]
                    return
                self._paste += self._pending[:end]
                self._pending = self._pending[end + len(PASTE_END):]
                # tmux turns LF into CR inside a bracketed paste; a paste never submits by itself.
                self.input += self._paste.replace("\r\n", "\n").replace("\r", "\n")
                self._paste = None
                continue
            if self._pending.startswith(PASTE_START):
                self._paste = ""
                self._pending = self._pending[len(PASTE_START):]
                continue
            if self._pending.startswith("\x1b"):
                if _CUT_ESCAPE.fullmatch(self._pending):
                    return  # an escape sequence cut in half: wait for the rest
                m = _ESCAPE.match(self._pending)
                self._pending = self._pending[m.end() if m else 1:]
                continue
            ch, self._pending = self._pending[0], self._pending[1:]
            self.key(ch)

    def key(self, ch: str) -> None:
        if ch in "\r\n":
            if not self.stuck:
                self.submit()
        elif ch in "\x7f\x08":
            self.input = self.input[:-1]
        elif ch in "\x15\x03":  # C-u, C-c: clear the line
            self.input = ""
        elif ch == "\x04" and not self.input:  # C-d on an empty line: quit
            raise SystemExit(0)
        elif ch >= " ":
            self.input += ch

    def submit(self) -> None:
        text, self.input = self.input, ""
        if self.dialog:
            self.dialog = False
            self.note("(trusted this folder)")
            return
        if not text.strip():
            return
        if text.strip() == COMPACT_COMMAND:  # a command to the TUI, not a prompt: no receipt, as with claude
            self.compact()
            return
        self.receipt(text)
        self.show_prompt(text)
        if self.busy_since is None:
            self.begin(text)
        else:
            self.queue.append(text)
            self.note("(queued until the current turn ends)")
        self.save()

    # ---- the work ------------------------------------------------------------------------------------

    def begin(self, text: str) -> None:
        self.current = text
        self.answered = False
        self.busy_since = time.monotonic()

    def step(self) -> None:
        """Finish the current turn once its time is up; start the next queued prompt."""
        if self.busy_since is None or time.monotonic() - self.busy_since < self.work_seconds:
            return
        try:
            self.turns += 1
            if self.limit_after and self.turns > self.limit_after:
                self.note("⚠ usage limit reached · resets in 5 hours (simulated): the turn stopped")
            elif self.mode == "pair":
                self.record_usage()  # as a real agent's transcript has the reply before the tools it calls run
                self.finish_cut_off_turn(self.current)
                self.act(self.current)
        except Exception as exc:  # the sim must keep running whatever a command does
            self.note(f"error: {exc}")
        self.busy_since = None
        self.current = ""
        self.turn_ended()
        if self.queue:
            self.begin(self.queue.pop(0))
        self.save()

    def finish_cut_off_turn(self, prompt: str) -> None:
        """A resume notice (or recap) reminds it of a turn the session lost midway: it does that one first, as
        the briefs ask a real agent to."""
        if not self.unfinished:
            return
        messages, _ = parse_envelope(prompt)
        if any(m.sender == "pairloop" and m.topic in (RESUMED_TOPIC, RECAP_TOPIC) for m in messages):
            cut, self.unfinished = self.unfinished, ""
            self.note("(finishing the turn the session lost)")
            self.act(cut)
            self.answered = False  # that was the lost turn's reply; the current turn has its own

    # ---- resuming ------------------------------------------------------------------------------------

    def save(self) -> None:
        """Its conversation, written whole (atomically) at each submitted prompt and each turn's end."""
        if self.state_file is None:
            return
        cut = self.current if self.busy_since is not None and not self.answered else ""
        state = {"role": self.role, "transcript": self.transcript[-200:], "queue": self.queue, "reviews": self.reviews,
                 "disputed": self.disputed, "unfinished": cut or self.unfinished}
        try:
            write_atomic(self.state_file, json.dumps(state).encode("utf-8"))
        except OSError as exc:
            self.note(f"(could not keep the conversation: {exc.strerror or exc})")

    def restore(self, state: dict[str, object]) -> None:
        transcript, queue = state.get("transcript"), state.get("queue")
        self.transcript = [str(t) for t in transcript] if isinstance(transcript, list) else []
        self.queue = [str(q) for q in queue] if isinstance(queue, list) else []
        self.reviews = int(str(state.get("reviews", 0)))
        self.disputed = bool(state.get("disputed", False))
        self.unfinished = str(state.get("unfinished", ""))
        self.note("(resumed the earlier conversation)")
        if self.queue:
            self.begin(self.queue.pop(0))

    def next_wake(self) -> float:
        """Idle: nothing to animate. Busy: repaint the timer, and end the turn right when it is due."""
        if self.busy_since is None:
            return 1.0
        left = self.work_seconds - (time.monotonic() - self.busy_since)
        return max(0.0, min(0.2, left))

    def act(self, prompt: str) -> None:
        """Play the role the way the briefs ask, with the protocol's verbs."""
        messages, footer = parse_envelope(prompt)
        if self.role == "worker":
            self.act_as_worker(messages, "plan phase" in footer, prompt)
        else:
            self.act_as_reviewer(messages)

    def act_as_worker(self, messages: list[Parsed], plan_phase: bool, prompt: str) -> None:
        said = {(m.label, m.sender) for m in messages}
        topics = {m.topic for m in messages if m.sender == "pairloop"}
        # The latest verdict in a batch wins: a human's approval after the reviewer's changes overrules them.
        verdicts = [m for m in messages if m.label in ("approval", "changes requested")]
        latest = verdicts[-1] if verdicts else None
        if Topic.VERIFY_FAILED in topics:  # the approved checkpoint failed its verification: fix it (add the test)
            self.write_and_commit("test_greeting.py", GREETING_TEST, "Add a test for greet()")
            self.pairloop("review", f"Fixed what the verification found: added test_greeting.py ({self.head()}).")
        elif Topic.NOT_DONE in topics:
            self.pairloop("review", "Please review the current state.")
        elif Topic.PLAN_APPROVED in topics:
            self.implement()
        elif latest is not None and latest.label == "changes requested":
            ids = re.findall(r"\bF\d+\.\d+\b", latest.note)
            if self.dispute and not self.disputed:
                self.disputed = True
                args = [a for fid in ids for a in ("--disputed", fid)]
                self.pairloop("review", "I dispute the findings: greet() is a one-line f-string and needs no "
                              "test of its own. Unchanged; please review again.", *args)
                return
            self.write_and_commit("test_greeting.py", GREETING_TEST, "Add a test for greet()")
            args = [a for fid in ids for a in ("--fixed", fid)]
            self.pairloop("review", f"Addressed the findings: added test_greeting.py ({self.head()}).", *args)
        elif latest is not None and "the plan" not in latest.note:
            self.pairloop("done", "Finished: greet() is written, tested, and approved.")
        elif ("task", "human") in said or not messages:
            if plan_phase:
                self.write_and_commit("PLAN.md", PLAN_TEXT, "Plan the greeting feature")
                self.pairloop("review", "Plan ready for review: PLAN.md.")
            else:
                self.implement()

    def implement(self) -> None:
        self.write_and_commit("greeting.py", GREETING, "Add greet()")
        self.pairloop("review", f"Ready for review: added greet() in greeting.py ({self.head()}).")

    def act_as_reviewer(self, messages: list[Parsed]) -> None:
        requests = [m for m in messages if m.label == "review request" and m.sender == "worker"]
        if not requests:
            return
        if "(plan phase)" in requests[-1].note:
            self.pairloop("approve", "The plan is sound: go ahead.")
            return
        self.reviews += 1
        failed = [m for m in messages if m.topic == Topic.VERIFY_FAILED]
        if self.lenient:
            self.pairloop("approve", f"Approved. (reviewed {self.head()})")
        elif failed:
            self.pairloop("changes", f"1. the verification failed: {failed[-1].body.splitlines()[0]}")
        elif self.reviews == 1 or self.stubborn:
            self.pairloop("changes", f"1. greet() has no test: please add one. (reviewed {self.head()})")
        elif re.search(r"disputed: F\d", requests[-1].note):
            self.pairloop("approve", f"Fair enough: no test needed for a one-liner. (reviewed {self.head()})")
        else:
            self.pairloop("approve", f"Looks good: greet() is tested. (reviewed {self.head()})")

    def write_and_commit(self, name: str, text: str, message: str) -> None:
        Path(name).write_text(text, encoding="utf-8")
        git(None, "add", name)
        identity = [] if git(None, "config", "user.email").returncode == 0 else [
            "-c", "user.name=pairloop sim", "-c", "user.email=sim@pairloop.invalid"]
        git(None, *identity, "commit", "-q", "-m", message)
        self.note(f"$ git commit -m {message!r}")

    def head(self) -> str:
        out = git(None, "log", "-1", "--format=%h")
        return f"commit {out.stdout.strip()}" if out.returncode == 0 and out.stdout.strip() else "no commit"

    def pairloop(self, verb: str, text: str, *options: str) -> None:
        self.answered = True
        self.save()  # the reply is on its way: a resumed conversation does not send it again
        out = self.run([sys.executable, "-m", "pairloop", verb, *options, text])
        said = (out.stdout or out.stderr).strip().splitlines() or [""]
        self.note(f"$ pairloop {verb} {text[:50]!r} → {said[-1][:60]}")

    @staticmethod
    def run(argv: list[str]) -> subprocess.CompletedProcess[str]:
        return subprocess.run(argv, capture_output=True, text=True, check=False, stdin=subprocess.DEVNULL)

    # ---- records -------------------------------------------------------------------------------------

    def event(self, event: AgentEvent) -> None:
        if self.run_dir is None:
            return
        try:
            write_agent_event(self.run_dir, self.role, event)
        except OSError as exc:  # a full disk: like a real agent's hook, it must not take the agent down
            self.note(f"(could not report a {event.event} event: {exc.strerror or exc})")

    def compact(self) -> None:
        """Forget the conversation but a summary line, and say so the way claude's SessionStart hook does."""
        self.transcript = ["· (conversation compacted: the earlier turns are summarized away)"]
        self.event(AgentEvent(event="compacted", agent="sim", source="session"))
        self.save()

    def receipt(self, text: str) -> None:
        records = str(self.usage_file) if self.usage_file is not None else ""
        self.event(AgentEvent(event="prompt", prompt=text, agent="sim", records=records))

    def turn_ended(self) -> None:
        records = str(self.usage_file) if self.usage_file is not None else ""
        self.event(AgentEvent(event="stop", agent="sim", records=records))

    def record_usage(self) -> None:
        """One assistant entry per turn, the way claude's transcript has it: the bridge reads its tokens there."""
        if self.usage_file is None:
            return
        entry = {"type": "assistant", "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                 "message": {"id": f"sim-{self.role}-{self.turns}-{time.time_ns()}", "role": "assistant",
                             "usage": {"input_tokens": self.tokens[0], "output_tokens": self.tokens[1],
                                       "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}}}
        try:
            fd = os.open(self.usage_file, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                os.write(fd, (json.dumps(entry) + "\n").encode("utf-8"))
            finally:
                os.close(fd)
        except OSError as exc:
            self.note(f"(could not record the turn's tokens: {exc.strerror or exc})")

    def show_prompt(self, text: str) -> None:
        """Envelope lines always stay visible (they carry the ids); other lines are trimmed."""
        shown = 0
        for line in text.split("\n"):
            if line.startswith("[pairloop]"):
                self.transcript.append("> " + line)
                shown = 0
            elif shown < 3:
                self.transcript.append("│ " + line)
                shown += 1
        del self.transcript[:-500]

    def note(self, text: str) -> None:
        self.transcript.append("· " + " ".join(text.split()))

    # ---- paint ---------------------------------------------------------------------------------------

    def screen(self, width: int, height: int) -> list[str]:
        head = [f" pairloop sim · {self.role}  (simulated agent: no model, no account)", ""]
        if self.dialog:
            body = [*head, *DIALOG]
            return [line[:width] for line in body[:height]]
        rule = "─" * max(width - 1, 1)
        lines = self.input.split("\n")
        shown = lines[-1] if len(lines) == 1 else f"{lines[0]}  [+{len(lines) - 1} more lines]"
        if self.busy_since is not None:
            footer = BUSY_FOOTER.format(secs=int(time.monotonic() - self.busy_since))
        else:
            footer = IDLE_FOOTER
        bottom = [rule, f"› {shown}", rule, f"  {footer}"]
        room = max(height - len(head) - len(bottom), 0)
        middle = self.transcript[-room:] if room else []
        middle += [""] * (room - len(middle))
        return [line[:width] for line in [*head, *middle, *bottom]]


def mailbox_for(run_dir: Path) -> Path:
    """The run's mailbox, where hook events go (the run directory itself when run.json does not say)."""
    try:
        return mailbox_of(read_manifest(run_dir), run_dir)
    except InvalidManifest:
        return run_dir


SESSION_FILE = "sim-session-{id}.json"


def session_file(run_dir: Path, session_id: str) -> Path:
    """Where a sim keeps one conversation: the run directory, by session id (a file name, never a path)."""
    return run_dir / SESSION_FILE.format(id=re.sub(r"[^A-Za-z0-9-]", "_", session_id))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="pairloop-sim", description=__doc__)
    parser.add_argument("--brief", type=Path, help="the role brief (shown at the top, as a real agent keeps it)")
    parser.add_argument("--session-id", help="the id of the new conversation (kept for --resume)")
    parser.add_argument("--resume", metavar="ID", help="go on with an earlier conversation")
    args = parser.parse_args(argv)
    run_dir = os.environ.get("PAIRLOOP_RUN_DIR")
    session = args.resume or args.session_id
    state_file = session_file(Path(run_dir), session) if run_dir and session else None
    state: dict[str, object] | None = None
    if args.resume:
        try:
            loaded = json.loads(state_file.read_text(encoding="utf-8")) if state_file else None
        except (OSError, ValueError):
            loaded = None
        if not isinstance(loaded, dict) or os.environ.get("PAIRLOOP_SIM_REFUSE_RESUME") == "1":
            print(f"No conversation found with session ID: {args.resume}", file=sys.stderr)
            return 1
        state = loaded
    sim = Sim(
        role=os.environ.get("PAIRLOOP_ROLE", "worker"),
        mode=os.environ.get("PAIRLOOP_SIM_MODE", "pair"),
        work_seconds=float(os.environ.get("PAIRLOOP_SIM_WORK_SECONDS", "0.8")),
        run_dir=mailbox_for(Path(run_dir)) if run_dir else None,
        dialog=os.environ.get("PAIRLOOP_SIM_DIALOG") == "1",
        stuck=os.environ.get("PAIRLOOP_SIM_STUCK") == "1",
        stubborn=os.environ.get("PAIRLOOP_SIM_STUBBORN") == "1",
        dispute=os.environ.get("PAIRLOOP_SIM_DISPUTE") == "1",
        lenient=os.environ.get("PAIRLOOP_SIM_LENIENT") == "1",
    )
    sim.state_file = state_file
    if os.environ.get("PAIRLOOP_SIM_TOKENS") and run_dir:  # "INPUT,OUTPUT" tokens each turn reports
        used = [int(n) for n in os.environ["PAIRLOOP_SIM_TOKENS"].split(",")[:2]]
        sim.tokens = (used[0], used[-1])
        sim.usage_file = Path(run_dir) / f"sim-usage-{sim.role}.jsonl"
    sim.limit_after = int(os.environ.get("PAIRLOOP_SIM_LIMIT_AFTER", "0"))
    if state is not None:
        sim.restore(state)
    elif args.brief and args.brief.is_file():
        sim.note(f"(brief: {args.brief.read_text(encoding='utf-8').splitlines()[0][:70]}…)")
    sim.save()
    return loop(sim)


def loop(sim: Sim) -> int:
    fd = sys.stdin.fileno()
    saved = termios.tcgetattr(fd)
    if os.environ.get("PAIRLOOP_SIM_IGNORE_HUP") == "1":  # plays a TUI that does not quit on a hangup
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
    else:
        signal.signal(signal.SIGHUP, lambda *_: sys.exit(0))
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    out = sys.stdout
    try:
        tty.setraw(fd)
        out.write("\x1b[?2004h\x1b[?25l")  # ask for bracketed paste, as every real agent TUI does
        last = ""
        while True:
            size = os.get_terminal_size(fd)
            painted = "\r\n".join(sim.screen(size.columns, size.lines))
            if painted != last:
                out.write("\x1b[H\x1b[2J" + painted)
                out.flush()
                last = painted
            timeout = sim.next_wake()
            ready, _, _ = select.select([fd], [], [], timeout)
            if ready:
                try:
                    data = os.read(fd, 65536)
                except OSError:
                    data = b""  # the terminal went away
                if not data:
                    if os.environ.get("PAIRLOOP_SIM_IGNORE_HUP") != "1":
                        return 0
                    while True:  # a hung TUI: only a signal other than the hangup ends it
                        time.sleep(1)
                sim.feed(decoder.decode(data))
            sim.step()
    except SystemExit as exc:
        return int(exc.code or 0)
    finally:
        out.write("\x1b[?2004l\x1b[?25h\r\n")
        out.flush()
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


if __name__ == "__main__":
    sys.exit(main())
