"""The run report opened in a real headless Chromium (Debian's package, installed by the set-up when missing):
from a real sim run on tmux, it loads from file:// with no console error, shows the verdict, the rounds, the
findings and both panes' recorded screens, is not blank, and hostile text in it stays inert text."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from bridge.panes.tmux import Tmux
from pairloop.cli import cli
from pairloop.runs.lifecycle import StartOptions, send_message
from pairloop.summary.report import write_report
from tests.chromium import Browser, BrowserError, Page, chromium, colour_census
from tests.conftest import wait_for
from tests.helpers import book, start_sims
from tests.test_report_unit import ATTR, IMG, SCRIPT, fake_run

pytestmark = pytest.mark.browser

TASK = f"Add a greet(name) function. {SCRIPT}"
HOSTILE = f"Late note {IMG} {SCRIPT} {ATTR}"
INERT = "[typeof window.__pwned, document.scripts.length, document.images.length]"


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Browser]:
    try:
        with chromium(tmp_path_factory.mktemp("chromium")) as b:
            yield b
    except BrowserError as exc:
        pytest.fail(f"no headless Chromium: {exc}", pytrace=False)


def opened(browser: Browser, path: Path) -> Page:
    page = browser.new_page()
    page.call("Emulation.setDeviceMetricsOverride", width=1400, height=1000, deviceScaleFactor=1, mobile=False)
    page.goto(path.resolve().as_uri())
    return page


def texts(page: Page, selector: str) -> list[str]:
    return list(page.evaluate(f"[...document.querySelectorAll({json.dumps(selector)})].map(e => e.innerText)"))


def not_blank(page: Page, tmp: Path) -> None:
    shot = page.screenshot(tmp / "report.png", scale=0.5)
    colours, ink = colour_census(shot)
    assert colours > 40 and ink > 0.15, f"the screenshot looks blank: {colours} colours, {ink:.0%} not background"


@pytest.mark.tmux
def test_the_report_of_a_real_sim_run_in_a_real_browser(tmux_server: Tmux, git_repo: Path, browser: Browser,
                                                        tmp_path: Path) -> None:
    run = start_sims(tmux_server, git_repo, TASK, StartOptions("sim", "sim", plan=False),
                     PAIRLOOP_SIM_MODE="pair", PAIRLOOP_SIM_WORK_SECONDS="0.1")
    wait_for(lambda: book(run).run_state == "agreed", timeout=60, what="the pair to agree")
    # The bridge's own summary (on agreement) writes the report with the PR notes.
    wait_for(lambda: "wrote " in _read(run.dir / "on-agreement.log"), timeout=30, what="the bridge's summary")
    assert (run.dir / "report.html").exists()
    assert "pairloop report --run" in (run.dir / "PR_NOTES.md").read_text()
    late = send_message(run, "human", ("reviewer",), HOSTILE)
    wait_for(lambda: late.id in book(run).entries, what="the human's late note in the ledger")
    result = CliRunner().invoke(cli, ["report", "--run", run.id])
    assert result.exit_code == 0, result.output
    path = Path(result.output.strip())
    assert path == run.dir / "report.html"

    page = opened(browser, path)
    assert page.errors == []
    assert page.evaluate(INERT) == ["undefined", 0, 0], "a script ran, or markup from the run became elements"
    assert SCRIPT in page.evaluate("document.querySelector('pre.task').innerText")
    assert any(HOSTILE in t for t in texts(page, "table.timeline td"))
    assert page.evaluate("document.title").startswith("Add a greet(name) function.")
    # the verdict and the rounds at the top, each round with its checkpoint, diff and finding
    assert texts(page, ".verdict .big") == ["Agreed"]
    assert len(texts(page, "table.overview tbody tr")) == 2
    assert len(texts(page, "section.round")) == 2
    (finding,) = texts(page, "#findings tr.finding")
    assert finding.startswith("F1.1") and "fixed in round 2" in finding
    assert "+def greet" in page.evaluate("document.querySelector('#round-1 details.diff pre').innerText")
    # both panes' screens at each checkpoint, and as the recordings end, from the recordings
    screens = texts(page, "pre.term")
    assert len(screens) == 6
    assert all("pairloop sim" in s for s in screens)
    assert "worker" in screens[0] and "reviewer" in screens[1]
    not_blank(page, tmp_path)


def test_screens_keep_their_colours_side_by_side(git_repo: Path, isolated_env: Path, browser: Browser,
                                                monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PAIRLOOP_HOME", str(isolated_env / "state"))
    run = fake_run(git_repo, isolated_env / "state")
    page = opened(browser, write_report(run))
    assert page.errors == []
    assert page.evaluate(INERT) == ["undefined", 0, 0]
    style = page.evaluate("(() => { const s = getComputedStyle(document.querySelector('#round-1 pre.term span.fc2'));"
                          " return [s.color, s.fontWeight]; })()")
    assert style == ["rgb(13, 188, 121)", "700"]
    boxes = page.evaluate("[...document.querySelectorAll('#round-1 figure.pane')].map(f => {"
                          " const r = f.getBoundingClientRect(); return [r.left, r.top, r.width]; })")
    (left, top, width), (left2, top2, _) = boxes
    assert top == top2 and left2 >= left + width, "the two panes are not side by side"
    # a verification tail holding markup and escape sequences: shown as text
    assert IMG in page.evaluate("document.querySelector('#round-1 pre.tail').innerText")
    not_blank(page, tmp_path)


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except FileNotFoundError:
        return ""
