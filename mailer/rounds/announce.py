"""Event changes and cancellation (docs/design.md §4): every calendar that holds the invitation
moves, or drops the event, instead of growing a second entry.

The database keeps the event as sent at each iCalendar SEQUENCE (`event_version`). An
update bumps SEQUENCE, records the new version and enqueues `update:<sequence>` for every
office that received the invitation — all in one transaction — then drains; a cancellation
does the same with `cancel` (METHOD:CANCEL) and stops whatever was still queued.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection, select

from mailer import kinds
from mailer.campaign import Campaign
from mailer.delivery.ledger import Ledger
from mailer.delivery.reads import D, went_out
from mailer.errors import MailerError
from mailer.identity import new_message_id
from mailer.kinds import CANCEL, INVITATION
from mailer.models import DeliveryState
from mailer.versions import Change, pending_change, record_version

S = DeliveryState


def _received(
    conn: Connection, ledger: Ledger, skip: frozenset[str] = frozenset()
) -> list[tuple[str, str]]:
    """Offices whose invitation went out (sent, or uncertain: it may have arrived), less
    those in `skip` (an update is not sent to offices that declined)."""
    rows = conn.execute(
        select(D.invitee_id, D.recipients).where(
            D.campaign_id == ledger.campaign_id,
            D.kind == str(INVITATION),
            went_out(),
        )
    ).all()
    return [(r.invitee_id, r.recipients) for r in rows if r.invitee_id not in skip]


@dataclass(frozen=True)
class Announcement:
    """What `send update` / `send cancel` did (or, with --dry-run, would do)."""

    kind: str
    sequence: int
    offices: int
    changes: list[Change]
    enqueued: int = 0
    stopped_queued: int = 0


def announce(
    ledger: Ledger,
    campaign: Campaign,
    *,
    cancel: bool,
    dry_run: bool,
    declined: frozenset[str] = frozenset(),
) -> Announcement:
    """Bump SEQUENCE, record the version, and enqueue the update or cancellation for every
    office that received the invitation, in one transaction. Refuses, with the reason,
    when there is nothing to announce."""
    event = campaign.event
    pending = pending_change(ledger, event, campaign.timezone)
    if pending is None:
        raise MailerError("no invitation has been sent yet; there is nothing to update or cancel")
    if pending.cancelled:
        raise MailerError(
            f"the event was already cancelled (SEQUENCE {pending.sequence}); nothing more to send"
        )
    if not cancel and not pending.significant:
        what = f" (only {pending.describe()})" if pending.changes else ""
        raise MailerError(
            "nothing significant changed since the last message (date, time and place are "
            f"the same{what}); edit the event in the campaign file first"
        )
    sequence = pending.sequence + 1
    kind = str(CANCEL if cancel else kinds.update(sequence))
    skip = frozenset() if cancel else declined  # a cancellation reaches every calendar
    with ledger.reads.connect() as conn:
        offices = len(_received(conn, ledger, skip))
    result = Announcement(kind, sequence, offices, pending.changes)
    if dry_run:
        return result
    with ledger.engine.begin() as conn:
        if not ledger.advance_sequence(conn, pending.sequence, sequence):
            raise MailerError(
                "another `send update` or `send cancel` announced a change at the same moment; "
                "nothing was sent by this one: see `mailer status`, then run it again if needed"
            )
        record_version(conn, ledger, sequence, "cancel" if cancel else "update", event)
        stopped = 0
        if cancel:  # nothing still queued goes out; the cancellation reaches every calendar
            stopped = ledger.cancel_unsent(conn)
        else:  # invitations and reminders not yet out will carry the new version
            ledger.rebase_unsent(conn, sequence)
        added = ledger.enqueue(
            _received(conn, ledger, skip),
            kind,
            sequence,
            lambda invitee_id: new_message_id(campaign, invitee_id, kind),
            conn=conn,
        )
    return Announcement(kind, sequence, offices, pending.changes, added, int(stopped))
