"""Calls to the human: which notify and with what JSON, the terminal notification's sequence (nothing from a
message can act in it), the notify command run in the background, and the limits read off the agents' screens."""

from __future__ import annotations

import io
import json
import re
import stat
import sys
import time
from pathlib import Path

import pytest

from bridge.notify import (
    AGREED,
    DIALOG,
    USAGE_LIMIT,
    VERIFY_FAILED,
    Call,
    Notifier,
    call_of,
    due,
    osc,
    passthrough,
    payload,
    plain,
    verify_failed,
)
from bridge.panes.screen import limit_shown
from pairloop.agents.claude import CLAUDE_RULES
from pairloop.agents.codex import CODEX_RULES
from pairloop.agents.sim import SIM_RULES
from tests.conftest import wait_for

HOSTILE = "done\x07\x1b]777;notify;x;pwned\x07\x1b]52;c;ZXZpbA==\x1b\\\x9d8;;http://x\x9c\x1b[2J\r\nnext\tline;"


def test_every_call_notifies_but_the_same_call_once_a_minute() -> None:
    sent: dict[tuple[str, str, str], float] = {}
    dialog = Call(DIALOG, "pairloop: the worker waits for you: permission prompt", "worker", "permission prompt")
    assert due(dialog, sent, 100.0)
    assert not due(dialog, sent, 130.0), "a dialog that flickers is one call"
    assert due(Call(DIALOG, "x", "reviewer", "permission prompt"), sent, 130.0), "another role is another call"
    assert due(Call(AGREED, "pairloop: the pair agreed the work is done"), sent, 130.0)
    assert due(dialog, sent, 161.0)


def test_the_json_a_notify_command_gets() -> None:
    call = Call(USAGE_LIMIT, "pairloop: the reviewer hit a usage or rate limit (429)", "reviewer", "429 \x1b[2J")
    assert payload(call, "20261201-abc", 3, 1_796_164_797.25) == {
        "kind": "usage-limit", "run": "20261201-abc", "role": "reviewer", "reason": "429 \x1b[2J", "round": 3,
        "text": "pairloop: the reviewer hit a usage or rate limit (429)", "ts": 1_796_164_797.25}
    assert payload(call_of("pairloop: disk full"), "r", 0, 0.0)["kind"] == "other"
    failed = verify_failed(2, "pytest exited 1")
    assert (failed.kind, failed.reason) == (VERIFY_FAILED, "pytest exited 1") and "round 2" in failed.text


@pytest.mark.parametrize("flavor", ["9", "777"])
def test_no_control_code_from_a_message_gets_into_the_terminal_notification(flavor: str) -> None:
    seq = osc("pairloop; title\x1b", HOSTILE, flavor)
    assert seq.startswith("\x1b]9;" if flavor == "9" else "\x1b]777;notify;") and seq.endswith("\x07")
    inner = seq[len("\x1b]"):-1]
    assert not re.search(r"[\x00-\x1f\x7f-\x9f]", inner), repr(inner)
    if flavor == "777":
        assert inner.split(";")[:3] == ["777", "notify", "pairloop, title"], "the title holds no field separator"
    assert "done" in inner and "next line" in inner, "the text is kept ..."
    assert "pwned" not in inner and "ZXZpbA" not in inner, "... and an escape sequence in it goes whole"
    wrapped = passthrough(seq)
    assert wrapped.startswith("\x1bPtmux;\x1b\x1b]") and wrapped.endswith("\x07\x1b\\")
    assert wrapped.count("\x1b") == 4, "the wrapper's two and the sequence's own ESC, doubled"
    assert len(plain("x" * 1000)) == 180


class Pane(io.StringIO):
    """What the bridge writes to: its pane, a terminal."""

    def isatty(self) -> bool:
        return True


def notify_script(tmp_path: Path, body: str) -> Path:
    script = tmp_path / "notify.py"
    script.write_text(f"import sys\n{body}\n")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return script


