"""``python -m bridge.keeper RUN_DIR``: what runs in the bridge pane. It runs the bridge (``python -m bridge
RUN_DIR``) as its child and starts it again when it dies while the session lives — a crash, SIGKILL, the OOM
killer — saying why in the pane and bridge.log. A bridge that keeps dying is started again later and later, and
the human is called (a bell, a tmux message, the status line and ``pairloop status``). A clean exit (the run
stopped, the session hung up, SIGTERM) ends the keeper too. The bridge's own rules make a restart lose and
duplicate nothing: the ledger is replayed, the outbox scanned, a delivery in flight settled by its receipt.

The keeper imports the relay's modules once (all that ``python -m bridge`` loads, watchdog and msgspec too) and
starts each bridge by forking itself: a restart pays no Python start-up and no imports, only the bridge's own work
(take the lock, replay the ledger). The price is a few MiB more resident in the keeper, shared with its bridge
(copy-on-write); and a bridge started again runs the code the keeper loaded when its pane started. The fork is
safe because the keeper starts no threads and holds no file of the run across it (bridge.log is closed before, its
wake-up pipe in the child, stop signals held back during it); the child gets the pane's stdin/stdout/stderr as before,
the signal handlers a new Python has, and runs the same entry point as ``python -m bridge RUN_DIR``. The keeper
then waits in waitpid and costs nothing while the bridge runs. If the keeper itself is killed, the pane's
``pane-died`` hook (:func:`pane_hook`) starts the pane again."""

from __future__ import annotations

import importlib
import os
import select
import signal
import sys
import threading
import time
import traceback
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


# What ``python -m bridge`` imports: its entry point, the relay (tmux, the ledger's schema, msgspec...) and the
# watcher (watchdog) the relay loads when it starts.
PRELOADED = ("bridge.__main__", "bridge.relay", "bridge.inbox.watcher")


def preload() -> None:
    """Import, once, what a bridge imports (bridge/__main__.py and what it loads after taking the lock): each
    bridge forked from the keeper starts with them loaded. Importing starts no thread and opens nothing of a run."""
    try:
        for name in PRELOADED:
            importlib.import_module(name)
    except Exception:  # a broken module: the bridge forked without it meets it and shows it (a crash loop)
        pass


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
    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        self.child: int | None = None  # the running bridge's pid (None once it was reaped)
        self.stopping = False
        self.called = False  # the human was called about a crash loop (and has not been told it is over)
        self._log: Reporter | None = None
        self._tmux: Tmux | None = None
        # Held in memory only, by the keeper and the bridges it forks: the ledger snapshots one of them writes are
        # trusted by the next (bridge.rundir.snapshot), by no one else.
        self.snapshot_key = os.urandom(32)
        self._wake_r, self._wake_w = os.pipe()
        wake_w = self._wake_w
        os.set_blocking(wake_w, False)
        os.set_blocking(self._wake_r, False)
        signal.set_wakeup_fd(wake_w)  # a signal ends a backoff wait at once
        for sig in STOP_SIGNALS:
            signal.signal(sig, self._on_signal)

    def _on_signal(self, signum: int, frame: object) -> None:
        self.stopping = True
        if self.child is not None:  # not reaped yet: the pid is still its own
            try:
                os.kill(self.child, signum)
            except OSError:
                pass

    def run(self) -> int:
        quick = 0
        while not self.stopping:
            started = time.monotonic()
            self.child = self._fork_bridge()
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

    def _fork_bridge(self) -> int:
        """Start a bridge as a fork of the keeper (its modules already loaded); return its pid."""
        assert threading.active_count() == 1, "the keeper must not fork with threads running"
        if self._log is not None:  # bridge.log is not held open across the fork (it is opened again to say more)
            self._log.close()
            self._log = None
        sys.stdout.flush()  # nothing buffered is written twice
        sys.stderr.flush()
        # A stop signal held back across the fork: the child meets it with the bridge's handlers (or the default),
        # the keeper once it knows the child's pid to pass it on.
        signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
        try:
            pid = os.fork()
            if pid == 0:
                os._exit(self._be_bridge())
            self.child = pid
        finally:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
        return pid

    def _be_bridge(self) -> int:
        """In the forked child: drop what is the keeper's, then run as ``python -m bridge RUN_DIR`` would."""
        code = 1
        try:
            signal.set_wakeup_fd(-1)
            signal.signal(signal.SIGINT, signal.default_int_handler)
            for sig in (signal.SIGTERM, signal.SIGHUP):
                signal.signal(sig, signal.SIG_DFL)
            os.close(self._wake_r)
            os.close(self._wake_w)
            signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
            from bridge.__main__ import main as bridge_main

            code = bridge_main([str(self.run_dir)], snapshot_key=self.snapshot_key)
        except SystemExit as exc:  # as the interpreter would turn it into an exit status
            if exc.code is None or isinstance(exc.code, int):
                code = exc.code or 0
            else:
                print(exc.code, file=sys.stderr)
        except BaseException:  # an uncaught error shows in the pane, as a python of its own would show it
            traceback.print_exc()
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        except BaseException:
            pass
        return code

    def _wait_steady(self, child: int) -> int:
        """Wait for the child to end; once it has run steadily, a crash loop it ended is over."""
        if self.called and not _ends_within(child, STEADY_S):
            self.called = False
            self.say("bridge running steadily again")
            self.tell("")
        return self._reap(child)

    def _reap(self, child: int) -> int:
        """Wait for the child's end: its returncode as subprocess gives it (negative: the signal that ended it)."""
        _, status = os.waitpid(child, 0)
        self.child = None
        return os.waitstatus_to_exitcode(status)

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


def _ends_within(pid: int, timeout: float) -> bool:
    """Whether the child ``pid`` ends within ``timeout`` s (it is not reaped here)."""
    try:
        fd = os.pidfd_open(pid)
    except (AttributeError, OSError):  # no pidfds here: look now and then
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None:
                return True
            time.sleep(0.1)
        return False
    try:
        return bool(select.select([fd], [], [], timeout)[0])
    finally:
        os.close(fd)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m bridge.keeper RUN_DIR", file=sys.stderr)
        return 2
    preload()
    return Keeper(Path(args[0]).resolve()).run()


if __name__ == "__main__":
    sys.exit(main())
