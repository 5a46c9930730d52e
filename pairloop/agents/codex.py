"""Codex CLI: how pairloop starts it, reads its screen and hears its ``notify`` hook.

Everything pairloop knows about codex's screen is here, so a new codex release is a change to this file alone.
Its settings go on the command line (``-c key=value``): the user's own config.toml is never touched.
"""

from __future__ import annotations

import json

from bridge import CODEX_ROLLOUT, ScreenRules
from pairloop.agents.profile import TRUST_DIALOG, AgentProfile, LaunchContext, hook_command

# The screen `codex resume <id>` shows while another codex still holds the thread (0.171.0 waits there, with
# "r retry  f fork … q exit", rather than exiting).
THREAD_OPEN_ELSEWHERE = "thread open elsewhere"

# Codex CLI (measured on 0.171.0). "›" marks history lines and the input row alike: the input row is the
# one just above the model/cwd line. While a reply streams the "Working" line is hidden; the turn is still
# open until a "Worked for" (or an error "■") line follows the last prompt.
CODEX_RULES = ScreenRules(
    ready=(r"for agents · \? for shortcuts",),
    # The spinner dot blinks between • and ◦.
    busy=(r"^[•◦] Working \(\d+.*esc to interrupt\)", r"^[•◦] Reconnecting\.\.\."),
    input=r"^› (?P<text>.*)$",
    input_anchor=r"^  \S[^\n]* · [~/][^\n]*$",
    dialogs={
        "approval": r"Would you like to run the following command\?",
        TRUST_DIALOG: r"Trust this folder\?|Do you trust the contents of this directory\?",
        "hooks need review": r"Hooks need review",
        "sign-in": r"Sign in with ChatGPT",
        "new model nudge": r"Try new model",
        THREAD_OPEN_ELSEWHERE: r"This conversation is open in another app",
    },
    placeholders=("Ask Codex to do anything", "Ask a follow-up question"),
    turn=(r"^› ", r"^  Worked for |^■ "),
    settle=0.3,
    # A turn that ended at a limit (0.171.0): "■ You’ve hit your usage limit. Upgrade to Pro …", a 429 ("■ exceeded
    # retry limit, last status: 429 Too Many Requests"), or "■ Quota exceeded. Check your plan and billing details."
    limits=(r"^■ You[’']ve hit your usage limit", r"^■ .*(?:[Rr]ate limit|429 Too Many Requests)",
            r"^■ Quota exceeded"),
)


def toml_string(text: str) -> str:
    """A TOML basic string (JSON's string escapes are all valid TOML ones)."""
    return json.dumps(text)


def _codex_args(profile: AgentProfile, ctx: LaunchContext) -> list[str]:
    notify = "[" + ", ".join(toml_string(a) for a in hook_command(ctx, "notify")) + "]"
    # `codex resume <thread id>` takes the same options; the thread id comes from the notify hook (run.json).
    args = ["resume", ctx.resume_id] if ctx.resume_id else []
    args += [
        "--no-daemon",  # otherwise an app-server daemon outlives the pane
        "-c", "features.daemon_auto_start=false",
        # The brief is added to codex's own instructions, not put in their place.
        "-c", f"developer_instructions={toml_string(ctx.brief)}",
        # A login shell resets PATH, and `pairloop` would not be found by the agent's shell tool.
        "-c", "allow_login_shell=false",
        "-c", f"notify={notify}",
    ]
    if ctx.model:
        args += ["-m", ctx.model]
    if ctx.yolo:
        args.append(profile.yolo_flag)
    return args


PROFILE = AgentProfile(
    "codex", ("codex",), "Tab", CODEX_RULES, _codex_args, turn_hooks=True, trust_choice="Trust and continue",
    yolo_flag="--dangerously-bypass-approvals-and-sandbox", install_hint="npm install -g @openai/codex",
    resumable=True, records=CODEX_ROLLOUT,
    # A thread has one writer: another codex still on it makes a resume fail; so does an unknown id.
    resume_refused=(r"This conversation is open in another app", r"already has an active writer",
                    r"No (?:saved )?session found"),
)
