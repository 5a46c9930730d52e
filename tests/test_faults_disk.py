"""A full disk loses nothing: `pairloop send` refuses cleanly, the bridge stays up, says so once, retries, and
delivers everything exactly once when space comes back — on a really full disk (a tiny tmpfs, real tmux, sim
agents), and with writes cut short injected where a real disk cannot be made to do it on cue."""

from __future__ import annotations

import errno
import io
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest
from click.testing import CliRunner

from bridge.book import DELIVERING, QUEUED
from bridge.panes.envelope import PASTE_LIMIT
from bridge.panes.problem import PROBLEM_OPTION, published_problem
from bridge.panes.tmux import Tmux, TmuxError
from bridge.relay import Bridge
from bridge.report import BRIDGE_LOG, Reporter
from bridge.rundir.control import control_dir, request
from bridge.rundir.events import Delivering, Received
from bridge.rundir.files import write_atomic
from bridge.rundir.ledger import LedgerWriteError, ledger_path, read_ledger
from bridge.rundir.manifest import Manifest, RoleSpec, TmuxPlace, write_manifest
from bridge.rundir.message import Message, new_message_id, outbox_dir, post
from bridge.trouble import MAX_RETRY_SECONDS, Trouble, after_pass, next_retry, retry_delay
from pairloop.agents.claude import CLAUDE_RULES
from pairloop.cli import PairloopGroup, cli
from pairloop.errors import CannotWrite, describe_os_error
from pairloop.runs.lifecycle import StartOptions
from pairloop.runs.store import Run
from tests.conftest import wait_for
from tests.helpers import (
    bridge_pid,
    delivered,
    fill_disk,
    ids_received,
    ledger,
    queued_reason,
    run_without_tmux,
    start_sims,
)

ENOSPC = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


# ---- the decision: when a write problem is news ------------------------------------------------------------


def test_an_episode_is_announced_once_then_retried_later_and_later() -> None:
    first = after_pass(Trouble(), ["cannot write the ledger: No space left on device"], now=100.0)
    assert first.alert.startswith("pairloop: DISK: cannot write the ledger: No space left on device: nothing is lost")
    assert (first.trouble.since, first.trouble.retry_at, first.say) == (100.0, 100.5, "")
    step, at = first, 100.5
    for attempt in range(2, 8):
        step = after_pass(step.trouble, ["cannot write the paste file: No space left on device"], now=at)
        assert (step.alert, step.say) == ("", ""), "said once per episode, not on every retry"
        assert step.trouble.retry_at - at == retry_delay(attempt)
        at = step.trouble.retry_at
    assert step.trouble.problem == "cannot write the paste file: No space left on device", "the latest problem"
    assert [retry_delay(n) for n in (1, 2, 3, 4, 5, 50)] == [0.5, 1.0, 2.0, 4.0, MAX_RETRY_SECONDS, MAX_RETRY_SECONDS]


def test_a_pass_between_retries_moves_nothing() -> None:
    trouble = after_pass(Trouble(), ["cannot write the ledger: No space left on device"], now=10.0).trouble
    early = after_pass(trouble, ["cannot write an attachment: No space left on device"], now=10.2)
    assert (early.trouble.attempts, early.trouble.retry_at, early.alert) == (1, 10.5, "")
    assert next_retry(early.trouble, 10.3) == 10.5, "a write failing meanwhile is tried again with the rest"
    assert next_retry(Trouble(), 10.3) == 10.8, "the first failure: half a second later"
    quiet = after_pass(trouble, [], now=10.2)  # woken by something else: the failing writes were not tried
    assert (quiet.trouble, quiet.say) == (trouble, "")


def test_an_episode_ends_at_a_retry_that_finds_writing_works() -> None:
    trouble = after_pass(Trouble(), ["cannot write the ledger: No space left on device"], now=10.0).trouble
    over = after_pass(trouble, [], now=12.0)
    assert over.trouble == Trouble()
    assert over.say == "DISK: writing works again (after 2 s): relaying what waited"
    assert after_pass(Trouble(), [], now=13.0) == after_pass(Trouble(), [], now=14.0)
    early = after_pass(trouble, [], now=10.1, wrote=True)  # a message recorded before the retry: space is back
    assert (early.trouble, early.say) == (Trouble(), "DISK: writing works again (after 0 s): relaying what waited")


