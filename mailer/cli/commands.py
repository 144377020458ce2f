"""Importing, inspecting and the dev mail server."""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from mailer.cli.app import app, err, flag, out, workspace
from mailer.errors import CampaignError, MailerError

if TYPE_CHECKING:
    from mailer.invitees.importing import ImportReport

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
    from mailer.invitees.importing import import_contacts

    ws = workspace(ctx)
    try:
        reserved = ws.campaign.own_addresses
    except CampaignError as exc:  # the list can still be imported; say what went unchecked
        reserved = None
        flag(
            err,
            "!",
            "yellow",
            f"{exc.path}: the campaign file has {len(exc.problems)} problem(s), so the "
            "addresses were not checked against the campaign's coordinator and sender. "
            "Fix it and run `mailer check`",
        )
    report = import_contacts(ws.engine, path, skip_invalid=skip_invalid, reserved=reserved)
    _print_import(report)
    counted = f"{len(report.errors)} problem(s) in {report.bad_rows} row(s)"
    if report.errors and not report.written and skip_invalid:
        raise MailerError(
            f"{path}: no row is valid ({counted}), nothing was imported. Fix the rows above "
            "and import again"
        )
    if report.errors and not report.written:
        raise MailerError(
            f"{path}: {counted}, nothing was imported. Fix the rows above and import again, "
            "or use --skip-invalid to import the valid rows only"
        )


def _print_import(report: ImportReport) -> None:
    for problem in report.errors:
        flag(err, "✗", "red", str(problem))
    for problem in report.warnings:
        flag(err, "!", "yellow", str(problem))
    if report.written:
        skipped = f", {report.bad_rows} bad row(s) skipped" if report.errors else ""
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
    from mailer.delivery.devserver import DevServer

    folder = maildir or workspace(ctx).settings.maildir
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
    pdf: Annotated[
        Path | None, typer.Option(help="Write the office's official letter (PDF) here.")
    ] = None,
) -> None:
    """Show the invitation one office would receive (and its official letter, --pdf).

    Example: mailer preview TH-50-agri --eml preview.eml --html preview.html --pdf letter.pdf
    """
    from mailer.views.preview import preview_invitation, save

    result = preview_invitation(workspace(ctx), invitee_id, pdf=pdf is not None)
    out.print(f"To: {', '.join(result.message.recipients)}")
    out.print(f"Subject: {result.message.subject}")
    out.print()
    out.print(result.letter.text)
    if eml:
        save(eml, result.message.data)
        out.print(f"Wrote {eml} ({len(result.message.data):,} bytes)")
    if html:
        save(html, result.letter.html.encode("utf-8"))
        out.print(f"Wrote {html}")
    if pdf and result.pdf is not None:
        save(pdf, result.pdf)
        out.print(f"Wrote {pdf} ({len(result.pdf):,} bytes: the official letter)")


@app.command()
def check(
    ctx: typer.Context,
    contacts: Annotated[
        Path | None, typer.Option(help="Check this invitee file instead of the imported list.")
    ] = None,
    deliverability: Annotated[
        bool,
        typer.Option(
            "--deliverability",
            help="Instead: SPF, DKIM, DMARC, MX, the relay's TLS and PTR (asks DNS and the "
            "relay; exit 1 on any fail).",
        ),
    ] = False,
    auth: Annotated[
        bool,
        typer.Option(
            "--auth",
            help="Instead: get the OAuth2 token, log in to SMTP and IMAP, log out (sends "
            "nothing; exit 1 on any failure).",
        ),
    ] = False,
) -> None:
    """Check the campaign, every template for every invitee, the contacts, and Thai text.

    Example: mailer check --contacts contacts.csv, mailer check --deliverability, or
    mailer check --auth
    """
    if deliverability:
        _check_deliverability(ctx)
        return
    if auth:
        _check_auth(ctx)
        return
    from mailer.check import run_check

    report = run_check(workspace(ctx), contacts)
    for note in report.notes:
        out.print(f"✓ {note}")
    for warning in report.warnings:
        flag(out, "!", "yellow", warning)
    for error in report.errors:
        flag(out, "✗", "red", error)
    if not report.ok:
        raise MailerError(f"check found {len(report.errors)} problem(s); see above")
    out.print("All checks passed.")


def _check_auth(ctx: typer.Context) -> None:
    from mailer.auth_check import check_auth

    settings = workspace(ctx).settings
    steps = check_auth(settings.smtp, settings.imap)
    for step in steps:
        flag(out, "✓" if step.ok else "✗", "green" if step.ok else "red", step.line)
    failed = sum(not step.ok for step in steps)
    if failed:
        raise MailerError(f"check --auth: {failed} of {len(steps)} step(s) failed; see above")
    out.print("Sign-in checks passed.")


def _check_deliverability(ctx: typer.Context) -> None:
    from mailer.deliverability.findings import VERDICTS
    from mailer.deliverability.report import check_deliverability
    from mailer.deliverability.resolver import Dns

    ws = workspace(ctx)
    settings = ws.settings
    dns = Dns(settings.dns_servers)
    report = check_deliverability(ws.composer, settings.smtp, dns, ws.signer, ws.clock())
    out.print(
        f"Deliverability (การส่งถึงกล่องจดหมาย) of {report.sender_domain} (sender) and "
        f"{report.coordinator_domain} (coordinator); DNS: {report.dns}"
    )
    for finding in report.findings:
        mark, style, _ = VERDICTS[finding.verdict]
        flag(out, mark, style, finding.line())
    counts = f"{report.count('pass')} passed, {report.count('warn')} warning(s), "
    counts += f"{report.count('fail')} failed"
    if not report.ok:
        raise MailerError(
            f"deliverability: {counts}; fix what is marked ✗ before sending (ไม่ผ่าน: ควรแก้ก่อนส่ง)"
        )
    out.print(f"Deliverability: {counts}.")
