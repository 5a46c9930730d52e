"""The run report without tmux: screens replayed from recordings (colours, resizes, markers), everything from the
run escaped, the diff of each round from git, verification results by tag, and the summarizer writing it."""

from __future__ import annotations

import html
import re
import time
from collections.abc import Iterable
from pathlib import Path

import msgspec
import pytest

from bridge.book import Book
from bridge.git import git_out
from bridge.protocol.checkpoint import snapshot
from bridge.rundir.cast import Cast, CastEvent, CastWriter, Header, cast_path, parse_cast
from bridge.rundir.events import (
    AnyEvent,
    Delivered,
    FindingClaims,
    HumanTurn,
    Queued,
    Received,
    Round,
    RunState,
    TokenUsage,
    UsageLimit,
    Verdict,
    VerifyFinished,
    VerifyStarted,
    as_dict,
)
from bridge.rundir.ledger import Ledger, ledger_path
from bridge.rundir.manifest import read_manifest, write_manifest
from pairloop.runs.store import Run, load_run
from pairloop.summary import report_html, screens
from pairloop.summary.report import gather, round_diffs, verification_of, verifications, write_report
from pairloop.summary.summarize import summarize
from tests.helpers import run_without_tmux

SCRIPT = "<script>window.__pwned = 1</script>"
IMG = '<img src=x onerror="window.__pwned = 2">'
ATTR = '" onmouseover="window.__pwned = 3'
TASK = f"Add greet(name). {SCRIPT}"
FINDING = f"greet() has no test {IMG}"


def cast_of(*events: tuple[float, str, str], width: int = 20, height: int = 4) -> Cast:
    return Cast(Header(width, height, 1000), [CastEvent(t, c, d) for t, c, d in events])


# ---- screens ---------------------------------------------------------------------------------------------------


def test_a_screen_keeps_its_colours_and_attributes() -> None:
    cast = cast_of((0.1, "o", "\x1b[1;31mred\x1b[0m plain \x1b[44mon blue\x1b[0m\r\n"
                              "\x1b[38;5;208morange\x1b[0m \x1b[38;2;192;255;238mc0ffee\x1b[0m \x1b[7mrev\x1b[0m"))
    (shot,) = screens.screens_at(cast, [1.0])
    out = screens.screen_html(shot)
    first, second = out.split("\n")[:2]
    assert first == '<span class="fc1 bo">red</span> plain <span class="bc4">on blue</span>'
    # 256 colours and true colour become inline colours; a hex value that starts like a class name stays one
    assert '<span style="color:#ff8700">orange</span>' in second
    assert '<span style="color:#c0ffee">c0ffee</span>' in second
    # reverse video: the default colours swapped in, named by the stylesheet
    assert '<span class="fdbg bdfg">rev</span>' in second
    assert shot.text().split("\n")[:2] == ["red plain on blue", "orange c0ffee rev"]


def test_screens_at_moments_replay_once_in_order_with_resizes() -> None:
    cast = cast_of((0.5, "o", "first"), (1.5, "o", "\x1b[2J\x1b[Hsecond"), (2.0, "r", "30x6"),
                   (2.5, "o", "\r\n\r\n\r\n\r\n\r\nrow six"))
    late, early, before, resized = screens.screens_at(cast, [3.0, 1.0, 0.1, 2.1])
    assert early.text().startswith("first") and "second" not in early.text()
    assert before.text() == "\n\n\n"  # nothing written yet: four blank rows
    assert (early.width, early.height) == (20, 4)
    assert (resized.width, resized.height) == (30, 6) and "row six" not in resized.text()
    assert late.text().splitlines()[-1] == "row six"


def test_cells_are_escaped_and_controls_shown_as_a_mark() -> None:
    cast = cast_of((0.1, "o", f"{SCRIPT}\r\nA\u202eB \x1b[31m\"'&\x1b[0m"), width=60)
    (shot,) = screens.screens_at(cast, [1.0])
    out = screens.screen_html(shot)
    assert "<script" not in out and "&lt;script&gt;" in out
    assert "\u202e" not in out
    assert '<span class="fc1">&quot;&#x27;&amp;</span>' in out


def test_a_recording_asking_for_a_huge_screen_is_clamped() -> None:
    (shot,) = screens.screens_at(cast_of((0.1, "r", "99999x99999"), (0.2, "o", "x"), width=100000), [1.0])
    assert (shot.width, shot.height) == (screens.MAX_SIZE, screens.MAX_SIZE)


