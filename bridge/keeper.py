"""``python -m bridge.keeper RUN_DIR``: what runs in the bridge pane. It runs the bridge (``python -m bridge
RUN_DIR``) as its child and starts it again when it dies while the session lives — a crash, SIGKILL, the OOM
killer — saying why in the pane and bridge.log. A bridge that keeps dying is started again later and later, and
the human is called (a bell, a tmux message, the status line and ``pairloop status``). A clean exit (the run
stopped, the session hung up, SIGTERM) ends the keeper too. The bridge's own rules make a restart lose and
duplicate nothing: the ledger is replayed, the outbox scanned, a delivery in flight settled by its receipt.

The keeper waits in waitpid and costs nothing while the bridge runs; it imports the standard library (and the
bridge's lock and log) only: tmux is loaded the first time the human has to be called. If the keeper itself is
killed, the pane's ``pane-died`` hook (:func:`pane_hook`) starts the pane again."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from bridge.rundir import lock

if TYPE_CHECKING:
    from bridge.panes.tmux import Tmux
    from bridge.report import Reporter

STEADY_S = 10.0  # a bridge that ran this long was not crash-looping: the count starts over
BACKOFF_S = (0.0, 0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 30.0)  # wait before the n-th quick restart in a row
CALL_AFTER = 3  # quick deaths in a row that make a crash loop: the human is called
BUSY_POLL_S = 0.5  # while another bridge holds the run's lock
# A bridge ended by one of these was asked to stop (one that comes before it set its handlers dies of it).
STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP, signal.SIGINT)


def bridge_argv(python: str, run_dir: Path) -> list[str]:
    return [python, "-m", "bridge", str(run_dir)]


def keeper_argv(python: str, run_dir: Path) -> list[str]:
    """The bridge pane's command line."""
    return [python, "-m", "bridge.keeper", str(run_dir)]


def pane_hook(pane: str) -> tuple[str, ...]:
    """The tmux command that starts the bridge pane's command again when the pane's process (the keeper) was
    killed by a signal. An exit of its own (the run is over, or it was told to stop) leaves the pane dead. Needs
    remain-on-exit (the workspace sets it) and tmux 3.3+ (#{pane_dead_signal}); older tmux only loses this."""
    again = f"respawn-pane -t {pane}"
    return ("set-hook", "-p", "-t", pane, "pane-died", f"if-shell -F '#{{pane_dead_signal}}' '{again}'")


def why(returncode: int) -> str:
    """A child's end in words: "exit status 3", "killed by signal 9, SIGKILL"."""
    if returncode >= 0:
        return f"exit status {returncode}"
    try:
        name = signal.Signals(-returncode).name
    except ValueError:
        return f"killed by signal {-returncode}"
    return f"killed by signal {-returncode}, {name}"


@dataclass(frozen=True)
class Next:
    """What to do after the bridge died: start it again after ``delay`` s, and whether the human is called."""

    delay: float
    quick: int  # quick deaths in a row, this one included (0: it had run steadily)
    call: bool


def after_death(quick_before: int, lived_s: float) -> Next:
    """Pure: a death after a steady run is restarted at once; quick ones back off, and the third in a row calls
    the human (and each after it keeps the call up to date)."""
    quick = quick_before + 1 if lived_s < STEADY_S else 1
    return Next(BACKOFF_S[min(quick - 1, len(BACKOFF_S) - 1)], quick, quick >= CALL_AFTER)


class Keeper:
    def __init__(self, run_dir: Path, python: str = sys.executable) -> None:
        self.run_dir = run_dir
        self.argv = bridge_argv(python, run_dir)
        self.child: subprocess.Popen[bytes] | None = None
        self.stopping = False
        self.called = False  # the human was called about a crash loop (and has not been told it is over)
        self._log: Reporter | None = None
        self._tmux: Tmux | None = None
        self._wake_r, wake_w = os.pipe()
        os.set_blocking(wake_w, False)
        os.set_blocking(self._wake_r, False)
        signal.set_wakeup_fd(wake_w)  # a signal ends a backoff wait at once
        for sig in STOP_SIGNALS:
            signal.signal(sig, self._on_signal)

    def _on_signal(self, signum: int, frame: object) -> None:
        self.stopping = True
        if self.child is not None and self.child.poll() is None:
            try:
                self.child.send_signal(signum)
            except OSError:
                pass

    def run(self) -> int:
        quick = 0
        while not self.stopping:
            started = time.monotonic()
            self.child = subprocess.Popen(self.argv)
            code = self._wait_steady(self.child)
            lived = time.monotonic() - started
            if code == 0 or -code in STOP_SIGNALS or self.stopping:
                return 0
            if code == lock.BUSY_EXIT:
                self._wait_for_lock()
                continue
            step = after_death(quick, lived)
            quick = step.quick
            again = "starting it again" + (f" in {step.delay:g} s" if step.delay else "")
            loop = f" ({quick} times in a row within {STEADY_S:g} s of starting)" if quick > 1 else ""
            self.say(f"bridge died ({why(code)}) after {lived:.1f} s{loop}: {again}")
            if step.call:
                self.call(f"the bridge keeps dying ({why(code)}, {quick} times in a row): see bridge.log; "
                          f"next try in {step.delay:g} s")
            self._sleep(step.delay)
        return 0

    def _wait_steady(self, child: subprocess.Popen[bytes]) -> int:
        """Wait for the child to end; once it has run steadily, a crash loop it ended is over."""
        try:
            return child.wait(timeout=STEADY_S) if self.called else child.wait()
        except subprocess.TimeoutExpired:
            self.called = False
            self.say("bridge running steadily again")
            self.tell("")
            return child.wait()

    def _wait_for_lock(self) -> None:
        holder = lock.holder(self.run_dir)
        self.say(f"another bridge serves this run (pid {holder}): waiting for it to end")
        while not self.stopping and lock.running(self.run_dir):
            self._sleep(BUSY_POLL_S)

    def _sleep(self, seconds: float) -> None:
        if seconds > 0 and not self.stopping:
            select.select([self._wake_r], [], [], seconds)
            try:
                os.read(self._wake_r, 512)
            except BlockingIOError:
                pass

    # ---- saying it ---------------------------------------------------------------------------------------

    def say(self, text: str) -> None:
        """A line in the pane and in bridge.log."""
        if self._log is None:
            from bridge.report import Reporter

            try:
                self._log = Reporter(self.run_dir)
            except OSError:  # no log to be had (the run directory went away): the pane still has it
                print(f"{time.strftime('%H:%M:%S')} keeper: {text}", flush=True)
                return
        self._log.line(f"keeper: {text}")

    def call(self, text: str) -> None:
        """Call the human: a bell, a tmux message, and the word on the session (status line, `pairloop status`)."""
        if self._log is not None:
            self._log.bell()
        self.called = True
        self.tell(text, display=True)

    def tell(self, text: str, display: bool = False) -> None:
        pane = os.environ.get("TMUX_PANE", "")
        socket = os.environ.get("TMUX", "").split(",")[0]
        if not pane or not socket:
            return  # not in a tmux pane: the pane and the log have it
        from bridge.panes.problem import publish_bridge_down
        from bridge.panes.tmux import Tmux, TmuxError

        try:
            if self._tmux is None:
                self._tmux = Tmux(socket_path=socket)
            publish_bridge_down(self._tmux, pane, text)
            if display:
                self._tmux.display(pane, f"pairloop: {text}")
        except TmuxError:
            pass


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m bridge.keeper RUN_DIR", file=sys.stderr)
        return 2
    return Keeper(Path(args[0]).resolve()).run()


if __name__ == "__main__":
    sys.exit(main())
