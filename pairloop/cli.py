"""The command line. Thin: parse, call the core, turn core errors into messages and exit codes.

Exit codes: 0 ok, 1 failed, 2 usage error, 3 no such run, 4 a needed program (tmux, an agent) is missing.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import click

from bridge.book import Book
from bridge.panes.tmux import Tmux, TmuxError, TmuxMissing
from bridge.rundir.ledger import read_events
from bridge.rundir.message import AGENT_ROLES, partner_of
from pairloop import __version__
from pairloop.errors import MissingTool, PairloopError, UsageProblem
from pairloop.runs.config import default_roles, read_config
from pairloop.runs.lifecycle import (
    StartOptions,
    request_control,
    send_message,
    start_run,
    stop_run,
    tmux_for,
    wait_until_running,
)
from pairloop.runs.store import Run, find_run, list_runs, repo_root
from pairloop.views import conversation, message_lines, message_record, run_status, status_lines

F = TypeVar("F", bound=Callable[..., Any])


def fail(message: str, code: int) -> NoReturn:
    """One clear line on stderr and an exit code of the error's kind; never a traceback."""
    click.echo(f"Error: {message}", err=True)
    sys.exit(code)


def core_errors(fn: F) -> F:
    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except TmuxMissing as exc:
            fail(str(exc), MissingTool.exit_code)
        except TmuxError as exc:
            fail(f"tmux: {exc}", 1)
        except PairloopError as exc:
            fail(str(exc), exc.exit_code)

    return wrapper  # type: ignore[return-value]


def open_tmux(socket: str | None) -> Tmux:
    try:
        return Tmux(socket_name=socket) if socket else Tmux()
    except TmuxMissing as exc:
        raise MissingTool(str(exc)) from None


def here() -> Path:
    return repo_root(Path(os.environ.get("PAIRLOOP_REPO") or os.getcwd()))


run_option = click.option("--run", "run_id", envvar="PAIRLOOP_RUN", help="Run id (or a unique prefix).")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="pairloop")
def cli() -> None:
    """Agent-to-agent pair programming in the terminal: a worker and a reviewer side by side in tmux,
    relayed by a file-watching bridge, with you watching and steering."""


@cli.command()
@click.argument("task", required=False, default="")
@click.option("--worker", envvar="PAIRLOOP_WORKER",
              help="Agent that does the work: claude, codex, sim, or one from .pairloop.toml  [default: claude]")
@click.option("--reviewer", envvar="PAIRLOOP_REVIEWER", help="Agent that reviews  [default: codex]")
@click.option("--worker-model", help="Model for the worker (passed to its agent).")
@click.option("--reviewer-model", help="Model for the reviewer.")
@click.option("--worker-arg", multiple=True, help="An extra argument for the worker's agent (repeatable).")
@click.option("--reviewer-arg", multiple=True, help="An extra argument for the reviewer's agent (repeatable).")
@click.option("--trust", is_flag=True, help="Answer the agents' trust-this-folder dialogs for you.")
@click.option("--yolo", is_flag=True,
              help="Turn off both agents' permission checks (each agent's own bypass flag). Shown in the titles.")
@click.option("--plan/--no-plan", default=None,
              help="Plan first: the worker writes PLAN.md and the reviewer approves it before any code "
                   "[default: on when the task is longer than one line].")
@click.option("--mirror/--no-mirror", default=True, show_default=True,
              help="Pass what the human tells one agent to the other as context.")
@click.option("--max-rounds", default=6, show_default=True, help="Review rounds before the relay pauses for you.")
@click.option("--max-messages", default=200, show_default=True, help="Messages before the relay pauses for you.")
@click.option("--attach/--no-attach", default=True,
              help="Attach to the session (default), or return once both agents are running.")