def test_round_marks_are_the_round_opened_markers() -> None:
    cast = cast_of((1.0, "m", "verdict: changes by reviewer (round 1)"), (2.0, "m", "round 2 opened (checkpoint abc)"),
                   (3.0, "m", "round 1 opened"), (4.0, "m", "round 2 opened"))
    assert screens.round_marks(cast, [1, 2, 3]) == {1: 3.0, 2: 2.0}


# ---- escaping --------------------------------------------------------------------------------------------------


def test_esc_escapes_markup_quotes_and_shows_controls() -> None:
    assert report_html.esc(f"{SCRIPT}{ATTR}") == html.escape(f"{SCRIPT}{ATTR}", quote=True)
    assert report_html.esc("a\x1b]2;title\x07b\u202ec\r\nd") == "a\\x1b]2;title\\x07b\\u202ec\nd"


# ---- verification results, by tag --------------------------------------------------------------------------------


def test_verification_results_are_read_by_their_tag_whatever_the_fields() -> None:
    done = VerifyFinished(round=1, ref="refs/pairloop/r/round-1", result="failed", command="pytest -q",
                          exit_status=1, duration=2.5, log="verify-runs/1.log", tail="E assert 1 == 2", ts=5.0)
    v = verification_of(as_dict(done))
    assert (v["round"], v["outcome"], v["exit"], v["duration"], v["command"], v["tail"]) == \
        (1, "failed", 1, 2.5, "pytest -q", "E assert 1 == 2")
    # a newer bridge's fields, of odd types: kept when they make sense, dropped when they do not
    odd = verification_of({"ev": "verification", "round": "2", "passed": True, "cmd": ["make", "test"],
                           "duration": "fast", "exit_code": 0})
    assert odd == {"ts": 0.0, "command": "make test", "outcome": "pass", "exit": 0}
    started = VerifyStarted(round=2, ref="x", command="pytest -q", ts=6.0)
    finished = msgspec.structs.replace(done, round=2, result="passed", exit_status=0, ts=7.0)
    assert [x["outcome"] for x in verifications([done, started])] == ["failed", "running"]
    assert [x["outcome"] for x in verifications([done, started, finished])] == ["failed", "passed"]
    assert [x["outcome"] for x in verifications([done, finished, started])] == ["failed", "passed"]


# ---- a whole run, without tmux -------------------------------------------------------------------------------------


