"""``python -m bridge RUN_DIR``: the relay process that runs in a run's bridge pane."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bridge.panes.tmux import Tmux, TmuxError
from bridge.relay import Bridge, BridgeBusy
from bridge.rundir.manifest import InvalidManifest, read_manifest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bridge", description=__doc__)
    parser.add_argument("run_dir", type=Path)
    args = parser.parse_args(argv)
    run_dir: Path = args.run_dir.resolve()
    try:
        manifest = read_manifest(run_dir)
    except InvalidManifest as exc:
        print(f"bridge: cannot read the run manifest in {run_dir}: {exc.reason}", file=sys.stderr)
        return 3
    try:
        tmux = Tmux(socket_path=manifest.tmux.socket_path)
        return Bridge(run_dir, tmux).run()
    except BridgeBusy as exc:
        print(f"bridge: {exc}", file=sys.stderr)
        return 1
    except TmuxError as exc:
        print(f"bridge: tmux: {exc}", file=sys.stderr)
        return 4


if __name__ == "__main__":
    sys.exit(main())
