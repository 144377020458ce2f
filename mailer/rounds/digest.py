"""The coordinator's daily digest (`[digest] time`, optional `to`): when it is due, queuing it
through the ledger, and what it says.

One ledger row a day, `digest:<YYYY-MM-DD>` (the campaign's local day), of no office
(`invitee_id` NULL: see `mailer.models.COORDINATORS`), so it is sent once per day whatever
restarts: `queue_digest` adds today's row once the local time is past `[digest] time` (the
partial unique index makes a second add, by any process, a no-op), and the drain sends it
like any other row (a 4xx is retried, a crash leaves it `uncertain`). No digest is queued
after the event's day, nor once the event was cancelled.

What it says is computed when the message is composed (`digest_values`, handed to sending
through `DeliveryContext.digest`): the totals of `mailer status`, which offices' attendance
changed since the last digest that went out (up to the moment this one was queued, so the
windows of two digests meet exactly), the review queue, the offices to call (the call
sheet's own selection, `mailer.views.exports.sheet`), the next rounds, and links to the web
dashboard when `MAILER_PUBLIC_URL` is set.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import select

from mailer.compose import ComposedMessage
from mailer.compose.digest import DigestMail, compose_digest
from mailer.delivery.context import DigestValues
from mailer.delivery.reads import D, reached
from mailer.identity import new_message_id
from mailer.kinds import DIGEST_PREFIX, LedgerKind, digest
from mailer.labels import ATTENDANCE_TH, DELIVERY_TH
from mailer.replies.attendance import changed, review
from mailer.replies.statuses import STATUSES, Attendance
from mailer.thai import thai_date, thai_time
from mailer.versions import pending_change
from mailer.views.exports import sheet
from mailer.views.report import NOT_ENQUEUED, status
from mailer.workspace import Workspace

SHOWN_CALLS = 50  # offices to call listed in the message (the rest: the export, the web)
SHOWN_CHANGES = 100  # offices per kind of change
SHOWN_REVIEW = 20  # messages of the review queue
CHANGE_ORDER = (  # what the coordinator reads first
    Attendance.accepted, Attendance.representative, Attendance.declined, Attendance.bounced,
    Attendance.tentative, Attendance.needs_review, Attendance.no_reply,
)  # fmt: skip
_CALL_COLUMNS = ("รหัส", "จังหวัด", "หน่วยงาน", "โทรศัพท์", "สถานะ")  # of the call sheet


def _local_day(ws: Workspace, moment: datetime) -> date:
    return moment.astimezone(ws.campaign.timezone).date()


def _at(ws: Workspace, day: date, at: time) -> datetime:
    return datetime.combine(day, at, tzinfo=ws.campaign.timezone)


def _last_day(ws: Workspace) -> date:
    """The last day a digest goes out: the event's (campaign time zone)."""
    return _local_day(ws, ws.campaign.event.start)


def _queued_days(ws: Workspace) -> set[date]:
    ledger = ws.ledger()
    with ledger.reads.connect() as conn:
        kinds = conn.execute(
            select(D.kind).where(
                D.campaign_id == ledger.campaign_id,
                D.invitee_id.is_(None),
                D.kind.startswith(DIGEST_PREFIX),
            )
        ).scalars()
        return {day for day in (LedgerKind.parse(k).day for k in kinds) if day is not None}


def _cancelled(ws: Workspace) -> bool:
    change = pending_change(ws.ledger(), ws.campaign.event, ws.campaign.timezone)
    return change is not None and change.cancelled


def next_digest(ws: Workspace) -> datetime | None:
    """When the next digest is queued: today's time if today's is still to come (or due
    now), else tomorrow's; None without `[digest]`, after the event's day, or once the
    event was cancelled."""
    policy = ws.campaign.digest
    if policy is None or _cancelled(ws):
        return None
    today = _local_day(ws, ws.clock())
    day = today if today not in _queued_days(ws) else today + timedelta(days=1)
    if day > _last_day(ws):
        return None
    return _at(ws, day, policy.time_of_day).astimezone(UTC)


def queue_digest(ws: Workspace) -> LedgerKind | None:
    """Queue today's digest if its time has come and the ledger has none for today (the
    scheduler's pass calls this before it drains). The kind queued, or None."""
    due = next_digest(ws)
    if due is None or ws.clock() < due or _local_day(ws, due) != _local_day(ws, ws.clock()):
        return None
    kind = digest(_local_day(ws, due))
    campaign, ledger = ws.campaign, ws.ledger()
    sequence = ledger.campaign_state().sequence
    to = (campaign.digest.to if campaign.digest else "") or campaign.coordinator.email
    message_id = new_message_id(campaign, "coordinator", str(kind))
    added = ledger.enqueue_coordinators(str(kind), sequence, message_id, to)
    return kind if added else None


def _windows(ws: Workspace, kind: LedgerKind) -> tuple[datetime | None, datetime]:
    """What "since the last digest" spans for the digest of `kind`: from the moment the
    last earlier digest that went out was queued (None: the first one) to the moment this
    one was queued (now, if it is not in the ledger: a preview)."""
    ledger = ws.ledger()
    with ledger.reads.connect() as conn:
        rows = conn.execute(
            select(D.kind, D.enqueued_at, reached().label("reached")).where(
                D.campaign_id == ledger.campaign_id,
                D.invitee_id.is_(None),
                D.kind.startswith(DIGEST_PREFIX),
            )
        ).all()
    this = next((r.enqueued_at for r in rows if r.kind == str(kind)), ws.clock())
    earlier = [r.enqueued_at for r in rows if r.reached and r.enqueued_at < this]
    return (max(earlier) if earlier else None), this


