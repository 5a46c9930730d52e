"""Recordings of the agent panes, with the sim agent on real tmux: valid asciicast v2 with real timing, markers at
the bridge's events, resizes, a bridge restart keeping one writer and one clock, the size limit, replay."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from functools import partial
from pathlib import Path

import pytest

from bridge import Cast, Tmux, cast_path, read_cast
from bridge.rundir.cast import LIMIT_LABEL
from pairloop.replay import RESTORE
from pairloop.runs.lifecycle import StartOptions
from pairloop.runs.store import Run
from tests.conftest import wait_for
from tests.helpers import book, delivered, human_says, ledger, restart_bridge, settle, start_sims

pytestmark = pytest.mark.tmux

RECORDER = "bridge.recording.recorder"


def recorders(run: Run) -> dict[str, list[int]]:
    """The recorder processes of ``run``, by role (from their command lines)."""
    found: dict[str, list[int]] = {}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        words = [a.decode(errors="replace") for a in argv]
        if RECORDER in words and str(run.dir) in words:
            role = words[words.index(str(run.dir)) + 1]
            found.setdefault(role, []).append(int(proc.name))
    return found


def cast_of(run: Run, role: str) -> Cast:
    return read_cast(cast_path(run.dir, role))


def raw_lines(run: Run, role: str) -> list[object]:
    return [json.loads(line) for line in cast_path(run.dir, role).read_text().splitlines()]


def check_format(run: Run, role: str) -> Cast:
    """Header first (v2, size, a unix timestamp), then only [time, code, data] events, times never going back."""
    lines = raw_lines(run, role)
    header = lines[0]
    assert isinstance(header, dict) and header["version"] == 2
    assert isinstance(header["width"], int) and isinstance(header["height"], int)
    assert isinstance(header["timestamp"], int) and abs(header["timestamp"] - time.time()) < 600
    for event in lines[1:]:
        assert isinstance(event, list) and len(event) == 3 and event[1] in ("o", "r", "m"), event
        assert isinstance(event[0], float | int) and isinstance(event[2], str)
    times = [e[0] for e in lines[1:] if isinstance(e, list)]
    assert times == sorted(times), "times never go back"
    cast = cast_of(run, role)
    assert not cast.damaged
    return cast


def pane_size(tmux: Tmux, pane: str) -> str:
    return tmux.run("display-message", "-p", "-t", pane, "#{pane_width}x#{pane_height}")[0]


def marked(run: Run, role: str, label: str) -> bool:
    return label in [m.data for m in cast_of(run, role).markers()]


def output_of(cast: Cast) -> str:
    return "".join(e.data for e in cast.events if e.code == "o")


def delivered_markers_written(run: Run, role: str) -> list[tuple[str, float]] | None:
    """Each delivery to ``role`` in the ledger with its marker in the cast, or None while one is missing."""
    header = cast_of(run, role).header
    markers = cast_of(run, role).markers()
    entries = book(run).entries
    found = []
    for event in ledger(run):
        if event["ev"] != "delivered" or event["to"] != role:
            continue
        names = [f"#{entries[i].seq} " for i in event["ids"]]
        hits = [m for m in markers if m.data.startswith("delivered ") and all(n in m.data for n in names)]
        if not hits:
            return None
        found.append((hits[0].data, hits[0].time - (event["ts"] - header.timestamp)))
    return found


def test_a_sim_loop_is_recorded_in_both_panes_with_markers_at_its_events(tmux_server: Tmux, git_repo: Path) -> None:
    run = start_sims(tmux_server, git_repo, "Add greet()", StartOptions("sim", "sim"),
                     PAIRLOOP_SIM_MODE="pair", PAIRLOOP_SIM_WORK_SECONDS="0.1")
    wait_for(lambda: book(run).run_state == "agreed", timeout=60, what="the pair to agree")
    assert {role: len(pids) for role, pids in recorders(run).items()} == {"worker": 1, "reviewer": 1}
    for role in ("worker", "reviewer"):
        spec = run.manifest.roles[role]
        cast = check_format(run, role)
        assert f"{cast.header.width}x{cast.header.height}" == pane_size(tmux_server, spec.pane)
        # Every delivery into this pane is marked, at the time the ledger gives it (a moment later at most).
        found = wait_for(partial(delivered_markers_written, run, role), what=f"{role}'s delivery markers")
        assert found and all(-1e-5 <= late < 0.5 for _, late in found), found
        # A quiet pane's recorder looks at the ledger every second: the last marker comes that late at most. It
        # writes them in the ledger's order, so once the agreement is marked every event before it is too.
        wait_for(partial(marked, run, role, "run agreed"), timeout=5, what=f"the agreement marked in the {role}'s cast")
        labels = [m.data for m in cast_of(run, role).markers()]
        assert any(label.startswith("round 1 opened") for label in labels), labels
        assert any(label.startswith("verdict: changes by reviewer (round 1)") for label in labels), labels
        assert any(label.startswith("verdict: approve by reviewer (round 2)") for label in labels), labels
    # The panes' screens are in them: what the bridge pasted, and what each agent printed.
    assert "Add greet()" in output_of(cast_of(run, "worker"))
    assert "[pairloop]" in output_of(cast_of(run, "reviewer"))
    asciinema = shutil.which("asciinema") or str(Path(sys.executable).parent / "asciinema")
    if Path(asciinema).exists():  # the reference player reads them (a test dependency: see pyproject)
        for role in ("worker", "reviewer"):
            shown = subprocess.run([asciinema, "cat", str(cast_path(run.dir, role))], capture_output=True, check=False)
            assert shown.returncode == 0, shown.stderr
            assert b"[pairloop]" in shown.stdout

    # Replay from round 2's marker: what came before is drawn at once, then the rest; made safe; modes put back.
    played = subprocess.run([sys.executable, "-m", "pairloop", "replay", "--run", run.id, "--role", "reviewer",
                             "--from-round", "2", "--speed", "1000", "--player", "builtin"],
                            cwd=git_repo, capture_output=True, check=False, timeout=60)
    assert played.returncode == 0, played.stderr
    assert b"from round 2" in played.stderr
    assert played.stdout.endswith(RESTORE.encode())
    assert b"round 2" in played.stdout  # the review request of round 2, pasted into the reviewer
    missing = subprocess.run([sys.executable, "-m", "pairloop", "replay", "--run", run.id, "--from-round", "9",
                              "--player", "builtin"], cwd=git_repo, capture_output=True, text=True, check=False)
    assert missing.returncode == 2 and "round 9 is not in this recording (rounds in this recording: 1, 2" \
        in missing.stderr


def test_a_resize_is_recorded(tmux_server: Tmux, git_repo: Path) -> None:
    run = start_sims(tmux_server, git_repo)
    pane = run.manifest.roles["reviewer"].pane
    first = human_says(run, "reviewer", "before")
    wait_for(lambda: delivered(run, first.id, "reviewer"), what="a delivery")
    tmux_server.run("resize-pane", "-t", pane, "-x", "61")
    tmux_server.run("resize-window", "-t", pane, "-y", "33")
    size = pane_size(tmux_server, pane)
    msg = human_says(run, "reviewer", "after the resize")
    wait_for(lambda: delivered(run, msg.id, "reviewer"), what="the delivery after the resize")
    def redrawn_after_the_resize() -> bool:
        """The resize event, then output (the recorder writes them one after the other: poll for both)."""
        events = cast_of(run, "reviewer").events
        at = next((i for i, e in enumerate(events) if e.code == "r" and e.data == size), None)
        return at is not None and any(e.code == "o" for e in events[at + 1:])

    wait_for(redrawn_after_the_resize, what=f"a resize to {size} in the reviewer's cast, the redraw after it")
    assert cast_of(run, "reviewer").header.width != 61, "the header keeps the size the recording began with"


def test_a_bridge_restart_keeps_one_writer_and_one_clock(tmux_server: Tmux, git_repo: Path) -> None:
    run = start_sims(tmux_server, git_repo)
    before = recorders(run)
    assert sorted(before) == ["reviewer", "worker"] and all(len(p) == 1 for p in before.values())
    first = human_says(run, "worker", "one")
    wait_for(lambda: delivered(run, first.id, "worker"), what="a delivery")
    for _ in range(2):
        restart_bridge(tmux_server, run)
    settle(run, "reviewer")  # the last bridge has looked at the recordings (before its first delivery)
    assert recorders(run) == before, "the running recorders were left alone: still one per pane"
    # The worker's pipe is closed (its recorder ends); the next bridge opens a new one, which goes on in the
    # same file, on the same clock.
    size_before = cast_path(run.dir, "worker").stat().st_size
    tmux_server.run("pipe-pane", "-t", run.manifest.roles["worker"].pane)
    wait_for(lambda: "worker" not in recorders(run), what="the worker's recorder to end")
    restart_bridge(tmux_server, run)
    wait_for(lambda: len(recorders(run).get("worker", [])) == 1, what="a new recorder for the worker")
    assert len(recorders(run)["reviewer"]) == 1
    msg = human_says(run, "worker", "two")
    wait_for(lambda: delivered(run, msg.id, "worker"), what="a delivery after the restarts")
    wait_for(lambda: "two" in output_of(cast_of(run, "worker")), what="the new output recorded")
    lines = raw_lines(run, "worker")
    assert sum(isinstance(line, dict) for line in lines) == 1, "one header: appended, not started again"
    cast = check_format(run, "worker")
    resumed = [e for e in cast.events if e.code == "m" and e.data == "recording resumed"]
    assert len(resumed) == 1 and cast_path(run.dir, "worker").stat().st_size > size_before
    # The program was running all along: the new recording starts from its screen as it stood (tmux's capture).
    snapshot = next(e for e in cast.events[cast.events.index(resumed[0]):] if e.code == "o")
    assert snapshot.data.startswith("\x1bc") and "pairloop sim" in snapshot.data and "one" in snapshot.data
    os.kill(recorders(run)["worker"][0], 0)


def test_the_size_limit_stops_a_recording_and_says_so(tmux_server: Tmux, git_repo: Path) -> None:
    limit_mb = 16 / 1024  # 16 KiB
    run = start_sims(tmux_server, git_repo, options=StartOptions("sim", "sim", mirror=False,
                                                                  record_limit_mb=limit_mb))
    n = 0
    while not any(e["ev"] == "recording" and e["role"] == "reviewer" for e in ledger(run)):
        n += 1
        assert n < 200, "the limit was never reached"
        msg = human_says(run, "reviewer", f"filling the recording, message {n} " + "x" * 400)
        wait_for(partial(delivered, run, msg.id, "reviewer"), what="a delivery")
    note = next(e for e in ledger(run) if e["ev"] == "recording" and e["role"] == "reviewer")
    assert note["role"] == "reviewer" and note["state"] == "limit" and "size limit" in note["detail"]
    path = cast_path(run.dir, "reviewer")
    assert path.stat().st_size <= 16 * 1024
    assert raw_lines(run, "reviewer")[-1][1:] == ["m", LIMIT_LABEL]  # type: ignore[index]
    size = path.stat().st_size
    msg = human_says(run, "reviewer", "after the limit")
    wait_for(lambda: delivered(run, msg.id, "reviewer"), what="a delivery after the limit: the pane works on")
    assert path.stat().st_size == size
    assert len(recorders(run).get("reviewer", [])) == 1, "the recorder stays, reading the pipe, keeping nothing"
    check_format(run, "reviewer")


def test_a_run_with_recording_off_has_no_casts(tmux_server: Tmux, git_repo: Path) -> None:
    run = start_sims(tmux_server, git_repo, options=StartOptions("sim", "sim", record=False))
    first = human_says(run, "worker", "hello")
    wait_for(lambda: delivered(run, first.id, "worker"), what="a delivery")
    assert recorders(run) == {}
    assert not cast_path(run.dir, "worker").exists()


def test_a_resumed_run_goes_on_recording_in_the_same_files_on_the_same_clock(tmux_server: Tmux,
                                                                              git_repo: Path) -> None:
    from pairloop.runs.resume import resume_run
    from pairloop.runs.store import load_run
    from tests.test_resume_tmux import QUIET, env, kill_server

    run = start_sims(tmux_server, git_repo)
    first = human_says(run, "worker", "before the server died")
    wait_for(lambda: delivered(run, first.id, "worker"), what="a delivery")
    kill_server(tmux_server, run)
    wait_for(lambda: not recorders(run), what="the recorders to end with their server")
    ended = {role: cast_of(run, role).events[-1].time for role in ("worker", "reviewer")}  # their last words
    resume_run(tmux_server, load_run(run.dir), env(QUIET))
    run = load_run(run.dir)
    wait_for(lambda: sorted(recorders(run)) == ["reviewer", "worker"], what="a recorder on each new pane")
    later = human_says(run, "worker", "after the resume")
    wait_for(lambda: delivered(run, later.id, "worker"), what="a delivery after the resume")
    wait_for(lambda: "after the resume" in output_of(cast_of(run, "worker")), what="it recorded")
    for role in ("worker", "reviewer"):
        def banner_after_marker(role: str = role) -> bool:
            """The new pane's first screen is recorded from its start: the new agent's banner follows the marker
            (the reviewer's recorder, quiet since it started, may still be writing them)."""
            events = cast_of(run, role).events
            at = next((i for i, e in enumerate(events) if e.code == "m" and e.data == "recording resumed"), None)
            return at is not None and "pairloop sim" in output_of(Cast(cast_of(run, role).header, events[at:]))

        wait_for(banner_after_marker, what=f"the resumed recording of the {role}'s new pane")
        assert sum(isinstance(line, dict) for line in raw_lines(run, role)) == 1
        cast = check_format(run, role)
        resumed = [e for e in cast.events if e.code == "m" and e.data == "recording resumed"]
        assert len(resumed) == 1 and resumed[0].time >= ended[role]


def test_a_relaunched_agent_pane_goes_on_recording_through_the_same_pipe(tmux_server: Tmux, git_repo: Path) -> None:
    from pairloop.runs.resume import resume_run
    from tests.test_resume_tmux import QUIET, env

    run = start_sims(tmux_server, git_repo)
    first = human_says(run, "reviewer", "before")
    wait_for(lambda: delivered(run, first.id, "reviewer"), what="a delivery")
    before = recorders(run)
    pane = run.manifest.roles["reviewer"].pane
    info = tmux_server.pane_info(pane)
    assert info is not None
    os.kill(info.pid, 9)
    wait_for(lambda: (i := tmux_server.pane_info(pane)) is not None and i.dead, what="the reviewer's pane to die")
    resume_run(tmux_server, run, env(QUIET))
    later = human_says(run, "reviewer", "after the relaunch")
    wait_for(lambda: delivered(run, later.id, "reviewer"), what="a delivery after the relaunch")
    wait_for(lambda: "after the relaunch" in output_of(cast_of(run, "reviewer")), what="it recorded")
    assert recorders(run) == before, "the same recorder, still one per pane"
    events = check_format(run, "reviewer").events
    resets = [i for i, e in enumerate(events) if e.code == "o" and e.data.startswith("\x1bc")]
    assert len(resets) >= 2, "the new program's terminal starts blank: so does the recording's screen"
