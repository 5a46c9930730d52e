"""The command line. Thin: parse, call the core, print what it returns.

Exit codes: 0 ok, 1 failed, 2 usage error, 3 no such run, 4 a needed program (tmux, an agent) is missing, 5 the file
system refused (no space left, over quota, read-only, no permission: nothing was sent or requested).
Core errors carry their exit code; :class:`PairloopGroup` turns them into click's, one line on stderr, and an
OSError the same way, by its errno — never a traceback.
"""

from __future__ import annotations

import errno
import json
import os
import shlex
import sys
from pathlib import Path
from typing import Any, Literal

import click

from bridge import LedgerWriteError, Tmux, TmuxError, TmuxMissing
from pairloop import __version__
from pairloop.errors import CannotWrite, MissingTool, PairloopError, UsageProblem, describe_os_error
from pairloop.listing import listing, ls_lines
from pairloop.runs import worktree as worktrees
from pairloop.runs.attach import attach_command, how_to_show, show
from pairloop.runs.config import default_roles, read_config
from pairloop.runs.lifecycle import (
    StartOptions,
    overrule_done,
    relay_note,
    request_control,
    send_message,
    start_run,
    stop_run,
    tmux_for,
    wait_until_running,
)
from pairloop.runs.store import all_runs, choose_run, find_run, list_runs, repo_root
from pairloop.runs.suggest import hint as verify_hint
from pairloop.runs.suggest import verify_line
from pairloop.verbs import TO_CHOICES, VERBS, body_of, recipients, run_env, sender_from
from pairloop.views import log_output, run_status, status_lines

_FAILURES: dict[int, type[click.ClickException]] = {}


def failure(message: str, exit_code: int) -> click.ClickException:
    """A core error on its way out: ``Error: <message>`` on stderr and the core error's exit code (which click
    keeps on the exception's class, hence a class per code)."""
    if exit_code not in _FAILURES:
        _FAILURES[exit_code] = type(f"Exit{exit_code}", (click.ClickException,), {"exit_code": exit_code})
    return _FAILURES[exit_code](message)


# What a command the file system refused has not done (said after the refusal).
NOT_DONE = {**dict.fromkeys(VERBS, "the message was not sent"), **dict.fromkeys(("pause", "unpause"),
            "the request was not sent"), "start": "the run was not started", "stop": "the run was not stopped"}


class PairloopGroup(click.Group):
    """The one place core errors become the command line's; a command never catches them itself."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except PairloopError as exc:
            raise failure(str(exc), exc.exit_code) from None
        except TmuxMissing as exc:
            raise failure(str(exc), MissingTool.exit_code) from None
        except TmuxError as exc:
            raise failure(f"tmux: {exc}", PairloopError.exit_code) from None
        except LedgerWriteError as exc:
            not_done = NOT_DONE.get(ctx.invoked_subcommand or "", "")
            raise failure(f"{exc.reason}: {not_done}" if not_done else exc.reason, CannotWrite.exit_code) from None
        except OSError as exc:
            if exc.errno == errno.EPIPE:
                raise  # the reader went away (`pairloop log | head`): click ends quietly
            not_done = NOT_DONE.get(ctx.invoked_subcommand or "", "")
            raise failure(describe_os_error(exc, not_done), CannotWrite.exit_code) from None


class TextCommand(click.Command):
    """A command whose text may start with '-' (reviewers write findings as bullets: ``- add a test``).

    Every token that is not one of the command's own options, or an option's value, is text, exactly as if it
    came after ``--``; a token of just '-' still means standard input. Options keep working before or after the
    text, and ``--`` still ends them."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        takes_value: dict[str, bool] = {}
        for param in self.get_params(ctx):
            if isinstance(param, click.Option):
                takes_value |= {name: not (param.is_flag or param.count) for name in param.opts}
                takes_value |= dict.fromkeys(param.secondary_opts, False)
        options: list[str] = []
        texts: list[str] = []
        tokens = iter(args)
        for token in tokens:
            if token == "--":
                texts.extend(tokens)
                break
            name = token.split("=", 1)[0] if token.startswith("--") else token
            if name not in takes_value:
                texts.append(token)
                continue
            options.append(token)
            value = next(tokens, None) if takes_value[name] and name == token else None
            if value is not None:  # the option's value is the next token, whatever it looks like
                options.append(value)
        return super().parse_args(ctx, [*options, "--", *texts])


