"""The environment a child process starts with: the caller's, minus what would make the child act in the
wrong place. ``TMUX``/``TMUX_PANE`` name the caller's tmux server and pane (a tmux client started with them
nests or refuses; an agent would report the wrong pane); ``PAIRLOOP_RUN_DIR``/``PAIRLOOP_ROLE`` make any
``pairloop`` command speak as that run's agent."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping

TMUX_VARS = ("TMUX", "TMUX_PANE")
RUN_VARS = ("PAIRLOOP_RUN_DIR", "PAIRLOOP_ROLE")


def child_env(base: Mapping[str, str] | None = None, *, drop: Iterable[str] = TMUX_VARS,
              extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """A copy of ``base`` (this process's environment by default) without the variables in ``drop``, then
    ``extra`` set on top."""
    dropped = set(drop)
    env = {k: v for k, v in (os.environ if base is None else base).items() if k not in dropped}
    env.update(extra or {})
    return env
