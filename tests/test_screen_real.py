"""bridge.panes.screen with pairloop's claude/codex rules on REAL screens of Claude Code 2.1.332 and Codex CLI 0.171.0.

Every file in tests/fixtures/screens is one `tmux capture-pane -p -J` of a real TUI (the exact text the bridge
reads), taken at 100x30 and 200x50 against a local scripted model server by ``python -m tests.e2e.capture_screens``;
the files are never hand-edited.
Names are <agent>-<state>-<W>x<H>.txt; the expectation for each <agent>-<state> is in EXPECTED below."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bridge.panes.screen import BUSY, DIALOG, DRAFT, READY, STARTING, ScreenRules, choose_option, classify, input_text
from bridge.router import Paste, proves_our_paste
from pairloop.agents.claude import AUTO_MODE_UNCHECKED, CLAUDE_RULES
from pairloop.agents.codex import CODEX_RULES, THREAD_OPEN_ELSEWHERE
from pairloop.agents.profile import TRUST_DIALOG

SCREENS = Path(__file__).parent / "fixtures" / "screens"
RULES: dict[str, ScreenRules] = {"claude": CLAUDE_RULES, "codex": CODEX_RULES}

HUMAN_DRAFT = "half typed draft by a hum"
# Our envelope's first line: codex shows a multi-line paste inline, so the input row holds this line.
ENVELOPE_LINE = '[pairloop] #3 task from codex · id m-7f3a · reply: pairloop send "<text>"'

# <agent>-<state> -> (state, dialog name for DIALOG / exact draft text for DRAFT)
EXPECTED: dict[str, tuple[str, str]] = {
    "claude-idle-fresh": (READY, ""),
    "claude-idle-after-turn": (READY, ""),
    "claude-idle-after-compact": (READY, ""),  # "❯ /compact" then "⎿  Compacted …": no "✻" line closes it
    "claude-busy-thinking": (BUSY, ""),  # spinner, no token yet
    "claude-busy-streaming": (BUSY, ""),
    "claude-busy-tool": (BUSY, ""),  # "⎿  Running…"
    "claude-draft": (DRAFT, HUMAN_DRAFT),
    # A multi-line paste of ours, not yet submitted: claude shows only a placeholder in the input row.
    "claude-paste-in-box": (DRAFT, "[Pasted text #1 +3 lines]"),
    "claude-queued": (BUSY, ""),  # input row "Press up to edit queued messages", busy footer
    "claude-permission-dialog": (DIALOG, "permission prompt"),
    "claude-trust-dialog": (DIALOG, TRUST_DIALOG),
    "claude-api-key-dialog": (DIALOG, "use this API key?"),
    # An API error (here a 429) ends the turn; the empty box shows the hint "Resend your message to try again".
    "claude-error-turn-ended": (READY, ""),
    # Auto mode behind a custom endpoint: its safety check cannot run, a command it would check waits for the
    # human ("Auto mode can't check actions in this session"); the busy tool line above it must not win.
    "claude-auto-mode-unchecked": (DIALOG, AUTO_MODE_UNCHECKED),
    "codex-starting": (STARTING, ""),  # logo + input row, no model line / "for agents" footer yet
    "codex-idle-fresh": (READY, ""),
    "codex-idle-after-turn": (READY, ""),
    "codex-busy-working": (BUSY, ""),
    "codex-busy-streaming": (BUSY, ""),  # busy line hidden: only the open turn tells
    "codex-busy-tool": (BUSY, ""),
    "codex-draft": (DRAFT, HUMAN_DRAFT),
    # Busy wins over a draft (see tests/test_screen.py): never READY, and nothing is pasted until the turn ends.
    "codex-draft-while-busy": (BUSY, ""),
    "codex-queued": (BUSY, ""),  # "Queued follow-up inputs" above an empty input row
    "codex-paste-in-box": (DRAFT, ENVELOPE_LINE),
    "codex-approval-dialog": (DIALOG, "approval"),
    "codex-trust-dialog": (DIALOG, TRUST_DIALOG),
    "codex-model-nudge": (DIALOG, "new model nudge"),
    "codex-error-turn-ended": (READY, ""),  # "■ …" closes the turn
    # `codex resume <id>` while another codex holds the thread: a waiting screen, not an exit.
    "codex-thread-open-elsewhere": (DIALOG, THREAD_OPEN_ELSEWHERE),
}

# Captures a rule in pairloop/agents.py gets wrong (file name -> what fails). Keep strict: a fix must remove them.
# (Empty since CODEX_RULES learned that the spinner dot blinks between • and ◦.)
XFAIL: dict[str, str] = {}


def _key(name: str) -> str:
    """claude-busy-tool-100x30.txt -> claude-busy-tool"""
    return name.removesuffix(".txt").rsplit("-", 1)[0]


def _screen(path: Path) -> str:
    # As the bridge reads it (bridge.panes.tmux.Tmux.capture): capture-pane's lines, trailing empty lines dropped.
    return path.read_text(encoding="utf-8").rstrip("\n")


FILES = sorted(p.name for p in SCREENS.glob("*.txt"))


def _params(names: list[str]) -> list[object]:
    return [pytest.param(n, marks=pytest.mark.xfail(strict=True, reason=XFAIL[n])) if n in XFAIL else n
            for n in names]


def test_every_fixture_has_an_expectation_and_every_state_a_fixture() -> None:
    assert FILES, f"no fixtures in {SCREENS}"
    keys = {_key(n) for n in FILES}
    assert keys - EXPECTED.keys() == set()
    assert EXPECTED.keys() - keys == set()
    assert set(XFAIL) <= set(FILES)


@pytest.mark.parametrize("name", _params(FILES))
def test_real_screen_is_classified(name: str) -> None:
    agent = name.split("-", 1)[0]
    want, extra = EXPECTED[_key(name)]
    reading = classify(_screen(SCREENS / name), RULES[agent])
    assert reading.state == want, reading
    if want == DIALOG:
        assert reading.detail == extra
    if want == DRAFT:
        assert reading.draft == extra


READY_FILES = [n for n in FILES if EXPECTED.get(_key(n), ("",))[0] == READY]


@pytest.mark.parametrize("name", READY_FILES)
def test_idle_screen_has_an_empty_input_box(name: str) -> None:
    agent = name.split("-", 1)[0]
    assert input_text(_screen(SCREENS / name), RULES[agent]) == ""


# The paste behind the "paste-in-box" captures, as the relay records it before pasting: 4 lines.
PASTE = Paste(("m-7f3a",), ENVELOPE_LINE, 4)
PASTE_FILES = [n for n in FILES if _key(n).endswith("-paste-in-box")]


def _draft(name: str) -> str:
    return classify(_screen(SCREENS / name), RULES[name.split("-", 1)[0]]).draft


def test_every_agent_has_a_paste_in_box_capture() -> None:
    assert sorted({n.split("-", 1)[0] for n in PASTE_FILES}) == ["claude", "codex"]


@pytest.mark.parametrize("name", PASTE_FILES)
def test_our_paste_in_the_box_is_ours_with_the_recorded_paste(name: str) -> None:
    rules = RULES[name.split("-", 1)[0]]
    assert proves_our_paste(_draft(name), PASTE, rules.paste_placeholder)


@pytest.mark.parametrize("name", PASTE_FILES)
def test_the_same_box_is_not_ours_without_a_matching_paste(name: str) -> None:
    rules = RULES[name.split("-", 1)[0]]
    draft = _draft(name)
    assert not proves_our_paste(draft, None, rules.paste_placeholder)
    other = Paste(("m-0000",), ENVELOPE_LINE.replace("#3", "#9").replace("m-7f3a", "m-0000"), 12)
    assert not proves_our_paste(draft, other, rules.paste_placeholder)


def test_claudes_placeholder_is_ours_only_with_our_line_count() -> None:
    draft = _draft("claude-paste-in-box-100x30.txt")
    assert draft == "[Pasted text #1 +3 lines]"
    for lines, ours in [(4, True), (3, True), (5, False), (2, False), (40, False)]:
        assert proves_our_paste(draft, Paste(("m-7f3a",), ENVELOPE_LINE, lines), CLAUDE_RULES.paste_placeholder) \
            is ours, lines


@pytest.mark.parametrize("agent", ["claude", "codex"])
def test_a_human_draft_is_never_ours(agent: str) -> None:
    for name in FILES:
        if _key(name) == f"{agent}-draft":
            assert not proves_our_paste(_draft(name), PASTE, RULES[agent].paste_placeholder)


# claude 2.1.197's trust dialog (numbered, "Yes" first): the layout before 2.1.330.
CLAUDE_2_1_197_TRUST = """ Claude Code'll be able to read, edit, and execute files here.

 Security guide

 ❯ 1. Yes, I trust this folder
   2. No, exit

 Enter to confirm · Esc to cancel"""


def test_choosing_the_trust_option_by_its_text() -> None:
    # claude 2.1.330 and later (the fixture): "No, exit" first, unnumbered, with the cursor on it.
    claude = _screen(SCREENS / "claude-trust-dialog-100x30.txt")
    codex = _screen(SCREENS / "codex-trust-dialog-100x30.txt")
    assert choose_option(claude, "Yes, I trust this folder") == ["Down", "Enter"]
    assert choose_option(CLAUDE_2_1_197_TRUST, "Yes, I trust this folder") == ["Enter"]
    assert choose_option(codex, "Trust and continue") == ["Enter"]
    assert choose_option(codex, "no such option") == []
    assert choose_option("no menu here\nTrust and continue", "Trust and continue") == []


@pytest.mark.parametrize("size", ["100x30", "200x50"])
def test_auto_modes_unchecked_screen_is_a_dialog_also_through_run_json(size: str) -> None:
    # The bridge reads the rules back from run.json: the pattern (with its ’/' apostrophe) must survive the trip.
    screen = _screen(SCREENS / f"claude-auto-mode-unchecked-{size}.txt")
    rules = ScreenRules.from_json(json.loads(json.dumps(CLAUDE_RULES.to_json())))
    assert classify(screen, rules) == classify(screen, CLAUDE_RULES)
    assert classify(screen, rules).detail == AUTO_MODE_UNCHECKED
    # Without the rule the same screen reads as a busy agent (the tool line above it): messages held, no call.
    bare = ScreenRules.from_json({**CLAUDE_RULES.to_json(), "dialogs": {
        k: v for k, v in CLAUDE_RULES.dialogs.items() if k != AUTO_MODE_UNCHECKED}})
    assert classify(screen, bare).state == BUSY


# Measured on 2.1.332 after Enter ("stay in auto mode") on that screen: each checked action asks on its own, and a
# note about it stays in the history.
CLAUDE_AUTO_MODE_APPROVAL = """● Auto mode can't check actions in this session. Its safety check runs on the server,
  and your requests go through 127.0.0.1:39873, which doesn't pass it through. Actions that need the check now ask for
  your approval.

────────────────────────────────────────────────────────────────────────────────────────────────────
 Bash command
 Run shell command
 git commit --allow-empty -m lab-commit
 Auto mode can't check actions in this session, so this one needs your approval

 Do you want to proceed?
 ❯ No
   Yes

 Esc to cancel · Tab to amend"""


def test_after_staying_in_auto_mode_each_action_is_a_permission_prompt_and_the_note_is_history() -> None:
    assert classify(CLAUDE_AUTO_MODE_APPROVAL, CLAUDE_RULES) == classify("x\n Do you want to proceed?", CLAUDE_RULES)
    assert classify(CLAUDE_AUTO_MODE_APPROVAL, CLAUDE_RULES).detail == "permission prompt"
    note = CLAUDE_AUTO_MODE_APPROVAL.split("\n\n─", maxsplit=1)[0]
    assert classify(f"{note}\n\n✻ Worked for 0s\n\n{'─' * 20}\n❯\u00a0\n{'─' * 20}", CLAUDE_RULES).state == READY
