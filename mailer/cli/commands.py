"""Importing, inspecting and the dev mail server."""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from mailer.cli.app import app, emit_json, err, flag, out, workspace
from mailer.errors import CampaignError, MailerError

if TYPE_CHECKING:
    from mailer.check import CheckReport
    from mailer.deliverability.report import DeliverabilityReport
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
        Path | None,
        typer.Option(
            help="Check this invitee file instead of the imported list (with "
            "--deliverability: both checks run)."
        ),
    ] = None,
    deliverability: Annotated[
        bool,
        typer.Option(
            "--deliverability",
            help="Instead (or after the --contacts check): SPF, DKIM, DMARC, MX, the relay's "
            "TLS and PTR (asks DNS and the relay; exit 1 on any fail).",
        ),
    ] = False,
    as_json: Annotated[
        bool,
        typer.Option("--json", help="With --deliverability: machine-readable results."),
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
    if as_json and not deliverability:
        raise typer.BadParameter("--json goes with --deliverability", param_hint="--json")
    if auth and (deliverability or contacts is not None):
        raise typer.BadParameter(
            "--auth signs in and logs in to the servers, alone: run it as its own command "
            "(mailer check --auth), and the other checks apart",
            param_hint="--auth",
        )
    if deliverability:
        _check_deliverability(ctx, contacts, as_json=as_json)
        return
    if auth:
        _check_auth(ctx)
        return
    from mailer.check import run_check

    report = run_check(workspace(ctx), contacts)
    _print_check(report)
    if not report.ok:
        raise MailerError(f"check found {len(report.errors)} problem(s); see above")
    out.print("All checks passed.")


def _print_check(report: CheckReport) -> None:
    for note in report.notes:
        out.print(f"✓ {note}")
    for warning in report.warnings:
        flag(out, "!", "yellow", warning)
    for error in report.errors:
        flag(out, "✗", "red", error)


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


def _check_deliverability(ctx: typer.Context, contacts: Path | None, *, as_json: bool) -> None:
    """The deliverability checks, after the usual check of `contacts` when one is given
    (a coordinator checking a new contact file before a batch wants both answers); one
    exit code for all, as text or as one JSON document."""
    from dataclasses import asdict

    from mailer.check import run_check
    from mailer.deliverability.report import check_deliverability
    from mailer.deliverability.resolver import Dns

    ws = workspace(ctx)
    checked = run_check(ws, contacts) if contacts is not None else None
    if checked is not None and not as_json:
        _print_check(checked)
    dns = Dns(ws.settings.dns_servers)
    report = check_deliverability(ws.composer, ws.settings.smtp, dns, ws.signer, ws.clock())
    if as_json:
        data = report.to_json()
        if checked is not None:
            data["ok"] = report.ok and checked.ok
            data["check"] = {"contacts": str(contacts), "ok": checked.ok, **asdict(checked)}
        emit_json(data)
    else:
        _print_deliverability(report)
    problems = []
    if checked is not None and not checked.ok:
        problems.append(f"check found {len(checked.errors)} problem(s)")
    if not report.ok:
        marked = '"verdict": "fail"' if as_json else "what is marked ✗"
        problems.append(
            f"deliverability: {report.counts()}; fix {marked} before sending (ไม่ผ่าน: ควรแก้ก่อนส่ง)"
        )
    if problems:
        above = "; see above" if checked is not None and not as_json else ""
        raise MailerError("; ".join(problems) + above)
    if not as_json:
        done = "All checks passed. " if checked is not None else ""
        out.print(f"{done}Deliverability: {report.counts()}.")


def _print_deliverability(report: DeliverabilityReport) -> None:
    from mailer.deliverability.findings import VERDICTS

    out.print(
        f"Deliverability (การส่งถึงกล่องจดหมาย) of {report.sender_domain} (sender) and "
        f"{report.coordinator_domain} (coordinator); DNS: {report.dns}"
    )
    for finding in report.findings:
        mark, style, _ = VERDICTS[finding.verdict]
        flag(out, mark, style, finding.line())
