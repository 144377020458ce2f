"""The reading half of the delivery ledger (`mailer.delivery.ledger.Ledger` is the writing half and
inherits these): what is queued, what is due, counts per state, the rate limits' look-back,
the one test of "this office has it" (`went_out`), and of "a row of an office" (`offices`: not
the coordinator's own digest). Nothing here changes a row."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ColumnElement, Engine, Table, and_, func, or_, select

from mailer.clock import Clock
from mailer.models import CampaignState, Delivery, DeliveryState

DELIVERIES: Table = Delivery.__table__  # type: ignore[attr-defined]
CAMPAIGNS: Table = CampaignState.__table__  # type: ignore[attr-defined]
D = DELIVERIES.c
C = CAMPAIGNS.c
S = DeliveryState
_SENDABLE = (S.queued.value, S.retry_wait.value)


def offices() -> ColumnElement[bool]:
    """A row of an office: not one of the coordinator's (the daily digest, `invitee_id`
    NULL). Every count, audience and reply match of offices reads only these."""
    return D.invitee_id.is_not(None)


def reached() -> ColumnElement[bool]:
    """A row that may have reached its recipient: sent, uncertain or being sent now, or
    accepted by the server for at least one of its addresses (partly delivered)."""
    return or_(
        D.state.in_([S.sent.value, S.uncertain.value, S.sending.value]), D.delivered_to != ""
    )


def went_out() -> ColumnElement[bool]:
    """A delivery that may have reached the office (`reached`, of an office). The one test
    of "this office has it" (update and reminder audiences, reply matching)."""
    return and_(offices(), reached())


class LedgerReads:
    engine: Engine
    reads: Engine  # the same engine, read-only (on SQLite a deferred BEGIN: it never waits)
    campaign_id: str
    clock: Clock

    def existing(self, kind: str) -> set[str]:
        with self.reads.connect() as conn:
            rows = conn.execute(
                select(D.invitee_id).where(D.campaign_id == self.campaign_id, D.kind == kind)
            )
            return {r[0] for r in rows}

    # --- reading -------------------------------------------------------------------------

    def sent_since(self, server: str, since: datetime, limit: int) -> datetime | None:
        """The time of the `limit`-th most recent send through `server` after `since`
        (any campaign, any worker), or None if there were fewer. Feeds the rate limits."""
        query = (
            select(D.sent_at)
            .where(D.server == server, D.sent_at >= since)
            .order_by(D.sent_at.desc())
            .offset(limit - 1)
            .limit(1)
        )
        with self.reads.connect() as conn:
            return conn.execute(query).scalar()

    def next_retry_at(self) -> datetime | None:
        query = select(func.min(D.next_attempt_at)).where(
            D.campaign_id == self.campaign_id, D.state == S.retry_wait.value
        )
        with self.reads.connect() as conn:
            return conn.execute(query).scalar()

    def counts(self, kind: str | None = None) -> dict[str, int]:
        """Rows per state: of `kind`, or of every kind of the offices' (not the digest's)."""
        query = select(D.state, func.count()).where(D.campaign_id == self.campaign_id, offices())
        if kind is not None:
            query = query.where(D.kind == kind)
        with self.reads.connect() as conn:
            found: dict[str, int] = {s: n for s, n in conn.execute(query.group_by(D.state))}
        return {state.value: int(found.get(state.value, 0)) for state in S}

    def to_send(self) -> list[tuple[str, str, int]]:
        """(invitee id, kind, SEQUENCE) of every row still to go (queued or waiting for a
        retry, due or not), in claim order: what a round will compose."""
        query = (
            select(D.invitee_id, D.kind, D.sequence)
            .where(D.campaign_id == self.campaign_id, D.state.in_(_SENDABLE))
            .order_by(D.id)
        )
        with self.reads.connect() as conn:
            return [(r.invitee_id, r.kind, r.sequence) for r in conn.execute(query)]

    def due_count(self) -> int:
        now = self.clock()
        query = select(func.count()).where(
            D.campaign_id == self.campaign_id,
            D.state.in_(_SENDABLE),
            D.next_attempt_at <= now,
        )
        with self.reads.connect() as conn:
            return int(conn.execute(query).scalar_one())
