"""Fixtures for the end-to-end tests: the pinned real agents, the scripted model server, and a throwaway
world (git repo, prepared homes, private tmux server) that is torn down completely afterwards.

Every test under tests/e2e is marked ``e2e``. They are never skipped for want of npm or the registry: a
missing tool or a failed install fails the session's first test with the reason.
"""

from __future__ import annotations

from collections.abc import Generator, Iterator
from pathlib import Path

import pytest

from tests.e2e.agents_install import Agents, InstallError, install_agents
from tests.e2e.driver import Pair
from tests.e2e.model_server import ModelServer

HERE = Path(__file__).resolve().parent
PAIR = pytest.StashKey["Pair"]()
DIAGNOSTICS_MARK = "----- model server requests -----"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in Path(str(item.fspath)).resolve().parents:
            item.add_marker(pytest.mark.e2e)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, None, None]:
    """A failed scenario shows the panes, the ledger and the model's requests (unless its message has them)."""
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    world = item.stash.get(PAIR, None)
    if report.when == "call" and report.failed and world is not None and DIAGNOSTICS_MARK not in report.longreprtext:
        try:
            report.sections.append(("e2e: panes, ledger, model requests", world.diagnostics()))
        except Exception as exc:  # diagnostics must never hide the failure itself
            report.sections.append(("e2e: diagnostics failed", repr(exc)))


@pytest.fixture(scope="session")
def agents() -> Agents:
    """The real claude and codex at the pinned versions (or the newest, with PAIRLOOP_E2E_CANARY=1)."""
    try:
        return install_agents()
    except InstallError as exc:
        pytest.fail(f"cannot install the real agents for the e2e tests: {exc}", pytrace=False)


@pytest.fixture
def model_server() -> Iterator[ModelServer]:
    with ModelServer() as server:
        yield server


@pytest.fixture
def pair(request: pytest.FixtureRequest, tmp_path: Path, model_server: ModelServer, agents: Agents) -> Iterator[Pair]:
    """A fresh git repo, homes prepared for both agents, a private tmux server (``pair.socket``). Afterwards
    the tmux server is killed, its socket removed, and every process started under the pair's environment is
    checked gone (anything left is killed, and the test fails)."""
    world = Pair(tmp_path, model_server, agents)
    request.node.stash[PAIR] = world
    yield world
    leftovers = world.close()
    assert not leftovers, "processes outlived the tmux server:\n" + "\n".join(leftovers)
