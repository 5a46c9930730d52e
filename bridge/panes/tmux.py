"""The one module that imports libtmux. Everything else talks to tmux through ``Tmux``."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import libtmux
from libtmux import exc as tmux_exc


class TmuxError(Exception):
    """A tmux command failed; the message carries tmux's own words."""


class TmuxMissing(TmuxError):
    """No tmux on PATH."""


@dataclass(frozen=True)
class PaneInfo:
    pane_id: str
    pid: int
    dead: bool
    dead_status: str


def tmux_available() -> str | None:
    return shutil.which("tmux")


class Tmux:
    """A tmux server: the user's default one, a named private socket (``-L``), or a socket path (``-S``)."""

    def __init__(self, socket_name: str | None = None, socket_path: str | None = None) -> None:
        if tmux_available() is None:
            raise TmuxMissing("tmux is not installed or not on PATH (install it, e.g. `apt install tmux`)")
        self.server = libtmux.Server(socket_name=socket_name, socket_path=socket_path)

    def run(self, *args: str) -> list[str]:
        """Run one tmux command (or several joined by ';' arguments); raise TmuxError on failure."""
        try:
            proc = self.server.cmd(*args)
        except tmux_exc.TmuxCommandNotFound:
            raise TmuxMissing("tmux is not installed or not on PATH") from None
        if proc.returncode != 0:
            raise TmuxError(" ".join(proc.stderr) or f"tmux {args[0]} failed ({proc.returncode})")
        return list(proc.stdout)

    def has_session(self, name: str) -> bool:
        try:
            self.run("has-session", "-t", f"={name}")
        except TmuxError:
            return False
        return True

    def socket_path(self) -> str:
        return self.run("display-message", "-p", "#{socket_path}")[0]

    def new_session(self, name: str, cwd: Path, command: str, width: int = 220, height: int = 50) -> str:
        """Create a detached session running ``command``; return its first pane id."""
        out = self.run("new-session", "-d", "-s", name, "-x", str(width), "-y", str(height),
                       "-c", str(cwd), "-P", "-F", "#{pane_id}", command)
        return out[0]

    def split(self, pane: str, command: str, cwd: Path, *, horizontal: bool, size: str,
              full: bool = False) -> str:
        args = ["split-window", "-h" if horizontal else "-v", "-l", size, "-t", pane, "-c", str(cwd),
                "-P", "-F", "#{pane_id}"]
        if full:
            args.insert(1, "-f")
        return self.run(*args, command)[0]

    def set_window_options(self, pane: str, options: dict[str, str]) -> None:
        for key, value in options.items():
            self.run("set-option", "-w", "-t", pane, key, value)

    def set_pane_option(self, pane: str, key: str, value: str) -> None:
        self.run("set-option", "-p", "-t", pane, key, value)

    def capture(self, pane: str, history: int = 0) -> str:
        """The visible screen (plus ``history`` lines of scrollback), joined wrapped lines, no colours."""
        args = ["capture-pane", "-p", "-J", "-t", pane]
        if history:
            args[2:2] = ["-S", f"-{history}"]
        return "\n".join(self.run(*args))

    def pane_info(self, pane: str) -> PaneInfo | None:
        try:
            out = self.run("display-message", "-p", "-t", pane,
                           "#{pane_id}\t#{pane_pid}\t#{pane_dead}\t#{pane_dead_status}")
        except TmuxError:
            return None
        pane_id, pid, dead, status = ([*out[0].split("\t"), "", "", "", ""])[:4]
        if pane_id != pane:
            return None
        return PaneInfo(pane_id, int(pid or 0), dead == "1", status)

    def look(self, pane: str) -> tuple[PaneInfo | None, str]:
        """The pane's process state and its visible screen, in one tmux call (this is the bridge's hot path)."""
        try:
            out = self.run("display-message", "-p", "-t", pane,
                           "#{pane_id}\t#{pane_pid}\t#{pane_dead}\t#{pane_dead_status}", ";",
                           "capture-pane", "-p", "-J", "-t", pane)
        except TmuxError:
            return None, ""
        pane_id, pid, dead, status = ([*out[0].split("\t"), "", "", "", ""])[:4]
        if pane_id != pane:
            return None, ""
        return PaneInfo(pane_id, int(pid or 0), dead == "1", status), "\n".join(out[1:])

    def paste(self, pane: str, text_file: Path, buffer: str, submit_key: str | None = None) -> None:
        """Load the text from a file (never as an argument), paste it bracketed, and (if given) press the submit
        key: one tmux call."""
        args = ["load-buffer", "-b", buffer, str(text_file), ";", "paste-buffer", "-p", "-d", "-b", buffer, "-t", pane]
        if submit_key:
            args += [";", "send-keys", "-t", pane, submit_key]
        self.run(*args)

    def send_keys(self, pane: str, *keys: str, literal: bool = False) -> None:
        self.run("send-keys", "-t", pane, *(["-l"] if literal else []), *keys)

    def respawn(self, pane: str, command: str) -> None:
        self.run("respawn-pane", "-k", "-t", pane, command)

    def display(self, target: str, message: str) -> None:
        self.run("display-message", "-t", target, message)

    def pane_pids(self, session: str) -> list[int]:
        """The process ids of every pane in ``session`` (each a process group leader)."""
        out = self.run("list-panes", "-s", "-t", f"={session}", "-F", "#{pane_pid}")
        return [int(p) for p in out if p.strip().isdigit()]

    def kill_session(self, name: str) -> None:
        self.run("kill-session", "-t", f"={name}")

    def kill_server(self) -> None:
        try:
            self.run("kill-server")
        except TmuxError:
            pass

    def kill_private_server(self) -> None:
        """Kill a private (-L NAME) server and remove its socket file, which tmux leaves behind."""
        self.kill_server()
        name = self.server.socket_name
        if name:
            folder = Path(os.environ.get("TMUX_TMPDIR", "/tmp")) / f"tmux-{os.getuid()}"
            (folder / name).unlink(missing_ok=True)

    def attach_argv(self, session: str) -> list[str]:
        """The command line that attaches a terminal to ``session`` on this server."""
        argv = ["tmux"]
        if self.server.socket_path:
            argv += ["-S", str(self.server.socket_path)]
        elif self.server.socket_name:
            argv += ["-L", self.server.socket_name]
        return [*argv, "attach-session", "-t", f"={session}"]
