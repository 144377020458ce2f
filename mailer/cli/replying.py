"""Replies: `replies sync`, `replies review`, and the coordinator's `mark`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mailer.cli.app import Group, app, out, workspace
from mailer.errors import MailerError
from mailer.replies.statuses import ANSWERS

replies_app = typer.Typer(
    cls=Group, rich_markup_mode="markdown", no_args_is_help=True, help="Read and sort the replies."
)
app.add_typer(replies_app, name="replies")


@replies_app.command("sync")
def replies_sync(
    ctx: typer.Context,
    maildir: Annotated[Path | None, typer.Option(help="Read a local Maildir.")] = None,
    mbox: Annotated[Path | None, typer.Option(help="Read an mbox file.")] = None,
    eml_dir: Annotated[Path | None, typer.Option(help="Read a folder of .eml files.")] = None,
) -> None:
    """Fetch new replies (from the IMAP folder in the settings, or the path given), store
    them raw, and work out who answered what. Re-running adds nothing; nothing in the
    mailbox is changed.

    Example: mailer replies sync --maildir ~/Maildir/seminar
    """
    from mailer.replies import sources
    from mailer.replies.sync import highest_uid, sync

    ws = workspace(ctx)
    ledger = ws.ledger()
    chosen = [(k, p) for k, p in (("maildir", maildir), ("mbox", mbox), ("eml-dir", eml_dir)) if p]
    if len(chosen) > 1:
        raise MailerError("give one source: --maildir PATH, --mbox PATH or --eml-dir PATH")
    if chosen:
        kind, path = chosen[0]
        read = {"maildir": sources.maildir, "mbox": sources.mbox, "eml-dir": sources.eml_dir}
        source, shown = f"{kind}:{path.resolve()}", str(path)
        messages = read[kind](path)
    else:  # the coordinator's IMAP folder, from the settings
        source = shown = ws.settings.imap.source_id
        messages = sources.imap(ws.settings.imap, lambda v: highest_uid(ledger, source, v))
    report = sync(ledger, ws.campaign, source, messages)
    counts = ", ".join(f"{k} {v}" for k, v in sorted(report.outcomes.items())) or "nothing new"
    out.print(f"{report.new} new of {report.seen} message(s) in {shown}: {counts}.")
    if report.unmatched:
        out.print(
            f"{report.unmatched} could not be matched to an office: see `mailer replies review`."
        )
    if report.not_counted:
        out.print(
            f"{report.not_counted} name an office but do not count by themselves (not from its "
            "addresses nor in our thread, or an answer to an earlier version): see "
            "`mailer replies review`."
        )


@replies_app.command("review")
def replies_review(ctx: typer.Context) -> None:
    """What needs a human: unsure readings and messages no office could be matched to.

    Example: mailer replies review
    """
    from mailer.replies.attendance import review

    items = list(review(workspace(ctx).ledger()))
    for item in items:
        who = item.invitee_id or "(no office)"
        out.print(f"#{item.id} {who} [{item.kind}] {item.subject}\n    {item.evidence}")
    out.print(f"{len(items)} message(s) need review. Decide with `mailer mark INVITEE_ID STATUS`.")


@app.command("mark")
def mark_cmd(
    ctx: typer.Context,
    invitee_id: Annotated[str, typer.Argument(help="e.g. TH-50-agri")],
    status: Annotated[str, typer.Argument(help=" | ".join(ANSWERS))],
    name: Annotated[str, typer.Option(help="The representative's name.")] = "",
    position: Annotated[str, typer.Option(help="The representative's position.")] = "",
    phone: Annotated[str, typer.Option(help="The representative's phone.")] = "",
    note: Annotated[str, typer.Option(help="Why (kept in the history).")] = "",
) -> None:
    """Record the coordinator's decision for an office; later automatic readings never
    override it.

    Example: mailer mark TH-50-agri representative --name "นางสาวสมหญิง ใจดี" --phone "08 1234 5678"
    """
    from mailer.replies.attendance import mark
    from mailer.replies.statuses import one_of

    ws = workspace(ctx)
    decided = one_of(status, ANSWERS, f"status {status!r}")
    details = {k: v for k, v in (("name", name), ("position", position), ("phone", phone)) if v}
    mark(ws.ledger(), invitee_id, decided, representative=details, note=note)
    out.print(f"{invitee_id} is now {status}.")
