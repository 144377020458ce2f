"""The delivery ledger and its state machine (docs/design.md §3).

    queued ──claim(lease)──► sending ──250──► sent
       ▲                        │
       │                        ├─4xx / dropped──► retry_wait ──(due)──► claim again
       │                        ├─5xx────────────► failed
       └── release (never sent) └─crash──────────► uncertain (shown, decided by a human)

A claim is a lease (`lease_owner`, `lease_until`) taken in one statement; the row becomes
`sending` in its own commit right before the SMTP transaction and `sent` right after the
server's 250. A row found in `sending` whose worker is gone becomes `uncertain`: nothing is
silently re-sent and nothing is silently dropped.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import (
    Connection,
    Engine,
    Select,
    literal,
    or_,
    select,
    union_all,
    update,
)

from mailer.clock import Clock, utcnow
from mailer.db import Prepared, reader
from mailer.delivery.owners import owner_is_dead
from mailer.delivery.queueing import LedgerQueue
from mailer.delivery.reads import _SENDABLE, DELIVERIES, D, S  # the table handles
from mailer.models import split_emails

COORDINATOR = "coordinator"  # how reports name a row of no office (the digest)


@dataclass(frozen=True)
class Claim:
    id: int
    invitee_id: str | None  # None: a row of no office, the coordinator's (the digest)
    kind: str
    message_id: str
    sequence: int
    attempts: int
    delivered_to: str = ""  # "a@x; b@y": addresses that already have it (see `Settled`)
    refused: str = ""  # "c@z: 550 …; …": addresses refused for good

    @property
    def who(self) -> str:
        """Whom the row is for, as reports name it: the office's id, or "coordinator"."""
        return self.invitee_id if self.invitee_id is not None else COORDINATOR

    def done_with(self) -> set[str]:
        """Addresses not to send to again: delivered, or refused for good."""
        done = {a.lower() for a in split_emails(self.delivered_to)}
        done |= {e.partition(": ")[0].lower() for e in refused_entries(self.refused)}
        return done


def refused_entries(text: str) -> tuple[str, ...]:
    """The stored `refused` column ("address: reply" entries, one a line) as entries."""
    return tuple(e for e in (part.strip() for part in text.split(";\n")) if e)


@dataclass(frozen=True)
class Sending:
    claim: Claim
    recipients: tuple[str, ...]
    server: str


@dataclass(frozen=True)
class Settled:
    """How a message ended: sent, retry_wait (after `retry_after`), failed or uncertain.

    Per address: `delivered_to` the addresses the server has accepted so far (this attempt
    and earlier ones), `refused` those it refused for good. A row in `retry_wait` whose
    `delivered_to` is not empty is partly delivered: the next attempt goes only to the
    addresses that are in neither."""

    claim: Claim
    state: str
    reply: str
    at: datetime
    retry_after: timedelta | None = None
    delivered_to: tuple[str, ...] | None = None  # None: as before
    refused: tuple[str, ...] | None = None  # "address: reply" entries; None: as before


# The two statements of the hot path, written once (no per-message SQL construction).
_SETTLE = (
    "UPDATE delivery SET state = :state, last_reply = :reply, "
    "sent_at = COALESCE(:sent_at, sent_at), "
    "delivered_to = COALESCE(:delivered_to, delivered_to), refused = COALESCE(:refused, refused), "
    "next_attempt_at = COALESCE(:next_at, next_attempt_at), "
    "lease_owner = NULL, lease_until = NULL, updated_at = :now "
    "WHERE id = :id AND lease_owner = :owner"
)
_SENDING = (
    "UPDATE delivery SET state = 'sending', attempts = :attempts, recipients = :recipients, "
    "server = :server, lease_until = :lease_until, updated_at = :now "
    "WHERE id = :id AND lease_owner = :owner AND state IN ('queued', 'retry_wait') "
    "AND sequence = :sequence"  # composed from the version the row still names
)


