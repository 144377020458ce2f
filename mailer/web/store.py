"""What the invitee's page stores besides answers: each office's link version (`rsvp_token`:
`revoke` bumps it, so a forwarded link stops opening) and "link opened" (`rsvp_visit`: every
GET or HEAD of a page or its .ics, with the user agent, and nothing else). The one writer of
both tables."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import Table, select, update

from mailer.errors import MailerError
from mailer.models import Invitee, RsvpToken, RsvpVisit

if TYPE_CHECKING:
    from mailer.delivery.ledger import Ledger

TOKENS: Table = RsvpToken.__table__  # type: ignore[attr-defined]
T = TOKENS.c
VISITS: Table = RsvpVisit.__table__  # type: ignore[attr-defined]
V = VISITS.c
_INVITEES: Table = Invitee.__table__  # type: ignore[attr-defined]
FIRST_VERSION = 1


def link_version(ledger: Ledger, invitee_id: str) -> int:
    """The version an office's link must carry to open (1 until it is revoked)."""
    with ledger.reads.connect() as conn:
        found = conn.execute(
            select(T.version).where(T.campaign_id == ledger.campaign_id, T.invitee_id == invitee_id)
        ).scalar()
    return FIRST_VERSION if found is None else int(found)


def known_office(ledger: Ledger, invitee_id: str) -> None:
    """`MailerError` unless the office is in the invitee list."""
    with ledger.reads.connect() as conn:
        known = conn.execute(
            select(_INVITEES.c.invitee_id).where(_INVITEES.c.invitee_id == invitee_id)
        ).first()
    if known is None:
        raise MailerError(f"no invitee {invitee_id!r}; see `mailer status` for the ids")


def revoke(ledger: Ledger, invitee_id: str) -> int:
    """Bump the office's link version: every link sent so far stops opening. Returns the
    new version (the one the next message's link carries)."""
    known_office(ledger, invitee_id)
    now = ledger.clock()
    with ledger.engine.begin() as conn:
        where = (T.campaign_id == ledger.campaign_id) & (T.invitee_id == invitee_id)
        current = conn.execute(select(T.version).where(where)).scalar()
        if current is None:
            version = FIRST_VERSION + 1
            conn.execute(
                TOKENS.insert().values(
                    campaign_id=ledger.campaign_id, invitee_id=invitee_id, version=version,
                    revoked_at=now,
                )
            )  # fmt: skip
        else:
            version = int(current) + 1
            conn.execute(update(TOKENS).where(where).values(version=version, revoked_at=now))
    return version


@dataclass(frozen=True)
class Visit:
    method: str
    what: str
    user_agent: str
    at: datetime


def record_visit(ledger: Ledger, invitee_id: str, method: str, what: str, user_agent: str) -> None:
    with ledger.engine.begin() as conn:
        conn.execute(
            VISITS.insert().values(
                campaign_id=ledger.campaign_id, invitee_id=invitee_id, method=method[:8],
                what=what[:16], user_agent=user_agent[:500], at=ledger.clock(),
            )
        )  # fmt: skip


def visits(ledger: Ledger, invitee_id: str) -> list[Visit]:
    """An office's "link opened" entries, oldest first."""
    with ledger.reads.connect() as conn:
        rows = conn.execute(
            select(V.method, V.what, V.user_agent, V.at)
            .where(V.campaign_id == ledger.campaign_id, V.invitee_id == invitee_id)
            .order_by(V.at, V.id)
        ).all()
    return [Visit(r.method, r.what, r.user_agent, r.at) for r in rows]
