"""Drive pairloop the way a user does (its CLI, in a prepared environment) and look at what happened.

One ``Pair`` is one throwaway world: a git repo, prepared homes, a private tmux server (socket
``pairloop-e2e-<uuid>``), the scripted model server. It runs ``pairloop start/send/status/log/stop`` as
subprocesses with ``cwd=repo`` and exactly the prepared environment, reads the run's ledger and panes, and
cleans up every process it caused — found by a tag in their environment, so even a daemon that left its
process tree is caught. Shared by the end-to-end tests and bench/real_tuis.py.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import tempfile
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from bridge.deadline import poll
from bridge.git import git
from bridge.panes.envelope import parse
from pairloop.runs.store import mailboxes_dir, runs_dir
from tests.e2e.agents_install import Agents
from tests.e2e.homes import Homes, prepare_homes, venv_bin
from tests.e2e.model_server import Flavor, ModelServer, RecordedRequest

T = TypeVar("T")
TAG_VAR = "PAIRLOOP_E2E_TAG"
# `pairloop start` itself waits up to 30 s for both agents and the bridge.
START_TIMEOUT = 60.0
_RUN_LINE = re.compile(r"^run (\S+)\s+session (\S+)", re.MULTILINE)
def git_repo(path: Path) -> Path:
    path.mkdir(parents=True)
    ident = ["-c", "user.name=E2E", "-c", "user.email=e2e@example.invalid"]
    git(path, "init", "-q", check=True)
    (path / "README.md").write_text("e2e test repo\n")
    git(path, "add", "README.md", check=True)
    git(path, *ident, "commit", "-q", "-m", "init", check=True)
    return path.resolve()


# claude 2.1.330 (seen in the canary run) hands a multi-line paste to the model wrapped in these tags; the
# text inside is exactly what was pasted.
_PASTE_WRAPPER = re.compile(r'\A\n*<pasted_content id="(\w+)">\n(.*)\n</pasted_content id="\1">\n?\Z', re.DOTALL)


def unwrap(prompt: str) -> str:
    m = _PASTE_WRAPPER.match(prompt)
    return m.group(2) if m else prompt


def split_envelope(prompt: str) -> tuple[dict[str, str], str] | None:
    """(envelope fields, body) when ``prompt`` is exactly one relayed message (and the bridge's footer);
    None otherwise. Parsed with the bridge's own envelope parser."""
    prompt = unwrap(prompt)
    messages, _footer = parse(prompt)
    if len(messages) != 1 or not prompt.startswith("[pairloop] #"):
        return None
    m = messages[0]
    return {"seq": str(m.seq), "kind": m.label, "sender": m.sender, "id": m.id}, m.body


class Pair:
    """A prepared world for one scenario. Call ``close()`` (the fixture does) to kill everything."""

    def __init__(self, root: Path, server: ModelServer, agents: Agents) -> None:
        self.root = root
        self.server = server
        self.agents = agents
        self.repo = git_repo(root / "repo")
        self.socket = f"pairloop-e2e-{uuid.uuid4().hex[:10]}"
        self.tag = uuid.uuid4().hex
        self.run_id = ""
        self.homes: Homes = self.prepare()

    # ---- set-up ----------------------------------------------------------------------------------------

    def prepare(self, **options: Any) -> Homes:
        """(Re)create the homes; options go to ``homes.prepare_homes`` (e.g. ``trust=False``)."""
        self.homes = prepare_homes(self.root, repo=self.repo, server=self.server, agents=self.agents, **options)
        return self.homes

    @property
    def env(self) -> dict[str, str]:
        return {**self.homes.env, TAG_VAR: self.tag}

    # ---- the CLI ---------------------------------------------------------------------------------------

    def pairloop(self, *args: str, stdin: str | None = None, timeout: float = 30.0,
                 check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run the installed `pairloop` console script from "another shell": cwd=repo, the prepared env."""
        proc = subprocess.run([str(venv_bin() / "pairloop"), *args], cwd=self.repo, env=self.env, input=stdin,
                              capture_output=True, text=True, timeout=timeout, check=False,
                              stdin=None if stdin is not None else subprocess.DEVNULL)
        if check and proc.returncode != 0:
            raise AssertionError(f"`pairloop {' '.join(args)}` exited {proc.returncode}\nstdout: {proc.stdout}\n"
                                 f"stderr: {proc.stderr}\n{self.diagnostics()}")
        return proc

    def start(self, task: str, worker: str, reviewer: str, *extra: str) -> subprocess.CompletedProcess[str]:
        """`pairloop start TASK --worker W --reviewer R --no-attach --socket S [extra]`; remembers the run id."""
        proc = self.pairloop("start", task, "--worker", worker, "--reviewer", reviewer, "--no-attach",
                             "--socket", self.socket, *extra, timeout=START_TIMEOUT)
        m = _RUN_LINE.search(proc.stdout)
        assert m, f"`pairloop start` printed no run id: {proc.stdout!r}"
        self.run_id = m.group(1)
        return proc

    def send(self, to: str, body: str, *, stdin: bool = False) -> str:
        """`pairloop send --to TO BODY` (or the body on stdin with `-`) as the human; returns the message id."""
        if stdin:
            proc = self.pairloop("send", "--to", to, "-", stdin=body)
        else:
            proc = self.pairloop("send", "--to", to, "--", body)
        msg_id = proc.stdout.strip()
        assert msg_id, f"`pairloop send` printed no id: {proc.stdout!r} {proc.stderr!r}"
        return msg_id

    def status(self) -> dict[str, Any]:
        """This run's entry of `pairloop status --json`."""
        data = json.loads(self.pairloop("status", "--json").stdout)
        for run in data["runs"]:
            if run["id"] == self.run_id:
                return dict(run)
        raise AssertionError(f"run {self.run_id} is not in `pairloop status --json`: {data}")

    def log(self) -> list[dict[str, Any]]:
        """`pairloop log --json`: one object per message."""
        out = self.pairloop("log", "--run", self.run_id, "--json").stdout
        return [json.loads(line) for line in out.splitlines() if line.strip()]

    def stop(self) -> None:
        self.pairloop("stop", "--run", self.run_id)

    # ---- the run on disk -------------------------------------------------------------------------------

    @property
    def run_dir(self) -> Path:
        """The run's own directory, under the state root of this pair's environment."""
        assert self.run_id, "no run started"
        return runs_dir(self.env) / self.run_id

    @property
    def mailbox(self) -> Path:
        """Where the agents write: in the repository, inside their workspace."""
        assert self.run_id, "no run started"
        return mailboxes_dir(self.repo) / self.run_id

    def manifest(self) -> dict[str, Any]:
        return dict(json.loads((self.run_dir / "run.json").read_text()))

    def ledger(self) -> list[dict[str, Any]]:
        """Every complete line of ledger.jsonl (a line still being written is left for the next look)."""
        try:
            raw = (self.run_dir / "ledger.jsonl").read_bytes()
        except FileNotFoundError:
            return []
        lines = raw.split(b"\n")[:-1]  # the last piece is "" or a torn line
        out = []
        for line in lines:
            try:
                out.append(json.loads(line))
            except ValueError:
                continue
        return out

    def events(self, ev: str, msg_id: str | None = None, to: str | None = None) -> list[dict[str, Any]]:
        """Ledger events of one kind, optionally about one message (``ids`` or ``id``) and one recipient."""
        out = []
        for e in self.ledger():
            if e.get("ev") != ev:
                continue
            if msg_id is not None and msg_id not in e.get("ids", []) and e.get("id") != msg_id:
                continue
            if to is not None and e.get("to") != to:
                continue
            out.append(e)
        return out

    def received(self, sender: str | None = None) -> list[dict[str, Any]]:
        """`received` ledger events (the messages), optionally only those from ``sender``."""
        return [e for e in self.events("received") if sender is None or e.get("from") == sender]

    def delivered(self, msg_id: str, to: str) -> dict[str, Any] | None:
        found = self.events("delivered", msg_id, to)
        return found[0] if found else None

    # ---- tmux ------------------------------------------------------------------------------------------

    def tmux(self, *args: str, check: bool = True) -> str:
        proc = subprocess.run(["tmux", "-L", self.socket, *args], capture_output=True, text=True, check=False,
                              env={**os.environ, **({"TMUX_TMPDIR": self.env["TMUX_TMPDIR"]}
                                                    if "TMUX_TMPDIR" in self.env else {})})
        if check and proc.returncode != 0:
            raise AssertionError(f"tmux {' '.join(args)}: {proc.stderr.strip()}")
        return proc.stdout

    def pane(self, role: str) -> str:
        if role == "bridge":
            return str(self.manifest()["bridge_pane"])
        return str(self.manifest()["roles"][role]["pane"])

    def capture(self, role_or_pane: str) -> str:
        pane = role_or_pane if role_or_pane.startswith("%") else self.pane(role_or_pane)
        return self.tmux("capture-pane", "-p", "-J", "-t", pane, check=False)

    def type_text(self, role: str, text: str) -> None:
        """Type like a human: literal keys into the agent's input box (never submitted by this)."""
        self.tmux("send-keys", "-t", self.pane(role), "-l", text)

    def press(self, role: str, *keys: str) -> None:
        self.tmux("send-keys", "-t", self.pane(role), *keys)

    # ---- waiting ---------------------------------------------------------------------------------------

    def wait(self, predicate: Callable[[], T | None], timeout: float = 20.0, what: str = "condition") -> T:
        """Poll with a deadline; on timeout fail with the panes, the ledger and the model's requests."""
        value = poll(predicate, timeout, delay=0.02, max_delay=0.1, growth=1.5)
        if not value:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}\n{self.diagnostics()}")
        return value

    def holds(self, predicate: Callable[[], object], seconds: float, what: str) -> None:
        """Check that ``predicate`` stays true for ``seconds`` (looking often); fail the moment it does not."""
        if poll(lambda: not predicate(), seconds, delay=0.05, max_delay=0.05):
            raise AssertionError(f"{what} stopped holding\n{self.diagnostics()}")

    def request_with(self, flavor: Flavor, needle: str, timeout: float = 30.0, *,
                     after: float = 0.0) -> RecordedRequest:
        """Wait for the first request of ``flavor`` whose newest user text contains ``needle``."""
        return self.wait(lambda: self.server.first_request_with(flavor, needle, after=after),
                         timeout, f"a {flavor} request whose newest user message contains {needle[:60]!r}")

    # ---- diagnostics -----------------------------------------------------------------------------------

    def diagnostics(self) -> str:
        parts: list[str] = []
        # Every pane on the pair's tmux server: a run's worker, reviewer and bridge, or an agent launched alone.
        panes = self.tmux("list-panes", "-a", "-F", "#{pane_id}\t#{@pairloop_title}\t#{pane_dead}", check=False)
        for line in panes.splitlines():
            pane, title, dead = ([*line.split("\t"), "", ""])[:3]
            label = (title or "pane") + (" (dead)" if dead == "1" else "")
            parts.append(f"----- {label} {pane} -----\n{self.capture(pane).rstrip()}")
        if self.run_id and (self.run_dir / "run.json").exists():
            lines = [json.dumps(e, ensure_ascii=False)[:400] for e in self.ledger()[-40:]]
            parts.append("----- ledger (last 40) -----\n" + "\n".join(lines))
        reqs = []
        for r in self.server.requests():
            if r.kind in ("head",):
                continue
            newest = r.newest_user_text.replace("\n", "⏎")[:150]
            reqs.append(f"{r.kind:<14} {r.reply[:50]:<52} {r.outcome or 'serving':<12} {newest}")
        parts.append("----- model server requests -----\n" + "\n".join(reqs))
        return "\n".join(parts)

    # ---- clean-up --------------------------------------------------------------------------------------

    def tagged_processes(self) -> list[int]:
        """Every live process started under this pair's environment (tmux server, bridge, agents, shells,
        anything they spawned, daemons included); zombies do not count."""
        needle = f"{TAG_VAR}={self.tag}".encode()
        out = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                if needle not in Path(f"/proc/{entry}/environ").read_bytes().split(b"\0"):
                    continue
                if Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
                    continue
            except OSError:
                continue
            out.append(int(entry))
        return out

    def survivors(self, seconds: float) -> list[int]:
        """The tagged processes still alive after waiting up to ``seconds`` for all of them to go."""
        poll(lambda: not self.tagged_processes(), seconds, delay=0.05, max_delay=0.05)
        return self.tagged_processes()

    def close(self, timeout: float = 10.0) -> list[str]:
        """Kill the tmux server, remove its socket, wait for every tagged process to go; kill and return
        (as descriptions) whatever outlived the server."""
        socket_path = self.tmux("display-message", "-p", "#{socket_path}", check=False).strip()
        self.tmux("kill-server", check=False)
        left = self.survivors(timeout)
        if left:
            # claude has been seen to sit out a hangup while in its trust dialog; `pairloop stop` follows a
            # hangup with SIGTERM for that reason, and so does this teardown. Only what survives it is a leak.
            for pid in left:
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGTERM)
            left = self.survivors(5.0)
        described = []
        for pid in left:
            try:
                cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                os.kill(pid, signal.SIGKILL)
            except (OSError, ProcessLookupError):
                continue
            described.append(f"{pid} {cmd.strip()[:200]}")
        if socket_path:
            Path(socket_path).unlink(missing_ok=True)
        else:
            tmpdir = self.env.get("TMUX_TMPDIR") or "/tmp"
            Path(tmpdir, f"tmux-{os.getuid()}", self.socket).unlink(missing_ok=True)
        return described


def scratch_root(prefix: str = "pairloop-e2e-") -> Path:
    """A fresh folder for a Pair outside pytest (the benchmark)."""
    return Path(tempfile.mkdtemp(prefix=prefix)).resolve()