def test_the_notify_command_gets_one_json_object_on_stdin_in_the_background(tmp_path: Path) -> None:
    got = tmp_path / "got.jsonl"
    script = notify_script(tmp_path, f"import time\ntime.sleep(0.3)\nopen({str(got)!r}, 'a').write(sys.stdin.read())")
    out = Pane()
    notifier = Notifier("run-1", (sys.executable, str(script)), out, env={"PATH": "/nonexistent"})
    begun = time.monotonic()
    assert notifier.send(Call(AGREED, "pairloop: the pair agreed the work is done"), 4)
    assert time.monotonic() - begun < 0.25, "sending waits for nothing"
    line = wait_for(lambda: got.read_text() if got.exists() else None, what="the notify command's input")
    assert json.loads(line) == {"kind": "agreed", "run": "run-1", "role": "", "round": 4,
                                "reason": "pairloop: the pair agreed the work is done",
                                "text": "pairloop: the pair agreed the work is done", "ts": json.loads(line)["ts"]}
    assert out.getvalue().startswith("\x1bPtmux;\x1b\x1b]9;pairloop: pairloop: the pair agreed"), out.getvalue()
    assert notifier.news() == []


def test_a_failing_or_hanging_notify_command_is_said_not_fatal(tmp_path: Path) -> None:
    failing = notify_script(tmp_path, "sys.stderr.write('no route to the phone\\x1b[2J'); sys.exit(3)")
    notifier = Notifier("r", (sys.executable, str(failing)), None, env={})
    notifier.send(Call(DIALOG, "x", "worker", "d"), 1)
    (news,) = wait_for(lambda: notifier.news() or None, what="the failure's news")
    assert news == "notify command exited with status 3: no route to the phone"
    hanging = notify_script(tmp_path, "import time; time.sleep(30)")
    slow = Notifier("r", (sys.executable, str(hanging)), None, env={}, timeout=0.5)
    slow.send(Call(DIALOG, "x", "worker", "d"), 1)
    assert wait_for(lambda: slow.news() or None, what="the timeout") == ["notify command did not finish within 0s: "
                                                                         "stopped"]
    missing = Notifier("r", (str(tmp_path / "nope"),), None, env={})
    missing.send(Call(DIALOG, "x", "worker", "d"), 1)
    assert "could not start" in wait_for(lambda: missing.news() or None, what="the missing command")[0]