@click.option("--socket", envvar="PAIRLOOP_TMUX_SOCKET", help="Use a private tmux server with this socket name.")
@core_errors
def start(task: str, worker: str | None, reviewer: str | None, worker_model: str | None,
          reviewer_model: str | None, worker_arg: tuple[str, ...], reviewer_arg: tuple[str, ...], trust: bool,
          yolo: bool, plan: bool | None, mirror: bool, max_rounds: int, max_messages: int, attach: bool,
          socket: str | None) -> None:
    """Start a pair session on TASK in the current repository: by default claude works and codex reviews."""
    repo = here()
    default_worker, default_reviewer = default_roles(read_config(repo))
    options = StartOptions(
        worker=worker or default_worker, reviewer=reviewer or default_reviewer,
        models={r: m for r, m in (("worker", worker_model), ("reviewer", reviewer_model)) if m},
        extra_args={"worker": worker_arg, "reviewer": reviewer_arg}, yolo=yolo, trust=trust,
        plan=len(task.strip().splitlines()) > 1 if plan is None else plan, mirror=mirror,
        max_rounds=max_rounds, max_messages=max_messages)
    tmux = open_tmux(socket)
    run = start_run(tmux, repo, task, options)
    states = wait_until_running(tmux, run)
    click.echo(f"run {run.id}  session {run.session}")
    for role, state in states.items():
        if state == "dialog":
            click.echo(f"the {role} shows a dialog: answer it in its pane (or start with --trust for folder trust)")
    if not attach or not sys.stdin.isatty():
        click.echo(f"watch it: {' '.join(tmux.attach_argv(run.session))}")
        return
    inside = os.environ.get("TMUX", "").split(",")[0]
    if inside and os.path.realpath(inside) == os.path.realpath(run.socket_path):
        tmux.run("switch-client", "-t", f"={run.session}")  # already inside this tmux: switch, don't nest
        return
    # Outside tmux, or inside another tmux server: attach this terminal (nested in the latter case).
    env = {k: v for k, v in os.environ.items() if k not in ("TMUX", "TMUX_PANE")}
    sys.stdout.flush()
    os.execvpe("tmux", tmux.attach_argv(run.session), env)


def _sender() -> str:
    """Inside an agent pane the environment names the sender; anywhere else it is the human."""
    role = os.environ.get("PAIRLOOP_ROLE", "")
    return role if role in AGENT_ROLES and os.environ.get("PAIRLOOP_RUN_DIR") else "human"


def _run_for(sender: str, run_id: str | None) -> Run:
    env = dict(os.environ) if sender != "human" else {k: v for k, v in os.environ.items()
                                                      if k != "PAIRLOOP_RUN_DIR"}
    return find_run(here(), run_id, env)


def _read_body(text: str) -> str:
    body = sys.stdin.read() if text == "-" else text
    if not body.strip():
        raise UsageProblem("the message is empty")
    return body


def _post(run_id: str | None, to: str | None, text: str, kind: str, *, fixed: tuple[str, ...] = (),
          disputed: tuple[str, ...] = ()) -> None:
    sender = _sender()
    if to is None:
        if sender == "human":
            raise UsageProblem("from outside an agent pane, say who it is for: --to worker|reviewer|both")
        to = partner_of(sender)
    wanted = ("worker", "reviewer") if to == "both" else (to,)
    recipients = tuple(r for r in wanted if r != sender)
    if not recipients:
        raise UsageProblem(f"the {sender} cannot send a message to itself")
    body = _read_body(text)
    message = send_message(_run_for(sender, run_id), sender, recipients, body, kind, fixed, disputed)
    click.echo(message.id)


to_option = click.option("--to", type=click.Choice(["worker", "reviewer", "both", "human"]),
                         help="Recipient; inside an agent pane it defaults to the partner.")


@cli.command()
@click.argument("text")
@to_option
@run_option
@core_errors
def send(text: str, to: str | None, run_id: str | None) -> None:
    """Send TEXT (or '-' for stdin) to an agent through the bridge; prints the message id."""
    _post(run_id, to, text, "message")


def _verdict_target(verb: str) -> str:
    """Verdicts go to the worker, from the reviewer or (overruling it) from the human."""
    if _sender() == "worker":
        raise UsageProblem(f"`pairloop {verb}` is the reviewer's (or the human's) verb; the worker uses "
                           "`pairloop review` and `pairloop done`")
    return "worker"


