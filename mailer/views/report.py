"""What the coordinator reads: delivery counts and, per office, where its mail stands."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

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


def code_of(item: InviteeStatus) -> str:
    """The office's province code: as imported, else what its id starts with."""
    return item.province_code or province_of(item.invitee_id)


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
        code = code_of(item)
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
    provinces = {code_of(i): i.province for i in everyone}
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
    invitees, deliveries = Invitee.__table__, Delivery.__table__  # type: ignore[attr-defined]
    i, d = invitees.c, deliveries.c
    # Columns, not ORM objects: at 100,000 offices building two model instances a row
    # was four fifths of the time (`python -m bench.web`).
    query = (
        select(
            i.invitee_id, i.organisation, i.province, i.province_code, i.agency, i.emails,
            i.phone, d.state, d.message_id, d.sent_at, d.last_reply, d.delivered_to,
            d.refused,
        )
        .select_from(invitees)
        .outerjoin(
            deliveries,
            (d.invitee_id == i.invitee_id)
            & (d.campaign_id == ledger.campaign_id)
            & (d.kind == kind),
        )
        .order_by(i.invitee_id)
    )  # fmt: skip
    answers = attendance(ledger)
    with ledger.reads.connect() as conn:
        everyone = [_item(row, answers.get(row.invitee_id)) for row in conn.execute(query)]
    event = pending_change(ledger, campaign.event, campaign.timezone)
    return narrow(StatusReport(ledger.campaign_id, {}, everyone, event), filters)


def narrow(report: StatusReport, filters: Filters) -> StatusReport:
    """The offices of `report` (every office, as `status` reads them) that `filters` keep,
    with their totals; `MailerError` for a province or agency no office has."""
    _check_filters(filters, report.invitees)
    if report.totals and filters == Filters():
        return report  # every office, its totals already counted
    rows = list(filter(filters.keep, report.invitees))
    totals: dict[str, int] = {"invitees": 0, NOT_ENQUEUED: 0, **{s.value: 0 for s in DeliveryState}}
    totals_attendance = dict.fromkeys(STATUSES, 0)
    for item in rows:
        totals["invitees"] += 1
        totals[item.delivery] = totals.get(item.delivery, 0) + 1
        totals_attendance[item.attendance] += 1
    return StatusReport(report.campaign_id, totals, rows, report.event, totals_attendance)


def _item(row: Any, answer: OfficeAttendance | None) -> InviteeStatus:
    sent = row.state is not None  # a delivery row of this kind exists
    return InviteeStatus(
        invitee_id=row.invitee_id,
        organisation=row.organisation,
        province=row.province,
        province_code=row.province_code,
        agency=row.agency,
        email=row.emails,
        phone=row.phone,
        delivery=row.state if sent else NOT_ENQUEUED,
        attendance=answer.status if answer else Attendance.no_reply,
        attendance_evidence=f"{answer.source}: {answer.evidence}" if answer else None,
        attendance_at=answer.at.isoformat() if answer else None,
        representative=(answer.representative or None) if answer else None,
        message_id=row.message_id,
        sent_at=row.sent_at.isoformat() if row.sent_at else None,
        last_reply=row.last_reply,
        delivered_to=(row.delivered_to or None) if sent else None,
        refused=(row.refused.replace(";\n", "; ") or None) if sent else None,
    )
