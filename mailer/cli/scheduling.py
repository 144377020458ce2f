"""The scheduler: `scheduler run`, `scheduler plan`, `scheduler run-now`, `scheduler status`."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import typer
from rich.table import Table

from mailer.cli.app import Group, app, emit_json, flag, out, workspace
from mailer.errors import MailerError

scheduler_app = typer.Typer(
    cls=Group, rich_markup_mode="markdown", no_args_is_help=True, help="Scheduled reminder rounds."
)
app.add_typer(scheduler_app, name="scheduler")


@scheduler_app.command("run")
def scheduler_run(ctx: typer.Context) -> None:
    """Run the scheduler in the foreground until Ctrl-C / SIGTERM: each round at its time,
    to its audience, once; rounds missed while it was down are caught up within their
    window or recorded as missed. One per database.

    Example: mailer scheduler run
    """
    from mailer.rounds.scheduler import run_scheduler

    run_scheduler(
        workspace(ctx), log=lambda line: out.print(f"{datetime.now():%Y-%m-%d %H:%M:%S} {line}")
    )


@scheduler_app.command("plan")
def scheduler_plan(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Every rule: when it runs (Thai and ISO), its audience, how many offices it would
    reach now, and whether it already ran or was missed; then the next daily digest.

    Example: mailer scheduler plan
    """
    ws = workspace(ctx)
    zone = ws.campaign.timezone
    from mailer.rounds.due import plan

    plans = plan(ws)
    if as_json:
        emit_json([p.to_json(zone) for p in plans])
        return
    table = Table("rule", "when (Bangkok)", "ISO", "audience", "reach", "status")
    for p in plans:
        iso = p.due_at.astimezone(zone).isoformat() if p.due_at else ""
        table.add_row(p.rule_id, p.due_thai(zone), iso, p.audience, str(p.reach), p.status)
    out.print(table)
    from mailer.rounds.digest import next_digest

    if (coming := next_digest(ws)) is not None:
        local = coming.astimezone(zone)
        out.print(f"Next digest to the coordinator (สรุปประจำวัน): {local:%Y-%m-%d %H:%M} ({zone})")


@scheduler_app.command("run-now")
def scheduler_run_now(
    ctx: typer.Context,
    rule: Annotated[str, typer.Argument(help="A rule id from the campaign file.")],
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Say what would be sent.")] = False,
) -> None:
    """Run one round by hand (idempotent: offices that already have it get nothing).

    Example: mailer scheduler run-now followup-no-reply --dry-run
    """
    from mailer.rounds.due import run_now

    report = run_now(workspace(ctx), rule, dry_run=dry_run)
    if dry_run:
        out.print(
            f"Dry run: round {rule} would enqueue {report.enqueued} message(s) "
            f"({report.selected} office(s) in its audience). Nothing was written or sent."
        )
        return
    d = report.drain
    out.print(
        f"Round {rule}: {report.enqueued} enqueued; {d.sent} sent, "
        f"{d.retry} to retry later, {d.failed} failed."
    )
    if d.stopped:
        raise MailerError(d.stopped)


@scheduler_app.command("status")  # standby and status (#14)
def scheduler_status(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Who runs the rounds (host, pid, since) and who stands by, the last pass, the last
    good mail sync and the last sync error, the next rounds and the next digest.

    For monitoring, read `--json` (the exit code is 0 whenever the status could be read):
    alert when `problems` is not empty. It names no scheduler running (`state` "none" or
    "stopped"), an active one stuck or dead (`state` "stale" or "dead": `active.stale`, no
    heartbeat for 30 s), a lost lock, a failing mail sync (`sync.failing`).

    Example: mailer scheduler status --json
    """
    from mailer.rounds.status import scheduler_status as read_status

    ws = workspace(ctx)
    zone = ws.campaign.timezone
    status = read_status(ws)
    if as_json:
        emit_json(status.to_json(zone))
        return
    for line in status.lines(zone):
        out.print(line)
    for problem in status.problems:
        flag(out, "✗", "red", problem)
    if not status.next_rounds:
        out.print("Next rounds: none to come.")
        return
    table = Table("next round", "when (Bangkok)", "audience", "reach", "status")
    for p in status.next_rounds:
        table.add_row(p.rule_id, p.due_thai(zone), p.audience, str(p.reach), p.status)
    out.print(table)
