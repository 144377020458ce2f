"""The queuing half of the ledger's writer: rows added (`enqueue`; `enqueue_coordinators`
for a row of no office, the coordinator's digest), and the coordinator's
decisions and announcements — re-queue, resolve, move the campaign's SEQUENCE, rebase or
cancel the rows not yet sent — and the server guard. Not a second writer: `Ledger`
(`mailer.delivery.ledger`) inherits these, and the worker's side is written there."""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Callable, Iterable, Sequence

from sqlalchemy import Connection, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from mailer.delivery.reads import _SENDABLE, CAMPAIGNS, DELIVERIES, C, D, LedgerReads, S
from mailer.errors import LedgerError
from mailer.kinds import UPDATE_PREFIX
from mailer.models import COORDINATORS, CampaignState


class LedgerQueue(LedgerReads):
    _dialect: str  # the engine's dialect name (set by `Ledger`)

    # --- enqueue -------------------------------------------------------------------------

    def enqueue(
        self,
        invitees: Iterable[tuple[str, str]],
        kind: str,
        sequence: int,
        message_id: Callable[[str], str],
        conn: Connection | None = None,
    ) -> int:
        """Add one `queued` row per (invitee_id, recipients) not yet in the ledger for `kind`.

        Idempotent: running the same round twice adds nothing. Returns rows added.
        """
        now = self.clock()
        rows = (
            {
                "campaign_id": self.campaign_id,
                "invitee_id": invitee_id,
                "kind": kind,
                "message_id": message_id(invitee_id),
                "sequence": sequence,
                "recipients": recipients,
                "state": S.queued.value,
                "attempts": 0,
                "next_attempt_at": now,
                "enqueued_at": now,
                "updated_at": now,
            }
            for invitee_id, recipients in invitees
        )
        insert = pg_insert if self._dialect == "postgresql" else sqlite_insert
        # One statement compiled once, run for many rows at a time (SQLAlchemy batches them
        # into multi-row INSERTs); RETURNING counts what was really added (rowcount is
        # unreliable for multi-row inserts).
        stmt = (
            insert(DELIVERIES)
            .on_conflict_do_nothing(index_elements=["campaign_id", "invitee_id", "kind"])
            .returning(D.id)
        )
        added = 0
        # One transaction: all of the round or none (the caller's, when it passes one).
        with contextlib.nullcontext(conn) if conn is not None else self.engine.begin() as tx:
            while chunk := list(itertools.islice(rows, 5000)):
                added += len(tx.execute(stmt, chunk).all())
        return added

    def enqueue_coordinators(
        self, kind: str, sequence: int, message_id: str, recipients: str
    ) -> bool:
        """Add the one `queued` row of `kind` that goes to the coordinator, not to an office
        (`invitee_id` NULL), unless the ledger has it already (the partial unique index
        `uq_delivery_coordinator_once`: once per campaign and kind, across processes and
        restarts). Whether it was added."""
        now = self.clock()
        row = {
            "campaign_id": self.campaign_id, "invitee_id": None, "kind": kind,
            "message_id": message_id, "sequence": sequence, "recipients": recipients,
            "state": S.queued.value, "attempts": 0, "next_attempt_at": now,
            "enqueued_at": now, "updated_at": now,
        }  # fmt: skip
        insert = pg_insert if self._dialect == "postgresql" else sqlite_insert
        stmt = (
            insert(DELIVERIES)
            .values(**row)
            .on_conflict_do_nothing(
                index_elements=["campaign_id", "kind"], index_where=text(COORDINATORS)
            )
            .returning(D.id)
        )
        with self.engine.begin() as conn:
            return conn.execute(stmt).first() is not None

    # --- the coordinator's decisions and announcements -------------------------------------

    def requeue(self, failed: Sequence[int], partly: Sequence[int]) -> None:
        """Queue again (same Message-ID): `failed` or uncertain rows whole, and the addresses
        refused for good of `partly` delivered rows alone (the others never get it twice)."""
        now = self.clock()
        again = {"state": S.queued.value, "attempts": 0, "next_attempt_at": now,
                 "lease_owner": None, "lease_until": None, "updated_at": now}  # fmt: skip
        with self.engine.begin() as conn:
            if partly:
                conn.execute(
                    update(DELIVERIES)
                    .where(D.id.in_(partly), D.state == S.sent.value, D.refused != "")
                    .values(refused="", **again)
                )
            if failed:
                conn.execute(
                    update(DELIVERIES)
                    .where(D.id.in_(failed), D.state.in_([S.failed.value, S.uncertain.value]))
                    .values(**again)
                )

    def resolve(self, delivery_id: int, *, sent: bool, reply: str) -> None:
        """Settle an uncertain row as the coordinator found it: sent, or to be sent."""
        now = self.clock()
        values: dict[str, object] = (
            {"state": S.sent.value, "sent_at": now, "last_reply": reply}
            if sent
            else {"state": S.queued.value, "attempts": 0, "next_attempt_at": now}
        )
        with self.engine.begin() as conn:
            conn.execute(
                update(DELIVERIES)
                .where(D.id == delivery_id, D.state == S.uncertain.value)
                .values(updated_at=now, **values)
            )

    def advance_sequence(self, conn: Connection, before: int, after: int) -> bool:
        """Move the campaign's SEQUENCE from `before` to `after` in `conn`'s transaction;
        False when another announcement moved it first (one of two at once wins)."""
        moved = conn.execute(
            update(CAMPAIGNS)
            .where(C.campaign_id == self.campaign_id, C.sequence == before)
            .values(sequence=after)
        ).rowcount
        return bool(moved == 1)

    def rebase_unsent(self, conn: Connection, sequence: int) -> None:
        """An update: invitations and reminders not yet out will tell version `sequence`
        (earlier updates are left alone: a worker settles them as superseded)."""
        conn.execute(
            update(DELIVERIES)
            .where(
                D.campaign_id == self.campaign_id,
                D.state.in_(_SENDABLE),
                ~D.kind.startswith(UPDATE_PREFIX),
            )
            .values(sequence=sequence, updated_at=self.clock())
        )

    def cancel_unsent(self, conn: Connection) -> int:
        """A cancellation: nothing still queued goes out (recorded as not sent, and why)."""
        return int(
            conn.execute(
                update(DELIVERIES)
                .where(D.campaign_id == self.campaign_id, D.state.in_(_SENDABLE))
                .values(
                    state=S.failed.value,
                    last_reply="not sent: the event was cancelled",
                    updated_at=self.clock(),
                )
            ).rowcount
        )

    # --- campaign state and the server guard ---------------------------------------------

    def campaign_state(self) -> CampaignState:
        with self.engine.begin() as conn:
            row = conn.execute(select(CAMPAIGNS).where(C.campaign_id == self.campaign_id)).first()
            if row is not None:
                return CampaignState(**row._mapping)
            state = CampaignState(campaign_id=self.campaign_id, sequence=0, created_at=self.clock())
            insert = pg_insert if self._dialect == "postgresql" else sqlite_insert
            conn.execute(
                insert(CAMPAIGNS)
                .values(campaign_id=state.campaign_id, sequence=0, created_at=state.created_at)
                .on_conflict_do_nothing(index_elements=["campaign_id"])
            )
        return self.campaign_state()

    def guard_server(self, server: str, *, allow_new: bool) -> None:
        """Refuse to send through a different SMTP server than this ledger used before."""
        state = self.campaign_state()
        if state.smtp_server not in (None, server) and not allow_new:
            raise LedgerError(
                f"this database sent campaign {self.campaign_id!r} through {state.smtp_server}, "
                f"but SMTP_HOST/SMTP_PORT now name {server}. If that is intended, run again "
                "with --new-server; otherwise fix the settings"
            )
        if state.smtp_server != server:
            with self.engine.begin() as conn:
                conn.execute(
                    update(CAMPAIGNS)
                    .where(C.campaign_id == self.campaign_id)
                    .values(smtp_server=server)
                )
