"""The ledger's snapshot on a live run (real tmux, sim agents): a bridge killed on a long ledger comes back from
the snapshot the one before it kept, and loses nor repeats nothing; what a live bridge keeps is the fold of the
ledger it covers, after a whole review loop."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Any

import msgspec
import pytest
from click.testing import CliRunner

from bridge.book import Book
from bridge.inbox.mailbox import digest
from bridge.panes.tmux import Tmux
from bridge.protocol.referee import Referee
from bridge.record import Record
from bridge.replay import Views, fold
from bridge.rundir.events import AnyEvent, Delivered, Received
from bridge.rundir.ledger import Ledger, read_ledger
from bridge.rundir.manifest import read_manifest
from bridge.rundir.message import Message
from bridge.rundir.snapshot import Covered, Unusable, read_snapshot, snapshot_path
from pairloop.cli import cli
from pairloop.runs.lifecycle import bridge_running, request_control, send_message
from pairloop.runs.store import Run
from tests.conftest import wait_for
from tests.helpers import (
    book,
    bridge_pid,
    delivered,
    human_says,
    ids_received,
    restart_bridge,
    start_sims,
)

pytestmark = pytest.mark.tmux

SEEDED = 1200
KEY = bytes.fromhex("5eed" * 16)


def stop_bridge(run: Run) -> None:
    """A clean stop (SIGTERM): the bridge exits 0, and so does its keeper; nothing starts it again."""
    os.kill(bridge_pid(run), signal.SIGTERM)
    wait_for(lambda: not bridge_running(run), what="the bridge to stop")


def seed(run: Run, n: int) -> list[str]:
    """``n`` delivered messages from the human, to each agent in turn, in one write (no bridge runs)."""
    events: list[AnyEvent] = []
    first = len(book(run).order) + 1
    for i in range(n):
        to = "reviewer" if i % 2 else "worker"
        msg = Message(f"seeded-{i:05d}", "human", (to,), f"an earlier point, number {i}", "message", 1.0 + i)
        events += [Received(seq=first + i, id=msg.id, sender="human", to=(to,), kind="message", created=msg.created,
                            body=msg.body, digest=digest(msg)),
                   Delivered(to=to, ids=(msg.id,), via="receipt")]
    with Ledger(run.ledger_path) as ledger:
        ledger.append_all(events)
    return [f"seeded-{i:05d}" for i in range(n)]


def log_lines(run: Run, start: str) -> list[str]:
    path = run.dir / "bridge.log"
    text = path.read_text() if path.exists() else ""
    return [line for line in text.splitlines() if start in line]


def new_bridge(run: Run, old: int) -> int | None:
    try:
        pid = int((run.dir / "bridge.lock").read_text().strip() or 0)
    except (OSError, ValueError):
        return None
    return pid if pid != old and bridge_running(run) else None


def status_json(run: Run) -> dict[str, Any]:
    result = CliRunner().invoke(cli, ["status", "--json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    (shown,) = [r for r in json.loads(result.output)["runs"] if r["id"] == run.id]
    return dict(shown)


def test_a_killed_bridge_comes_back_from_its_snapshot_and_each_message_arrives_once(
        tmux_server: Tmux, git_repo: Path) -> None:
    run = start_sims(tmux_server, git_repo)
    before = human_says(run, "worker", "before the long history")
    wait_for(lambda: delivered(run, before.id, "worker"), what="the first delivery")
    stop_bridge(run)
    earlier = len(book(run).order)
    seeded = seed(run, SEEDED)
    restart_bridge(tmux_server, run)  # a new keeper, and its bridge folds the whole ledger
    wait_for(lambda: snapshot_path(run.dir).exists(), timeout=30, what="the snapshot of the long ledger")
    sent = [human_says(run, role, f"after the snapshot, {n}") for n, role in enumerate(("worker", "reviewer") * 2)]
    for msg in sent:
        wait_for(partial(delivered, run, msg.id, msg.to[0]), what=f"{msg.id} delivered")
    in_ledger = len(book(run).order)

    pid = bridge_pid(run)
    os.kill(pid, signal.SIGSTOP)  # what it owes now is only in the outbox: the next bridge must take it up
    waiting = human_says(run, "reviewer", "waiting while the bridge is killed")
    os.kill(pid, signal.SIGKILL)
    wait_for(partial(new_bridge, run, pid), timeout=5, what="the keeper to start the bridge again")
    wait_for(lambda: delivered(run, waiting.id, "reviewer"), what="the waiting message delivered")

    starts = log_lines(run, "bridge started · ")
    assert len(starts) == 3, starts
    assert f"· {earlier + SEEDED} messages in the ledger · 0 to deliver" in starts[1], "the first start read it all"
    assert f"· {in_ledger} messages in the ledger (from its snapshot and " in starts[2], starts[2]
    assert starts[2].endswith(" events after it) · 0 to deliver")
    assert not log_lines(run, "ledger snapshot not used"), "its own keeper's snapshot is trusted"
    entries = book(run).entries.values()
    for role in ("worker", "reviewer"):
        got = ids_received(run, role)
        owed = {e.message.id for e in entries if role in e.message.to} - set(seeded)
        assert {m.id for m in (before, *sent, waiting) if role in m.to} <= owed
        assert set(got) == owed and set(got.values()) == {1}, f"each message reached the {role} once, no earlier one"

    shown = status_json(run)
    assert shown["bridge"] == "running"
    assert shown["messages"] == earlier + SEEDED + 2 * (len(sent) + 1), "each of ours, and its context for the other"
    for role in ("worker", "reviewer"):
        agent = shown["agents"][role]
        reached = SEEDED // 2 + len(ids_received(run, role))
        assert (agent["queued"], agent["delivered"], agent["failed"]) == (0, reached, 0), role


# ---- what a live bridge keeps --------------------------------------------------------------------------------------


BRIDGE = ("import sys; from bridge.__main__ import main; "
          "sys.exit(main([sys.argv[1]], snapshot_key=bytes.fromhex(sys.argv[2])))")


@contextmanager
def own_bridge(run: Run, out: Path) -> Iterator[subprocess.Popen[bytes]]:
    """The run's bridge as a child of the test, with a key the test knows (a keeper's is in its memory only)."""
    with out.open("ab") as log:
        proc = subprocess.Popen([sys.executable, "-c", BRIDGE, str(run.dir), KEY.hex()], stdin=subprocess.DEVNULL,
                                stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: bridge_running(run) and bridge_pid(run) == proc.pid, what="our bridge to hold the run")
        yield proc
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def snapshot_of(run: Run) -> tuple[int, Covered, Views] | None:
    try:
        return read_snapshot(run.dir, KEY, run.ledger_path, Views)
    except Unusable:
        return None


def fold_of(run: Run, end: int, scratch: Path) -> Views:
    """The views a bridge with no snapshot makes of the ledger's first ``end`` bytes."""
    with run.ledger_path.open("rb") as f:
        (scratch / "ledger.jsonl").write_bytes(f.read(end))
    replay = read_ledger(scratch / "ledger.jsonl")
    assert replay.end == end
    with Ledger(scratch / "unused.jsonl") as unused:
        record = Record(unused, Book(), Referee(read_manifest(run.dir), run.dir))
        fold(record, replay.events)
    return Views(record.book.shelved(), record.referee.protocol, record.referee.protocol_started)


