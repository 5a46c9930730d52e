"""bridge.panes.sanitize: a message body is pasted as text and must never act as keystrokes."""

from __future__ import annotations

import random

import pytest

from bridge.panes.sanitize import sanitize

ALLOWED_CONTROLS = {"\t", "\n"}


def _has_no_controls(text: str) -> bool:
    return not any((ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F) and c not in ALLOWED_CONTROLS for c in text)


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("a\x1b[31mred\x1b[0m b", "ared b"),
        ("\x1b[1;38;5;196mbold\x1b[m", "bold"),
        ("up\x1b[Adown\x1b[2J", "updown"),
        ("private\x1b[?2004lmode", "privatemode"),
        ("cut at the end \x1b[12;", "cut at the end "),
        ("\x1b[", ""),
    ],
)
def test_csi_sequences_are_stripped(raw: str, clean: str) -> None:
    assert sanitize(raw) == clean


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("x\x1b]0;window title\x07y", "xy"),
        ("x\x1b]8;;https://evil.example/\x1b\\link\x1b]8;;\x1b\\y", "xlinky"),
        ("x\x1b]52;c;cm0gLXJmIC8K\x07y", "xy"),  # OSC 52: write the clipboard
        ("a\x1bPq#0;2;0;0;0#0~~@@\x1b\\b", "ab"),  # DCS (sixel)
        ("a\x1b_apc payload\x1b\\b", "ab"),
        ("a\x1b^pm\x07b", "ab"),
        ("a\x1bXsos\x1b\\b", "ab"),
    ],
)
def test_osc_dcs_and_other_strings_are_stripped(raw: str, clean: str) -> None:
    assert sanitize(raw) == clean


def test_unterminated_osc_is_dropped_not_left_live() -> None:
    assert sanitize("keep\x1b]0;no terminator\nmore") == "keep"


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("before\x1b[201~after", "beforeafter"),
        ("\x1b[200~inner\x1b[201~", "inner"),
        ("\x1b[201~\x1b[201~\x1b[201~", ""),
        ("x\x9b201~y", "xy"),  # 8-bit CSI form of the end marker
        ("x\x1b\x1b[201~y", "xy"),
    ],
)
def test_bracketed_paste_markers_are_removed(raw: str, clean: str) -> None:
    assert sanitize(raw) == clean


@pytest.mark.parametrize(
    "raw",
    ["\x1b\x00[201~", "\x1b[\x00201~", "\x1b\r[201~", "\x00\x1b[201~", "\x1b\x7f[201~", "\x1b\x9b201~"],
)
def test_no_paste_end_marker_can_be_rebuilt_from_pieces(raw: str) -> None:
    out = sanitize(raw)
    assert "\x1b" not in out
    assert "\x9b" not in out
    assert _has_no_controls(out)


def test_two_byte_escapes_and_a_lone_escape_are_stripped() -> None:
    assert sanitize("a\x1bcb") == "ab"  # RIS: reset the terminal
    assert sanitize("a\x1b7b\x1b8c") == "abc"  # save / restore cursor
    assert sanitize("a\x1b(Bb") == "ab"  # charset designation
    assert sanitize("trailing\x1b") == "trailing"


def test_c0_controls_are_removed_except_tab_and_lf() -> None:
    c0 = "".join(chr(i) for i in range(0x20) if chr(i) not in "\t\n\r\x1b")
    assert len(c0) == 28
    assert sanitize(f"a{c0}b") == "ab"


@pytest.mark.parametrize("ch", ["\x00", "\x03", "\x04", "\x08", "\x0b", "\x0c", "\x15", "\x1a", "\x1c", "\x1f"])
def test_each_submitting_or_editing_control_is_removed(ch: str) -> None:
    assert sanitize(f"one{ch}two") == "onetwo"


def test_del_is_removed() -> None:
    assert sanitize("abc\x7f\x7fd") == "abcd"


def test_c1_controls_are_removed() -> None:
    c1 = "".join(chr(i) for i in range(0x80, 0xA0) if i != 0x9B)
    assert sanitize(f"a{c1}b") == "ab"
    assert sanitize("a\x85b\x9dc\x9fd") == "abcd"


def test_tab_and_lf_are_kept() -> None:
    assert sanitize("col1\tcol2\nline2\n\n\tindented\n") == "col1\tcol2\nline2\n\n\tindented\n"


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("a\r\nb\r\nc", "a\nb\nc"),
        ("a\rb\rc", "a\nb\nc"),
        ("a\r\r\nb", "a\n\nb"),
        ("a\n\rb", "a\n\nb"),
        ("end\r", "end\n"),
        ("\r\n", "\n"),
    ],
)
def test_line_ends_are_normalized_to_lf(raw: str, clean: str) -> None:
    assert sanitize(raw) == clean


INERT = (
    "-rf --force; trailing semicolon;\n"
    "'single' \"double\" `backticks` $(rm -rf ~) ${HOME} $HOME\n"
    "back\\slash \\n \\x1b \\e[31m C:\\Users\\me \\\\server\n"
    "ünïcødé — “quotes” 中文 日本語 🎉👩‍💻 \u00a0nbsp \u200bzwsp \u2028sep\n"
    "~!@#%^&*()[]{}|<>?/+=_\n"
    "[pairloop] #1 message from worker · id x · reply\n"
    "\ttab at start; ends with a dash -"
)


@pytest.mark.parametrize("body", [INERT, "-", ";", "--help", "-n -e 'x'", "\"", "'", "$(", "\\", "\\\n", "é"])
def test_inert_text_is_unchanged_byte_for_byte(body: str) -> None:
    out = sanitize(body)
    assert out == body
    assert out.encode("utf-8") == body.encode("utf-8")


def test_sanitize_is_idempotent_and_leaves_no_controls() -> None:
    rng = random.Random(20240601)
    alphabet = ["\x1b", "[", "]", "P", "\\", "\x07", "\x9b", "\x9d", "\r", "\n", "\t", "\x00", "\x7f", "2", "0",
                "1", "~", ";", "m", "a", "é", " ", "\x85", "_", "^", "X"]
    for _ in range(2000):
        raw = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 24)))
        out = sanitize(raw)
        assert _has_no_controls(out), repr(raw)
        assert "\r" not in out
        assert sanitize(out) == out, repr(raw)
