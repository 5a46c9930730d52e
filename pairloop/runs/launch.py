"""``python -m pairloop.runs.launch RUN_DIR ROLE``: what an agent pane runs first.

tmux gives new panes its server's environment, not the caller's, and a command line is visible to every
user in ``ps``. So ``pairloop start`` leaves the agent's argv and environment in a private file (mode 0600,
in a 0700 folder); this reads it, deletes it, and execs the agent in its place."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

# Set by tmux for the pane itself; the caller's values would name the wrong server, pane or terminal.
PANE_OWN = ("TMUX", "TMUX_PANE", "TERM")


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print("usage: python -m pairloop.runs.launch RUN_DIR ROLE", file=sys.stderr)
        return 2
    spec_path = Path(args[0]) / "launch" / f"{args[1]}.json"
    try:
        spec = json.loads(spec_path.read_text(encoding="utf-8"))
        spec_path.unlink()
    except (OSError, ValueError) as exc:
        print(f"pairloop: cannot launch the {args[1]}: {exc}", file=sys.stderr)
        return 1
    env = {k: v for k, v in spec["env"].items() if k not in PANE_OWN}
    env.update({k: os.environ[k] for k in PANE_OWN if k in os.environ})
    os.chdir(spec["cwd"])
    try:
        os.execvpe(spec["argv"][0], spec["argv"], env)
    except OSError as exc:
        print(f"pairloop: cannot start {spec['argv'][0]!r}: {exc.strerror}", file=sys.stderr)
        return 127
    return 0  # not reached


if __name__ == "__main__":
    sys.exit(main())
