"""The meter without tmux: tokens and limits from the records, limits from the screens (each one news once, also
across a restart), the token budget pausing the relay, and the human letting the run go on past it."""

from __future__ import annotations

import json
import time
from pathlib import Path

import msgspec

from bridge import meter as meter_module
from bridge.effects import Effects
from bridge.meter import Meter
from bridge.notify import BUDGET, USAGE_LIMIT, Call
from bridge.protocol.referee import Referee
from bridge.rundir.events import Limits, ProtocolStarted, Relay, TokenUsage, UsageLimit
from bridge.rundir.manifest import Manifest, ProtocolSettings, RoleSpec, TmuxPlace, targets
from bridge.usage import CLAUDE
from pairloop.agents.claude import CLAUDE_RULES
from tests.test_notify import CLAUDE_429
from tests.test_usage import CLAUDE_429 as CLAUDE_429_ENTRY
from tests.test_usage import claude_assistant


class Screens:
    """A tmux that only shows screens."""

    def __init__(self) -> None:
        self.screens: dict[str, str] = {}
        self.activity: dict[str, int] = {}  # pane -> its window's last output (wall seconds); none: tmux says ""
        self.captures: list[str] = []

    def capture(self, pane: str, history: int = 0) -> str:
        self.captures.append(pane)
        return self.screens.get(pane, "")

    def run(self, *args: str) -> list[str]:
        """Only the meter's activity call: `display-message -p -t PANE FORMAT` for each pane, joined by ';'."""
        panes = [args[i + 1] for i, a in enumerate(args) if a == "-t"]
        return [str(self.activity.get(pane, "")) for pane in panes]


def setup(tmp_path: Path, max_tokens: int = 0) -> tuple[Referee, Screens, Meter]:
    spec = RoleSpec(agent="claude", pane="%1", submit_key="Enter", screen=CLAUDE_RULES, records=CLAUDE)
    manifest = Manifest(id="r1", repo=str(tmp_path), tmux=TmuxPlace(socket_path="/x", session="s"),
                        protocol=ProtocolSettings(limits=Limits(max_tokens=max_tokens)),
                        roles={"worker": spec, "reviewer": msgspec.structs.replace(spec, pane="%2")})
    referee = Referee(manifest, tmp_path)
    referee.apply(ProtocolStarted(phase="work", limits=manifest.protocol.limits))
    screens = Screens()
    return referee, screens, meter_for(manifest, screens)


def meter_for(manifest: Manifest, screens: Screens) -> Meter:
    return Meter(screens, targets(manifest), {r: s.records for r, s in manifest.roles.items()})  # type: ignore[arg-type]


def carried(referee: Referee, fx: Effects) -> Effects:
    for event in fx.events:
        referee.apply(event)
    return fx


def test_tokens_and_a_limit_from_the_records_once_even_after_a_restart(tmp_path: Path) -> None:
    referee, screens, meter = setup(tmp_path)
    transcript = tmp_path / "t.jsonl"
    transcript.write_text(json.dumps(claude_assistant("m1", 1000, 50)) + "\n")
    fx = carried(referee, meter.read({"worker": [str(transcript)]}, referee, now=0.0))
    assert fx.events == [TokenUsage(role="worker", input=1000, output=50, files=(str(transcript),))]
    assert not fx.alerts
    with transcript.open("a") as f:
        f.write(json.dumps(CLAUDE_429_ENTRY) + "\n")
    fx = carried(referee, meter.read({"worker": [str(transcript)]}, referee, now=1.0))
    (limit,) = [e for e in fx.events if isinstance(e, UsageLimit)]
    assert (limit.role, limit.source, limit.at) == ("worker", "records", "2026-12-01T22:39:07.957Z")
    assert [e for e in fx.events if isinstance(e, Relay)] == [Relay(state="paused", by="usage limit",
                                                                    reason="the worker hit a usage or rate limit")]
    (call,) = fx.alerts
    assert isinstance(call, Call) and (call.kind, call.role) == (USAGE_LIMIT, "worker")
    assert referee.protocol.paused_by == "usage limit"
    # A restarted bridge reads the file again from the start: the same count, and the same limit is not news.
    again = Meter(screens, meter.targets, meter.formats)  # type: ignore[arg-type]
    fx = again.read({}, referee, now=100.0)  # the file comes from the ledger's count, no hook needed
    assert not fx.events and not fx.alerts


