"""Codex CLI: how pairloop starts it, reads its screen and hears its ``notify`` hook.

Everything pairloop knows about codex's screen is here, so a new codex release is a change to this file alone.
Its settings go on the command line (``-c key=value``): the user's own config.toml is never touched.
"""

from __future__ import annotations

import json

from bridge import ScreenRules
from pairloop.agents.profile import TRUST_DIALOG, AgentProfile, LaunchContext, hook_command

# Codex CLI (measured on 0.169.0). "›" marks history lines and the input row alike: the input row is the
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
    },
    placeholders=("Ask Codex to do anything", "Ask a follow-up question"),
    turn=(r"^› ", r"^  Worked for |^■ "),
    settle=0.3,
)


def toml_string(text: str) -> str:
    """A TOML basic string (JSON's string escapes are all valid TOML ones)."""
    return json.dumps(text)


def _codex_args(profile: AgentProfile, ctx: LaunchContext) -> list[str]:
    notify = "[" + ", ".join(toml_string(a) for a in hook_command(ctx, "notify")) + "]"
    args = [
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
)