def test_a_desktop_notification_only_where_there_is_a_desktop(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    got = tmp_path / "argv.json"
    fake = bin_dir / "notify-send"
    fake.write_text(f"#!{sys.executable}\nimport json, sys\nopen({str(got)!r}, 'w').write(json.dumps(sys.argv[1:]))\n")
    fake.chmod(0o755)
    assert not Notifier("r", (), None, env={"PATH": str(bin_dir)}).desktop, "no session to show it in"
    notifier = Notifier("r", (), None, env={"PATH": str(bin_dir), "DBUS_SESSION_BUS_ADDRESS": "unix:path=/x"})
    assert notifier.desktop
    notifier.send(Call(DIALOG, f"-x {HOSTILE}", "worker"), 0)
    argv = json.loads(wait_for(lambda: got.read_text() if got.exists() else None, what="notify-send"))
    assert argv[:3] == ["--app-name=pairloop", "--", "pairloop"], "the text can never be taken for an option"
    assert not re.search(r"[\x00-\x1f\x7f-\x9f]", argv[3]) and argv[3].startswith("-x done")


def test_osc_off_or_no_terminal_writes_nothing() -> None:
    out = Pane()
    Notifier("r", (), out, env={"PAIRLOOP_OSC": "off"}).send(Call(AGREED, "agreed"), 0)
    assert out.getvalue() == ""
    log = io.StringIO()
    Notifier("r", (), log, env={}).send(Call(AGREED, "agreed"), 0)
    assert log.getvalue() == "", "a log or a pipe gets no escape sequence"
    Notifier("r", (), out, env={"PAIRLOOP_OSC": "777"}).send(Call(AGREED, "agreed"), 0)
    assert out.getvalue() == passthrough(osc("pairloop", "agreed", "777"))


# ---- limits on the screen (measured on claude 2.1.332 and codex 0.171.0 against a model server's 429) ---------

RULE = "─" * 60
CLAUDE_429 = f"""❯ first prompt

● hello there

✻ Cogitated for 0s · done 10:39 PM

❯ second prompt

● API Error: Request rejected (429) · Number of request tokens has exceeded your per-minute rate limit

{RULE}
❯\u00a0Resend your message to try again
{RULE}
  ⏵⏵ auto mode on (shift+tab to cycle)
"""
CODEX_LIMIT_LINE = ("■ You’ve hit your usage limit. Upgrade to Pro (https://chatgpt.com/explore/pro), visit "
                    "https://chatgpt.com/settings/usage to purchase more credits or try again")
CODEX_LIMIT = f"""› first prompt

• hello there

  Worked for <1s • 22:39

› second prompt

{CODEX_LIMIT_LINE}
later.

› Ask Codex to do anything

  GPT-5.5 default · /tmp/lab-l7sunhrv/repo · first prompt
  ← for agents · ? for shortcuts
"""


def test_the_limit_lines_of_claude_codex_and_the_sim() -> None:
    assert limit_shown(CLAUDE_429, CLAUDE_RULES).startswith("● API Error: Request rejected (429) · Number of")
    assert limit_shown(CODEX_LIMIT, CODEX_RULES).startswith("■ You’ve hit your usage limit. Upgrade to Pro")
    sim = "· $ pairloop review 'x' → ok\n· ⚠ usage limit reached · resets in 5 hours (simulated): the turn stopped\n"
    assert limit_shown(sim + "─\n› \n─\n", SIM_RULES).startswith("· ⚠ usage limit reached")
    claude_plan = CLAUDE_429.replace("● API Error: Request rejected (429) · Number of request tokens has exceeded your "
                                     "per-minute rate limit", "  ⎿  You've hit your limit · resets 3pm (Europe/Paris)")
    assert "You've hit your limit" in limit_shown(claude_plan, CLAUDE_RULES)


def test_an_old_limit_a_quoted_one_or_none_is_not_news() -> None:
    later = CLAUDE_429.replace(f"\n{RULE}\n❯\u00a0Resend", f"\n❯ go on please\n\n● Done.\n\n{RULE}\n❯\u00a0Resend")
    assert limit_shown(later, CLAUDE_RULES) == "", "a turn opened after the limit: it is history"
    codex_later = CODEX_LIMIT.replace("\n› Ask Codex", "\n› carry on\n\n• ok\n\n  Worked for 1s\n\n› Ask Codex")
    assert limit_shown(codex_later, CODEX_RULES) == ""
    quoted = "> [pairloop] #3 message from worker\n│ · ⚠ usage limit reached\n─\n› \n─\n"
    assert limit_shown(quoted, SIM_RULES) == "", "a message quoting the limit line is not the sim's own line"
    assert limit_shown("● I read about the API Error: 429 in the log\n", CLAUDE_RULES) == ""
    assert limit_shown(CLAUDE_429.replace("(429)", "(500)").replace("rate limit", "oops"), CLAUDE_RULES) == ""


def test_codex_s_other_limit_lines() -> None:
    for line in ("■ exceeded retry limit, last status: 429 Too Many Requests",
                 "■ Quota exceeded. Check your plan and billing details."):
        assert limit_shown(CODEX_LIMIT.replace(CODEX_LIMIT_LINE, line).replace("\nlater.", ""), CODEX_RULES) == line
    assert limit_shown(CODEX_LIMIT.replace(CODEX_LIMIT_LINE, "■ stream disconnected before completion"),
                       CODEX_RULES) == ""
