"""``python -m bridge RUN_DIR``: the relay process that runs in a run's bridge pane (under bridge.keeper).

It takes the run's lock before anything else, importing only the standard library for it: a bridge started again
holds its run within milliseconds, and the relay's modules (tmux, the watcher, the ledger's schema) load after."""

from __future__ import annotations

import signal
import sys
from pathlib import Path
from types import FrameType

from bridge.rundir import lock


def _stop_now(signum: int, frame: FrameType | None) -> None:
    """Asked to stop before the relay runs (it sets its own handlers first thing): nothing to finish, exit 0."""
    raise SystemExit(0)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or args[0].startswith("-"):
        print("usage: python -m bridge RUN_DIR", file=sys.stderr)
        return 2
    run_dir = Path(args[0]).resolve()
    for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        signal.signal(sig, _stop_now)
    try:
        lock_fd = lock.take(run_dir)
    except lock.BridgeBusy as exc:
        print(f"bridge: {exc}", file=sys.stderr)
        return lock.BUSY_EXIT

    from bridge.panes.tmux import Tmux, TmuxError
    from bridge.relay import Bridge
    from bridge.rundir.manifest import InvalidManifest, read_manifest

    try:
        manifest = read_manifest(run_dir)
    except InvalidManifest as exc:
        print(f"bridge: cannot read the run manifest in {run_dir}: {exc.reason}", file=sys.stderr)
        return 3
    try:
        tmux = Tmux(socket_path=manifest.tmux.socket_path)
        return Bridge(run_dir, tmux, lock_fd=lock_fd).run()
    except TmuxError as exc:
        print(f"bridge: tmux: {exc}", file=sys.stderr)
        return 4


if __name__ == "__main__":
    sys.exit(main())
