"""What an office's page shows and takes: the office a link opens (`find_office`: forged,
revoked, expired or unknown links raise `TokenProblem`), the page's values — the event as
its current version tells it (`mailer.versions`), in Thai with the Buddhist Era, the answer
so far, the add-to-calendar links — and the answer read from a posted form (`read_answer`).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from mailer.compose.invites import InviteBuilder
from mailer.db import reader
from mailer.invitees.addresses import AddressProblem, ascii_address
from mailer.invitees.records import RECORD_COLUMNS, InviteeRecord
from mailer.labels import ATTENDANCE_TH
from mailer.models import Invitee
from mailer.replies.attendance import MARK, attendance
from mailer.replies.online import CHOICES, DETAILS, Answer
from mailer.replies.statuses import Attendance
from mailer.thai import thai_date, thai_digits, thai_time, thai_time_range
from mailer.versions import versions
from mailer.web.links import google_calendar, outlook_web
from mailer.web.store import link_version
from mailer.web.tokens import TokenProblem, Tokens

if TYPE_CHECKING:
    from mailer.campaign import Campaign, Event
    from mailer.delivery.ledger import Ledger


@dataclass(frozen=True)
class Site:
    """What `mailer web` serves from: the ledger (and its clock), the campaign, the
    templates folder (templates/web/), the link key, how many POSTs a link and an address
    may make in `post_window` seconds; the dashboard's password hash (empty: the dashboard
    is off) and how many logins an address may try in that window."""

    ledger: Ledger
    campaign: Campaign
    templates_dir: Path
    secret_key: str
    posts_per_link: int = 10
    posts_per_address: int = 60
    post_window: float = 600.0
    password_hash: str = ""
    readonly_hash: str = ""  # the read-only role's password hash (empty: no such role)
    logins_per_address: int = 10
    refresh_seconds: float = 10.0  # how often the dashboard's totals refresh themselves


@dataclass(frozen=True)
class Office:
    """An office as its valid link opens it, with the event's current version."""

    invitee: InviteeRecord
    token: str
    event: Event
    sequence: int
    cancelled: bool
    deadline: datetime  # answers are taken until then
    expires: datetime  # the link opens until then

    def open(self, now: datetime) -> bool:
        return not self.cancelled and now < self.deadline


def find_office(site: Site, token: str) -> Office:
    """The office `token` opens now, or `TokenProblem`: malformed, forged (a bad signature,
    another campaign's), unknown (no such office), revoked (an older link version) or
    expired (`grace_days` after the event ended)."""
    claim = Tokens(site.secret_key, site.campaign.id).read(token)
    ledger, campaign = site.ledger, site.campaign
    with reader(ledger.engine).connect() as conn:
        row = conn.execute(
            select(*RECORD_COLUMNS).where(Invitee.invitee_id == claim.invitee_id)  # type: ignore[arg-type]
        ).first()
    if row is None:
        raise TokenProblem("unknown")
    if claim.version != link_version(ledger, claim.invitee_id):
        raise TokenProblem("revoked")
    found = versions(ledger)
    latest = found[-1] if found else None
    event = latest.snapshot.event(campaign.event) if latest else campaign.event
    office = Office(
        invitee=InviteeRecord.from_row(row),
        token=token,
        event=event,
        sequence=latest.sequence if latest else 0,
        cancelled=latest is not None and latest.reason == "cancel",
        deadline=campaign.rsvp.reply_deadline or event.start,
        expires=event.end + timedelta(days=campaign.rsvp.grace_days),
    )
    if site.ledger.clock() >= office.expires:
        raise TokenProblem("expired")
    return office


def _thai_moment(moment: datetime, site: Site) -> str:
    zone = site.campaign.timezone
    return f"{thai_date(moment, zone)} เวลา {thai_time(moment, zone)} น."


def page_values(site: Site, office: Office) -> dict[str, Any]:
    """The page's values (templates/web/rsvp.html), plain data for the sandbox."""
    campaign, event, zone = site.campaign, office.event, site.campaign.timezone
    found = attendance(site.ledger, only=office.invitee.invitee_id).get(office.invitee.invitee_id)
    status = found.status if found else Attendance.no_reply
    earlier = found is not None and status == Attendance.no_reply and bool(found.history)
    details = InviteBuilder(campaign).description(event)
    return {
        "office": office.invitee.organisation,
        "event": {
            "title": event.title,
            "date": thai_date(event.start, zone),
            "time": thai_time_range(event.start, event.end, zone).removeprefix("เวลา "),
            "venue": event.venue,
        },
        "answer": {
            "status": status.value,
            "label": ATTENDANCE_TH[status],
            "by_coordinator": found is not None and found.source == MARK,
            "earlier_version": earlier,
            "representative": dict(found.representative) if found else {},
        },
        "open": office.open(site.ledger.clock()),
        "cancelled": office.cancelled,
        "deadline": _thai_moment(office.deadline, site),
        "choices": [{"value": c.value, "label": ATTENDANCE_TH[c]} for c in CHOICES],
        "calendar": {
            "ics": f"{office.token}/invite.ics",
            "google": google_calendar(event, details),
            "outlook": outlook_web(event, details),
        },
        "sequence": office.sequence,
    }


def coordinator_values(campaign: Campaign) -> dict[str, str]:
    coordinator = campaign.coordinator
    return {
        "name": coordinator.name,
        "phone": thai_digits(coordinator.mobile),
        "tel": re.sub(r"[^0-9+]", "", coordinator.mobile),
        "email": coordinator.email,
    }


_THAI_DIGITS = str.maketrans("๐๑๒๓๔๕๖๗๘๙", "0123456789")
MAX_FIELD = 120


def _clean(value: object) -> str:
    """One line of text as typed: control characters dropped, spaces collapsed."""
    text = "".join(
        ch for ch in str(value or "") if unicodedata.category(ch) not in {"Cc", "Cf", "Zl", "Zp"}
    )
    return " ".join(text.split())


def read_answer(form: Mapping[str, Any]) -> tuple[Answer | None, dict[str, str], dict[str, str]]:
    """(the answer, or None; the problems by field, in Thai; the values as typed)."""
    given = {key: _clean(form.get(key, ""))[: MAX_FIELD * 2] for key in ("choice", *DETAILS)}
    problems: dict[str, str] = {}
    choice = given["choice"]
    if choice not in {c.value for c in CHOICES}:
        problems["choice"] = "โปรดเลือกคำตอบหนึ่งข้อ"
        return None, problems, given
    if choice != Attendance.representative:
        return Answer(Attendance(choice)), problems, given
    for key, label in (("name", "ชื่อผู้แทน"), ("position", "ตำแหน่ง")):
        if not given[key]:
            problems[key] = f"โปรดกรอก{label}"
        elif len(given[key]) > MAX_FIELD:
            problems[key] = f"{label}ยาวเกิน {MAX_FIELD} ตัวอักษร"
    digits = re.sub(r"\D", "", given["phone"].translate(_THAI_DIGITS))
    if not 9 <= len(digits) <= 15 or len(given["phone"]) > 40:
        problems["phone"] = "โปรดกรอกหมายเลขโทรศัพท์ ๙–๑๐ หลัก เช่น 08 1234 5678"
    if given["email"]:
        try:
            given["email"] = ascii_address(given["email"])
        except AddressProblem:
            problems["email"] = "อีเมลไม่ถูกต้อง (เว้นว่างได้)"
    if problems:
        return None, problems, given
    representative = {key: given[key] for key in DETAILS if given[key]}
    return Answer(Attendance.representative, representative), problems, given
