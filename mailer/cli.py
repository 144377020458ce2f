"""The command line: each command parses its options, calls one library function and
prints the report it returns. Domain errors become `Error: …` and exit code 1 here, in
`_Group.invoke`, and nowhere else; bad flags exit 2 (click)."""

from __future__ import annotations

import json
import os
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table
from typer.core import TyperGroup

from mailer.check import run_check
from mailer.contacts import ImportReport, import_contacts
from mailer.devserver import DevServer
from mailer.errors import MailerError
from mailer.report import status as status_report
from mailer.sender import Outcome, SendReport, send_round, send_test
from mailer.settings import load_settings
from mailer.workspace import Workspace

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)


class _Group(TyperGroup):
    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except MailerError as exc:
            err.print(f"Error: {exc}", markup=False)
            raise typer.Exit(1) from exc
        finally:
            if isinstance(ctx.obj, Workspace):
                ctx.obj.close()


app = typer.Typer(
    cls=_Group,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    help="Thai seminar invitations with real calendar invites, a delivery ledger, "
    "reminders and reply tracking. Settings come from the environment and .env.",
)
send_app = typer.Typer(cls=_Group, no_args_is_help=True, help="Send a round of messages.")
app.add_typer(send_app, name="send")


@app.callback()
def _main(ctx: typer.Context) -> None:
    if ctx.resilient_parsing:
        return
    ctx.obj = Workspace(load_settings(os.environ))


def _ws(ctx: typer.Context) -> Workspace:
    ws = ctx.find_root().obj
    assert isinstance(ws, Workspace)
    return ws


# --- import ------------------------------------------------------------------------------


@app.command("import")
def import_(
    ctx: typer.Context,
    path: Annotated[
        Path, typer.Argument(help="contacts.csv (UTF-8, UTF-8 BOM, windows-874) or .xlsx")
    ],
    skip_invalid: Annotated[
        bool, typer.Option("--skip-invalid", help="Import the valid rows even if some are bad.")
    ] = False,
) -> None:
    """Import or update the invitee list; all rows or nothing.

    Example: mailer import contacts.csv
    """
    report = import_contacts(_ws(ctx).engine, path, skip_invalid=skip_invalid)
    _print_import(report)
    if report.errors and not report.written:
        raise MailerError(
            f"{path}: {len(report.errors)} problem(s), nothing was imported. Fix the rows above "
            "and import again, or use --skip-invalid to import the valid rows only"
        )


def _print_import(report: ImportReport) -> None:
    for problem in report.errors:
        err.print(f"[red]✗[/red] {problem}", markup=True)
    for problem in report.warnings:
        err.print(f"[yellow]![/yellow] {problem}", markup=True)
    if report.written:
        skipped = f", {len(report.errors)} bad row(s) skipped" if report.errors else ""
        kept = (
            f"; {report.not_in_file} invitee(s) not in this file were kept"
            if report.not_in_file
            else ""
        )
        out.print(
            f"Imported {len(report.records)} invitee(s) from {report.source}: "
            f"{report.created} new, {report.updated} updated, {report.unchanged} unchanged"
            f"{skipped}{kept}."
        )


# --- send --------------------------------------------------------------------------------


@send_app.command("invitations")
def send_invitations(
    ctx: typer.Context,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Write nothing, send nothing; say what would happen.")
    ] = False,
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
    new_server: Annotated[
        bool,
        typer.Option(
            "--new-server", help="Accept an SMTP server other than the one this ledger used."
        ),
    ] = False,
    devserver: Annotated[
        bool,
        typer.Option(
            "--devserver", help="Run the local dev mail server for the length of this run."
        ),
    ] = False,
) -> None:
    """Send the invitation to every invitee once (idempotent: a second run sends nothing new).

    Example: mailer send invitations --only TH-50 --dry-run
    """
    ws = _ws(ctx)
    with _maybe_devserver(ws, devserver and not dry_run):
        if test_to:
            sample = send_test(ws, test_to, only or ())
            out.print(
                f"Sent a sample ({sample.invitee_id}) to {sample.address} via {sample.server}: "
                f"{sample.reply}. The ledger was not touched."
            )
            return
        with _progress() as on_outcome:
            report = send_round(
                ws,
                "invitation",
                only=only or (),
                limit=limit,
                dry_run=dry_run,
                new_server=new_server,
                progress=on_outcome,
            )
        _print_send(report)


@contextmanager
def _maybe_devserver(ws: Workspace, wanted: bool) -> Iterator[None]:
    if not wanted:
        yield
        return
    smtp = ws.settings.smtp
    with DevServer(smtp.host, smtp.port, ws.settings.maildir) as server:
        err.print(f"Dev mail server on {smtp.host}:{smtp.port}, saving to {server.maildir}")
        yield
    out.print(
        f"Messages received by the dev mail server this run: {server.handler.count}; "
        f"all mail is in {server.maildir.resolve() / 'new'}"
    )


@contextmanager
def _progress() -> Iterator[Callable[[Outcome], None]]:
    progress = Progress(
        TextColumn("Sending"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[last]}"),
        TimeRemainingColumn(),
        console=err,
        transient=True,
    )
    task = progress.add_task("send", total=None, last="")

    def on_outcome(outcome: Outcome) -> None:
        progress.update(task, advance=1, last=f"{outcome.invitee_id} {outcome.state}")

    with progress:
        yield on_outcome