def test_a_limit_on_the_screen_is_news_once_and_a_new_one_again(tmp_path: Path) -> None:
    referee, screens, meter = setup(tmp_path)
    screens.screens["%2"] = CLAUDE_429
    fx = carried(referee, meter.read({}, referee, now=0.0))
    (limit,) = [e for e in fx.events if isinstance(e, UsageLimit)]
    assert (limit.role, limit.source) == ("reviewer", "screen") and "429" in limit.reason
    assert len(fx.alerts) == 1
    assert not meter.read({}, referee, now=1.0).events, "not looked again before LOOK_SECONDS"
    assert not meter.read({}, referee, now=6.0).events, "the same limit still there is not news"
    carried(referee, referee.unpause())
    restarted = Meter(screens, meter.targets, meter.formats)  # type: ignore[arg-type]
    assert not restarted.read({}, referee, now=0.0).events, "nor after a restart"
    line = "● API Error: Request rejected (429) · Number of request tokens has exceeded your per-minute rate limit"
    screens.screens["%2"] = CLAUDE_429.replace(f"{line}\n", f"{line}\n\n❯ try again\n\n{line}\n")
    fx = carried(referee, restarted.read({}, referee, now=10.0))
    assert [e.source for e in fx.events if isinstance(e, UsageLimit)] == ["screen"]
    assert referee.protocol.paused_by == "usage limit", "the new limit holds the relay again"


def test_a_screen_is_captured_again_only_when_its_pane_had_output(tmp_path: Path) -> None:
    referee, screens, meter = setup(tmp_path)
    wall = int(time.time())
    screens.activity = {"%1": wall - 10, "%2": wall - 10}
    meter.read({}, referee, now=0.0)
    assert sorted(screens.captures) == ["%1", "%2"], "the first look captures every screen"
    screens.captures.clear()
    meter.read({}, referee, now=6.0)
    assert screens.captures == [], "no output since: nothing captured"
    screens.screens["%2"] = CLAUDE_429
    screens.activity["%2"] = int(time.time())  # output in the very second of the last capture counts as new
    fx = carried(referee, meter.read({}, referee, now=12.0))
    assert screens.captures == ["%2"]
    assert [(e.role, e.source) for e in fx.events if isinstance(e, UsageLimit)] == [("reviewer", "screen")]
    screens.captures.clear()
    meter.read({}, referee, now=12.0 + meter_module.RECAPTURE_SECONDS)
    assert sorted(screens.captures) == ["%1", "%2"], "captured again after a while whatever tmux says"
    screens.captures.clear()
    screens.activity.clear()  # tmux cannot say (no number): every screen is captured
    meter.read({}, referee, now=18.0 + meter_module.RECAPTURE_SECONDS)
    assert sorted(screens.captures) == ["%1", "%2"]


def test_the_budget_pauses_once_and_the_human_allows_as_much_again(tmp_path: Path) -> None:
    referee, _, meter = setup(tmp_path, max_tokens=10_000)
    referee.apply(TokenUsage(role="worker", input=6_000, output=1_000))
    assert not meter.judge(referee).events
    referee.apply(TokenUsage(role="reviewer", input=3_000, output=500))
    fx = carried(referee, meter.judge(referee))
    assert fx.events == [Relay(state="paused", by="budget", reason="10,500 tokens used, over the budget of 10,000")]
    (call,) = fx.alerts
    assert isinstance(call, Call) and call.kind == BUDGET and "pairloop unpause" in call.text
    assert not meter.judge(referee).events, "paused already: no second call"
    (running,) = carried(referee, referee.unpause()).events
    assert isinstance(running, Relay) and running.tokens_allowed == 20_500
    assert not meter.judge(referee).events
    referee.apply(TokenUsage(role="worker", input=16_000, output=1_100))
    assert carried(referee, meter.judge(referee)).events[0] == Relay(
        state="paused", by="budget", reason="20,600 tokens used, over the budget of 20,500")
