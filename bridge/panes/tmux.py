"""The one module that imports libtmux. Everything else talks to tmux through ``Tmux``.

Commands run as the tmux client itself, one process each, the way libtmux runs them: a bridge started again
does not pay for importing libtmux (a tenth of a second) before its first delivery. libtmux's ``Server`` is
there for whoever wants its object model (:attr:`Tmux.server`), loaded on first use."""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from bridge.panes.sanitize import inert

if TYPE_CHECKING:
    import libtmux


class TmuxError(Exception):
    """A tmux command failed; the message carries tmux's own words."""


class TmuxMissing(TmuxError):
    """No tmux on PATH."""


class TmuxStuck(TmuxError):
    """A tmux command got no answer within the caller's timeout: the server is alive but stuck (stopped, swapped)."""


@dataclass(frozen=True)
class PaneInfo:
    pane_id: str
    pid: int
    dead: bool
    dead_status: str
    dead_signal: str = ""  # the signal that ended it (tmux 3.3+); empty when it exited, or tmux cannot say
    mode: str = ""  # the mode the human put the pane in ("copy-mode", "tree-mode", ...); "" when none
    input_off: bool = False  # input to the pane is turned off (select-pane -d): tmux drops what is written to it


# One display-message for a pane's process state: tab-separated, parsed by _pane_info.
_INFO = ("#{pane_id}\t#{pane_pid}\t#{pane_dead}\t#{pane_dead_status}\t#{pane_dead_signal}\t#{pane_in_mode}\t"
         "#{pane_mode}\t#{pane_input_off}")


def _pane_info(line: str, pane: str) -> PaneInfo | None:
    pane_id, pid, dead, status, signal, in_mode, mode, input_off = ([*line.split("\t"), *[""] * 8])[:8]
    if pane_id != pane:
        return None
    mode = (mode or "a mode") if in_mode not in ("", "0") else ""
    return PaneInfo(pane_id, int(pid or 0), dead == "1", status, signal, mode, input_off == "1")


# A key the agent's submit key can be sent as: written to the program as these bytes (what send-keys sends for
# it), so it reaches the program even while the pane is in a mode.
KEY_BYTES = {"Enter": "\r", "C-m": "\r", "Tab": "\t", "C-i": "\t", "C-j": "\n"}
PASTE_START, PASTE_END = "\x1b[200~", "\x1b[201~"


def passes_modes(key: str) -> bool:
    """Whether :meth:`Tmux.press` can send ``key`` past a mode (copy mode, choose-tree) to the program."""
    return key in KEY_BYTES


def tmux_literal(text: str) -> str:
    """Text for a place where tmux expands formats and styles (display-message, status-right, a pane title
    drawn by a border format): control characters shown inert, every '#' doubled, so "#(cmd)" never runs,
    "#{...}" never expands and "#[...]" never styles: it reads exactly as written."""
    return inert(text).replace("#", "##")


def tmux_available() -> str | None:
    return shutil.which("tmux")