# ---- the command line: one line, its own exit code, by errno --------------------------------------------------


@pytest.mark.parametrize(("code", "filename", "line"), [
    (errno.ENOSPC, "/r/.pairloop/runs/x/outbox/human/1-a.json",
     "no space left on the device holding /r/.pairloop/runs/x/outbox/human: the message was not sent"),
    (errno.EDQUOT, "/r/outbox", "the disk quota is used up on the device holding /r/outbox: the message was not sent"),
    (errno.EROFS, "/r/outbox/human/1-a.json",
     "the device holding /r/outbox/human is read-only: the message was not sent"),
    (errno.EACCES, "/r/outbox/human/1-a.json", "permission denied: /r/outbox/human/1-a.json: the message was not sent"),
    (errno.EMLINK, "/r/x", "too many links: /r/x: the message was not sent"),
    (errno.ENOSPC, None, "no space left on device: the message was not sent"),
])
def test_an_os_error_is_said_by_its_errno_and_where(code: int, filename: str | None, line: str) -> None:
    exc = OSError(code, os.strerror(code), filename) if filename else OSError(code, os.strerror(code))
    assert describe_os_error(exc, "the message was not sent", is_dir=lambda p: p == "/r/outbox") == line


@pytest.mark.parametrize(("command", "said"), [
    ("send", "Error: no space left on the device holding /r/outbox: the message was not sent"),
    ("pause", "Error: no space left on the device holding /r/outbox: the request was not sent"),
    ("status", "Error: no space left on the device holding /r/outbox"),
])
def test_an_os_error_anywhere_is_one_line_and_exit_5(command: str, said: str) -> None:
    group = PairloopGroup()

    @group.command(command)
    def fails() -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), "/r/outbox/x.json")

    result = CliRunner().invoke(group, [command])
    assert (result.exit_code, result.stderr, result.stdout) == (CannotWrite.exit_code, said + "\n", "")


def test_a_ledger_the_disk_refuses_is_one_line_and_exit_5() -> None:
    group = PairloopGroup()

    @group.command("stop")
    def fails() -> None:
        raise LedgerWriteError("cannot write the ledger: No space left on device", errno.ENOSPC)

    result = CliRunner().invoke(group, ["stop"])
    assert (result.exit_code, result.stderr) == (5, "Error: cannot write the ledger: No space left on device: the "
                                                    "run was not stopped\n")