def here() -> Path:
    return repo_root(Path(os.environ.get("PAIRLOOP_REPO") or os.getcwd()))


run_option = click.option("--run", "run_id", envvar="PAIRLOOP_RUN", help="Run id (or a unique prefix).")


@click.group(cls=PairloopGroup, context_settings={"help_option_names": ["-h", "--help"]})
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
@click.option("--worktree/--no-worktree", default=None,
              help="Work in a new git worktree on a new branch from HEAD, leaving your checkout alone "
                   "[default: `worktree` in the configuration, else off].")
@click.option("--branch", metavar="NAME",
              help="The new branch's name (implies --worktree)  [default: pairloop/<run id>]")
@click.option("--verify", "verify_cmd", metavar="CMD",
              help="A command (run by the shell) the bridge runs on every review checkpoint, in a clean worktree "
                   "of it; `done` needs the approved one to pass  [default: `verify` in the configuration].")
@click.option("--verify-timeout", type=click.FloatRange(min=0, min_open=True), metavar="SECONDS",
              help="Kill the verify command after this long  [default: `verify_timeout`, else 600].")
@click.option("--max-tokens", type=click.IntRange(min=0), metavar="N",
              help="Pause the relay and call you when both agents together have used more than N tokens (0: no "
                   "budget)  [default: `max_tokens` in the configuration, else none].")
@click.option("--notify", "notify_cmd", metavar="CMD",
              help="A command (split like a shell would) given one JSON object on stdin per call to you  "
                   "[default: `notify` in the configuration].")
def start(task: str, worker: str | None, reviewer: str | None, worker_model: str | None,
          reviewer_model: str | None, worker_arg: tuple[str, ...], reviewer_arg: tuple[str, ...], trust: bool,
          yolo: bool, plan: bool | None, mirror: bool, max_rounds: int, max_messages: int, attach: bool,
          socket: str | None, worktree: bool | None, branch: str | None, verify_cmd: str | None,
          verify_timeout: float | None, max_tokens: int | None, notify_cmd: str | None) -> None:
    """Start a pair session on TASK in the current repository: by default claude works and codex reviews."""
    repo = here()
    config = read_config(repo)
    default_worker, default_reviewer = default_roles(config)
    if worktree is False and branch:
        raise UsageProblem("--branch names the new worktree's branch: it cannot go with --no-worktree")
    in_worktree = bool(branch) or (worktrees.wants_worktree(config) if worktree is None else worktree)
    options = StartOptions(
        worker=worker or default_worker, reviewer=reviewer or default_reviewer,
        models={r: m for r, m in (("worker", worker_model), ("reviewer", reviewer_model)) if m},
        extra_args={"worker": worker_arg, "reviewer": reviewer_arg}, yolo=yolo, trust=trust,
        plan=len(task.strip().splitlines()) > 1 if plan is None else plan, mirror=mirror,
        max_rounds=max_rounds, max_messages=max_messages, worktree=in_worktree, branch=branch,
        verify=verify_cmd, verify_timeout=verify_timeout, max_tokens=max_tokens,
        notify=tuple(shlex.split(notify_cmd)) if notify_cmd is not None else None)
    tmux = Tmux(socket_name=socket or None)
    run = start_run(tmux, repo, task, options)
    states = wait_until_running(tmux, run)
    click.echo(f"run {run.id}  session {run.session}")
    if run.manifest.workdir:
        click.echo(f"worktree {run.manifest.workdir}  branch {run.manifest.branch}")
        if worktrees.uncommitted(repo):
            click.echo("your uncommitted changes stay in your checkout: the worktree starts from HEAD", err=True)
    click.echo(f"verify: {verify_line(run.manifest.verify, run.manifest.verify_timeout)}" if run.manifest.verify
               else verify_hint(repo))
    for role, state in states.items():
        if state == "dialog":
            click.echo(f"the {role} shows a dialog: answer it in its pane (or start with --trust for folder trust)")
    how = how_to_show(run.socket_path, os.environ, wanted=attach, terminal=sys.stdin.isatty())
    if how == "print":
        click.echo(f"watch it: {attach_command(tmux, run.session)}")
    else:
        show(tmux, run.session, how, os.environ)


