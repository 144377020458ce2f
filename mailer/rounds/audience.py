"""Who a reminder round (or an update) is for, from the ledger and the offices' answers.

A round only ever goes to offices that were invited (their invitation was sent, or is
uncertain), and never to one whose address bounced (a permanent bounce read from the
mailbox, or a 5xx from our SMTP server). Then by attendance (see `mailer.replies.attendance`):
`all` every invited office; `no_reply` those with no answer yet; `not_declined` all but
those who declined; `accepted`, `representative`, `tentative`, `needs_review` those whose
attendance is exactly that.
"""

from __future__ import annotations

from sqlalchemy import select

from mailer.delivery.reads import D, went_out
from mailer.replies.attendance import attendance
from mailer.workspace import Workspace


def audience_ids(ws: Workspace, audience: str) -> set[str]:
    ledger = ws.ledger()
    with ledger.reads.connect() as conn:
        invited = {
            r.invitee_id
            for r in conn.execute(
                select(D.invitee_id).where(
                    D.campaign_id == ledger.campaign_id,
                    D.kind == "invitation",
                    went_out(),
                )
            )
        }
    answers = {k: a.status for k, a in attendance(ws).items()}
    invited = {i for i in invited if answers.get(i) != "bounced"}
    if audience == "all":
        return invited
    if audience == "no_reply":
        return {i for i in invited if answers.get(i, "no_reply") == "no_reply"}
    if audience == "not_declined":
        return {i for i in invited if answers.get(i) != "declined"}
    return {i for i in invited if answers.get(i) == audience}
