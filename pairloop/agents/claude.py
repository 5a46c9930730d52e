"""Claude Code: how pairloop starts it, reads its screen and hears its hooks.

Everything pairloop knows about claude's screen is here, so a new claude release is a change to this file alone.
Its settings go in a per-run file passed with --settings: the user's own settings files are never touched.
"""

from __future__ import annotations

import json
import shlex
from typing import Any

from bridge import CLAUDE_TRANSCRIPT, ScreenRules, write_atomic
from pairloop.agents.profile import TRUST_DIALOG, AgentProfile, LaunchContext, hook_command

# The dialog claude's auto mode shows when its safety check cannot reach the server (a permission decision).
AUTO_MODE_UNCHECKED = "auto mode can't check actions"

# Claude Code (measured on 2.1.332). The input row is "❯" + U+00A0; every other "❯" (history, queued
# messages, dialog choices) has a plain space. Text in the box hides the footer, busy or not.
CLAUDE_RULES = ScreenRules(
    ready=(),
    # The footer may lead with a mode banner ("⏵⏵ auto mode on (shift+tab to cycle) · esc to interrupt").
    # A running tool: "⎿  Running…" (2.1.197); "● Running <cmd> · 2s" over "  ⎿  $ <cmd>" (2.1.332).
    busy=(r"^\s*(?:\S[^\n]* · )?esc to interrupt\b", r"^\s+⎿\s+Running…", r"^[● ] Running .+\n\s+⎿  \$ "),
    input="^❯\u00a0(?P<text>.*)$",
    dialogs={
        "permission prompt": r"^\s*Do you want to proceed\?",
        TRUST_DIALOG: r"Is this a project you created or one you trust\?|Yes, I trust this folder",
        "use this API key?": r"Do you want to use this API key\?",
        "bypass permissions warning": r"Bypass Permissions mode",
        "sign-in": r"Unable to connect to Anthropic services|Select login method|Choose the text style",
        # Auto mode (the default since 2.1.332) behind a custom endpoint (a gateway, ANTHROPIC_BASE_URL): its
        # server-side safety check cannot run, so a tool call it would check (`git commit`, not `echo`) stops
        # on this screen until the human picks: Enter stays in auto mode, shift+Tab leaves it, Esc cancels.
        # Staying shows the usual "Do you want to proceed?" under "Auto mode can't check actions in this session,
        # so this one needs your approval" (a permission prompt; hence the end of line), and a "● Auto mode
        # can't check actions …" note stays in the history (hence no bullet).
        AUTO_MODE_UNCHECKED: r"^\s*Auto mode can[’']t check actions in this session\s*$",
    },
    # After an API error (a 429 among them) the empty box shows "Resend your message to try again", after a
    # billing error "Once fixed, resend your message" (2.1.332).
    placeholders=("Press up to edit queued messages", "Resend your message to try again",
                  "Once fixed, resend your message"),
    # After a paste the footer says "paste again to expand" instead of "esc to interrupt", even while a reply
    # streams: a turn is open from a submitted prompt ("❯ " with a plain space) until "✻ <Verb> for Ns" or an
    # interruption follows it. Some turns end with no "✻" line (2.1.332): an API error ("● API Error: …", for a
    # billing error "⎿  Credit balance too low · …") and `/compact` ("⎿  Compacted (ctrl+o to see full summary)").
    turn=(r"^❯ ", r"^✻ \S+ for \d|^\s+⎿\s+(?:Interrupted|Credit balance too low|Compacted\b)|^● API Error: "),
    settle=0.5,
    paste_placeholder=r"^\[Pasted text #\d+",
    submit_after_paste_shows=True,
    # A turn that ended at a limit (2.1.332): with an API key "● API Error: Request rejected (429) · …"; on a
    # claude.ai plan "You've hit your limit · resets 3pm" (or its session, weekly or spend limit) and "Usage limit
    # reached · set to continue automatically …"; out of credit "⎿  Credit balance too low · Add funds: …".
    limits=(r"^● API Error: (?:Request rejected \(429\)|Rate limit|.*\b429\b)",
            r"^\s*(?:[●⎿]\s+)?You[’']ve hit your (?:\w+ )*limit\b",
            r"^\s*(?:[●⎿]\s+)?(?:Claude (?:AI )?usage|Usage) limit reached\b", r"^\s+⎿\s+Credit balance too low"),
)


def claude_settings(ctx: LaunchContext) -> dict[str, Any]:
    """Per-run settings, passed with --settings: the user's own settings files are never touched."""
    def hook(kind: str) -> list[dict[str, Any]]:
        return [{"hooks": [{"type": "command", "command": shlex.join(hook_command(ctx, kind))}]}]

    return {
        # pairloop's own commands run without asking; every other tool keeps claude's usual permission checks.
        "permissions": {"allow": ["Bash(pairloop:*)"]},
        # A turn that an API error ends (a 429 among them) fires StopFailure instead of Stop (2.1.332).
        "hooks": {"UserPromptSubmit": hook("prompt"), "Stop": hook("stop"), "StopFailure": hook("failed"),
                  "Notification": hook("notification"),
                  # A compaction (SessionStart with source "compact"): the bridge sends the role card again.
                  "SessionStart": [{"matcher": "compact", **hook("session")[0]}]},
        # Never go on by itself when a usage limit resets (2.1.234+ does by default): the human decides.
        "autoContinueAtUsageLimit": False,
    }


def _claude_args(profile: AgentProfile, ctx: LaunchContext) -> list[str]:
    settings = ctx.run_dir / f"claude-settings-{ctx.role}.json"
    # Private (0600) whatever the umask, and never seen half-written: it holds the hooks claude runs.
    write_atomic(settings, json.dumps(claude_settings(ctx), indent=2).encode("utf-8"))
    # Resuming keeps the conversation's id; a new one gets the id pairloop chose (recorded in run.json).
    session = ["--resume", ctx.resume_id] if ctx.resume_id else ["--session-id", ctx.session_id]
    args = ["--settings", str(settings), "--append-system-prompt", ctx.brief, *session]
    if ctx.model:
        args += ["--model", ctx.model]
    if ctx.yolo:
        args.append(profile.yolo_flag)
    return args


PROFILE = AgentProfile(
    "claude", ("claude",), "Enter", CLAUDE_RULES, _claude_args, turn_hooks=True,
    # Chosen by its text: newer releases list "No, exit" first, unnumbered, with the cursor on it.
    trust_choice="Yes, I trust this folder", yolo_flag="--dangerously-skip-permissions", sets_session_id=True,
    install_hint="npm install -g @anthropic-ai/claude-code", resumable=True, records=CLAUDE_TRANSCRIPT,
    resume_refused=(r"No conversation found with session ID",),
)
