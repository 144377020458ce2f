"""One office on the dashboard: where it stands (its row of `mailer status`) and its whole
timeline, oldest first — each message of the ledger sent to it (or bounced, or waiting),
each "link opened" (a person or a scanner), each reply and page answer with its evidence,
each of the coordinator's marks."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Table, select

from mailer.errors import MailerError
from mailer.labels import ATTENDANCE_TH, DELIVERY_TH
from mailer.models import Delivery
from mailer.replies.attendance import attendance
from mailer.replies.statuses import ANSWERS
from mailer.views.report import status
from mailer.web.board import looks_like_scanner
from mailer.web.store import visits

if TYPE_CHECKING:
    from mailer.campaign import Campaign
    from mailer.delivery.ledger import Ledger

_DELIVERIES: Table = Delivery.__table__  # type: ignore[attr-defined]
D = _DELIVERIES.c


def office_values(ledger: Ledger, campaign: Campaign, invitee_id: str) -> dict[str, Any]:
    """The office page's values; `MailerError` for an office not in the invitee list."""
    found = [i for i in status(ledger, campaign).invitees if i.invitee_id == invitee_id]
    if not found:
        raise MailerError(f"no invitee {invitee_id!r}; see `mailer status` for the ids")
    (item,) = found
    entries = _messages(ledger, invitee_id) + _opened(ledger, invitee_id)
    entries += _answers(ledger, invitee_id)
    entries.sort(key=lambda e: e["sort"])
    return {
        "office": {
            "id": item.invitee_id, "organisation": item.organisation, "province": item.province,
            "email": item.email, "phone": item.phone,
            "delivery": DELIVERY_TH.get(item.delivery, item.delivery),
            "attendance": ATTENDANCE_TH[item.attendance], "status": item.attendance.value,
            "evidence": item.attendance_evidence or "",
            "representative": dict(item.representative or {}),
        },
        "timeline": [{k: v for k, v in e.items() if k != "sort"} for e in entries],
        "answers": [{"value": a.value, "label": ATTENDANCE_TH[a]} for a in ANSWERS],
    }  # fmt: skip


def _entry(at: datetime | None, what: str, text: str, kind: str) -> dict[str, Any]:
    when = at.isoformat(timespec="seconds") if at else ""
    return {"sort": when, "at": when.replace("T", " ").removesuffix("+00:00"), "what": what,
            "text": text, "kind": kind}  # fmt: skip


def _messages(ledger: Ledger, invitee_id: str) -> list[dict[str, Any]]:
    with ledger.reads.connect() as conn:
        rows = conn.execute(
            select(D.kind, D.state, D.sequence, D.enqueued_at, D.sent_at, D.last_reply,
                   D.delivered_to, D.refused)
            .where(D.campaign_id == ledger.campaign_id, D.invitee_id == invitee_id)
            .order_by(D.enqueued_at, D.id)
        ).all()  # fmt: skip
    found = []
    for row in rows:
        state = DELIVERY_TH.get(row.state, row.state)
        text = f"{row.kind} (SEQUENCE {row.sequence}): {state}"
        if row.delivered_to:
            text += f" — ถึง {row.delivered_to}"
        if row.refused:
            text += f" — ถูกปฏิเสธ {row.refused}"
        elif row.last_reply and row.state != "sent":
            text += f" — {row.last_reply}"
        found.append(_entry(row.sent_at or row.enqueued_at, "อีเมล", text, "message"))
    return found


def _opened(ledger: Ledger, invitee_id: str) -> list[dict[str, Any]]:
    found = []
    for visit in visits(ledger, invitee_id):
        who = "โปรแกรมสแกนอีเมล" if looks_like_scanner(visit.method, visit.user_agent) else "คน"
        text = (
            f"{who}: {visit.method} {visit.what} — {visit.user_agent[:200] or '(ไม่มี user agent)'}"
        )
        found.append(_entry(visit.at, "เปิดลิงก์", text, "opened"))
    return found


def _answers(ledger: Ledger, invitee_id: str) -> list[dict[str, Any]]:
    found = attendance(ledger, only=invitee_id).get(invitee_id)
    entries = []
    for event in found.history if found else []:
        label = ATTENDANCE_TH.get(event.status, str(event.status))  # type: ignore[arg-type]
        what = {"mark": "ผู้ประสานงานบันทึก", "web": "ตอบทางเว็บ"}.get(event.kind, "อีเมลตอบกลับ")
        text = f"{label} ({event.source}, {event.kind}): {event.evidence}"
        if event.representative:
            text += " — ผู้แทน: " + " ".join(event.representative.values())
        if event.stale:
            text += " — ตอบกำหนดการฉบับก่อน ไม่นับ"
        entries.append(_entry(event.at, what, text, "mark" if event.is_mark else "answer"))
    return entries
