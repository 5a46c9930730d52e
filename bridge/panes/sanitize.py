"""Make a message body inert: it is pasted as text and must never act as keystrokes."""

from __future__ import annotations

import re

# ESC-introduced sequences: CSI (incl. the bracketed-paste end marker ESC[201~), OSC/DCS/SOS/PM/APC strings,
# and two-byte escapes. Their 8-bit C1 forms are covered by the control-character pass below.
_ESCAPES = re.compile(
    r"""
    \x1b\[[0-?]*[ -/]*[@-~]?          # CSI ... final byte (final may be missing at the end of the text)
  | \x1b[\]PX^_][^\x07\x1b]*(?:\x07|\x1b\\)?   # OSC / DCS / SOS / PM / APC ... terminator
  | \x1b[ -/]*[0-~]?                  # nF / Fp / Fe / Fs two-byte escapes, or a lone ESC
  | \x9b[0-?]*[ -/]*[@-~]?            # 8-bit CSI
    """,
    re.VERBOSE,
)
# C0 controls except TAB and LF, DEL, and C1 controls.
_CONTROLS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def sanitize(body: str) -> str:
    """Normalise line ends to LF, strip escape sequences and every control character but LF and TAB."""
    text = body.replace("\r\n", "\n").replace("\r", "\n")
    text = _ESCAPES.sub("", text)
    return _CONTROLS.sub("", text)


_SHOWN = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029]")


def inert(text: str, keep_newlines: bool = False) -> str:
    """Text for a human's terminal (the bridge pane, `log`, `status`, titles): every control character is shown
    as a visible escape (ESC as \\x1b) instead of acting on the terminal; nothing is dropped, so a reader can see
    what was there. Newlines become \\n unless ``keep_newlines``; tabs stay."""
    shown = _SHOWN.sub(lambda m: f"\\x{ord(m[0]):02x}" if ord(m[0]) < 0x100 else f"\\u{ord(m[0]):04x}", text)
    return shown if keep_newlines else shown.replace("\n", "\\n")