class Ledger(LedgerQueue):
    """The delivery ledger and the one writer of its rows: every change of a delivery's state
    is a method of it. The worker's side is written here (claim, the step, release, recover,
    rebase); what queues rows and the coordinator's decisions (enqueue, re-queue, resolve,
    what an announcement does to the rows not yet sent, the server guard) in
    `mailer.delivery.queueing`, which it inherits."""

    def __init__(self, engine: Engine, campaign_id: str, clock: Clock = utcnow) -> None:
        self.engine = engine
        self.reads = reader(engine)
        self.campaign_id = campaign_id
        self.clock = clock
        self._dialect = engine.dialect.name
        self._settle = Prepared(_SETTLE, engine.dialect)
        self._sending = Prepared(_SENDING, engine.dialect)
        self._steps: Connection | None = None  # open while `stepping`

    # --- the worker's side ---------------------------------------------------------------

    def claim(self, owner: str, limit: int, lease: timedelta) -> list[Claim]:
        """Lease up to `limit` due rows in one statement (SKIP LOCKED on PostgreSQL): retries
        that are due first, then queued rows, each oldest first (a round in id order).

        Each state is read in the order of the `ix_delivery_due` index, so a claim costs
        the same at the end of a 100,000-row round as at its start (ordering both states
        together would sort the whole remaining queue for every claim)."""
        now = self.clock()

        def due(rank: int, state: str) -> Select[tuple[int, int, datetime]]:
            rows = (
                select(D.id, D.next_attempt_at)
                .where(
                    D.campaign_id == self.campaign_id,
                    D.state == state,
                    D.next_attempt_at <= now,
                    or_(D.lease_until.is_(None), D.lease_until < now),
                )
                .order_by(D.next_attempt_at, D.id)
                .limit(limit)
            )
            if self._dialect == "postgresql":
                rows = rows.with_for_update(skip_locked=True)
            inner = rows.subquery()
            return select(inner.c.id, literal(rank).label("rank"), inner.c.next_attempt_at)

        either = union_all(due(0, S.retry_wait.value), due(1, S.queued.value)).subquery()
        due_ids = (  # at most 2 × limit rows to order here
            select(either.c.id)
            .order_by(either.c.rank, either.c.next_attempt_at, either.c.id)
            .limit(limit)
        )
        stmt = (
            update(DELIVERIES)
            .where(D.id.in_(due_ids.scalar_subquery()))
            .values(lease_owner=owner, lease_until=now + lease, updated_at=now)
            .returning(
                D.id,
                D.invitee_id,
                D.kind,
                D.message_id,
                D.sequence,
                D.attempts,
                D.delivered_to,
                D.refused,
            )
        )
        with self.engine.begin() as conn:
            claimed = [Claim(*row) for row in conn.execute(stmt)]
        return sorted(claimed, key=lambda c: c.id)

    def rebase(self, owner: str, claim: Claim, sequence: int) -> Claim | None:
        """Move a row this worker holds, not yet sent, to event version `sequence` (it goes
        out telling the current event). None when the row is no longer this worker's."""
        with self.engine.begin() as conn:
            changed = conn.execute(
                update(DELIVERIES)
                .where(
                    D.id == claim.id,
                    D.lease_owner == owner,
                    D.sequence == claim.sequence,
                    D.state.in_(_SENDABLE),
                )
                .values(sequence=sequence, updated_at=self.clock())
            ).rowcount
        if changed:
            return dataclasses.replace(claim, sequence=sequence)
        return self.reclaimed(owner, claim)

    def reclaimed(self, owner: str, claim: Claim) -> Claim | None:
        """The row of `claim` as it is now, if this worker still holds it and it is still
        to be sent (after `step` refused to mark it: its event version changed — a `send
        update` rebased it — or another worker took it). None when it is no longer ours."""
        with self.reads.connect() as conn:
            row = conn.execute(
                select(
                    D.id, D.invitee_id, D.kind, D.message_id, D.sequence, D.attempts,
                    D.delivered_to, D.refused,
                ).where(
                    D.id == claim.id, D.lease_owner == owner, D.state.in_(_SENDABLE)
                )
            ).first()  # fmt: skip
        return None if row is None else Claim(*row)

    @contextlib.contextmanager
    def stepping(self) -> Iterator[None]:
        """Keep one connection open for a run of `step` calls (a worker's drain), instead of
        taking one from the pool for every message."""
        with self.engine.connect() as conn:
            self._steps = conn
            try:
                yield
            finally:
                self._steps = None

    def step(
        self, owner: str, settled: Settled | None, sending: Sending | None, lease: timedelta
    ) -> bool:
        """One transaction: record how the previous message ended (`settled`) and mark the
        next one `sending` before it goes to the server. False if the next one's lease was
        lost to another worker (it must then not be sent)."""
        if self._steps is None:
            with self.engine.connect() as conn:
                return self._step(conn, owner, settled, sending, lease)
        try:
            return self._step(self._steps, owner, settled, sending, lease)
        except Exception:
            if not self._steps.invalidated:
                raise
        # The kept connection was lost (a database restart, an idle timeout during a
        # pause): nothing of that transaction was kept or it all was, and both statements
        # are guarded (lease owner, state), so it is run once more on a new connection.
        return self._step(self._steps, owner, settled, sending, lease)

    def _step(
        self,
        conn: Connection,
        owner: str,
        settled: Settled | None,
        sending: Sending | None,
        lease: timedelta,
    ) -> bool:
        now = self.clock()
        with conn.begin():
            if settled is not None:
                self._settle(
                    conn,
                    {
                        "id": settled.claim.id,
                        "owner": owner,
                        "state": settled.state,
                        "reply": settled.reply,
                        "sent_at": settled.at
                        if settled.state == S.sent or settled.delivered_to
                        else None,
                        "delivered_to": None
                        if settled.delivered_to is None
                        else "; ".join(settled.delivered_to),
                        "refused": None if settled.refused is None else ";\n".join(settled.refused),
                        "next_at": settled.at + settled.retry_after
                        if settled.retry_after is not None
                        else None,
                        "now": now,
                    },
                )
            if sending is None:
                return True
            changed = self._sending(
                conn,
                {
                    "id": sending.claim.id,
                    "owner": owner,
                    "sequence": sending.claim.sequence,
                    "attempts": sending.claim.attempts + 1,
                    "recipients": "; ".join(sending.recipients),
                    "server": sending.server,
                    "lease_until": now + lease,
                    "now": now,
                },
            )
            return changed == 1

    def release(self, owner: str) -> int:
        """Give back every row this worker leased but never started to send."""
        with self.engine.begin() as conn:
            result = conn.execute(
                update(DELIVERIES)
                .where(
                    D.lease_owner == owner,
                    D.state.in_(_SENDABLE),
                )
                .values(lease_owner=None, lease_until=None, updated_at=self.clock())
            )
        return int(result.rowcount)

    def recover(self) -> int:
        """Clean up after workers that are gone (their process died, or their lease ran
        out): rows they left in `sending` become `uncertain`; rows they had only leased go
        back to the queue at once. Returns how many became uncertain."""
        now = self.clock()
        with self.engine.begin() as conn:
            rows = conn.execute(
                select(D.id, D.state, D.lease_owner, D.lease_until).where(
                    D.campaign_id == self.campaign_id, D.lease_owner.is_not(None)
                )
            ).all()
            gone = [
                r
                for r in rows
                if r.lease_until is None or r.lease_until < now or owner_is_dead(r.lease_owner)
            ]
            stale = [r.id for r in gone if r.state == S.sending.value]
            leased = [r.id for r in gone if r.state in _SENDABLE]
            uncertain = 0
            if stale:
                uncertain = conn.execute(  # what this call changed: a worker recovering at
                    update(DELIVERIES)  # the same moment may have taken some already
                    .where(D.id.in_(stale), D.state == S.sending.value)
                    .values(
                        state=S.uncertain.value,
                        last_reply="the worker stopped between handing the message to the "
                        "server and recording the server's answer; it may or may not have "
                        "been delivered",
                        lease_owner=None,
                        lease_until=None,
                        updated_at=now,
                    )
                ).rowcount
            if leased:
                conn.execute(
                    update(DELIVERIES)
                    .where(D.id.in_(leased), D.state.in_(_SENDABLE))
                    .values(lease_owner=None, lease_until=None, updated_at=now)
                )
        return int(uncertain)
