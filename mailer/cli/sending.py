"""Sending: `send invitations` and `worker`."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated

import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
)

from mailer.cli.app import app, err, flag, out, send_app, workspace
from mailer.errors import MailerError

if TYPE_CHECKING:  # the sending modules are imported by the commands that send
    from mailer.delivery.stats import DrainStats, Outcome
    from mailer.rounds.send import SendReport
    from mailer.workspace import Workspace

# --- send --------------------------------------------------------------------------------


DryRun = Annotated[
    bool, typer.Option("--dry-run", help="Write nothing, send nothing; say what would happen.")
]
NewServer = Annotated[
    bool,
    typer.Option("--new-server", help="Accept an SMTP server other than the one this ledger used."),
]


@send_app.command("invitations")
def send_invitations(
    ctx: typer.Context,
    dry_run: DryRun = False,
    limit: Annotated[
        int | None, typer.Option(min=1, help="Enqueue at most N new invitations this run.")
    ] = None,
    only: Annotated[
        list[str] | None,
        typer.Option(
            help="Only this invitee id, province (TH-50 or Thai name) or agency code; repeatable."
        ),
    ] = None,
    test_to: Annotated[
        str | None, typer.Option(help="Send one sample to this address; the ledger is not touched.")
    ] = None,
    new_server: NewServer = False,
    devserver: Annotated[
        bool,
        typer.Option(
            "--devserver", help="Run the local dev mail server for the length of this run."
        ),
    ] = False,
    workers: Annotated[
        int, typer.Option(min=1, max=64, help="Sender processes draining the ledger together.")
    ] = 1,
) -> None:
    """Send the invitation to every invitee once (idempotent: a second run sends nothing new).

    Example: mailer send invitations --only TH-50 --dry-run
    """
    from mailer.delivery.workers import stop_on_signals
    from mailer.rounds.send import send_round, send_test

    ws = workspace(ctx)
    with _maybe_devserver(ws, devserver and not dry_run):
        if test_to:
            sample = send_test(ws, test_to, only or ())
            out.print(
                f"Sent a sample ({sample.invitee_id}) to {sample.address} via {sample.server}: "
                f"{sample.reply}. The ledger was not touched."
            )
            return
        with _bars() as (on_outcome, on_letter), stop_on_signals(ws.stopping):
            report = send_round(
                ws,
                "invitation",
                only=only or (),
                limit=limit,
                dry_run=dry_run,
                new_server=new_server,
                progress=on_outcome,
                workers=workers,
                worker_env=os.environ,
                letters=on_letter,
            )
        _print_send(report)


@contextmanager
def _maybe_devserver(ws: Workspace, wanted: bool) -> Iterator[None]:
    if not wanted:
        yield
        return
    from mailer.delivery.devserver import DevServer

    smtp = ws.settings.smtp
    with DevServer(smtp.host, smtp.port, ws.settings.maildir) as server:
        err.print(f"Dev mail server on {smtp.host}:{smtp.port}, saving to {server.maildir}")
        yield
    out.print(
        f"Messages received by the dev mail server this run: {server.handler.count}; "
        f"all mail is in {server.maildir.resolve() / 'new'}"
    )


@contextmanager
def _bars() -> Iterator[tuple[Callable[[Outcome], None], Callable[[int, int, str], None]]]:
    """Progress on stderr: the letters rendered ahead (when the campaign attaches them),
    then the messages sent."""
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[last]}"),
        TimeRemainingColumn(),
        console=err,
        transient=True,
    )
    tasks: dict[str, TaskID] = {}

    def on_outcome(outcome: Outcome) -> None:
        if "send" not in tasks:
            tasks["send"] = progress.add_task("Sending", total=None, last="")
        progress.update(tasks["send"], advance=1, last=f"{outcome.invitee_id} {outcome.state}")

    def on_letter(done: int, total: int, last: str) -> None:
        if "letters" not in tasks:
            tasks["letters"] = progress.add_task("Letters (PDF)", total=total, last="")
        progress.update(tasks["letters"], completed=done, last=last[:60])
        if not last.endswith(": stored"):
            flag(err, "✗", "red", last)

    with progress:
        yield on_outcome, on_letter


def _print_send(report: SendReport) -> None:
    if report.dry_run:
        out.print(
            f"Dry run: {report.selected} invitee(s) selected; {report.already_in_ledger} already "
            f"in the ledger; would enqueue {report.enqueued} new invitation(s) and send "
            f"{report.due} message(s) through {report.server}. Nothing was written or sent."
        )
        return
    _print_problems(report.drain)
    out.print(
        f"Enqueued {report.enqueued} new invitation(s) ({report.already_in_ledger} already in the "
        f"ledger). {_this_run(report.drain)}, through {report.server}."
    )
    out.print("Ledger: " + ", ".join(f"{k} {v}" for k, v in report.totals.items() if v))
    if report.drain.stopped:
        raise MailerError(report.drain.stopped)


def _this_run(d: DrainStats) -> str:
    return f"This run: {d.sent} sent, {d.retry} to retry later, {d.failed} failed"


def _print_problems(d: DrainStats) -> None:
    if d.recovered_uncertain:
        flag(
            err, "!", "yellow",
            f"{d.recovered_uncertain} message(s) were being sent when a previous run stopped; "
            "they are marked uncertain (see `mailer deliveries --state uncertain`). "
            "Nothing was re-sent.",
        )  # fmt: skip
    for outcome in d.problems:
        flag(err, "✗", "red", f"{outcome.invitee_id}: {outcome.state}: {outcome.reply}")


def _announce(ctx: typer.Context, *, cancel: bool, dry_run: bool, new_server: bool) -> None:
    from mailer.delivery.workers import stop_on_signals
    from mailer.rounds.send import send_announcement

    ws = workspace(ctx)
    with _bars() as (on_outcome, on_letter), stop_on_signals(ws.stopping):
        result, stats = send_announcement(
            ws, cancel=cancel, dry_run=dry_run, new_server=new_server, progress=on_outcome,
            letters=on_letter,
        )  # fmt: skip
    what = "cancellation" if cancel else "update"
    for change in result.changes:
        out.print(f"  {change.label}: {change.old} → {change.new}")
    if dry_run:
        out.print(
            f"Dry run: would send the {what} (SEQUENCE {result.sequence}) to {result.offices} "
            "office(s) that received the invitation. Nothing was written or sent."
        )
        return
    _print_problems(stats)
    stopped = f"; {result.stopped_queued} queued message(s) will not be sent" if cancel else ""
    out.print(
        f"Enqueued the {what} (SEQUENCE {result.sequence}) for {result.enqueued} office(s)"
        f"{stopped}. {_this_run(stats)}."
    )
    if stats.stopped:
        raise MailerError(stats.stopped)


@send_app.command("update")
def send_update(
    ctx: typer.Context,
    dry_run: DryRun = False,
    new_server: NewServer = False,
) -> None:
    """Tell every office that received the invitation that the date, time or place changed:
    the same calendar entry moves (same UID, SEQUENCE+1) and they are asked again.

    Example: mailer send update --dry-run
    """
    _announce(ctx, cancel=False, dry_run=dry_run, new_server=new_server)


@send_app.command("cancel")
def send_cancel(
    ctx: typer.Context,
    dry_run: DryRun = False,
    new_server: NewServer = False,
) -> None:
    """Cancel the event in every calendar that holds the invitation (METHOD:CANCEL); nothing
    still queued for it is sent afterwards.

    Example: mailer send cancel --dry-run
    """
    _announce(ctx, cancel=True, dry_run=dry_run, new_server=new_server)


@app.command()
def worker(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
    forever: Annotated[
        bool, typer.Option("--forever", help="Keep draining until SIGTERM/Ctrl-C.")
    ] = False,
    poll: Annotated[float, typer.Option(min=1, help="Seconds between passes with --forever.")] = 30,
    after_go: Annotated[bool, typer.Option("--after-go", hidden=True)] = False,
) -> None:
    """Drain the ledger once: send every message that is due, then exit (or, with
    --forever, look again every --poll seconds until stopped). Run several (on one or more
    hosts, against one PostgreSQL ledger) to send in parallel. SIGTERM or Ctrl-C stops it
    after the message in hand is recorded.

    Example: mailer worker --forever --poll 30
    """
    from mailer.delivery.drain import drain_due, work_forever
    from mailer.delivery.workers import leave_helper, stop_on_signals, wait_for_go
    from mailer.rounds.context import delivery_context

    ws = workspace(ctx)
    with stop_on_signals(ws.stopping):
        # A helper of `send … --workers N` gets ready, then waits for the round.
        context = wait_for_go(lambda: delivery_context(ws)) if after_go else delivery_context(ws)
        if context is None:
            return  # the round was not queued after all: nothing to send
        stats = work_forever(context, poll, log=out.print) if forever else drain_due(context)
    if as_json:
        out.print(json.dumps(stats.summary(), ensure_ascii=False), markup=False)
    else:
        out.print(
            f"Worker done: {stats.sent} sent, {stats.retry} to retry later, {stats.failed} "
            f"failed, {stats.uncertain} uncertain."
        )
    if stats.stopped:
        raise MailerError(stats.stopped)
    if after_go:
        leave_helper(out.file.flush, ws.close)
