"""What the coordinator reads: delivery counts and, per office, where its mail stands."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from sqlmodel import col, select

from mailer.db import session
from mailer.errors import MailerError
from mailer.models import Delivery, DeliveryState, Invitee
from mailer.replies.attendance import OfficeAttendance, attendance
from mailer.replies.statuses import STATUSES, Attendance, one_of
from mailer.settings import cut
from mailer.versions import PendingChange, pending_change

if TYPE_CHECKING:
    from mailer.campaign import Campaign
    from mailer.delivery.ledger import Ledger

NOT_ENQUEUED = "not_enqueued"


def province_of(invitee_id: str) -> str:
    """The province code an office's id starts with: TH-50-agri → TH-50."""
    return invitee_id.rsplit("-", 1)[0]


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
    attendance: Attendance
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
    attendance: dict[Attendance, int] | None = None

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
    attendance: str | None = None  # one of `STATUSES`
    delivery: str | None = None  # a `DeliveryState` or NOT_ENQUEUED (the dashboard's filter)

    def __post_init__(self) -> None:
        if self.attendance is not None:
            one_of(self.attendance, STATUSES, f"--attendance {cut(self.attendance)!r}")
        states = (NOT_ENQUEUED, *(s.value for s in DeliveryState))
        if self.delivery is not None and self.delivery not in states:
            raise MailerError(f"delivery {cut(self.delivery)!r} is not one of {', '.join(states)}")

    def keep(self, item: InviteeStatus) -> bool:
        code = province_of(item.invitee_id)
        return (
            (self.province is None or self.province in (code, item.province))
            and (self.agency is None or self.agency == item.agency)
            and (self.attendance is None or self.attendance == item.attendance)
            and (self.delivery is None or self.delivery == item.delivery)
        )


def _check_filters(filters: Filters, everyone: list[InviteeStatus]) -> None:
    """A province or agency that no imported office has is a mistake, not an empty answer."""
    if filters.province is None and filters.agency is None:
        return
    if not everyone:
        raise MailerError("no offices have been imported yet; run `mailer import contacts.csv`")
    provinces = {province_of(i.invitee_id): i.province for i in everyone}
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


def status(
    ledger: Ledger, campaign: Campaign, kind: str = "invitation", filters: Filters = Filters()
) -> StatusReport:
    """Every office (of those `filters` keep) with its `kind` of delivery and its attendance,
    the totals of both, and how the event differs from what was last sent."""
    query = (
        select(Invitee, Delivery)
        .outerjoin(
            Delivery,
            (col(Delivery.invitee_id) == col(Invitee.invitee_id))
            & (col(Delivery.campaign_id) == ledger.campaign_id)
            & (col(Delivery.kind) == kind),
        )
        .order_by(col(Invitee.invitee_id))
    )
    answers = attendance(ledger)
    with session(ledger.reads) as db:
        everyone = [
            _item(invitee, delivery, answers.get(invitee.invitee_id))
            for invitee, delivery in db.exec(query).all()
        ]
    _check_filters(filters, everyone)
    rows = list(filter(filters.keep, everyone))
    totals: dict[str, int] = {"invitees": 0, NOT_ENQUEUED: 0, **{s.value: 0 for s in DeliveryState}}
    totals_attendance = dict.fromkeys(STATUSES, 0)
    for item in rows:
        totals["invitees"] += 1
        totals[item.delivery] = totals.get(item.delivery, 0) + 1
        totals_attendance[item.attendance] += 1
    event = pending_change(ledger, campaign.event, campaign.timezone)
    return StatusReport(ledger.campaign_id, totals, rows, event, totals_attendance)


def _item(
    invitee: Invitee, delivery: Delivery | None, answer: OfficeAttendance | None
) -> InviteeStatus:
    return InviteeStatus(
        invitee_id=invitee.invitee_id,
        organisation=invitee.organisation,
        province=invitee.province,
        province_code=invitee.province_code,
        agency=invitee.agency,
        email=invitee.emails,
        phone=invitee.phone,
        delivery=delivery.state if delivery is not None else NOT_ENQUEUED,
        attendance=answer.status if answer else Attendance.no_reply,
        attendance_evidence=f"{answer.source}: {answer.evidence}" if answer else None,
        attendance_at=answer.at.isoformat() if answer else None,
        representative=(answer.representative or None) if answer else None,
        message_id=delivery.message_id if delivery else None,
        sent_at=delivery.sent_at.isoformat() if delivery and delivery.sent_at else None,
        last_reply=delivery.last_reply if delivery else None,
        delivered_to=(delivery.delivered_to or None) if delivery else None,
        refused=(delivery.refused.replace(";\n", "; ") or None) if delivery else None,
    )