def _post(verb_name: str, text: str, to: str | None, run_id: str | None, *, fixed: tuple[str, ...] = (),
          disputed: tuple[str, ...] = ()) -> None:
    verb = VERBS[verb_name]
    sender = sender_from(os.environ)
    to_roles = recipients(verb, sender, to)
    body = body_of(text, sys.stdin.read)
    chosen = choose_run(here(), run_id, run_env(sender, os.environ))
    run = chosen.run
    click.echo(send_message(run, sender, to_roles, body, verb.kind, fixed, disputed).id)
    if chosen.note:
        click.echo(f"sent {chosen.note}", err=True)
    note = relay_note(run, "the message waits in the outbox")
    if note:
        click.echo(note, err=True)


to_option = click.option("--to", type=click.Choice(TO_CHOICES),
                         help="Recipient; inside an agent pane it defaults to the partner.")


@cli.command(cls=TextCommand)
@click.argument("text")
@to_option
@run_option
def send(text: str, to: str | None, run_id: str | None) -> None:
    """Send TEXT (or '-' for stdin) to an agent through the bridge; prints the message id."""
    _post("send", text, to, run_id)


@cli.command(cls=TextCommand)
@click.argument("note", required=False, default=VERBS["review"].default_text)
@click.option("--fixed", multiple=True, metavar="ID", help="A finding this round fixes (repeatable).")
@click.option("--disputed", multiple=True, metavar="ID", help="A finding the worker disputes (repeatable).")
@run_option
def review(note: str, fixed: tuple[str, ...], disputed: tuple[str, ...], run_id: str | None) -> None:
    """Worker: ask for review. The bridge checkpoints the work (commits and working tree) for this round and
    shows the reviewer what changed since the last reviewed checkpoint."""
    _post("review", note, None, run_id, fixed=fixed, disputed=disputed)


@cli.command(cls=TextCommand)
@click.argument("note", required=False, default=VERBS["approve"].default_text)
@run_option
def approve(note: str, run_id: str | None) -> None:
    """Reviewer (or the human, overruling it): approve the current round's checkpoint."""
    _post("approve", note, None, run_id)


@cli.command(cls=TextCommand)
@click.argument("text")
@run_option
def changes(text: str, run_id: str | None) -> None:
    """Reviewer (or the human, overruling it): ask for changes. Numbered lines are separate findings, each
    given a stable id (F<round>.<n>) that later rounds refer to. TEXT may be '-' for stdin."""
    _post("changes", text, None, run_id)


@cli.command(cls=TextCommand)
@click.argument("note", required=False, default=VERBS["done"].default_text)
@click.option("--force", is_flag=True,
              help="The human only, from your own shell: accept the work as it is, overruling the done gate "
                   "(recorded in the ledger as an overrule).")
@run_option
def done(note: str, force: bool, run_id: str | None) -> None:
    """Worker: claim the task is finished. The run completes only when the latest verdict approves the
    current state (and, with a verify command, its verification passed); otherwise the bridge tells the worker
    why not. The human overrules that with --force."""
    if not force:
        _post("done", note, None, run_id)
        return
    sender = sender_from(os.environ)
    if sender != "human":
        raise UsageProblem("only the human overrules the done gate (`pairloop done --force`, from your own shell)")
    run = choose_run(here(), run_id, run_env(sender, os.environ)).run
    overrule_done(run, "" if note == VERBS["done"].default_text else note)
    click.echo(f"done requested over the gate for run {run.id} (recorded as the human's overrule)")
    note_down = relay_note(run, "the request waits")
    if note_down:
        click.echo(note_down, err=True)


