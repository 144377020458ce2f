"""Who a reminder round is for.

A round only ever goes to offices that were invited (their invitation was sent, or is
uncertain); offices whose address the server refused (`failed`) are never included — the
closest thing to "bounced" until reply tracking (issue 5) reads bounces from the mailbox.
Until then no office has answered, so `no_reply` and `not_declined` mean every invited
office and the answer-based audiences (`accepted`, `representative`, `tentative`,
`needs_review`) are empty.
"""

from __future__ import annotations

from sqlalchemy import select

from mailer.models import DeliveryState
from mailer.outbox import D, Ledger

S = DeliveryState
_INVITED = (S.sent.value, S.uncertain.value)
_EVERY_INVITED = {"all", "no_reply", "not_declined"}


def audience_ids(ledger: Ledger, audience: str) -> set[str]:
    if audience not in _EVERY_INVITED:
        return set()  # answers are not tracked yet: nobody has accepted, declined, …
    with ledger.reads.connect() as conn:
        rows = conn.execute(
            select(D.invitee_id).where(
                D.campaign_id == ledger.campaign_id,
                D.kind == "invitation",
                D.state.in_(_INVITED),
            )
        )
        return {r.invitee_id for r in rows}