def fake_run(repo: Path, home: Path) -> Run:
    """A two-round run written the way the bridge writes it: real checkpoints, a finding fixed, verification
    results, the human stepping in, recordings of both panes with their markers; hostile text everywhere."""
    run_dir = run_without_tmux(repo, home)
    manifest = read_manifest(run_dir)
    run_id = manifest.id
    write_manifest(run_dir, msgspec.structs.replace(manifest, base_commit=git_out(repo, "rev-parse", "HEAD"),
                                                    task=TASK))
    (repo / "greeting.py").write_text(f'def greet(name):\n    return "<b>" + name  # {SCRIPT}\n')
    git_out(repo, "add", "greeting.py")
    git_out(repo, "commit", "-q", "-m", "Add greet()")
    cp1 = snapshot(repo, f"refs/pairloop/{run_id}/round-1", "round 1")
    (repo / "test_greeting.py").write_text("def test_greet():\n    assert greet('a')\n")
    cp2 = snapshot(repo, f"refs/pairloop/{run_id}/round-2", "round 2")
    t0 = time.time() - 60
    writers = {role: CastWriter(cast_path(run_dir, role), 60, 6, now=t0) for role in ("worker", "reviewer")}
    for role, w in writers.items():
        w.output(t0 + 1, f"\x1b[1;32m{role} one\x1b[0m {SCRIPT}")
        w.marker(t0 + 2, f"round 1 opened (checkpoint {cp1.commit[:10]})")
        w.output(t0 + 3, f"\x1b[2J\x1b[H\x1b[35m{role} two\x1b[0m")
        w.marker(t0 + 4, "round 2 opened")
        w.output(t0 + 5, "\r\nthe end")
        w.close()
    r1, r2 = f"refs/pairloop/{run_id}/round-1", f"refs/pairloop/{run_id}/round-2"
    events: list[AnyEvent] = [
        Received(seq=1, id="m1", sender="human", to=("worker",), kind="task", body=TASK),
        Delivered(to="worker", ids=("m1",)),
        Round(round=1, phase="work", ref=r1, commit=cp1.commit, tree=cp1.tree),
        Received(seq=2, id="m2", sender="worker", to=("reviewer",), kind="review", body="Ready: <b>greet</b>",
                 note=f"round 1 (work phase) · checkpoint {r1}"),
        Delivered(to="reviewer", ids=("m2",)),
        Received(seq=3, id="m3", sender="reviewer", to=("worker",), kind="changes", body=f"1. {FINDING}"),
        Verdict(id="m3", by="reviewer", kind="changes", round=1, phase="work", checkpoint=cp1.commit,
                findings=(("F1.1", FINDING),)),
        VerifyFinished(round=1, ref=r1, result="failed", command="pytest -q", exit_status=1, duration=1.5,
                       tail=f"{IMG}\x1b[31mFAILED"),
        Delivered(to="worker", ids=("m3",)),
        Round(round=2, phase="work", ref=r2, commit=cp2.commit, tree=cp2.tree),
        FindingClaims(fixed=("F1.1",)),
        Received(seq=4, id="m4", sender="worker", to=("reviewer",), kind="review", body="Added the test.",
                 note=f"round 2 (work phase) · checkpoint {r2}", fixed=("F1.1",)),
        Delivered(to="reviewer", ids=("m4",)),
        VerifyFinished(round=2, ref=r2, result="passed", command="pytest -q", exit_status=0, duration=1.2),
        Received(seq=5, id="m5", sender="reviewer", to=("worker",), kind="approve", body="Looks good."),
        Verdict(id="m5", by="reviewer", kind="approve", round=2, phase="work", checkpoint=cp2.commit),
        Delivered(to="worker", ids=("m5",)),
        HumanTurn(role="reviewer", text=ATTR),
        Received(seq=6, id="m6", sender="human", to=("reviewer",), kind="message", body=f"hello{ATTR}\u202eevil"),
        Queued(to="reviewer", ids=("m6",), reason="target busy"),
        RunState(state="agreed", by="worker", round=2, approved_by="reviewer"),
    ]
    with Ledger(ledger_path(run_dir)) as ledger:
        ledger.append_all(events)
    return load_run(run_dir)


@pytest.fixture
def run(git_repo: Path, isolated_env: Path, monkeypatch: pytest.MonkeyPatch) -> Run:
    monkeypatch.setenv("PAIRLOOP_HOME", str(isolated_env / "state"))
    return fake_run(git_repo, isolated_env / "state")


def test_round_diffs_come_from_one_git_call_in_the_right_direction(run: Run) -> None:
    repo = Path(run.manifest.repo)
    base = run.manifest.base_commit or ""
    cp1 = git_out(repo, "rev-parse", f"refs/pairloop/{run.id}/round-1")
    cp2 = git_out(repo, "rev-parse", f"refs/pairloop/{run.id}/round-2")
    first, second, same = round_diffs(repo, [(base, cp1), (cp1, cp2), (cp2, snapshot(repo, "refs/x", "x").commit)])
    assert "+++ b/greeting.py" in first and "+def greet(name):" in first and "test_greeting" not in first
    assert "+++ b/test_greeting.py" in second and "greeting.py b/greeting.py" not in second
    assert same == ""


def test_the_report_shows_every_part_and_escapes_all_of_it(run: Run) -> None:
    page = write_report(run).read_text(encoding="utf-8")
    # self-contained: no script, nothing loaded from anywhere, a policy that forbids both
    assert "<script" not in page and "<img" not in page and "<link" not in page
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:|//|file:)""", page)
    assert f'content="{report_html.CSP}"' in page and "default-src 'none'" in page
    # hostile text shows as text (the task, a finding, a diff line, a pane, a verification tail, the human)
    for hostile in (SCRIPT, IMG, ATTR):
        assert html.escape(hostile, quote=True) in page
    assert "onmouseover=\"" not in page and "\u202e" not in page and "\\u202e" in page and "\x1b" not in page
    # the verdict first, then the rounds
    assert page.index("Agreed") < page.index('id="rounds"') < page.index('id="round-1"') < page.index('id="round-2"')
    facts = gather(run)
    assert [r.number for r in facts.rounds] == [1, 2]
    assert "+def greet(name):" in facts.rounds[0].diff and "test_greeting.py" in facts.rounds[1].diff
    # each pane's screen at each checkpoint, from its recording's markers, in colour
    one = facts.rounds[0].screens["worker"]
    two = facts.rounds[1].screens["reviewer"]
    assert one is not None and two is not None
    assert '<span class="fc2 bo">worker one</span>' in one.html and "two" not in one.html
    assert '<span class="fc5">reviewer two</span>' in two.html and "one" not in two.html
    final = facts.final["worker"]
    assert final is not None and "the end" in final.html
    # findings and how they ended; verification by round; the human's turns; the timeline's states
    assert "F1.1" in page and "fixed in round 2" in page
    assert page.count('class="check"') == 4  # each result in its round, and all of them in Verification
    assert "exit 1" in page and "1.5 s" in page and "\\x1b[31mFAILED" in page
    assert "target busy" in page and ">queued<" in page and ">delivered<" in page
    assert "typed" in page