def _worker_only(verb: str) -> None:
    if _sender() != "worker":
        raise UsageProblem(f"`pairloop {verb}` is the worker's verb (run it in the worker's pane)")


@cli.command()
@click.argument("note", required=False, default="Ready for review.")
@click.option("--fixed", multiple=True, metavar="ID", help="A finding this round fixes (repeatable).")
@click.option("--disputed", multiple=True, metavar="ID", help="A finding the worker disputes (repeatable).")
@run_option
@core_errors
def review(note: str, fixed: tuple[str, ...], disputed: tuple[str, ...], run_id: str | None) -> None:
    """Worker: ask for review. The bridge checkpoints the work (commits and working tree) for this round and
    shows the reviewer what changed since the last reviewed checkpoint."""
    _worker_only("review")
    _post(run_id, "reviewer", note, "review", fixed=fixed, disputed=disputed)


@cli.command()
@click.argument("note", required=False, default="Approved.")
@run_option
@core_errors
def approve(note: str, run_id: str | None) -> None:
    """Reviewer (or the human, overruling it): approve the current round's checkpoint."""
    _post(run_id, _verdict_target("approve"), note, "approve")


@cli.command()
@click.argument("text")
@run_option
@core_errors
def changes(text: str, run_id: str | None) -> None:
    """Reviewer (or the human, overruling it): ask for changes. Numbered lines are separate findings, each
    given a stable id (F<round>.<n>) that later rounds refer to. TEXT may be '-' for stdin."""
    _post(run_id, _verdict_target("changes"), text, "changes")


@cli.command()
@click.argument("note", required=False, default="Done.")
@run_option
@core_errors
def done(note: str, run_id: str | None) -> None:
    """Worker: claim the task is finished. The run completes only when the latest verdict approves the
    current state; otherwise the bridge tells the worker why not."""
    _worker_only("done")
    _post(run_id, "reviewer", note, "done")


@cli.command()
@run_option
@core_errors
def pause(run_id: str | None) -> None:
    """Hold all relaying: messages keep queueing, nothing is lost, until `pairloop unpause`."""
    _control(run_id, "pause")


@cli.command()
@run_option
@core_errors
def unpause(run_id: str | None) -> None:
    """Release the relay: queued messages go out in order (also after the governor paused it)."""
    _control(run_id, "unpause")


def _control(run_id: str | None, action: str) -> None:
    run = _run_for(_sender(), run_id)
    request_control(run, action)
    click.echo(f"{action} requested for run {run.id}")


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="One JSON document with every run.")
@click.option("--all", "show_all", is_flag=True, help="Include stopped runs.")
@core_errors
def status(as_json: bool, show_all: bool) -> None:
    """The runs of this repository: session, each agent's role and state, queued and delivered counts."""
    runs = [r for r in list_runs(here()) if show_all or not r.stopped]
    statuses = []
    for run in runs:
        try:
            tmux: Tmux | None = tmux_for(run)
        except MissingTool:
            tmux = None
        statuses.append(run_status(run, tmux))
    if as_json:
        click.echo(json.dumps({"runs": statuses}, indent=2))
        return
    if not statuses:
        click.echo("no active runs here" + ("" if show_all else " (--all shows stopped ones)"))
    for st in statuses:
        click.echo("\n".join(status_lines(st)))


@cli.command()
@run_option
@click.option("-f", "--follow", is_flag=True, help="Keep printing as the conversation goes on.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per message (per change, with -f).")
@core_errors
def log(run_id: str | None, follow: bool, as_json: bool) -> None:
    """The conversation of a run, from its ledger."""
    run = find_run(here(), run_id, active=False)
    book, offset = Book(), 0
    printed: dict[str, str] = {}
    while True:
        for end, event in read_events(run.ledger_path, offset):
            book.apply(event)
            offset = end
        for entry in conversation(book):
            if printed.get(entry.message.id) == entry.state:
                continue
            if entry.message.id in printed and not as_json:
                click.echo(f"#{entry.seq} {entry.state}")
            elif as_json:
                click.echo(json.dumps(message_record(entry), ensure_ascii=False))
            else:
                click.echo("\n".join(message_lines(entry)))
            printed[entry.message.id] = entry.state
        if not follow or (book.run_state == "stopped"):
            return
        time.sleep(0.2)


