"""Stored rows (SQLModel tables). Values passed around elsewhere are frozen dataclasses.

Every datetime is stored as naive UTC and read back as aware UTC (`UTCDateTime`), so the
same code runs on SQLite and PostgreSQL. The schema is created and upgraded by the
Alembic migrations in `mailer/migrations/`; keep both in step.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Column, DateTime, Index, LargeBinary, Text, UniqueConstraint, text
from sqlalchemy.types import TypeDecorator
from sqlmodel import Field, SQLModel


class UTCDateTime(TypeDecorator[datetime]):
    impl = DateTime(timezone=False)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r} given to the database; use aware UTC")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


def _when(*, nullable: bool = False) -> Any:
    return Field(sa_column=Column(UTCDateTime(), nullable=nullable))


def split_emails(emails: str) -> list[str]:
    """The stored "a@x; b@y" (primary first) as a list."""
    return [e for e in (part.strip() for part in emails.split(";")) if e]


class DeliveryState(StrEnum):
    queued = "queued"
    sending = "sending"
    sent = "sent"
    retry_wait = "retry_wait"
    failed = "failed"
    uncertain = "uncertain"


class Invitee(SQLModel, table=True):
    __tablename__ = "invitee"

    invitee_id: str = Field(primary_key=True, max_length=64)
    organisation: str = Field(sa_column=Column(Text, nullable=False))
    salutation: str = Field(sa_column=Column(Text, nullable=False))
    province: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    province_code: str = Field(default="", max_length=16)
    agency: str = Field(default="", max_length=32)
    emails: str = Field(sa_column=Column(Text, nullable=False))  # "a@x; b@y", primary first
    phone: str = Field(default="", max_length=64)
    created_at: datetime = _when()
    updated_at: datetime = _when()


class CampaignState(SQLModel, table=True):
    """What the database remembers of a campaign: its iCalendar SEQUENCE and SMTP server."""

    __tablename__ = "campaign_state"

    campaign_id: str = Field(primary_key=True, max_length=64)
    sequence: int = 0
    smtp_server: str | None = Field(default=None, max_length=255)
    created_at: datetime = _when()


COORDINATORS = "invitee_id IS NULL"  # a row of no office: the coordinator's (the digest)


class Delivery(SQLModel, table=True):
    """The ledger: one row per (campaign, invitee, kind); see docs/design.md §3. A row of no
    office (`invitee_id` NULL: the coordinator's daily digest) is once per (campaign, kind)."""

    __tablename__ = "delivery"
    __table_args__ = (
        UniqueConstraint("campaign_id", "invitee_id", "kind", name="uq_delivery_once"),
        Index(
            "uq_delivery_coordinator_once",
            "campaign_id",
            "kind",
            unique=True,
            sqlite_where=text(COORDINATORS),
            postgresql_where=text(COORDINATORS),
        ),
        Index("ix_delivery_due", "campaign_id", "state", "next_attempt_at", "id"),
        Index("ix_delivery_server_sent", "server", "sent_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    campaign_id: str = Field(max_length=64)
    invitee_id: str | None = Field(  # None: the coordinator's row (see `COORDINATORS`)
        default=None, max_length=64, foreign_key="invitee.invitee_id", nullable=True
    )
    kind: str = Field(max_length=64)
    message_id: str = Field(max_length=255, unique=True)
    sequence: int = 0
    recipients: str = Field(sa_column=Column(Text, nullable=False))  # still to send to
    # The per-address outcome: addresses the server accepted ("a@x; b@y"), and those it
    # refused for good with its reply ("c@z: 550 …"). See `Ledger.step`.
    delivered_to: str = Field(
        default="", sa_column=Column(Text, nullable=False, default="", server_default="")
    )
    refused: str = Field(
        default="", sa_column=Column(Text, nullable=False, default="", server_default="")
    )
    state: str = Field(default=DeliveryState.queued, max_length=16)
    attempts: int = 0
    next_attempt_at: datetime = _when()
    lease_owner: str | None = Field(default=None, max_length=128)
    lease_until: datetime | None = _when(nullable=True)
    last_reply: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    server: str | None = Field(default=None, max_length=255)
    enqueued_at: datetime = _when()
    sent_at: datetime | None = _when(nullable=True)
    updated_at: datetime = _when()


class EventVersion(SQLModel, table=True):
    """The event as it was sent at each iCalendar SEQUENCE (invitation, update, cancel)."""

    __tablename__ = "event_version"

    campaign_id: str = Field(primary_key=True, max_length=64)
    sequence: int = Field(primary_key=True)
    reason: str = Field(max_length=16)  # invitation | update | cancel
    event: str = Field(sa_column=Column(Text, nullable=False))  # JSON snapshot
    created_at: datetime = _when()


class RoundRun(SQLModel, table=True):
    """A scheduled round that ran (`done`) or whose catch-up window passed (`missed`)."""

    __tablename__ = "round_run"

    campaign_id: str = Field(primary_key=True, max_length=64)
    rule_id: str = Field(primary_key=True, max_length=64)
    due_at: datetime = Field(sa_column=Column(UTCDateTime(), primary_key=True))
    status: str = Field(max_length=16)  # done | missed
    enqueued: int = 0
    note: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    recorded_at: datetime = _when()


class InboundMessage(SQLModel, table=True):
    """Every message fetched from the coordinator's mailbox, raw, with what we made of it."""

    __tablename__ = "inbound_message"
    __table_args__ = (
        UniqueConstraint("source", "source_key", name="uq_inbound_once"),
        Index("ix_inbound_invitee", "invitee_id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    source: str = Field(max_length=255)
    source_key: str = Field(max_length=255)
    message_id: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    raw: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    fetched_at: datetime = _when()
    kind: str = Field(max_length=32)
    outcome: str = Field(max_length=32)
    invitee_id: str | None = Field(default=None, max_length=64)
    matched_by: str | None = Field(default=None, max_length=16)
    sequence: int | None = None
    stale: bool = False
    evidence: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    representative: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))


class AttendanceMark(SQLModel, table=True):
    """A coordinator's decision about an office; it wins over any automatic reading."""

    __tablename__ = "attendance_mark"

    id: int | None = Field(default=None, primary_key=True)
    campaign_id: str = Field(max_length=64)
    invitee_id: str = Field(max_length=64)
    status: str = Field(max_length=32)
    representative: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    note: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    marked_at: datetime = _when()


class SchedulerState(SQLModel, table=True):
    """Each `mailer scheduler run` process of a campaign (mailer/rounds/standby.py): its role
    (active | standby | stopped), its heartbeat, its last pass and its last mail sync."""

    __tablename__ = "scheduler_state"

    campaign_id: str = Field(primary_key=True, max_length=64)
    host: str = Field(primary_key=True, max_length=255)
    pid: int = Field(primary_key=True)
    role: str = Field(max_length=16)
    started_at: datetime = _when()
    since: datetime = _when()  # in this role since
    heartbeat_at: datetime = _when()
    last_pass_at: datetime | None = _when(nullable=True)
    last_pass: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    last_sync_ok_at: datetime | None = _when(nullable=True)
    last_sync_error: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    last_sync_error_at: datetime | None = _when(nullable=True)


class LetterPdf(SQLModel, table=True):
    """The official letter as PDF, rendered once per (campaign, office, letter kind,
    SEQUENCE) and kept: every attempt of a ledger row sends these bytes
    (`mailer.letter_pdf.store`)."""

    __tablename__ = "letter_pdf"

    campaign_id: str = Field(primary_key=True, max_length=64)
    invitee_id: str = Field(primary_key=True, max_length=64)
    kind: str = Field(primary_key=True, max_length=16)  # invitation | update | cancel
    sequence: int = Field(primary_key=True)
    pdf: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    sha256: str = Field(max_length=64)
    rendered_at: datetime = _when()


class RsvpToken(SQLModel, table=True):
    """An office's personal link version (mailer/web/store.py): a link signed with an older
    version no longer opens. No row: version 1. `mailer rsvp revoke` bumps it."""

    __tablename__ = "rsvp_token"

    campaign_id: str = Field(primary_key=True, max_length=64)
    invitee_id: str = Field(primary_key=True, max_length=64)
    version: int = 1
    revoked_at: datetime | None = _when(nullable=True)


class RsvpVisit(SQLModel, table=True):
    """A GET or HEAD of an office's page or its .ics: "link opened", with the user agent
    (so the coordinator can tell a mail scanner from a person). Nothing else is recorded."""

    __tablename__ = "rsvp_visit"
    __table_args__ = (Index("ix_rsvp_visit_invitee", "campaign_id", "invitee_id"),)

    id: int | None = Field(default=None, primary_key=True)
    campaign_id: str = Field(max_length=64)
    invitee_id: str = Field(max_length=64)
    method: str = Field(max_length=8)  # GET | HEAD
    what: str = Field(max_length=16)  # page | ics
    user_agent: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    at: datetime = _when()


class WebAnswer(SQLModel, table=True):
    """An office's answer on its own page (mailer/replies/online.py), with its evidence: one
    row per change of answer (`number` 1, 2, …; its confirmation is ledger kind
    `confirm:<number>`). Attendance reads these beside replies and marks."""

    __tablename__ = "web_answer"
    __table_args__ = (
        UniqueConstraint("campaign_id", "invitee_id", "number", name="uq_web_answer_number"),
    )

    id: int | None = Field(default=None, primary_key=True)
    campaign_id: str = Field(max_length=64)
    invitee_id: str = Field(max_length=64)
    number: int
    status: str = Field(max_length=32)
    representative: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    sequence: int  # the event version the page showed
    address: str = Field(default="", max_length=64)
    user_agent: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    answered_at: datetime = _when()
