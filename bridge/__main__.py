"""``python -m bridge RUN_DIR``: the relay process that runs in a run's bridge pane (under bridge.keeper).

It takes the run's lock before anything else, importing only the standard library for it: a bridge started again
holds its run within milliseconds, and the relay's modules (tmux, the watcher, the ledger's schema) load after."""

from __future__ import annotations

import signal
import sys
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

from bridge.rundir import lock

if TYPE_CHECKING:
    from bridge.relay import Bridge


class _StopAsked:
    """A stop asked before the relay runs (it sets its own handlers first thing) is remembered, never raised where
    it lands: an exception thrown into whatever runs at that instant (an import, msgspec building a decoder in C)
    can crash the process, and a bridge dead of a signal is started again (the pane's hook, the keeper)."""

    def __init__(self) -> None:
        self.asked = False
        self.bridge: Bridge | None = None

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        self.asked = True
        if self.bridge is not None:  # built, its handlers not set yet: a stop asked during start is a stop
            self.bridge.stopping = True

    def hand_to(self, bridge: Bridge) -> bool:
        """From now on a stop goes to ``bridge``; whether one was asked already (then nothing is to be done)."""
        self.bridge = bridge
        return self.asked


def main(argv: list[str] | None = None, snapshot_key: bytes | None = None) -> int:
    """``snapshot_key``: from the keeper that forked this bridge (bridge.replay); a bridge started on its own
    neither writes nor trusts a ledger snapshot."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or args[0].startswith("-"):
        print("usage: python -m bridge RUN_DIR", file=sys.stderr)
        return 2
    run_dir = Path(args[0]).resolve()
    stop = _StopAsked()
    for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        signal.signal(sig, stop)
    try:
        lock_fd = lock.take(run_dir)
    except lock.BridgeBusy as exc:
        print(f"bridge: {exc}", file=sys.stderr)
        return lock.BUSY_EXIT

    from bridge.panes.tmux import Tmux, TmuxError
    from bridge.relay import Bridge
    from bridge.rundir.manifest import InvalidManifest, read_manifest

    if stop.asked:  # while the modules loaded: nothing is done yet
        return 0
    try:
        manifest = read_manifest(run_dir)
    except InvalidManifest as exc:
        print(f"bridge: cannot read the run manifest in {run_dir}: {exc.reason}", file=sys.stderr)
        return 3
    try:
        tmux = Tmux(socket_path=manifest.tmux.socket_path)
        bridge = Bridge(run_dir, tmux, lock_fd=lock_fd, snapshot_key=snapshot_key)
        return 0 if stop.hand_to(bridge) else bridge.run()
    except TmuxError as exc:
        print(f"bridge: tmux: {exc}", file=sys.stderr)
        return 4


if __name__ == "__main__":
    sys.exit(main())