@cli.command()
@run_option
@core_errors
def stop(run_id: str | None) -> None:
    """Close a run's tmux session, let its bridge exit, and mark it stopped."""
    run = find_run(here(), run_id, active=run_id is None)
    tmux = tmux_for(run)
    if stop_run(tmux, run):
        click.echo(f"stopped run {run.id}")
    else:
        click.echo(f"run {run.id} is already stopped")


@cli.command()
@run_option
@click.option("--llm", type=click.Choice(["claude", "codex"]),
              help="Have that agent's non-interactive mode write the prose, from the digest only.")
@click.option("--budget", default=400, show_default=True, envvar="PAIRLOOP_DIFF_BUDGET",
              help="Changed lines above which the notes suggest splitting the PR along the rounds.")
@click.option("--quiet", is_flag=True, help="Do not print the notes.")
@core_errors
def summarize(run_id: str | None, llm: str | None, budget: int, quiet: bool) -> None:
    """Write PLAN.md (in the repo) and PR notes (PR_NOTES.md in the run directory) from the ledger and git."""
    from pairloop.summary.summarize import summarize as write_summary

    run = find_run(here(), run_id, active=False)
    result = write_summary(run, llm, budget)
    if result.warning:
        click.echo(f"Warning: {result.warning}", err=True)
    if not quiet:
        click.echo(f"# {result.title}\n\n{result.body}")
    click.echo(f"wrote {result.plan_path} and {result.notes_path}", err=True)


@cli.command()
@run_option
@click.option("--dry-run", is_flag=True, help="Print the exact gh command instead of running it.")
@click.option("--update", "update_existing", is_flag=True,
              help="Replace the title and body of the PR already open for the branch (`gh pr edit`).")
@core_errors
def pr(run_id: str | None, dry_run: bool, update_existing: bool) -> None:
    """Open a draft PR with `gh pr create --draft`, title and body from the run's PR notes."""
    from pairloop.summary import pr as prs

    run = find_run(here(), run_id, active=False)
    if dry_run:
        click.echo((prs.plan_update if update_existing else prs.plan_pr)(run).shell())
        return
    if update_existing:
        click.echo(prs.update(run) or "updated the PR's title and body")
        return
    try:
        click.echo(prs.create(run))
    except prs.PrExists as exc:
        fail(f"{exc}", 1)


@cli.command()
@core_errors
def doctor() -> None:
    """Check tmux, git, the agents (found, version, can start) and gh; say how to fix what is missing.
    Exits 4 when the default pair cannot run."""
    from pairloop.doctor import report, run_checks

    lines, ready = report(run_checks(here()))
    click.echo("\n".join(lines))
    if not ready:
        sys.exit(MissingTool.exit_code)


@cli.command()
@click.option("--attach/--no-attach", default=None,
              help="Watch it in tmux (default when run from a terminal) or print the outcome.")
@click.option("--timeout", default=60.0, show_default=True, help="Seconds to wait for the pair to agree.")
@click.option("--keep", is_flag=True, help="Keep the throwaway repository afterwards.")
@core_errors
def demo(attach: bool | None, timeout: float, keep: bool) -> None:
    """Two simulated agents pair on a built-in task in a throwaway repo. No accounts needed."""
    from pairloop.demo import run_demo

    if attach is None:
        attach = sys.stdin.isatty() and sys.stdout.isatty()
    code = run_demo(attach, timeout, click.echo, keep)
    if code:
        fail("the demo pair did not agree in time", code)


def main() -> None:
    cli(prog_name="pairloop")