def _print_send(report: SendReport) -> None:
    if report.dry_run:
        out.print(
            f"Dry run: {report.selected} invitee(s) selected; {report.already_in_ledger} already "
            f"in the ledger; would enqueue {report.enqueued} new invitation(s) and send "
            f"{report.due} message(s) through {report.server}. Nothing was written or sent."
        )
        return
    d = report.drain
    if d.recovered_uncertain:
        err.print(
            f"[yellow]![/yellow] {d.recovered_uncertain} message(s) were being sent when a "
            "previous "
            "run stopped; they are marked uncertain (see `mailer status`). Nothing was re-sent.",
            markup=True,
        )
    for outcome in d.outcomes:
        if outcome.state != "sent":
            err.print(
                f"[red]✗[/red] {outcome.invitee_id}: {outcome.state}: {outcome.reply}", markup=True
            )
    out.print(
        f"Enqueued {report.enqueued} new invitation(s) ({report.already_in_ledger} already in the "
        f"ledger). This run: {d.sent} sent, {d.retry} to retry later, {d.failed} failed, "
        f"through {report.server}."
    )
    out.print("Ledger: " + ", ".join(f"{k} {v}" for k, v in report.totals.items() if v))
    if d.stopped:
        raise MailerError(d.stopped)


# --- devserver ---------------------------------------------------------------------------


@app.command("devserver")
def devserver_cmd(
    ctx: typer.Context,
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port on 127.0.0.1.")] = 8025,
    maildir: Annotated[
        Path | None, typer.Option(help="Maildir to store mail in (default MAILER_MAILDIR).")
    ] = None,
    host: Annotated[str, typer.Option(help="Loopback address to listen on.")] = "127.0.0.1",
) -> None:
    """Run the local dev mail server (SMTP on loopback → Maildir) until Ctrl-C.

    Example: mailer devserver --port 8025 --maildir var/maildir
    """
    folder = maildir or _ws(ctx).settings.maildir
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    with DevServer(host, port, folder, notify=lambda line: out.print(line)) as server:
        out.print(
            f"Dev mail server listening on {host}:{port}; mail goes to {server.maildir}/new. "
            "Ctrl-C stops it."
        )
        stop.wait()
    out.print(f"Stopped after {server.handler.count} message(s).")


# --- inspection --------------------------------------------------------------------------


@app.command()
def preview(
    ctx: typer.Context,
    invitee_id: Annotated[str, typer.Argument(help="e.g. TH-50-agri")],
    eml: Annotated[Path | None, typer.Option(help="Write the whole message (.eml) here.")] = None,
    html: Annotated[Path | None, typer.Option(help="Write the HTML part here.")] = None,
) -> None:
    """Show the invitation one office would receive.

    Example: mailer preview TH-50-agri --eml preview.eml --html preview.html
    """
    from mailer.preview import preview_invitation

    result = preview_invitation(_ws(ctx), invitee_id)
    out.print(f"To: {', '.join(result.message.recipients)}")
    out.print(f"Subject: {result.message.subject}")
    out.print()
    out.print(result.letter.text)
    if eml:
        eml.write_bytes(result.message.data)
        out.print(f"Wrote {eml} ({len(result.message.data):,} bytes)")
    if html:
        html.write_text(result.letter.html, encoding="utf-8")
        out.print(f"Wrote {html}")


@app.command()
def check(
    ctx: typer.Context,
    contacts: Annotated[
        Path | None, typer.Option(help="Check this invitee file instead of the imported list.")
    ] = None,
) -> None:
    """Check the campaign, every template for every invitee, the contacts, and Thai text.

    Example: mailer check --contacts contacts.csv
    """
    report = run_check(_ws(ctx), contacts)
    for note in report.notes:
        out.print(f"✓ {note}")
    for warning in report.warnings:
        out.print(f"[yellow]![/yellow] {warning}", markup=True)
    for error in report.errors:
        out.print(f"[red]✗[/red] {error}", markup=True)
    if not report.ok:
        raise MailerError(f"check found {len(report.errors)} problem(s); see above")
    out.print("All checks passed.")


@app.command()
def status(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Delivery counts and each office's state.

    Example: mailer status --json
    """
    report = status_report(_ws(ctx))
    if as_json:
        out.print_json(json.dumps(report.to_json(), ensure_ascii=False))
        return
    table = Table(title=f"Campaign {report.campaign_id}: invitations")
    table.add_column("state")
    table.add_column("offices", justify="right")
    for state, count in report.totals.items():
        if count and state != "invitees":
            table.add_row(state, str(count))
    table.add_row("total", str(report.totals["invitees"]), style="bold")
    out.print(table)
    attention = [i for i in report.invitees if i.delivery in {"failed", "uncertain", "retry_wait"}]
    for item in attention:
        out.print(
            f"{item.invitee_id} {item.organisation} <{item.email}>: "
            f"{item.delivery}: {item.last_reply}"
        )


def main() -> None:
    app()