@cli.command()
@run_option
def pause(run_id: str | None) -> None:
    """Hold all relaying: messages keep queueing, nothing is lost, until `pairloop unpause`."""
    _control(run_id, "pause")


@cli.command()
@run_option
def unpause(run_id: str | None) -> None:
    """Release the relay: queued messages go out in order (also after the governor paused it)."""
    _control(run_id, "unpause")


def _control(run_id: str | None, action: Literal["pause", "unpause"]) -> None:
    chosen = choose_run(here(), run_id, run_env(sender_from(os.environ), os.environ))
    run = chosen.run
    request_control(run, action)
    if chosen.note:
        click.echo(f"sent {chosen.note}", err=True)
    click.echo(f"{action} requested for run {run.id}")
    note = relay_note(run, "the request waits")
    if note:
        click.echo(note, err=True)


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="One JSON document with every run.")
@click.option("--all", "show_all", is_flag=True, help="Include stopped runs.")
def status(as_json: bool, show_all: bool) -> None:
    """The runs of this repository: session, each agent's role and state, queued and delivered counts."""
    runs = [r for r in list_runs(here()) if show_all or not r.stopped]
    statuses = []
    for run in runs:
        try:
            tmux: Tmux | None = tmux_for(run)
        except TmuxMissing:
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
def log(run_id: str | None, follow: bool, as_json: bool) -> None:
    """The conversation of a run, from its ledger."""
    for text in log_output(find_run(here(), run_id, active=False), follow=follow, as_json=as_json):
        click.echo(text)


@cli.command()
@run_option
@click.option("--remove-worktree", is_flag=True,
              help="Then remove the run's worktree and its branch (refused if that would lose work).")
@click.option("--keep-branch", is_flag=True, help="With --remove-worktree: remove the worktree, keep the branch.")
@click.option("--force", is_flag=True, help="With --remove-worktree: remove even what would lose work.")
def stop(run_id: str | None, remove_worktree: bool, keep_branch: bool, force: bool) -> None:
    """Close a run's tmux session, let its bridge exit, and mark it stopped."""
    chosen = choose_run(here(), run_id, active=run_id is None)
    run = chosen.run
    if chosen.note:
        click.echo(f"stopping {chosen.note}", err=True)
    if stop_run(tmux_for(run), run):
        click.echo(f"stopped run {run.id}")
    else:
        click.echo(f"run {run.id} is already stopped")
    if remove_worktree:
        removal = worktrees.removal_of(run)
        if removal is None:
            click.echo(f"run {run.id} has no worktree to remove")
            return
        click.echo(f"removed {', '.join(worktrees.remove(removal, force=force, keep_branch=keep_branch))}")


@cli.command(name="ls")
@click.option("--json", "as_json", is_flag=True, help="One JSON document with every run.")
@click.option("--all", "show_all", is_flag=True, help="Include stopped runs.")
def ls_(as_json: bool, show_all: bool) -> None:
    """Every live run on this machine, whatever its repository: repo, branch, agents and their states, round,
    and whether it needs you. A run directory that cannot be read is listed as damaged."""
    records = listing(show_all)
    if as_json:
        click.echo(json.dumps({"runs": records}, indent=2))
    elif not records:
        click.echo("no active runs" + ("" if show_all else " (--all shows stopped ones)"))
    else:
        click.echo("\n".join(ls_lines(records)))