def named(value: object) -> object:
    """``value`` as plain data with every field named (the snapshot's structs are kept as arrays)."""
    if isinstance(value, msgspec.Struct):
        return {f: named(getattr(value, f)) for f in value.__struct_fields__}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: named(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(k): named(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [named(v) for v in value]
    return value


def differences(kept: object, folded: object, where: str = "views") -> list[str]:
    """Where two decoded views differ, field by field (the first few)."""
    if isinstance(kept, dict) and isinstance(folded, dict):
        return [d for k in {*kept, *folded} for d in differences(kept.get(k), folded.get(k), f"{where}.{k}")][:10]
    if isinstance(kept, list) and isinstance(folded, list) and len(kept) == len(folded):
        return [d for i, (a, b) in enumerate(zip(kept, folded, strict=True))
                for d in differences(a, b, f"{where}[{i}]")][:10]
    return [] if kept == folded else [f"{where}: kept {kept!r}, folded {folded!r}"]


def test_what_a_live_bridge_keeps_is_the_fold_of_the_ledger_after_a_review_loop(
        tmux_server: Tmux, git_repo: Path, tmp_path: Path) -> None:
    run = start_sims(tmux_server, git_repo, PAIRLOOP_SIM_MODE="pair", PAIRLOOP_SIM_WORK_SECONDS="0.1")
    stop_bridge(run)
    seed(run, SEEDED)
    out = tmp_path / "bridge.out"
    with own_bridge(run, out):  # folds the whole ledger: a snapshot is due at once
        wait_for(lambda: log_lines(run, "bridge started · ")[1:], what="our first bridge started")
        first = wait_for(partial(snapshot_of, run), timeout=30, what="the first snapshot")
        stop_bridge(run)
    with own_bridge(run, out):  # begins from it, then lives through a whole review loop
        starts = wait_for(lambda: log_lines(run, "bridge started · ")[2:], what="our second bridge started")
        assert "(from its snapshot and " in starts[0], starts
        task = send_message(run, "human", ("worker",), "Add a greet(name) function.\nIt must be tested.", "task")
        wait_for(lambda: book(run).run_state == "agreed", timeout=60, what="the pair to agree")
        wait_for(lambda: all(e.deliveries.get(r) == "delivered" for e in book(run).entries.values()
                             for r in e.message.to if r != "human"), what="the done delivered")
        agreed = len(read_ledger(run.ledger_path).events)
        assert len(run.protocol().verdicts) == 2, "changes, then approval"
        # A thousand messages more, held by a paused relay: a snapshot is due again, with messages owed.
        request_control(run, "pause")
        wait_for(lambda: run.protocol().paused, what="the relay paused")
        for n in range(1000):
            send_message(run, "human", ("reviewer",), f"for later, {n}")

        def grown() -> tuple[int, Covered, Views] | None:
            now = snapshot_of(run)
            return now if now is not None and now[1].events >= agreed else None

        end, covered, views = wait_for(grown, timeout=60, what="a snapshot written after the agreement")
    assert covered.events > first[1].events and end > first[0]
    folded = fold_of(run, end, tmp_path)
    assert covered.events == len(read_ledger(tmp_path / "ledger.jsonl").events), "it counts what it covers"
    assert differences(named(views), named(folded)) == [], "the live bridge's views are not the fold of its ledger"
    assert msgspec.msgpack.encode(views) == msgspec.msgpack.encode(folded)
    assert task.id in views.book.order and views.book.run_state == "agreed"
    assert views.protocol.paused and views.book.owed["reviewer"], "kept while messages were owed"
    assert "ledger snapshot not" not in out.read_text()