class Tmux:
    """A tmux server: the user's default one, a named private socket (``-L``), or a socket path (``-S``)."""

    TITLE_OPTION = "@pairloop_title"  # a pane's title, as pairloop sets it (see set_title)

    def __init__(self, socket_name: str | None = None, socket_path: str | None = None,
                 timeout: float | None = None) -> None:
        # ``timeout``: seconds a command may take, for a caller that must not hang on a stuck server (`ls`).
        self.timeout = timeout
        binary = tmux_available()
        if binary is None:
            raise TmuxMissing("tmux is not installed or not on PATH (install it, e.g. `apt install tmux`)")
        self.socket_name, self._socket_path = socket_name, socket_path
        self._argv = [binary, *([f"-S{socket_path}"] if socket_path else []),
                      *([f"-L{socket_name}"] if socket_name else [])]
        self._server: libtmux.Server | None = None

    @property
    def server(self) -> libtmux.Server:
        """The same server as a libtmux object."""
        if self._server is None:
            import libtmux

            self._server = libtmux.Server(socket_name=self.socket_name, socket_path=self._socket_path)
        return self._server

    def run(self, *args: str) -> list[str]:
        """Run one tmux command (or several joined by ';' arguments); raise TmuxError on failure. Output lines
        as libtmux gives them: trailing empty lines dropped, undecodable bytes escaped."""
        try:
            proc = subprocess.run([*self._argv, *args], capture_output=True, text=True, encoding="utf-8",
                                  errors="backslashreplace", check=False, timeout=self.timeout)
        except FileNotFoundError:
            raise TmuxMissing("tmux is not installed or not on PATH") from None
        except subprocess.TimeoutExpired:
            raise TmuxStuck(f"tmux {args[0] if args else ''} got no answer within {self.timeout} s "
                            "(its server is stuck)") from None
        if proc.returncode != 0:
            stderr = " ".join(line for line in proc.stderr.split("\n") if line)
            raise TmuxError(stderr or f"tmux {args[0]} failed ({proc.returncode})")
        out = proc.stdout.split("\n")
        while out and out[-1] == "":
            out.pop()
        return out

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
            out = self.run("display-message", "-p", "-t", pane, _INFO)
        except TmuxError:
            return None
        return _pane_info(out[0], pane)

    def look(self, pane: str) -> tuple[PaneInfo | None, str]:
        """The pane's process state and its visible screen, in one tmux call (this is the bridge's hot path)."""
        try:
            out = self.run("display-message", "-p", "-t", pane,
                           _INFO, ";",
                           "capture-pane", "-p", "-J", "-t", pane)
        except TmuxError:
            return None, ""
        info = _pane_info(out[0], pane)
        if info is None:
            return None, ""
        return info, "\n".join(out[1:])

    def paste(self, pane: str, text_file: Path, buffer: str, submit_key: str | None = None) -> None:
        """Load the text from a file (never as an argument), paste it bracketed, and (if given) press the submit
        key: one tmux call. The file is loaded first (tmux waits for that, and may serve other clients meanwhile);
        everything after it runs at once, so the program gets the paste in one piece, nothing between.

        The pane may be in a mode the human put it in (copy mode while reading back, a selection, choose-tree).
        paste-buffer writes to the program whatever the mode, but ``-p`` asks the mode's screen whether to bracket
        the paste: in copy mode it goes unbracketed and every line break submits. So the brackets are written
        here, the same bytes ``-p`` writes (LF becomes CR inside them); every agent TUI asks for bracketed paste."""
        marks = f"{buffer}-mark"
        args = ["load-buffer", "-b", buffer, str(text_file), ";", *self._write(pane, marks, PASTE_START), ";",
                "paste-buffer", "-d", "-b", buffer, "-t", pane, ";", *self._write(pane, marks, PASTE_END)]
        if submit_key:
            args += [";", *self._press_args(pane, marks, submit_key)]
        self.run(*args)

    def press(self, pane: str, key: str, buffer: str) -> None:
        """Press the agent's submit key so that it reaches the program, not a mode the human has the pane in."""
        self.run(*self._press_args(pane, buffer, key))

    def _press_args(self, pane: str, buffer: str, key: str) -> list[str]:
        """send-keys goes to the pane's mode when it has one (emacs copy mode swallows Enter; vi copy mode takes
        it as copy-and-exit) and, with synchronize-panes, to every pane of the window; the key's bytes written
        with paste-buffer reach this pane's program alone, mode or not."""
        if key in KEY_BYTES:
            return self._write(pane, buffer, KEY_BYTES[key])
        return ["send-keys", "-t", pane, key]

    @staticmethod
    def _write(pane: str, buffer: str, data: str) -> list[str]:
        """Write fixed bytes of ours (never message text) to the pane's program, through a buffer (-r: as is)."""
        return ["set-buffer", "-b", buffer, data, ";", "paste-buffer", "-r", "-d", "-b", buffer, "-t", pane]

    def send_keys(self, pane: str, *keys: str, literal: bool = False) -> None:
        self.run("send-keys", "-t", pane, *(["-l"] if literal else []), *keys)

    def respawn(self, pane: str, command: str) -> None:
        self.run("respawn-pane", "-k", "-t", pane, command)

    def display(self, target: str, message: str) -> None:
        """A message in the status line. tmux reads it as a format ("#(cmd)" would run a command), and what the
        bridge says may quote an agent: it is shown literally."""
        self.run("display-message", "-t", target, tmux_literal(message))

    def set_title(self, pane: str, title: str) -> None:
        """The pane's border title (``@pairloop_title``, drawn by pane-border-format): shown literally."""
        self.set_pane_option(pane, self.TITLE_OPTION, tmux_literal(title))

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
        name = self.socket_name
        if name:
            folder = Path(os.environ.get("TMUX_TMPDIR", "/tmp")) / f"tmux-{os.getuid()}"
            (folder / name).unlink(missing_ok=True)

    def attach_argv(self, session: str) -> list[str]:
        """The command line that attaches a terminal to ``session`` on this server."""
        argv = ["tmux"]
        if self._socket_path:
            argv += ["-S", str(self._socket_path)]
        elif self.socket_name:
            argv += ["-L", self.socket_name]
        return [*argv, "attach-session", "-t", f"={session}"]