@cli.command()
@click.option("--all", "every_repo", is_flag=True, help="Every repository's finished runs, not only this one's.")
@click.option("--keep-branch", is_flag=True, help="Remove the worktrees, keep their branches.")
@click.option("--force", is_flag=True, help="Remove even worktrees and branches whose work exists nowhere else.")
@click.option("--dry-run", is_flag=True, help="Only list what would be removed.")
def clean(every_repo: bool, keep_branch: bool, force: bool, dry_run: bool) -> None:
    """Remove the worktrees, and their branches, of this repository's stopped runs; lists what it removes. A
    branch with commits that exist nowhere else, or a worktree with uncommitted changes, is left (saying which)
    unless --force."""
    done = worktrees.clean(all_runs() if every_repo else list_runs(here()), force=force, keep_branch=keep_branch,
                      dry_run=dry_run)
    for line in done.removed:
        click.echo(line)
    for line in done.skipped:
        click.echo(line, err=True)
    if not (done.removed or done.refused or done.skipped):
        click.echo("no finished run's worktree to remove")
    if done.refused:
        raise PairloopError("\n".join(done.refused))


@cli.command(name="resume")
@click.argument("run_id", metavar="[RUN]", required=False, envvar="PAIRLOOP_RUN")
@click.option("--attach/--no-attach", default=True,
              help="Attach to the session afterwards (default), or only report what was brought back.")
def resume_command(run_id: str | None, attach: bool) -> None:
    """Bring back whatever of a run is down, and only that: the whole session (after a reboot, a logout, a
    `pairloop stop`), an agent that exited, or the bridge. Each agent resumes its own conversation; one that
    cannot is started afresh with a recap of the run, and that is said. RUN defaults to this repository's newest."""
    from pairloop.runs.resume import check_place, find_to_resume, resume_run, wait_until_ready

    run = find_to_resume(here(), run_id, dict(os.environ))
    check_place(run.manifest)
    tmux = tmux_for(run)
    done = resume_run(tmux, run, dict(os.environ))
    for line in done.lines():
        click.echo(line)
    if not done.nothing_to_do:
        wait_until_ready(tmux, done.run)
    _show(tmux, done.run.socket_path, done.run.session, attach)


@cli.command(name="attach")
@click.argument("run_id", metavar="[RUN]", required=False, envvar="PAIRLOOP_RUN")
def attach_command_(run_id: str | None) -> None:
    """Attach to a live run's tmux session (or switch to it from inside that tmux). RUN defaults to this
    repository's newest active run; a run whose session is gone says so (`pairloop resume` brings it back)."""
    from pairloop.runs.resume import find_to_resume

    run = find_to_resume(here(), run_id, dict(os.environ)) if run_id else find_run(here(), None)
    tmux = tmux_for(run)
    if run.stopped or not tmux.has_session(run.session):
        why = "is stopped" if run.stopped else f"has no tmux session any more ({run.session})"
        raise PairloopError(f"run {run.id} {why}: `pairloop resume {run.id}` brings it back")
    _show(tmux, run.socket_path, run.session, True)


def _show(tmux: Tmux, socket_path: str, session: str, attach: bool) -> None:
    how = how_to_show(socket_path, os.environ, wanted=attach, terminal=sys.stdin.isatty())
    if how == "print":
        click.echo(f"watch it: {attach_command(tmux, session)}")
    else:
        show(tmux, session, how, os.environ)


@cli.command()
@run_option
@click.option("--llm", type=click.Choice(["claude", "codex"]),
              help="Have that agent's non-interactive mode write the prose, from the digest only.")
@click.option("--budget", default=400, show_default=True, envvar="PAIRLOOP_DIFF_BUDGET",
              help="Changed lines above which the notes suggest splitting the PR along the rounds.")
@click.option("--quiet", is_flag=True, help="Do not print the notes.")
def summarize(run_id: str | None, llm: str | None, budget: int, quiet: bool) -> None:
    """Write PLAN.md (in the repo) and PR notes (PR_NOTES.md in the run directory) from the ledger and git."""
    from pairloop.summary.summarize import summarize as write_summary

    run = find_run(here(), run_id, active=False)
    result = write_summary(run, llm, budget)
    if result.warning:
        click.echo(f"Warning: {result.warning}", err=True)
    if not quiet:
        click.echo(f"# {result.title}\n\n{result.body}")
    click.echo(f"wrote {result.plan_path} and {result.notes_path}"
               + (f" and {result.report_path}" if result.report_path else ""), err=True)