def _when(ws: Workspace, moment: datetime) -> str:
    zone = ws.campaign.timezone
    return f"{thai_date(moment, zone)} เวลา {thai_time(moment, zone)} น."


def _link(ws: Workspace, path: str) -> str:
    base = ws.settings.web.public_url
    return f"{base}{path}" if base else ""


def digest_values(ws: Workspace, kind: LedgerKind) -> dict[str, Any]:
    """The values `templates/digest/` receives for the digest of `kind`, as the ledger
    stands now (plain values: numbers, texts, lists and dicts of them)."""
    ledger, campaign = ws.ledger(), ws.campaign
    now = ws.clock()
    report = status(ledger, campaign)
    since, until = _windows(ws, kind)
    return {
        "day": thai_date(_at(ws, kind.day or _local_day(ws, now), time(12))),
        "as_of": _when(ws, now),
        "since": _when(ws, since) if since is not None else "",
        "until": _when(ws, until),
        "totals": _totals(report.totals, report.attendance or {}),
        "changes": _changes(ws, since, until, {i.invitee_id: i for i in report.invitees}),
        "review": _review(ws),
        "calls": _calls(report),
        "rounds": _rounds(ws),
        "links": {"dashboard": _link(ws, "/dashboard"), "review": _link(ws, "/dashboard/review")},
    }


def _totals(delivery: dict[str, int], attendance: dict[Attendance, int]) -> dict[str, Any]:
    """`mailer status`'s totals, with their Thai names (only the states some office is in)."""
    states = [NOT_ENQUEUED, *(s for s in DELIVERY_TH if s != NOT_ENQUEUED)]
    return {
        "invitees": delivery.get("invitees", 0),
        "delivery": [
            {"key": s, "label": DELIVERY_TH[s], "count": delivery[s]}
            for s in states
            if delivery.get(s)
        ],
        "attendance": [
            {"key": str(a), "label": ATTENDANCE_TH[a], "count": attendance.get(a, 0)}
            for a in STATUSES
        ],
        "coming": attendance.get(Attendance.accepted, 0)
        + attendance.get(Attendance.representative, 0),
    }


def _changes(
    ws: Workspace, since: datetime | None, until: datetime, offices: dict[str, Any]
) -> list[dict[str, Any]]:
    """The offices whose attendance moved in the window, grouped by what it became."""
    groups: dict[Attendance, list[dict[str, str]]] = {}
    for change in changed(ws.ledger(), since, until):
        office = offices.get(change.invitee_id)
        if office is None:  # an answer for an office no longer imported
            continue
        rep = change.after.representative or {}
        groups.setdefault(change.after.status, []).append(
            {
                "invitee_id": change.invitee_id,
                "organisation": office.organisation,
                "province": office.province,
                "before": ATTENDANCE_TH[change.before],
                "representative": " ".join(v for v in (rep.get("name"), rep.get("position")) if v),
            }
        )
    return [
        {
            "key": str(status_),
            "label": ATTENDANCE_TH[status_],
            "count": len(groups[status_]),
            "offices": groups[status_][:SHOWN_CHANGES],
            "more": max(len(groups[status_]) - SHOWN_CHANGES, 0),
        }
        for status_ in CHANGE_ORDER
        if status_ in groups
    ]


def _review(ws: Workspace) -> dict[str, Any]:
    items = list(review(ws.ledger()))
    return {
        "count": len(items),
        "items": [
            {"id": i.id, "invitee_id": i.invitee_id or "", "kind": i.kind, "subject": i.subject}
            for i in items[:SHOWN_REVIEW]
        ],
        "more": max(len(items) - SHOWN_REVIEW, 0),
    }


def _calls(report: Any) -> dict[str, Any]:
    """The call sheet (`mailer export --what call-sheet`), its first rows and main columns."""
    calls = sheet(report, "call-sheet")
    columns = [calls.headings.index(name) for name in _CALL_COLUMNS]
    return {
        "headings": list(_CALL_COLUMNS),
        "count": len(calls.rows),
        "rows": [[row[c] for c in columns] for row in calls.rows[:SHOWN_CALLS]],
        "more": max(len(calls.rows) - SHOWN_CALLS, 0),
    }


def _rounds(ws: Workspace) -> list[dict[str, Any]]:
    from mailer.rounds.due import coming

    zone = ws.campaign.timezone
    return [
        {
            "rule": p.rule_id,
            "when": p.due_thai(zone),
            "audience": p.audience,
            "reach": p.reach,
            "status": p.status,
        }
        for p in coming(ws)
    ]


def preview_digest(ws: Workspace) -> ComposedMessage:
    """Today's digest as it would go now (nothing queued or sent): `mailer check` renders
    it, so a template problem shows before the scheduler meets it."""
    kind = digest(_local_day(ws, ws.clock()))
    mail = DigestMail("<digest-check@invalid>", digest_values(ws, kind))
    return compose_digest(ws.composer, mail, ws.clock())


def digest_builder(ws: Workspace) -> DigestValues:
    """`DeliveryContext.digest`: the digest's values, computed when it is composed."""
    return lambda kind: digest_values(ws, kind)
