"""The configuration a worktree run starts from: what runs is the human's checkout's configuration (uncommitted
edits included) or flags, recorded at start; the guard's baseline is what the agents' worktree held at start (the
committed file); an alert names what actually runs; and the human is told at start when the two differ."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bridge.git import git
from bridge.guard import Guard, config_fingerprint, what_runs
from bridge.rundir.events import ConfigChanged
from bridge.rundir.manifest import Manifest, TmuxPlace
from pairloop.runs import lifecycle
from pairloop.runs.baseline import differing, notice
from pairloop.runs.lifecycle import StartOptions, start_run
from pairloop.runs.store import Run
from pairloop.runs.workspace import Panes


def _manifest(work: Path, verify: str, notify: tuple[str, ...] = ()) -> Manifest:
    return Manifest(id="r1", repo=str(work), tmux=TmuxPlace(socket_path="/x", session="s"), verify=verify,
                    notify=notify, config_at_start=config_fingerprint(work))


def test_the_alert_says_what_runs_and_the_baseline_is_the_worktrees_file(tmp_path: Path) -> None:
    (tmp_path / ".pairloop.toml").write_text('verify = "make check"\n')  # the worktree's committed file
    manifest = _manifest(tmp_path, verify="pytest -q", notify=("ring",))  # the checkout's, which runs
    guard = Guard(tmp_path, manifest.config_at_start, what_runs(manifest))
    assert guard.look({}, force=True).events == [], "the worktree as it was at start is no change"
    # An agent writes exactly the command that runs: still a change of the worktree's file, flagged, and the
    # alert names what runs, not only what the file said.
    (tmp_path / ".pairloop.toml").write_text('verify = "pytest -q"\n')
    fx = guard.look({}, force=True)
    (event,) = [e for e in fx.events if isinstance(e, ConfigChanged)]
    assert (event.key, event.was, event.now) == ("verify", '"make check"', '"pytest -q"')
    (alert,) = fx.alerts
    assert 'the bridge runs "pytest -q"' in str(alert) and "ignored" in str(alert)
    # A notify the agent adds is flagged against nothing at start, and the alert names the recorded one.
    (tmp_path / ".pairloop.toml").write_text('verify = "make check"\nnotify = ["curl", "x"]\n')
    fx = guard.look({"verify": '"pytest -q"'}, force=True)
    alerts = [str(a) for a in fx.alerts]
    assert any("notify" in a and 'the bridge runs ["ring"]' in a for a in alerts)
    assert any("back to what it said" in s for s in fx.says), "verify is back to the worktree's start"


def test_with_nothing_recorded_the_alert_says_nothing_runs(tmp_path: Path) -> None:
    manifest = _manifest(tmp_path, verify="")
    guard = Guard(tmp_path, manifest.config_at_start, what_runs(manifest))
    (tmp_path / ".pairloop.toml").write_text('verify = "true"\n')
    (alert,) = guard.look({}, force=True).alerts
    assert "the bridge runs nothing" in str(alert)


def test_the_notice_names_what_differs_unless_a_flag_decides_it() -> None:
    checkout = {"verify": "pytest", "max_tokens": 10}
    committed = {"verify": "make test", "max_tokens": 10, "worker": "claude"}
    assert differing(checkout, committed) == ["verify"]
    assert "verify" in notice(["verify"], set()) and "checkout" in notice(["verify"], set())
    assert notice(["verify"], {"verify"}) == "", "--verify runs whatever either file says"


class _FakeTmux:
    def socket_path(self) -> str:
        return "/nowhere"

    def kill_session(self, session: str) -> None:
        pass


def _start(repo: Path, monkeypatch: pytest.MonkeyPatch, options: StartOptions) -> Run:
    """start_run with its tmux steps left out: what it records is what is tested."""
    monkeypatch.setattr(lifecycle, "open_workspace", lambda *a, **k: Panes("%1", "%2", "%3"))
    monkeypatch.setattr(lifecycle, "record_panes", lambda *a, **k: None)
    monkeypatch.setattr(lifecycle, "launch_bridge", lambda *a, **k: None)
    monkeypatch.setattr(lifecycle, "launch", lambda *a, **k: None)
    return start_run(_FakeTmux(), repo, "task", options)  # type: ignore[arg-type]


def test_a_worktree_run_records_the_checkouts_settings_and_the_worktrees_baseline(
        git_repo: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    (git_repo / ".pairloop.toml").write_text('verify = "make check"\nnotify = ["old"]\n')
    git(git_repo, "add", ".pairloop.toml", check=True)
    git(git_repo, "commit", "-q", "-m", "config", check=True)
    (git_repo / ".pairloop.toml").write_text('verify = "pytest -q"\nnotify = ["new"]\nmax_tokens = 5000\n')
    run = _start(git_repo, monkeypatch, StartOptions("sim", "sim", worktree=True))
    m = run.manifest
    assert m.workdir and Path(m.workdir) != git_repo
    assert (m.verify, m.notify, m.protocol.limits.max_tokens) == ("pytest -q", ("new",), 5000), "the checkout's"
    assert m.config_at_start["verify"] == json.dumps("make check"), "the baseline is the worktree's file"
    assert m.config_at_start["notify"] == json.dumps(["old"])
    said = capsys.readouterr().err
    assert "verify" in said and "notify" in said and "max_tokens" in said and "checkout" in said
    # The sim's records are where it writes them, its own role's file only.
    assert [(r.dir, r.name) for r in m.roles["worker"].records_roots] == [(str(run.dir), "sim-usage-worker.jsonl")]


def test_a_run_in_the_checkout_has_one_configuration_and_no_notice(
        git_repo: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    (git_repo / ".pairloop.toml").write_text('verify = "pytest -q"\n')
    run = _start(git_repo, monkeypatch, StartOptions("sim", "sim"))
    assert run.manifest.verify == "pytest -q" and run.manifest.config_at_start["verify"] == json.dumps("pytest -q")
    assert "differs" not in capsys.readouterr().err
