"""Claude Code: how pairloop starts it, reads its screen and hears its hooks.

Everything pairloop knows about claude's screen is here, so a new claude release is a change to this file alone.
Its settings go in a per-run file passed with --settings: the user's own settings files are never touched.
"""

from __future__ import annotations

import json
import shlex
from typing import Any

from bridge import ScreenRules, write_atomic
from pairloop.agents.profile import TRUST_DIALOG, AgentProfile, LaunchContext, hook_command

# Claude Code (measured on 2.1.197). The input row is "❯" + U+00A0; every other "❯" (history, queued
# messages, dialog choices) has a plain space. Text in the box hides the footer, busy or not.
CLAUDE_RULES = ScreenRules(
    ready=(),
    # The footer may lead with a mode banner ("⏵⏵ auto mode on (shift+tab to cycle) · esc to interrupt").
    busy=(r"^\s*(?:\S[^\n]* · )?esc to interrupt\b", r"^\s+⎿\s+Running…"),
    input="^❯\u00a0(?P<text>.*)$",
    dialogs={
        "permission prompt": r"^\s*Do you want to proceed\?",
        TRUST_DIALOG: r"Is this a project you created or one you trust\?|Yes, I trust this folder",
        "use this API key?": r"Do you want to use this API key\?",
        "bypass permissions warning": r"Bypass Permissions mode",
        "sign-in": r"Unable to connect to Anthropic services|Select login method|Choose the text style",
    },
    placeholders=("Press up to edit queued messages",),
    # After a paste the footer says "paste again to expand" instead of "esc to interrupt", even while a reply
    # streams: a turn is open from a submitted prompt ("❯ " with a plain space) until "✻ <Verb> for Ns" or an
    # interruption follows it.
    turn=(r"^❯ ", r"^✻ \S+ for \d|^\s+⎿\s+Interrupted"),
    settle=0.5,
    paste_placeholder=r"^\[Pasted text #\d+",
    submit_after_paste_shows=True,
)


def claude_settings(ctx: LaunchContext) -> dict[str, Any]:
    """Per-run settings, passed with --settings: the user's own settings files are never touched."""
    def hook(kind: str) -> list[dict[str, Any]]:
        return [{"hooks": [{"type": "command", "command": shlex.join(hook_command(ctx, kind))}]}]

    return {
        # pairloop's own commands run without asking; every other tool keeps claude's usual permission checks.
        "permissions": {"allow": ["Bash(pairloop:*)"]},
        "hooks": {"UserPromptSubmit": hook("prompt"), "Stop": hook("stop"), "Notification": hook("notification")},
    }


def _claude_args(profile: AgentProfile, ctx: LaunchContext) -> list[str]:
    settings = ctx.run_dir / f"claude-settings-{ctx.role}.json"
    # Private (0600) whatever the umask, and never seen half-written: it holds the hooks claude runs.
    write_atomic(settings, json.dumps(claude_settings(ctx), indent=2).encode("utf-8"))
    args = ["--settings", str(settings), "--append-system-prompt", ctx.brief, "--session-id", ctx.session_id]
    if ctx.model:
        args += ["--model", ctx.model]
    if ctx.yolo:
        args.append(profile.yolo_flag)
    return args


PROFILE = AgentProfile(
    "claude", ("claude",), "Enter", CLAUDE_RULES, _claude_args, turn_hooks=True,
    # Chosen by its text: newer releases list "No, exit" first, unnumbered, with the cursor on it.
    trust_choice="Yes, I trust this folder", yolo_flag="--dangerously-skip-permissions", sets_session_id=True,
    install_hint="npm install -g @anthropic-ai/claude-code",
)