def test_a_run_without_recordings_says_so(run: Run) -> None:
    for role in ("worker", "reviewer"):
        cast_path(run.dir, role).unlink()
    cast_path(run.dir, "worker").write_text("not a cast\n")
    facts = gather(run)
    assert facts.recordings["reviewer"] == "no recording of this pane"
    assert facts.recordings["worker"].startswith("the recording cannot be read")
    page = report_html.render(facts)
    assert "no recording of this pane" in page and '<pre class="term"' not in page


def test_the_summarizer_writes_the_report_and_the_notes_say_where(run: Run) -> None:
    result = summarize(run)
    assert result.report_path == run.dir / "report.html" and result.report_path.exists()
    assert result.warning == ""
    notes = result.notes_path.read_text()
    proof = notes.split("## Proof of work\n", 1)[1]
    assert f"`pairloop report --run {run.id} --open`" in proof
    assert f"`pairloop replay --run {run.id} --role worker`" in proof and "Both panes were recorded" in proof


def test_the_numbers_show_the_tokens_and_usage_limits_escaped(run: Run) -> None:
    with Ledger(ledger_path(run.dir)) as ledger:
        ledger.append_all([TokenUsage(role="worker", input=1200, cached=200, output=300),
                           TokenUsage(role="reviewer", input=400, output=100),
                           UsageLimit(role="reviewer", reason=f"limit {SCRIPT}", source="screen")])
    page = write_report(run).read_text(encoding="utf-8")
    numbers = page.split('<div class="numbers">', 1)[1].split("</div></div></div>", 1)[0]
    assert '<div class="n">2,000</div>' in numbers and "worker 1,500 · reviewer 500" in numbers
    assert '<div class="n">1</div><div class="l">usage limits (last: the reviewer, limit ' \
        f"{html.escape(SCRIPT, quote=True)})" in numbers
    assert SCRIPT not in page


def test_a_run_without_spending_shows_no_token_numbers(run: Run) -> None:
    assert "tokens (" not in write_report(run).read_text(encoding="utf-8")


def test_the_summarizer_hands_the_report_the_digests_folded_ledger(run: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    folds = []
    real = Book.apply_all

    def counted(self: Book, evs: Iterable[AnyEvent]) -> Book:
        folds.append(1)
        return real(self, evs)

    monkeypatch.setattr(Book, "apply_all", counted)
    assert summarize(run).report_path is not None
    assert folds == [1]  # the digest's fold, not one more for the report


def test_a_torn_recording_still_gives_its_screens(run: Run) -> None:
    path = cast_path(run.dir, "worker")
    path.write_bytes(path.read_bytes() + b'[9.0, "o", "torn')
    assert parse_cast(path.read_bytes()).damaged
    shot = gather(run).final["worker"]
    assert shot is not None and "the end" in shot.html


def test_a_long_recording_is_replayed_from_its_last_full_clear(monkeypatch: pytest.MonkeyPatch) -> None:
    events = [(0.1 * i, "o", f"line {i}\r\n") for i in range(1, 40)]
    events += [(5.0, "o", "\x1b[2J\x1b[Hfresh start\r\n"), *[(5.0 + 0.1 * i, "o", f"after {i}\r\n") for i in (1, 2)]]
    cast = cast_of(*events, width=30, height=6)
    (whole,) = screens.screens_at(cast, [9.0])
    monkeypatch.setattr(screens, "WINDOW", 60)
    (windowed, early) = screens.screens_at(cast, [9.0, 1.05])
    assert windowed == whole and not windowed.partial  # started at the clear: exact
    assert early.partial and early.text().rstrip().splitlines()[-1] == "line 10"  # no clear in the window: said