def test_a_send_the_disk_refuses_leaves_nothing_behind_and_prints_no_id(
        git_repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PAIRLOOP_HOME", str(tmp_path / "state"))
    run_dir = run_without_tmux(git_repo, tmp_path / "state")
    real_write = os.write

    def half_then_full(fd: int, data: bytes | memoryview) -> int:  # a write cut short, then a full disk
        if len(data) > 1 and not half_then_full.cut:  # type: ignore[attr-defined]
            half_then_full.cut = True  # type: ignore[attr-defined]
            return real_write(fd, memoryview(data)[: len(data) // 2])
        raise ENOSPC

    half_then_full.cut = False  # type: ignore[attr-defined]
    monkeypatch.setattr("bridge.rundir.files.os.write", half_then_full)
    result = CliRunner().invoke(cli, ["send", "--to", "worker", "hello"])
    outbox = git_repo / ".pairloop" / "runs" / run_dir.name / "outbox"
    assert result.exit_code == 5
    assert result.stderr == f"Error: no space left on the device holding {outbox / 'human'}: the message was not sent\n"
    assert result.stdout == ""
    assert sorted(p.name for p in outbox.rglob("*")) == ["human"], "no message, no temp file"


# ---- writes cut short, injected ----------------------------------------------------------------------------


def test_write_atomic_cut_short_removes_its_temp_file_and_leaves_the_old_file(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "run").mkdir()
    target = tmp_path / "run" / "run.json"
    target.write_bytes(b"old")
    real_write = os.write
    calls: list[int] = []

    def short(fd: int, data: bytes | memoryview) -> int:
        calls.append(len(data))
        if len(calls) == 1:
            return real_write(fd, memoryview(data)[:3])
        raise ENOSPC

    monkeypatch.setattr("bridge.rundir.files.os.write", short)
    with pytest.raises(OSError) as caught:
        write_atomic(target, b"new content, longer than one short write")
    assert (caught.value.errno, caught.value.filename) == (errno.ENOSPC, str(target))
    assert calls == [40, 37], "the short write was continued before the disk said it was full"
    assert sorted(p.name for p in target.parent.iterdir()) == ["run.json"]
    assert target.read_bytes() == b"old"


def test_write_atomic_making_no_progress_is_an_error_not_a_hang(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("bridge.rundir.files.os.write", lambda fd, data: 0)
    (tmp_path / "run").mkdir()
    with pytest.raises(OSError) as caught:
        write_atomic(tmp_path / "run" / "f", b"data")
    assert caught.value.errno == errno.EIO
    assert list((tmp_path / "run").iterdir()) == []


class PanelessTmux(Tmux):
    """A tmux session with no panes to look at: options are set (and kept in ``commands``), the rest fails as
    tmux's would, and the bridge carries on."""

    def __init__(self) -> None:
        self.commands: list[tuple[str, ...]] = []

    def run(self, *args: str) -> list[str]:
        self.commands.append(args)
        if args[0] == "set-option":
            return []
        raise TmuxError("can't find pane")


@pytest.fixture
def bridge(tmp_path: Path) -> Iterator[tuple[Bridge, io.StringIO]]:
    spec = RoleSpec(agent="claude", pane="%1", submit_key="Enter", screen=CLAUDE_RULES)
    write_manifest(tmp_path, Manifest(id="r1", repo=str(tmp_path), tmux=TmuxPlace(socket_path="/nonexistent",
                                                                                   session="s"),
                                      roles={"worker": spec, "reviewer": msgspec.structs.replace(spec, pane="%2")}))
    out = io.StringIO()
    started = Bridge(tmp_path, PanelessTmux(), out)
    started.start()
    yield started, out
    started.record.ledger.close()
    started.report.close()
    if started._lock_fd is not None:
        os.close(started._lock_fd)


class LedgerDisk:
    """os.write as on a nearly full disk, for the ledger only: the first write lands half, then ENOSPC."""

    def __init__(self, path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.path, self.full, self.calls, self._real = path, True, 0, os.write
        monkeypatch.setattr("bridge.rundir.ledger.os.write", self.write)

    def write(self, fd: int, data: bytes | memoryview) -> int:
        if not self.full or os.readlink(f"/proc/self/fd/{fd}") != str(self.path):
            return self._real(fd, data)
        self.calls += 1
        if self.calls == 1:
            return self._real(fd, memoryview(data)[: len(data) // 2])
        raise ENOSPC


def disk_lines(out: io.StringIO) -> list[str]:
    return [line for line in out.getvalue().splitlines() if "DISK:" in line]


def test_a_message_whose_record_is_cut_short_stays_in_the_outbox_until_it_is_recorded_once(
        bridge: tuple[Bridge, io.StringIO], monkeypatch: pytest.MonkeyPatch) -> None:
    relay, out = bridge
    path = ledger_path(relay.run_dir)
    before = path.read_bytes()
    msg = Message(new_message_id(), "human", ("worker",), "recorded whole or not at all " * 20)
    file = post(outbox_dir(relay.mailbox), msg)
    disk = LedgerDisk(path, monkeypatch)
    relay.tick()
    relay.tick()  # before the retry time: still the same episode
    assert disk.calls >= 2 and file.exists(), "not claimed: its record is not on disk"
    assert msg.id not in relay.book.entries
    assert path.read_bytes().startswith(before) and path.read_bytes().endswith(b"\n"), "no fragment left"
    assert read_ledger(path).damaged == []
    assert relay.desk.trouble.problem == "cannot write the ledger: No space left on device"
    assert relay.status_text.endswith("DISK: cannot write the ledger: No space left on device")
    (alert,) = disk_lines(out)
    assert "nothing is lost" in alert
    assert ("set-option", "-t", "=s:", PROBLEM_OPTION, relay.desk.trouble.problem) in relay.tmux.commands  # type: ignore[attr-defined]

    disk.full = False
    wait_for(lambda: ticked(relay) and msg.id in relay.book.entries, what="the retry to record the message")
    assert not file.exists()
    assert [i for i in ledger_ids(path) if i == msg.id] == [msg.id], "recorded once"
    wait_for(lambda: ticked(relay) and not relay.desk.trouble.problem, what="the episode to end")
    (_, back) = disk_lines(out)
    assert "DISK: writing works again (after " in back
    assert ("set-option", "-u", "-t", "=s:", PROBLEM_OPTION) in relay.tmux.commands  # type: ignore[attr-defined]


def ticked(relay: Bridge) -> bool:
    relay.tick()
    return True


def ledger_ids(path: Path) -> list[str]:
    return [e.id for e in read_ledger(path).events if isinstance(e, Received)]


def queued_entry(relay: Bridge, body: str) -> str:
    msg = Message(new_message_id(), "human", ("worker",), body)
    post(outbox_dir(relay.mailbox), msg)
    relay.ingest()
    assert relay.book.entries[msg.id].deliveries["worker"] == QUEUED
    return msg.id


def delivering_events(relay: Bridge) -> list[object]:
    return [e for e in read_ledger(ledger_path(relay.run_dir)).events if isinstance(e, Delivering)]


def test_an_attachment_the_disk_refuses_holds_the_batch_before_anything_is_recorded(
        bridge: tuple[Bridge, io.StringIO], monkeypatch: pytest.MonkeyPatch) -> None:
    relay, out = bridge
    msg_id = queued_entry(relay, "x" * (PASTE_LIMIT + 1))
    monkeypatch.setattr("bridge.courier.write_atomic", lambda path, data: (_ for _ in ()).throw(ENOSPC))
    relay.courier.deliver_batch("worker", [relay.book.entries[msg_id]], None)
    assert delivering_events(relay) == []
    assert relay.book.entries[msg_id].deliveries["worker"] == QUEUED
    assert relay.courier.schedules["worker"].next_check > time.monotonic(), "tried again later, not at once"
    assert not (relay.mailbox / "attachments" / f"{msg_id}.txt").exists()
    relay.take_stock()
    assert relay.desk.trouble.problem == "cannot write an attachment: No space left on device"
    assert len(disk_lines(out)) == 1


def test_a_paste_file_the_disk_refuses_holds_the_batch_and_leaves_no_file(
        bridge: tuple[Bridge, io.StringIO], monkeypatch: pytest.MonkeyPatch) -> None:
    relay, _ = bridge
    msg_id = queued_entry(relay, "a short one")
    monkeypatch.setattr("bridge.courier.write_private", lambda path, data: (_ for _ in ()).throw(ENOSPC))
    relay.courier.deliver_batch("worker", [relay.book.entries[msg_id]], None)
    relay.take_stock()
    assert delivering_events(relay) == []
    assert relay.desk.trouble.problem == "cannot write the paste file: No space left on device"
    assert not [p for p in relay.run_dir.iterdir() if p.name.startswith(".paste-")]


def test_a_paste_file_refused_after_the_paste_was_recorded_goes_back_to_the_queue(
        bridge: tuple[Bridge, io.StringIO], monkeypatch: pytest.MonkeyPatch) -> None:
    relay, _ = bridge
    msg_id = queued_entry(relay, "a short one")

    def refused(*args: object) -> None:
        raise ENOSPC

    monkeypatch.setattr("bridge.courier.deliver", refused)
    relay.courier.deliver_batch("worker", [relay.book.entries[msg_id]], None)
    assert len(delivering_events(relay)) == 1
    assert relay.book.entries[msg_id].deliveries["worker"] == QUEUED, "not failed, not in flight: queued again"
    assert relay.book.entries[msg_id].deliveries["worker"] != DELIVERING
    assert not [p for p in relay.run_dir.iterdir() if p.name.startswith(".paste-")]


def test_a_control_file_that_cannot_be_removed_is_acted_on_once(
        bridge: tuple[Bridge, io.StringIO], monkeypatch: pytest.MonkeyPatch) -> None:
    relay, _ = bridge
    path = request(relay.run_dir, "c1", "pause")
    real_unlink = Path.unlink

    def read_only(self: Path, missing_ok: bool = False) -> None:
        if self.parent == control_dir(relay.run_dir):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(self))
        real_unlink(self, missing_ok=missing_ok)

    monkeypatch.setattr(Path, "unlink", read_only)
    first = relay.intake.control(relay.referee)
    again = relay.intake.control(relay.referee)
    assert [type(e).__name__ for e in first.events] == ["Relay"]
    assert again.events == [], "acted on once, though the file is still there"
    assert relay.intake.take_troubles() == ["cannot remove a control file: Read-only file system"] * 2
    monkeypatch.setattr(Path, "unlink", real_unlink)
    assert relay.intake.control(relay.referee).events == []
    assert not path.exists()


def test_the_log_keeps_what_a_full_disk_refused_and_writes_it_in_order_later(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    report = Reporter(tmp_path, io.StringIO())
    real_write, full = os.write, [True]

    def write(fd: int, data: bytes | memoryview) -> int:
        if full[0]:
            raise ENOSPC
        return real_write(fd, memoryview(data)[:10])  # and every write cut short too

    monkeypatch.setattr("bridge.report.os.write", write)
    for i in range(3):
        report.line(f"line {i}")
    assert report.log_problem == f"cannot write {BRIDGE_LOG}: No space left on device"
    full[0] = False
    report.retry()
    assert report.log_problem == ""
    report.close()
    assert [line.split(" ", 1)[1] for line in (tmp_path / BRIDGE_LOG).read_text().splitlines()] == [
        "line 0", "line 1", "line 2"]


# ---- a really full disk --------------------------------------------------------------------------------------


@pytest.fixture
def disk_repo(tiny_disk: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The repository and pairloop's state root, both on the tiny disk."""
    from tests.conftest import make_repo

    repo = make_repo(tiny_disk / "repo")
    monkeypatch.chdir(repo)
    monkeypatch.setenv("PAIRLOOP_HOME", str(tiny_disk / "state"))
    return repo


def pairloop(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def sent(*args: str) -> str:
    code, out, err = pairloop(*args)
    assert (code, err) == (0, ""), err
    return out.strip()


def stage(folder: Path, body: str) -> Path:
    """A message file written before the disk fills, to be renamed into the outbox while it is full (a rename
    needs no space): what an agent's write racing the disk filling up looks like."""
    return post(folder, Message(new_message_id(), "human", ("reviewer",), body))


def received_ids(run: Run) -> list[str]:
    """The human's messages the ledger recorded, once per record."""
    return [e["id"] for e in ledger(run) if e["ev"] == "received" and e["from"] == "human"]


def everything_left_in(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


def test_a_full_disk_refuses_sends_cleanly_and_the_bridge_delivers_everything_once_space_is_back(
        tiny_disk: Path, tmux_server: Tmux, disk_repo: Path) -> None:
    run = start_sims(tmux_server, disk_repo, options=StartOptions("sim", "sim", mirror=False))
    pid = bridge_pid(run)
    # Recorded before the disk fills, not yet delivered: a human draft in each input box holds them (typing
    # writes nothing, so clearing the drafts once the disk is full releases them with nothing freed).
    panes = {role: run.manifest.roles[role].pane for role in ("worker", "reviewer")}
    for pane in panes.values():
        tmux_server.send_keys(pane, "a draft", literal=True)
    wait_for(lambda: all("› a draft" in tmux_server.capture(p) for p in panes.values()), what="the drafts")
    before = [sent("send", "--to", "reviewer", "before the disk filled"),
              sent("send", "--to", "reviewer", "big enough for an attachment " + "y" * PASTE_LIMIT),
              sent("send", "--to", "worker", "to the worker, before the disk filled")]
    wait_for(lambda: all(queued_reason(run, i, to).startswith("held: human draft")
                         for i, to in zip(before, ("reviewer", "reviewer", "worker"), strict=True)),
             what="the first messages recorded and held by the drafts")
    wait_for(lambda: everything_left_in(run.outbox) == [], what="the first messages claimed")
    staging = tiny_disk / "staging"
    # Bodies too long to fit in what is left of the ledger's last page: their records cannot be written.
    staged = [stage(staging, f"staged {i} " + "z" * 6000) for i in range(2)]

    filler = fill_disk(tiny_disk)
    for args in (("send", "--to", "reviewer", "while full"), ("changes", "1. while full"), ("approve",),
                 ("pause",), ("unpause",)):
        code, out, err = pairloop(*args)
        assert (code, out) == (5, ""), args
        assert err.startswith("Error: no space left on the device holding ") and err.count("\n") == 1, err
        assert err.endswith((": the message was not sent\n", ": the request was not sent\n")), err
    assert everything_left_in(run.outbox) == [], "no message and no temp file left behind"
    assert everything_left_in(control_dir(run.dir)) == []

    for pane in panes.values():
        tmux_server.send_keys(pane, "C-u")
    for path in staged:
        path.rename(run.outbox / "human" / path.name)
    pane = run.manifest.bridge_pane
    wait_for(lambda: "DISK:" in tmux_server.capture(pane, history=2000), what="the bridge to say DISK")
    wait_for(lambda: "No space left on device" in published_problem(tmux_server, run.session),
             what="the problem on the session")
    code, out, _ = pairloop("status", "--json")
    (status,) = json.loads(out)["runs"]
    assert "No space left on device" in status["problem"] and status["bridge"] == "running"
    assert "DISK: " in pairloop("status")[1]
    # The status line is set at the end of the pass that published the problem: a moment later.
    wait_for(lambda: "DISK: " in "".join(tmux_server.run("show-options", "-v", "-t", f"={run.session}:",
                                                         "status-right")), what="the status line to say DISK")
    code, out, _ = pairloop("log")
    assert out.count("waiting: not yet picked up by the bridge") == 2
    time.sleep(2.0)  # let it retry a few times (after 0.5 s, 1 s, 2 s …): still said once
    history = tmux_server.capture(pane, history=2000)
    assert history.count("pairloop: DISK:") == 1, history[-2000:]
    assert bridge_pid(run) == pid, "the same bridge throughout"

    filler.unlink()
    staged_ids = [path.stem for path in staged]
    after = sent("send", "--to", "reviewer", "after space came back")
    wait_for(lambda: all(delivered(run, i, "reviewer") for i in [*before[:2], *staged_ids, after])
             and delivered(run, before[2], "worker"), timeout=30, what="everything delivered")
    to_reviewer, to_worker = ids_received(run, "reviewer"), ids_received(run, "worker")
    assert {i: n for i, n in to_reviewer.items() if i in received_ids(run)} == dict.fromkeys(
        [*before[:2], *staged_ids, after], 1)
    assert {i: n for i, n in to_worker.items() if i in received_ids(run)} == {before[2]: 1}
    assert set(to_reviewer.values()) == set(to_worker.values()) == {1}, "nothing (not even a notice) doubled"
    assert sorted(received_ids(run)) == sorted([*before, *staged_ids, after]), "each recorded once"
    wait_for(lambda: "DISK: writing works again" in tmux_server.capture(pane, history=2000),
             what="the bridge to say the disk works again")
    wait_for(lambda: published_problem(tmux_server, run.session) == "", what="the problem cleared")
    assert json.loads(pairloop("status", "--json")[1])["runs"][0]["problem"] == ""
    assert tmux_server.capture(pane, history=2000).count("pairloop: DISK:") == 1
    assert bridge_pid(run) == pid
    assert not [p for p in run.dir.iterdir() if p.name.startswith(".paste-")]

