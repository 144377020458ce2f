"""The ledger: `deliveries`, `deliveries retry`, `deliveries resolve`."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated

import typer
from rich.table import Table

from mailer.cli.app import Group, app, emit_json, err, flag, out, workspace
from mailer.errors import MailerError

deliveries_app = typer.Typer(  # help as in app.py
    cls=Group,
    rich_markup_mode="markdown",
    invoke_without_command=True,
    help="The delivery ledger: list, retry, resolve.",
)
app.add_typer(deliveries_app, name="deliveries")


@deliveries_app.callback()
def deliveries(
    ctx: typer.Context,
    state: Annotated[
        list[str] | None, typer.Option(help="Only rows in this state (repeatable).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """List the ledger (every message, its state, attempts and the server's last reply).

    Example: mailer deliveries --state failed --state uncertain
    """
    if ctx.invoked_subcommand is not None:
        return
    from mailer.delivery.admin import list_deliveries

    rows = list_deliveries(workspace(ctx).ledger(), state or ())
    if as_json:
        data = [
            {**asdict(r), "sent_at": r.sent_at.isoformat() if r.sent_at else None} for r in rows
        ]
        emit_json(data)
        return
    table = Table("id", "invitee", "kind", "state", "attempts", "last reply")
    for r in rows:
        partly = r.partly_refused or (bool(r.delivered_to) and r.state != "sent")
        shown = f"{r.state} (partly delivered)" if partly else r.state
        who = r.invitee_id if r.invitee_id is not None else "(coordinator)"
        table.add_row(str(r.id), who, r.kind, shown, str(r.attempts), r.last_reply or "")
    out.print(table)
    digests = sum(r.coordinators for r in rows)
    also = f", and {digests} to the coordinator (the daily digest)" if digests else ""
    out.print(f"{len(rows) - digests} deliveries{also}")


def _is_number(text: str) -> bool:
    return text.isdecimal() and len(text) <= 18  # a delivery id, not an invitee id


@deliveries_app.command("retry")
def deliveries_retry(
    ctx: typer.Context,
    ids: Annotated[
        list[str] | None, typer.Argument(help="Delivery ids or invitee ids to queue again.")
    ] = None,
    state: Annotated[
        list[str] | None, typer.Option(help="Every row in this state: failed or uncertain.")
    ] = None,
) -> None:
    """Queue failed or uncertain deliveries again (they keep their Message-ID).

    Example: mailer deliveries retry --state failed
    """
    if not ids and not state:
        raise MailerError("name the deliveries to retry: ids, invitee ids, or --state failed")
    numbers = [int(i) for i in ids or () if _is_number(i)]
    invitees = [i for i in ids or () if not _is_number(i)]
    from mailer.delivery.admin import requeue

    result = requeue(workspace(ctx).ledger(), numbers, invitees, state or ())
    for reason in result.skipped:
        flag(err, "!", "yellow", reason)
    out.print(
        f"Queued {len(result.requeued)} delivery(ies) again; "
        "`mailer send invitations` (or `mailer worker`) sends them."
    )


@deliveries_app.command("resolve")
def deliveries_resolve(
    ctx: typer.Context,
    delivery_id: Annotated[int, typer.Argument(help="The uncertain delivery's id.")],
    sent: Annotated[
        bool | None,
        typer.Option("--sent/--not-sent", help="It reached the office / it did not (send it)."),
    ] = None,
) -> None:
    """Settle an uncertain delivery after checking with the office or the server's log.

    Example: mailer deliveries resolve 42 --not-sent
    """
    if sent is None:
        raise MailerError("say --sent (it reached the office) or --not-sent (send it again)")
    from mailer.delivery.admin import resolve

    row = resolve(workspace(ctx).ledger(), delivery_id, sent=sent)
    out.print(f"Delivery {row.id} ({row.invitee_id}) is now {row.state}.")
