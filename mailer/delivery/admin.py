"""The coordinator's view of the ledger and their decisions: list, re-queue, resolve.

`mailer deliveries` lists rows; `mailer deliveries retry` queues failed or uncertain rows
again (with the same Message-ID, so a client that already has the message can tell);
`mailer deliveries resolve ID --sent|--not-sent` settles an uncertain one. The coordinator's
own rows (the daily digest, of no office) are listed too, named as the coordinator's.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select

from mailer.delivery.ledger import Ledger
from mailer.delivery.reads import D
from mailer.errors import LedgerError, some
from mailer.kinds import CANCEL
from mailer.models import DeliveryState
from mailer.settings import cut
from mailer.versions import cancelled, versions

S = DeliveryState
STATES = tuple(s.value for s in DeliveryState)
RETRYABLE = (S.failed.value, S.uncertain.value)


@dataclass(frozen=True)
class DeliveryRow:
    id: int
    invitee_id: str | None  # None: the coordinator's own row (the daily digest)
    kind: str
    state: str
    attempts: int
    recipients: str
    message_id: str
    server: str | None
    sent_at: datetime | None
    last_reply: str | None
    delivered_to: str = ""  # per address: those that have it
    refused: str = ""  # those refused for good, with the server's reply ("a@x: 550 …")

    @property
    def coordinators(self) -> bool:
        """A row of no office: the coordinator's digest (counted apart from the offices')."""
        return self.invitee_id is None

    @property
    def partly_refused(self) -> bool:
        """Sent to some of the office's addresses, refused for good for others."""
        return self.state == S.sent.value and bool(self.refused)


@dataclass(frozen=True)
class Requeued:
    requeued: list[int]
    skipped: list[str]  # why a chosen row was left alone


def list_deliveries(ledger: Ledger, states: Sequence[str] = ()) -> list[DeliveryRow]:
    for state in states:
        if state not in STATES:
            raise LedgerError(
                f"--state {cut(state)!r} is not a delivery state; use one of {', '.join(STATES)}"
            )
    query = select(
        D.id, D.invitee_id, D.kind, D.state, D.attempts, D.recipients, D.message_id,
        D.server, D.sent_at, D.last_reply, D.delivered_to, D.refused,
    ).where(D.campaign_id == ledger.campaign_id)  # fmt: skip
    if states:
        query = query.where(D.state.in_(list(states)))
    with ledger.reads.connect() as conn:
        return [DeliveryRow(**row._mapping) for row in conn.execute(query.order_by(D.id))]


def requeue(
    ledger: Ledger,
    ids: Sequence[int] = (),
    invitees: Sequence[str] = (),
    states: Sequence[str] = (),
) -> Requeued:
    """Queue failed or uncertain rows again (same Message-ID). Sent rows are never
    re-queued: the ledger's promise is one message per office. A state other than failed
    or uncertain, or an id or invitee with no delivery, is refused before anything changes."""
    for state in states:
        if state not in RETRYABLE:
            raise LedgerError(
                f"--state {cut(state)!r}: only failed or uncertain deliveries are queued "
                "again; use --state failed or --state uncertain"
            )
    rows = list_deliveries(ledger)
    unknown = [f"delivery {i}" for i in ids if i not in {r.id for r in rows}]
    unknown += [
        f"invitee {cut(i, 40)!r}" for i in invitees if i not in {r.invitee_id for r in rows}
    ]
    if unknown:
        raise LedgerError(
            f"nothing was queued: there is no {some(unknown)} in the ledger; "
            "`mailer deliveries` lists the delivery ids and invitee ids"
        )
    chosen = [
        r
        for r in rows
        if r.id in ids
        or r.invitee_id in invitees
        or r.state in states
        or (r.partly_refused and S.failed.value in states)
    ]
    if _cancelled(ledger):  # after a cancellation only a cancellation may go out again
        skipped = [
            f"{r.id} ({r.invitee_id}, {r.kind}): the event was cancelled; nothing but the "
            "cancellation is sent for it any more"
            for r in chosen
            if r.kind != str(CANCEL)
        ]
        chosen = [r for r in chosen if r.kind == str(CANCEL)]
    else:
        skipped = []
    again = [r.id for r in chosen if r.state in RETRYABLE]
    # Sent to some addresses and refused for good for others: only the refused ones are
    # tried again (after the coordinator fixed them, say); the others never get it twice.
    partly = [r.id for r in chosen if r.partly_refused]
    skipped += [
        f"{r.id} ({r.invitee_id}, {r.kind}) is {r.state}; only failed or uncertain "
        "deliveries can be re-queued (and the refused addresses of a partly delivered one)"
        for r in chosen
        if r.id not in again and r.id not in partly
    ]
    ledger.requeue(again, partly)
    return Requeued(sorted([*again, *partly]), skipped)


def _cancelled(ledger: Ledger) -> bool:
    return cancelled(versions(ledger))


def resolve(ledger: Ledger, delivery_id: int, *, sent: bool) -> DeliveryRow:
    """Settle an uncertain row: it reached the office (`sent`) or it did not (queued)."""
    found = [r for r in list_deliveries(ledger) if r.id == delivery_id]
    if not found:
        raise LedgerError(f"there is no delivery {delivery_id}; see `mailer deliveries`")
    (row,) = found
    if row.state != S.uncertain.value:
        raise LedgerError(
            f"delivery {delivery_id} ({row.invitee_id}) is {row.state}, not uncertain; "
            "only uncertain deliveries are resolved"
        )
    if not sent and row.kind != str(CANCEL) and _cancelled(ledger):
        raise LedgerError(
            f"delivery {delivery_id} ({row.invitee_id}) is not queued again: the event was "
            "cancelled, and nothing but the cancellation is sent for it any more. Use --sent "
            "if you know it arrived, or leave it uncertain"
        )
    ledger.resolve(delivery_id, sent=sent, reply=f"resolved as sent: {row.last_reply}")
    return next(r for r in list_deliveries(ledger) if r.id == delivery_id)
