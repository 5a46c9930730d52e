"""``control/``: requests to the bridge from ``pairloop pause`` / ``unpause`` (and ``resume``: tell an agent
that was started again where the run stands), one file each."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

import msgspec

from bridge.rundir.files import private_dir, write_atomic

CONTROL = "control"
Action = Literal["pause", "unpause", "resumed", "done"]  # done: the human overrules the done gate


class InvalidControl(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Control(msgspec.Struct, frozen=True, kw_only=True):
    action: Action
    # "resumed": the agent started again, and whether it resumed its own conversation or started afresh (why)
    role: str = ""
    fresh: bool = False
    reason: str = ""
    note: str = ""  # "done": the human's words, recorded with the overrule


_decoder = msgspec.json.Decoder(Control)


def control_dir(run_dir: Path) -> Path:
    return run_dir / CONTROL


def request(run_dir: Path, name: str, action: Action, *, role: str = "", fresh: bool = False,
            reason: str = "", note: str = "") -> Path:
    folder = private_dir(control_dir(run_dir))
    path = folder / f"{name}-{action}.json"
    extra: dict[str, object] = {"role": role, "fresh": fresh, "reason": reason} if action == "resumed" else {}
    if action == "done":
        extra = {"note": note}
    write_atomic(path, json.dumps({"action": action, **extra}).encode())
    return path


def read_control(path: Path) -> Control:
    try:
        return _decoder.decode(path.read_bytes())
    except OSError as exc:
        raise InvalidControl(f"unreadable: {exc.strerror}") from None
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise InvalidControl(str(exc)) from None
