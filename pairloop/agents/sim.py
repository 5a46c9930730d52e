"""The sim agent's profile: the simulated TUI (``pairloop.agents.sim_agent``) for the demo and fast tests.

It is a profile like the real ones, so the demo and the tests go through the same seam a real agent does.
"""

from __future__ import annotations

import sys

from bridge import CLAUDE_TRANSCRIPT, ScreenRules
from pairloop.agents.profile import TRUST_DIALOG, AgentProfile, LaunchContext

# The sim's screen; pairloop.agents.sim_agent paints exactly these strings.
SIM_RULES = ScreenRules(
    ready=(r"^  \? for shortcuts · enter to submit$",),
    busy=(r"^  ● working… \(\d+s · esc to interrupt\)$",),
    input=r"^› (?P<text>.*)$",
    dialogs={TRUST_DIALOG: r"^Do you trust the files in this folder\?$"},
    limits=(r"^· ⚠ usage limit reached",),  # PAIRLOOP_SIM_LIMIT_AFTER=N turns: the sim stops at a usage limit
)


def _sim_args(profile: AgentProfile, ctx: LaunchContext) -> list[str]:
    session = ["--resume", ctx.resume_id] if ctx.resume_id else ["--session-id", ctx.session_id]
    return ["--brief", str(ctx.brief_file), *session]


PROFILE = AgentProfile("sim", (sys.executable, "-m", "pairloop.agents.sim_agent"), "Enter", SIM_RULES, _sim_args,
                       turn_hooks=True, trust_keys=("Enter",), sets_session_id=True, resumable=True,
                       records=CLAUDE_TRANSCRIPT,  # the sim writes its tokens in claude's transcript shape
                       resume_refused=(r"^No conversation found with session ID",))
