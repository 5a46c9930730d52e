"""`pairloop summarize --llm claude|codex` with the REAL `claude -p` and `codex exec` against the scripted model
server: what the model is given (the digest, nothing else; claude offered no tools, codex no shell and a
read-only sandbox), that its reply becomes the Summary prose while every provenance section stays exactly as
the deterministic notes have it, and the fallback to the deterministic notes when the model fails or the agent
is missing.

The run is made once per module by two sim agents pairing on a private tmux server (plan, a change request
with a finding, its fix, approval, done), then stopped; each test runs `pairloop summarize` on it as a
subprocess with fresh homes pointed at the model server."""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from bridge.git import git
from bridge.panes.tmux import Tmux
from pairloop.runs.lifecycle import StartOptions, stop_run
from pairloop.summary.llm import _prompt
from tests.conftest import wait_for
from tests.e2e.agents_install import Agents
from tests.e2e.homes import Homes, prepare_homes, venv_bin
from tests.e2e.model_server import Flavor, ModelServer, RecordedRequest, error, text
from tests.helpers import book, start_sims

TASK = "Add a greet(name) function.\nIt must be tested."
PROSE = ("The pair added greet(name) and a test for it. The reviewer asked for a test in round 2 (F2.1), the "
         "worker added it, and the reviewer approved round 3.")
ENVELOPE = "[pairloop] #"  # how the bridge frames a pasted message: transcript, never digest
# Tools through which a model could run a command or reach the network.
COMMAND_TOOLS = {"exec_command", "write_stdin", "shell", "local_shell", "container.exec", "unified_exec"}
GIT_ID = {"GIT_AUTHOR_NAME": "E2E", "GIT_AUTHOR_EMAIL": "e2e@example.invalid",
          "GIT_COMMITTER_NAME": "E2E", "GIT_COMMITTER_EMAIL": "e2e@example.invalid"}


@dataclass(frozen=True)
class SimRun:
    repo: Path
    run_id: str
    run_dir: Path
    deterministic: str  # PR_NOTES.md as `pairloop summarize` (no --llm) writes it
    digest: dict[str, Any]
    transcript: str  # everything the agents were pasted (the envelopes), to check none of it leaks


def _pairloop(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(venv_bin() / "pairloop"), *args], env=env, cwd=cwd, capture_output=True,
                          text=True, timeout=300, check=False, stdin=subprocess.DEVNULL)


@pytest.fixture(scope="module")
def sim_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimRun]:
    root = tmp_path_factory.mktemp("summarize-run")
    home = root / "home"
    home.mkdir()
    repo = root / "repo"
    repo.mkdir()
    socket_name = f"pairloop-e2e-sum-{uuid.uuid4().hex[:10]}"
    tmux = Tmux(socket_name=socket_name)
    with pytest.MonkeyPatch.context() as mp:
        # Module scope: the per-test isolated_env fixture is not in force yet; isolate the same way.
        mp.setenv("HOME", str(home))
        for var in ("TMUX", "TMUX_PANE", "PAIRLOOP_RUN_DIR", "PAIRLOOP_ROLE", "PAIRLOOP_RUN", "PAIRLOOP_REPO",
                    "PAIRLOOP_TMUX_SOCKET", "PAIRLOOP_WORKER", "PAIRLOOP_REVIEWER", "PAIRLOOP_WATCH"):
            mp.delenv(var, raising=False)
        for key, value in GIT_ID.items():
            mp.setenv(key, value)
        git(repo, "init", "-q", "-b", "main", check=True)
        (repo / "README.md").write_text("test repo\n")
        git(repo, "add", "README.md", check=True)
        git(repo, "commit", "-q", "-m", "init", check=True)
        try:
            run = start_sims(tmux, repo, TASK, StartOptions("sim", "sim", plan=True),
                             PAIRLOOP_SIM_MODE="pair", PAIRLOOP_SIM_WORK_SECONDS="0.1")
            wait_for(lambda: book(run).run_state == "agreed", timeout=60, what="the sim pair to agree")
            stop_run(tmux, run)
        finally:
            tmux.kill_server()
            socket = Path(os.environ.get("TMUX_TMPDIR", "/tmp")) / f"tmux-{os.getuid()}" / socket_name
            socket.unlink(missing_ok=True)
        plain = _pairloop(["summarize", "--run", run.id, "--quiet"], dict(os.environ), repo)
        assert plain.returncode == 0, plain.stderr
        assert "Warning" not in plain.stderr
    transcript = "\n".join(json.loads(p.read_text()).get("prompt", "")
                           for p in sorted((run.mailbox / "events").glob("*/*-prompt.json")))
    yield SimRun(repo, run.id, run.dir, (run.dir / "PR_NOTES.md").read_text(encoding="utf-8"),
                 json.loads((run.dir / "digest.json").read_text(encoding="utf-8")), transcript)


@pytest.fixture
def homes(tmp_path: Path, sim_run: SimRun, model_server: ModelServer, agents: Agents) -> Homes:
    model_server.toolless_turns = True  # `claude -p --tools ""`: its one real turn offers no tools
    return prepare_homes(tmp_path / "world", repo=sim_run.repo, server=model_server, agents=agents)


