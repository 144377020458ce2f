"""Who a reminder round (or an update) is for, from the ledger and the offices' answers.

A round only ever goes to offices that were invited (their invitation was sent, or is
uncertain), and never to one whose address bounced (a permanent bounce read from the
mailbox, or a 5xx from our SMTP server). Then by attendance (see `mailer.replies.attendance`):
`all` every invited office; `no_reply` those with no answer yet; `not_declined` all but
those who declined; `accepted`, `representative`, `tentative`, `needs_review` those whose
attendance is exactly that. `declined_or_bounced` is who an update skips (and a
cancellation reaches anyway).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import select

from mailer.delivery.reads import D, went_out
from mailer.kinds import INVITATION
from mailer.replies.attendance import attendance
from mailer.replies.statuses import Attendance

if TYPE_CHECKING:
    from mailer.delivery.ledger import Ledger


def _statuses(ledger: Ledger) -> dict[str, Attendance]:
    """Each office's attendance; an office missing from it has none yet (`no_reply`)."""
    return {k: a.status for k, a in attendance(ledger).items()}


def audience_ids(ledger: Ledger, audience: str) -> set[str]:
    with ledger.reads.connect() as conn:
        invited = {
            r.invitee_id
            for r in conn.execute(
                select(D.invitee_id).where(
                    D.campaign_id == ledger.campaign_id,
                    D.kind == str(INVITATION),
                    went_out(),
                )
            )
        }
    answers = _statuses(ledger)
    invited = {i for i in invited if answers.get(i) != Attendance.bounced}
    if audience == "all":
        return invited
    if audience == "not_declined":
        return {i for i in invited if answers.get(i) != Attendance.declined}
    wanted = Attendance(audience)
    return {i for i in invited if answers.get(i, Attendance.no_reply) == wanted}


def declined_or_bounced(ledger: Ledger) -> frozenset[str]:
    """The offices that declined or whose address bounced."""
    no = (Attendance.declined, Attendance.bounced)
    return frozenset(k for k, status in _statuses(ledger).items() if status in no)
