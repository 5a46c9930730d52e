"""bridge.rundir.lock: one bridge per run, and asking whether one runs never disturbs it (it tests the lock with
F_GETLK, it never takes it). POSIX locks do not conflict within one process, so every party here is its own."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from bridge.rundir import lock

ROOT = Path(__file__).resolve().parent.parent

HOLD = """
import sys
from pathlib import Path
from bridge.rundir import lock
fd = lock.take(Path(sys.argv[1]))
print("held", flush=True)
sys.stdin.read()  # until the test closes our stdin (or kills us)
"""

ASK = """
import sys
from pathlib import Path
from bridge.rundir import lock
run_dir, times = Path(sys.argv[1]), int(sys.argv[2])
stop = run_dir / "stop-asking"
seen, n = set(), 0
while n < times or not stop.exists():
    seen.add(lock.holder(run_dir))
    n += 1
    if n == 1:
        (run_dir / "asking").touch()
print(n, *sorted(str(s) for s in seen), flush=True)
"""

TAKE = """
import os, sys, time
from pathlib import Path
from bridge.rundir import lock
run_dir, times = Path(sys.argv[1]), int(sys.argv[2])
deadline = time.monotonic() + 30
while not (run_dir / "asking").exists() and time.monotonic() < deadline:  # start once the checks run
    time.sleep(0.005)
refused = 0
for _ in range(times):
    try:
        fd = lock.take(run_dir)
    except lock.BridgeBusy:
        refused += 1
        continue
    os.close(fd)
print(refused, flush=True)
"""


def python(script: str, *args: str, stdin: int | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-c", script, *args], cwd=ROOT, stdin=stdin, stdout=subprocess.PIPE,
                            text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})


@pytest.fixture
def holder_process(tmp_path: Path) -> Iterator[subprocess.Popen[str]]:
    proc = python(HOLD, str(tmp_path), stdin=subprocess.PIPE)
    assert proc.stdout is not None
    assert proc.stdout.readline() == "held\n"
    yield proc
    if proc.poll() is None:
        proc.kill()
    proc.wait(10)


def ask(run_dir: Path) -> str:
    """holder() as another process sees it."""
    out = subprocess.run([sys.executable, "-c", "import sys; from pathlib import Path; from bridge.rundir import "
                          "lock; print(lock.holder(Path(sys.argv[1])))", str(run_dir)], cwd=ROOT, check=True,
                         capture_output=True, text=True, timeout=30, env={**os.environ, "PYTHONPATH": str(ROOT)})
    return out.stdout.strip()


def test_no_lock_file_or_no_holder_means_no_bridge(tmp_path: Path) -> None:
    assert lock.holder(tmp_path) is None
    assert not lock.running(tmp_path)
    lock.lock_path(tmp_path).write_text("12345\n")  # a stale pid from a bridge long gone
    assert lock.holder(tmp_path) is None


def test_another_process_sees_the_holders_pid(tmp_path: Path, holder_process: subprocess.Popen[str]) -> None:
    assert lock.holder(tmp_path) == holder_process.pid
    assert lock.running(tmp_path)
    assert ask(tmp_path) == str(holder_process.pid)
    assert lock.lock_path(tmp_path).read_text() == f"{holder_process.pid}\n"


def test_a_second_bridge_is_refused_while_one_holds_the_lock(tmp_path: Path,
                                                             holder_process: subprocess.Popen[str]) -> None:
    with pytest.raises(lock.BridgeBusy, match="another bridge is already running"):
        lock.take(tmp_path)
    assert lock.holder(tmp_path) == holder_process.pid  # the refused attempt took nothing from it


@pytest.mark.parametrize("ending", ["exits", "is killed"])
def test_once_the_holder_is_gone_nobody_holds_it(tmp_path: Path, holder_process: subprocess.Popen[str],
                                                 ending: str) -> None:
    if ending == "exits":
        assert holder_process.stdin is not None
        holder_process.stdin.close()
    else:
        holder_process.send_signal(signal.SIGKILL)
    holder_process.wait(10)
    assert lock.holder(tmp_path) is None
    assert ask(tmp_path) == "None"
    fd = lock.take(tmp_path)  # and the next bridge gets it
    os.close(fd)


def test_checking_liveness_again_and_again_never_makes_a_starting_bridge_fail(tmp_path: Path) -> None:
    lock.lock_path(tmp_path).touch()
    asker = python(ASK, str(tmp_path), "200")
    taker = python(TAKE, str(tmp_path), "300")
    taker_out, _ = taker.communicate(timeout=60)
    (tmp_path / "stop-asking").touch()
    asker_out, _ = asker.communicate(timeout=60)
    assert taker.returncode == 0 and asker.returncode == 0
    assert taker_out.strip() == "0", "take() was refused while only liveness checks ran"
    count, *seen = asker_out.split()
    assert int(count) >= 200
    assert set(seen) <= {"None", str(taker.pid)}


def test_liveness_checks_leave_a_running_bridge_its_lock(tmp_path: Path,
                                                         holder_process: subprocess.Popen[str]) -> None:
    (tmp_path / "stop-asking").touch()
    asker = python(ASK, str(tmp_path), "200")
    asker_out, _ = asker.communicate(timeout=60)
    assert asker_out.split() == ["200", str(holder_process.pid)]
    with pytest.raises(lock.BridgeBusy):
        lock.take(tmp_path)