def summarize(sim_run: SimRun, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    notes = sim_run.run_dir / "PR_NOTES.md"
    notes.unlink(missing_ok=True)  # whatever is there afterwards, this call wrote
    # The run was made under another HOME: point at its state root.
    env = {**env, "PAIRLOOP_HOME": str(sim_run.run_dir.parent.parent)}
    return _pairloop(["summarize", "--run", sim_run.run_id, "--quiet", *args], env, sim_run.repo)


def with_prose(deterministic: str, prose: str) -> str:
    """The deterministic notes with the Summary's opening paragraph (the task) replaced by `prose`."""
    head = f"## Summary\n\n{TASK}\n\n"
    assert head in deterministic
    return deterministic.replace(head, f"## Summary\n\n{prose}\n\n", 1)


def the_prompt(requests: list[RecordedRequest]) -> str:
    assert len(requests) == 1, f"expected one model request, got {[(r.kind, r.reply) for r in requests]}"
    return requests[0].newest_user_text


def check_prompt(prompt: str, sim_run: SimRun) -> None:
    digest = sim_run.digest
    # Exactly the digest (the plan text aside), as pairloop.summary.llm builds it: facts, not a transcript.
    assert prompt.strip() == _prompt(digest).strip()
    assert digest["task"] == TASK and TASK.splitlines()[0] in prompt
    assert [f["id"] for f in digest["findings"]] == ["F2.1"] and '"F2.1"' in prompt
    assert sim_run.run_id in prompt
    assert '"plan_text"' not in prompt
    assert ENVELOPE in sim_run.transcript, "the sims were pasted envelopes (else this check proves nothing)"
    assert ENVELOPE not in prompt


def test_claude_writes_the_prose_from_the_digest_with_no_tools(sim_run: SimRun, homes: Homes,
                                                                model_server: ModelServer) -> None:
    model_server.script("anthropic", text(PROSE))
    out = summarize(sim_run, homes.env, "--llm", "claude")
    assert out.returncode == 0, out.stderr
    assert "Warning" not in out.stderr
    main = model_server.requests("anthropic")
    check_prompt(the_prompt(main), sim_run)
    assert main[0].body["tools"] == [], "claude -p --tools '' must offer the model no tools"
    assert not model_server.requests("openai") and not model_server.requests("other")
    notes = (sim_run.run_dir / "PR_NOTES.md").read_text(encoding="utf-8")
    assert notes == with_prose(sim_run.deterministic, PROSE)


def test_codex_writes_the_prose_from_the_digest_read_only_without_a_shell(sim_run: SimRun, homes: Homes,
                                                                          model_server: ModelServer) -> None:
    model_server.script("openai", text(PROSE))
    out = summarize(sim_run, homes.env, "--llm", "codex")
    assert out.returncode == 0, out.stderr
    assert "Warning" not in out.stderr
    main = model_server.requests("openai")
    check_prompt(the_prompt(main), sim_run)
    body = main[0].body
    offered = {str(t.get("name") or t.get("type")) for t in body.get("tools", [])}
    offered |= {str(t.get("name") or t.get("type")) for item in body.get("input", [])
                if item.get("type") == "additional_tools" for t in item.get("tools", [])}
    assert not offered & (COMMAND_TOOLS | {"web_search"}), f"codex offered a shell or the web: {sorted(offered)}"
    injected = "\n".join(main[0].user_texts(include_injected=True))
    developer = json.dumps(body.get("input", []))
    assert "`sandbox_mode` is `read-only`" in developer
    assert "Approval policy is currently never" in developer
    assert "<permissions instructions>" in developer or "<permissions instructions>" in injected
    assert not model_server.requests("anthropic") and not model_server.requests("other")
    notes = (sim_run.run_dir / "PR_NOTES.md").read_text(encoding="utf-8")
    assert notes == with_prose(sim_run.deterministic, PROSE)


@pytest.mark.parametrize("agent", ["claude", "codex"])
def test_a_model_error_falls_back_to_the_deterministic_notes(agent: str, sim_run: SimRun, homes: Homes,
                                                             model_server: ModelServer) -> None:
    flavor: Flavor = "anthropic" if agent == "claude" else "openai"
    model_server.script(flavor, error(500))  # no retries: homes sets CLAUDE_CODE_MAX_RETRIES=0, codex's to 0
    out = summarize(sim_run, homes.env, "--llm", agent)
    assert out.returncode == 0, out.stderr
    assert f"Warning: --llm {agent} failed ({agent} exited with status" in out.stderr
    assert "wrote the deterministic notes instead" in out.stderr
    assert "Traceback" not in out.stderr
    assert [r.reply for r in model_server.requests(flavor)] == ["error 500"]
    assert (sim_run.run_dir / "PR_NOTES.md").read_text(encoding="utf-8") == sim_run.deterministic


@pytest.mark.parametrize("agent", ["claude", "codex"])
def test_a_missing_agent_falls_back_to_the_deterministic_notes(agent: str, sim_run: SimRun, homes: Homes,
                                                               model_server: ModelServer) -> None:
    env = {**homes.env, f"PAIRLOOP_{agent.upper()}_COMMAND": "/nonexistent"}
    out = summarize(sim_run, env, "--llm", agent)
    assert out.returncode == 0, out.stderr
    assert f"Warning: --llm {agent} failed (/nonexistent is not installed)" in out.stderr
    assert "Traceback" not in out.stderr
    assert not [r for r in model_server.requests() if r.kind != "head"]
    assert (sim_run.run_dir / "PR_NOTES.md").read_text(encoding="utf-8") == sim_run.deterministic