@cli.command()
@run_option
@click.option("--open", "open_it", is_flag=True, help="Then open it in your web browser.")
def report(run_id: str | None, open_it: bool) -> None:
    """Write the run report, one self-contained report.html in the run directory (no network needed): the
    verdict, every round's checkpoint with its diff, findings and verification, both panes' screens at each
    checkpoint from their recordings, the human's turns and the timeline of the messages. Prints its path."""
    from pairloop.summary.report import open_in_browser, write_report

    path = write_report(find_run(here(), run_id, active=False))
    click.echo(str(path))
    if open_it and not open_in_browser(path):
        click.echo(f"no web browser could be started: open {path.resolve().as_uri()} yourself", err=True)


@cli.command()
@run_option
@click.option("--dry-run", is_flag=True, help="Print the exact gh command instead of running it.")
@click.option("--update", "update_existing", is_flag=True,
              help="Replace the title and body of the PR already open for the branch (`gh pr edit`).")
def pr(run_id: str | None, dry_run: bool, update_existing: bool) -> None:
    """Open a draft PR with `gh pr create --draft`, title and body from the run's PR notes."""
    from pairloop.summary import pr as prs

    run = find_run(here(), run_id, active=False)
    if dry_run:
        click.echo((prs.plan_update if update_existing else prs.plan_pr)(run).shell())
    elif update_existing:
        click.echo(prs.update(run) or "updated the PR's title and body")
    else:
        click.echo(prs.create(run))


@cli.command()
@click.pass_context
def doctor(ctx: click.Context) -> None:
    """Check tmux, git, the agents (found, version, can start) and gh; say how to fix what is missing.
    Exits 4 when the default pair cannot run."""
    from pairloop.doctor import report, run_checks

    lines, ready = report(run_checks(here()))
    click.echo("\n".join(lines))
    if not ready:
        ctx.exit(MissingTool.exit_code)


@cli.command()
@click.option("--attach/--no-attach", default=None,
              help="Watch it in tmux (default when run from a terminal) or print the outcome.")
@click.option("--timeout", default=60.0, show_default=True, help="Seconds to wait for the pair to agree.")
@click.option("--keep", is_flag=True, help="Keep the throwaway repository afterwards.")
def demo(attach: bool | None, timeout: float, keep: bool) -> None:
    """Two simulated agents pair on a built-in task in a throwaway repo. No accounts needed."""
    from pairloop.demo import run_demo

    if attach is None:
        attach = sys.stdin.isatty() and sys.stdout.isatty()
    if run_demo(attach, timeout, click.echo, keep):
        raise PairloopError("the demo pair did not agree in time")


@cli.command()
@run_option
@click.option("--role", type=click.Choice(["worker", "reviewer"]), default="worker", show_default=True,
              help="Whose pane to play.")
@click.option("--speed", default=1.0, show_default=True, help="Play this many times faster.")
@click.option("--from-round", type=int, metavar="N", help="Start where round N opened (its checkpoint).")
@click.option("--player", type=click.Choice(["auto", "asciinema", "builtin"]), default="auto", show_default=True,
              help="asciinema when installed (auto), or pairloop's own small player.")
def replay(run_id: str | None, role: str, speed: float, from_round: int | None, player: str) -> None:
    """Play the recording of an agent's pane in this terminal, as the human saw it (pauses shortened)."""
    from pairloop.replay import plan_replay
    from pairloop.replay import replay as play_recording

    run = find_run(here(), run_id, active=False)
    play_recording(plan_replay(run, role, from_round), speed, player, lambda text: click.echo(text, err=True))


def main() -> None:
    cli(prog_name="pairloop")
