"""What the coordinator reads: delivery counts and, per office, where its mail stands."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from sqlmodel import col, select

from mailer.db import reader, session
from mailer.errors import MailerError
from mailer.models import Delivery, DeliveryState, Invitee
from mailer.replies.attendance import attendance
from mailer.replies.statuses import STATUSES
from mailer.settings import cut
from mailer.versions import PendingChange, pending_change
from mailer.workspace import Workspace

NOT_ENQUEUED = "not_enqueued"


@dataclass(frozen=True)
class InviteeStatus:
    invitee_id: str
    organisation: str
    province: str
    province_code: str
    agency: str
    email: str
    phone: str
    delivery: str
    attendance: str
    attendance_evidence: str | None  # what decided it: "reply 12: …" or the coordinator's note
    attendance_at: str | None  # when that reply arrived or the mark was made (ISO, UTC)
    representative: dict[str, str] | None
    message_id: str | None
    sent_at: str | None
    last_reply: str | None
    # Per address (an office with several): those that have it, those refused for good.
    delivered_to: str | None = None
    refused: str | None = None

    @property
    def partly_delivered(self) -> bool:
        """The server took it for some of the office's addresses and refused others (for
        good, or for now while they wait for their retry)."""
        return bool(self.delivered_to) and (bool(self.refused) or self.delivery != "sent")


@dataclass(frozen=True)
class StatusReport:
    campaign_id: str
    totals: dict[str, int]
    invitees: list[InviteeStatus]
    event: PendingChange | None = None
    attendance: dict[str, int] | None = None

    def to_json(self) -> dict[str, Any]:
        event = None
        if self.event is not None:
            event = {
                "sequence": self.event.sequence,
                "cancelled": self.event.cancelled,
                "changed_since_sent": [asdict(c) for c in self.event.changes],
            }
        return {
            "campaign": self.campaign_id,
            "event": event,
            "totals": {**self.totals, "attendance": self.attendance or {}},
            "invitees": [asdict(i) for i in self.invitees],
        }


@dataclass(frozen=True)
class Filters:
    province: str | None = None  # a code (TH-50) or the Thai name
    agency: str | None = None
    attendance: str | None = None

    def keep(self, item: InviteeStatus) -> bool:
        code = item.invitee_id.rsplit("-", 1)[0]
        return (
            (self.province is None or self.province in (code, item.province))
            and (self.agency is None or self.agency == item.agency)
            and (self.attendance is None or self.attendance == item.attendance)
        )


def _check_filters(filters: Filters, everyone: list[InviteeStatus]) -> None:
    """A province or agency that no imported office has is a mistake, not an empty answer."""
    if filters.province is None and filters.agency is None:
        return
    if not everyone:
        raise MailerError("no offices have been imported yet; run `mailer import contacts.csv`")
    provinces = {i.invitee_id.rsplit("-", 1)[0]: i.province for i in everyone}
    if filters.province is not None and filters.province not in {*provinces, *provinces.values()}:
        shown = ", ".join(f"{code} ({name})" for code, name in sorted(provinces.items())[:3])
        raise MailerError(
            f"--province {cut(filters.province)!r} is not a province of the imported offices; "
            f"give its code or Thai name, e.g. {shown} ({len(provinces)} province(s): "
            "`mailer status` shows them all)"
        )
    agencies = sorted({i.agency for i in everyone})
    if filters.agency is not None and filters.agency not in agencies:
        raise MailerError(
            f"--agency {cut(filters.agency)!r} is not an agency of the imported offices; "
            f"use one of {', '.join(agencies)}"
        )


def status(ws: Workspace, kind: str = "invitation", filters: Filters = Filters()) -> StatusReport:
    if filters.attendance is not None and filters.attendance not in STATUSES:
        raise MailerError(
            f"--attendance {cut(filters.attendance)!r} is not one of {', '.join(STATUSES)}"
        )
    campaign_id = ws.campaign.id
    query = (
        select(Invitee, Delivery)
        .outerjoin(
            Delivery,
            (col(Delivery.invitee_id) == col(Invitee.invitee_id))
            & (col(Delivery.campaign_id) == campaign_id)
            & (col(Delivery.kind) == kind),
        )
        .order_by(col(Invitee.invitee_id))
    )
    rows: list[InviteeStatus] = []
    everyone: list[InviteeStatus] = []
    answers = attendance(ws)
    totals_attendance: dict[str, int] = {s: 0 for s in STATUSES}
    totals: dict[str, int] = {"invitees": 0, NOT_ENQUEUED: 0, **{s.value: 0 for s in DeliveryState}}
    with session(reader(ws.engine)) as db:
        for invitee, delivery in db.exec(query).all():
            state = delivery.state if delivery is not None else NOT_ENQUEUED
            answer = answers.get(invitee.invitee_id)
            status = answer.status if answer else "no_reply"
            item = InviteeStatus(
                invitee_id=invitee.invitee_id,
                organisation=invitee.organisation,
                province=invitee.province,
                province_code=invitee.province_code,
                agency=invitee.agency,
                email=invitee.emails,
                phone=invitee.phone,
                delivery=state,
                attendance=status,
                attendance_evidence=f"{answer.source}: {answer.evidence}" if answer else None,
                attendance_at=answer.at.isoformat() if answer and answer.at else None,
                representative=(answer.representative or None) if answer else None,
                message_id=delivery.message_id if delivery else None,
                sent_at=delivery.sent_at.isoformat() if delivery and delivery.sent_at else None,
                last_reply=delivery.last_reply if delivery else None,
                delivered_to=(delivery.delivered_to or None) if delivery else None,
                refused=(delivery.refused.replace(";\n", "; ") or None) if delivery else None,
            )
            everyone.append(item)
    _check_filters(filters, everyone)
    for item in filter(filters.keep, everyone):
        rows.append(item)
        totals["invitees"] += 1
        totals[item.delivery] = totals.get(item.delivery, 0) + 1
        totals_attendance[item.attendance] = totals_attendance.get(item.attendance, 0) + 1
    event = pending_change(ws.ledger(), ws.campaign.event, ws.campaign.timezone)
    return StatusReport(campaign_id, totals, rows, event, totals_attendance)
