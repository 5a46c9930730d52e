"""The relay engine: messages, ledger, watcher, targets, delivery and agent state.

This package never imports ``pairloop``: the product depends on the engine, not the other way round. What the
product may use is named here, and only here; the submodules are the engine's own business.

Each name is loaded from its module on first use (PEP 562): a hook an agent runs on every turn needs two of them
and should not pay for libtmux. Importing ``bridge`` imports none of its modules (but the one below), so this face
cannot close an import cycle; the modules themselves import each other by full path, never through here.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

# A name of the face that is also a submodule's name is bound now: once that submodule has been imported (by
# anyone), the package's attribute is the module, and __getattr__ would never be asked. (git imports only the
# standard library.)
from bridge.git import git

if TYPE_CHECKING:
    from bridge.book import DELIVERED, FAILED, QUEUED, Book, Entry
    from bridge.childenv import RUN_VARS, TMUX_VARS, child_env
    from bridge.deadline import poll
    from bridge.git import git_out
    from bridge.guard import config_fingerprint
    from bridge.keeper import keeper_argv
    from bridge.keeper import pane_hook as keeper_pane_hook
    from bridge.notify import Call
    from bridge.panes.delivery import read_target
    from bridge.panes.envelope import ATTACHMENTS, Parsed, ids_in
    from bridge.panes.envelope import parse as parse_envelope
    from bridge.panes.problem import published_bridge_down, published_problem
    from bridge.panes.sanitize import inert
    from bridge.panes.screen import EXITED, STARTING, ScreenRules
    from bridge.panes.tmux import Tmux, TmuxError, TmuxMissing, TmuxStuck
    from bridge.protocol.checkpoint import changes_between, snapshot
    from bridge.protocol.referee import AGREEMENT_LOG, AGREEMENT_PID, Topic
    from bridge.protocol.state import DISPUTED, FIXED, OPEN, RESOLVED, Protocol, parse_findings
    from bridge.recording.marks import round_label
    from bridge.recording.pipes import record_panes
    from bridge.rolecard import RECAP_TOPIC, RESUMED_TOPIC
    from bridge.roles import AGENT_ROLES, HUMAN, RECIPIENTS, REVIEWER, SENDERS, WORKER, is_agent, partner_of
    from bridge.rundir.agent_events import EVENTS, AgentEvent, InvalidAgentEvent, events_dir, write_agent_event
    from bridge.rundir.cast import Cast, CastEvent, InvalidCast, cast_offset, cast_path, encode_event, read_cast
    from bridge.rundir.cast import Header as CastHeader
    from bridge.rundir.control import request as request_control
    from bridge.rundir.events import (
        AgentState,
        Answered,
        AnyEvent,
        BridgeState,
        Delivered,
        Delivering,
        DoneRefused,
        Event,
        Failed,
        FindingClaims,
        HumanTurn,
        InvalidEvent,
        LedgerRepaired,
        Limits,
        PhaseChanged,
        ProtocolStarted,
        Queued,
        Received,
        Recording,
        Rejected,
        Relay,
        Round,
        RunState,
        Suppressed,
        Verdict,
        VerifyFinished,
        VerifyStarted,
        as_dict,
    )
    from bridge.rundir.files import private_dir, write_atomic
    from bridge.rundir.ledger import Damaged, LedgerWriteError, Replay, append_once, events_of, ledger_path, read_ledger
    from bridge.rundir.ledger import follow as follow_ledger
    from bridge.rundir.lock import running as bridge_running
    from bridge.rundir.manifest import (
        Answer,
        InvalidManifest,
        Manifest,
        ProtocolSettings,
        RecordingSettings,
        RecordsRoot,
        RoleSpec,
        TmuxPlace,
        mailbox_of,
        manifest_path,
        read_manifest,
        targets,
        update_manifest,
        with_session_id,
        with_state,
        write_manifest,
    )
    from bridge.rundir.message import MalformedMessage, Message, new_message_id, outbox_dir, post, read_message_file
    from bridge.usage import CLAUDE as CLAUDE_TRANSCRIPT
    from bridge.usage import CODEX as CODEX_ROLLOUT

# run directory files: run.json, and the atomic write every file of the run goes through
__all__ = ["Answer", "InvalidManifest", "Limits", "Manifest", "ProtocolSettings", "RoleSpec", "TmuxPlace",
           "bridge_running", "read_manifest", "targets", "update_manifest", "with_session_id", "with_state",
           "write_atomic", "write_manifest"]
# messages: who takes part, what an outbox file holds, the envelope the receiver sees it in
__all__ += ["HUMAN", "RECIPIENTS", "REVIEWER", "SENDERS", "WORKER", "is_agent"]
__all__ += ["AGENT_ROLES", "Message", "Parsed", "ids_in", "new_message_id", "parse_envelope", "partner_of", "post"]
__all__ += ["MalformedMessage", "read_message_file"]
# ledger: its events, and the book of messages folded from them
__all__ += ["DELIVERED", "FAILED", "QUEUED", "Book", "Entry", "Replay", "append_once", "events_of", "follow_ledger",
            "read_ledger"]
# the ledger's events, one class per kind (see bridge/rundir/events.py)
__all__ += ["AgentState", "Answered", "AnyEvent", "BridgeState", "Damaged", "Delivered", "Delivering", "DoneRefused",
            "Event", "Failed", "FindingClaims", "HumanTurn", "InvalidEvent", "LedgerRepaired", "LedgerWriteError",
            "PhaseChanged", "ProtocolStarted", "Queued", "Received", "Rejected", "Relay", "Round", "RunState",
            "Suppressed", "Verdict", "as_dict", "ledger_path"]
# what the agents report through their hooks (events/<role>/), and what a notice is about
__all__ += ["AgentEvent", "InvalidAgentEvent", "Topic", "write_agent_event"]
# what the bridge tells an agent started again by `pairloop resume` (bridge/rolecard.py)
__all__ += ["RECAP_TOPIC", "RESUMED_TOPIC"]
# where the run directory and its mailbox keep things
__all__ += ["AGREEMENT_LOG", "AGREEMENT_PID", "ATTACHMENTS", "EVENTS", "events_dir", "mailbox_of", "manifest_path",
            "outbox_dir", "private_dir", "request_control"]
# recordings of the agent panes (<role>.cast, asciicast v2): kept going, read, and their markers
__all__ += ["Cast", "CastEvent", "CastHeader", "InvalidCast", "Recording", "RecordingSettings", "cast_offset",
            "cast_path", "encode_event", "read_cast", "record_panes", "round_label"]
# tmux: the server pairloop works on, and its errors
__all__ += ["Tmux", "TmuxError", "TmuxMissing", "TmuxStuck"]
# what the bridge says is wrong now (a full disk), kept on its tmux session
__all__ += ["published_problem"]
# the bridge pane: the keeper that runs the bridge and starts it again, and what it says when it cannot
__all__ += ["keeper_argv", "keeper_pane_hook", "published_bridge_down"]
# screen: what an agent's pane shows
__all__ += ["EXITED", "STARTING", "ScreenRules", "inert", "read_target"]
# protocol: rounds, verdicts and findings, and the checkpoints they are about
__all__ += ["DISPUTED", "FIXED", "OPEN", "RESOLVED", "Protocol", "changes_between", "parse_findings", "snapshot"]
# the verification gate: what the configuration said at start of what the bridge runs (see bridge.guard)
__all__ += ["VerifyFinished", "VerifyStarted", "config_fingerprint"]
# what the agents spend: the shapes of their own records (bridge/usage.py); a call to the human (bridge/notify.py)
__all__ += ["CLAUDE_TRANSCRIPT", "CODEX_ROLLOUT", "Call"]
# where an agent's records may be, recorded per role at start (bridge/usage.py reads nothing else)
__all__ += ["RecordsRoot"]
# processes: running git, a child's environment, waiting with a deadline
__all__ += ["RUN_VARS", "TMUX_VARS", "child_env", "git", "git_out", "poll"]

# Where each name lives: (module, its name there).
_HOME: dict[str, tuple[str, str]] = {
    "Cast": ("bridge.rundir.cast", "Cast"),
    "CastEvent": ("bridge.rundir.cast", "CastEvent"),
    "CastHeader": ("bridge.rundir.cast", "Header"),
    "InvalidCast": ("bridge.rundir.cast", "InvalidCast"),
    "cast_offset": ("bridge.rundir.cast", "cast_offset"),
    "cast_path": ("bridge.rundir.cast", "cast_path"),
    "encode_event": ("bridge.rundir.cast", "encode_event"),
    "read_cast": ("bridge.rundir.cast", "read_cast"),
    "Recording": ("bridge.rundir.events", "Recording"),
    "RecordingSettings": ("bridge.rundir.manifest", "RecordingSettings"),
    "record_panes": ("bridge.recording.pipes", "record_panes"),
    "round_label": ("bridge.recording.marks", "round_label"),
    "AGREEMENT_LOG": ("bridge.protocol.referee", "AGREEMENT_LOG"),
    "AGREEMENT_PID": ("bridge.protocol.referee", "AGREEMENT_PID"),
    "EVENTS": ("bridge.rundir.agent_events", "EVENTS"),
    "events_dir": ("bridge.rundir.agent_events", "events_dir"),
    "mailbox_of": ("bridge.rundir.manifest", "mailbox_of"),
    "manifest_path": ("bridge.rundir.manifest", "manifest_path"),
    "outbox_dir": ("bridge.rundir.message", "outbox_dir"),
    "private_dir": ("bridge.rundir.files", "private_dir"),
    "request_control": ("bridge.rundir.control", "request"),
    "ATTACHMENTS": ("bridge.panes.envelope", "ATTACHMENTS"),
    "inert": ("bridge.panes.sanitize", "inert"),
    "Answer": ("bridge.rundir.manifest", "Answer"),
    "ProtocolSettings": ("bridge.rundir.manifest", "ProtocolSettings"),
    "Limits": ("bridge.rundir.events", "Limits"),
    "ledger_path": ("bridge.rundir.ledger", "ledger_path"),
    "InvalidManifest": ("bridge.rundir.manifest", "InvalidManifest"),
    "Manifest": ("bridge.rundir.manifest", "Manifest"),
    "RoleSpec": ("bridge.rundir.manifest", "RoleSpec"),
    "TmuxPlace": ("bridge.rundir.manifest", "TmuxPlace"),
    "with_session_id": ("bridge.rundir.manifest", "with_session_id"),
    "with_state": ("bridge.rundir.manifest", "with_state"),
    "AgentEvent": ("bridge.rundir.agent_events", "AgentEvent"),
    "InvalidAgentEvent": ("bridge.rundir.agent_events", "InvalidAgentEvent"),
    "write_agent_event": ("bridge.rundir.agent_events", "write_agent_event"),
    "Topic": ("bridge.protocol.referee", "Topic"),
    "RECAP_TOPIC": ("bridge.rolecard", "RECAP_TOPIC"),
    "RESUMED_TOPIC": ("bridge.rolecard", "RESUMED_TOPIC"),
    "AnyEvent": ("bridge.rundir.events", "AnyEvent"),
    "Event": ("bridge.rundir.events", "Event"),
    "InvalidEvent": ("bridge.rundir.events", "InvalidEvent"),
    "Received": ("bridge.rundir.events", "Received"),
    "Queued": ("bridge.rundir.events", "Queued"),
    "Delivering": ("bridge.rundir.events", "Delivering"),
    "Delivered": ("bridge.rundir.events", "Delivered"),
    "Failed": ("bridge.rundir.events", "Failed"),
    "Suppressed": ("bridge.rundir.events", "Suppressed"),
    "Rejected": ("bridge.rundir.events", "Rejected"),
    "HumanTurn": ("bridge.rundir.events", "HumanTurn"),
    "BridgeState": ("bridge.rundir.events", "BridgeState"),
    "AgentState": ("bridge.rundir.events", "AgentState"),
    "Answered": ("bridge.rundir.events", "Answered"),
    "LedgerRepaired": ("bridge.rundir.events", "LedgerRepaired"),
    "ProtocolStarted": ("bridge.rundir.events", "ProtocolStarted"),
    "Round": ("bridge.rundir.events", "Round"),
    "FindingClaims": ("bridge.rundir.events", "FindingClaims"),
    "Verdict": ("bridge.rundir.events", "Verdict"),
    "PhaseChanged": ("bridge.rundir.events", "PhaseChanged"),
    "Relay": ("bridge.rundir.events", "Relay"),
    "DoneRefused": ("bridge.rundir.events", "DoneRefused"),
    "RunState": ("bridge.rundir.events", "RunState"),
    "as_dict": ("bridge.rundir.events", "as_dict"),
    "Damaged": ("bridge.rundir.ledger", "Damaged"),
    "LedgerWriteError": ("bridge.rundir.ledger", "LedgerWriteError"),
    "read_manifest": ("bridge.rundir.manifest", "read_manifest"),
    "bridge_running": ("bridge.rundir.lock", "running"),
    "targets": ("bridge.rundir.manifest", "targets"),
    "update_manifest": ("bridge.rundir.manifest", "update_manifest"),
    "write_manifest": ("bridge.rundir.manifest", "write_manifest"),
    "write_atomic": ("bridge.rundir.files", "write_atomic"),
    "AGENT_ROLES": ("bridge.roles", "AGENT_ROLES"),
    "partner_of": ("bridge.roles", "partner_of"),
    "HUMAN": ("bridge.roles", "HUMAN"),
    "RECIPIENTS": ("bridge.roles", "RECIPIENTS"),
    "REVIEWER": ("bridge.roles", "REVIEWER"),
    "SENDERS": ("bridge.roles", "SENDERS"),
    "WORKER": ("bridge.roles", "WORKER"),
    "is_agent": ("bridge.roles", "is_agent"),
    "Message": ("bridge.rundir.message", "Message"),
    "new_message_id": ("bridge.rundir.message", "new_message_id"),
    "post": ("bridge.rundir.message", "post"),
    "MalformedMessage": ("bridge.rundir.message", "MalformedMessage"),
    "read_message_file": ("bridge.rundir.message", "read_message_file"),
    "published_problem": ("bridge.panes.problem", "published_problem"),
    "published_bridge_down": ("bridge.panes.problem", "published_bridge_down"),
    "keeper_argv": ("bridge.keeper", "keeper_argv"),
    "keeper_pane_hook": ("bridge.keeper", "pane_hook"),
    "Parsed": ("bridge.panes.envelope", "Parsed"),
    "ids_in": ("bridge.panes.envelope", "ids_in"),
    "parse_envelope": ("bridge.panes.envelope", "parse"),
    "append_once": ("bridge.rundir.ledger", "append_once"),
    "follow_ledger": ("bridge.rundir.ledger", "follow"),
    "read_ledger": ("bridge.rundir.ledger", "read_ledger"),
    "events_of": ("bridge.rundir.ledger", "events_of"),
    "Replay": ("bridge.rundir.ledger", "Replay"),
    "DELIVERED": ("bridge.book", "DELIVERED"),
    "FAILED": ("bridge.book", "FAILED"),
    "QUEUED": ("bridge.book", "QUEUED"),
    "Book": ("bridge.book", "Book"),
    "Entry": ("bridge.book", "Entry"),
    "Tmux": ("bridge.panes.tmux", "Tmux"),
    "TmuxError": ("bridge.panes.tmux", "TmuxError"),
    "TmuxMissing": ("bridge.panes.tmux", "TmuxMissing"),
    "TmuxStuck": ("bridge.panes.tmux", "TmuxStuck"),
    "EXITED": ("bridge.panes.screen", "EXITED"),
    "STARTING": ("bridge.panes.screen", "STARTING"),
    "ScreenRules": ("bridge.panes.screen", "ScreenRules"),
    "read_target": ("bridge.panes.delivery", "read_target"),
    "DISPUTED": ("bridge.protocol.state", "DISPUTED"),
    "FIXED": ("bridge.protocol.state", "FIXED"),
    "OPEN": ("bridge.protocol.state", "OPEN"),
    "RESOLVED": ("bridge.protocol.state", "RESOLVED"),
    "Protocol": ("bridge.protocol.state", "Protocol"),
    "parse_findings": ("bridge.protocol.state", "parse_findings"),
    "changes_between": ("bridge.protocol.checkpoint", "changes_between"),
    "snapshot": ("bridge.protocol.checkpoint", "snapshot"),
    "git_out": ("bridge.git", "git_out"),
    "config_fingerprint": ("bridge.guard", "config_fingerprint"),
    "VerifyStarted": ("bridge.rundir.events", "VerifyStarted"),
    "VerifyFinished": ("bridge.rundir.events", "VerifyFinished"),
    "child_env": ("bridge.childenv", "child_env"),
    "RUN_VARS": ("bridge.childenv", "RUN_VARS"),
    "TMUX_VARS": ("bridge.childenv", "TMUX_VARS"),
    "poll": ("bridge.deadline", "poll"),
    "CLAUDE_TRANSCRIPT": ("bridge.usage", "CLAUDE"),
    "CODEX_ROLLOUT": ("bridge.usage", "CODEX"),
    "RecordsRoot": ("bridge.rundir.manifest", "RecordsRoot"),
    "Call": ("bridge.notify", "Call"),
}


def __getattr__(name: str) -> object:
    """Load a name of the face from its module the first time it is asked for."""
    try:
        module, attr = _HOME[name]
    except KeyError:
        raise AttributeError(f"module 'bridge' has no attribute {name!r}") from None
    value = getattr(importlib.import_module(module), attr)
    globals()[name] = value  # asked once: later uses find it like any module attribute
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
