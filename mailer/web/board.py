"""What the coordinator's dashboard shows, as plain values for the sandboxed templates: the
totals and the rows of `mailer status` (`mailer.views.report.status`, the same numbers as
`status --json`, read once per change: `mailer.web.snapshot`), paged; the province × agency
matrix (`mailer.views.exports.matrix`); "link opened" per office told apart as a mail scanner
or a person (`rsvp_visit`); the review queue (`mailer.replies.attendance.review`); and the
exports as bytes (`mailer.views.exports`)."""

from __future__ import annotations

import re
import tempfile
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from sqlalchemy import select

from mailer.errors import MailerError
from mailer.labels import AGENCY_LABELS, AGENCY_SHORT, ATTENDANCE_TH, DELIVERY_TH, MARKS
from mailer.models import Delivery
from mailer.replies.attendance import review
from mailer.replies.statuses import ANSWERS, STATUSES
from mailer.views.exports import BANGKOK, MatrixRow, export, matrix
from mailer.views.report import Filters, InviteeStatus, StatusReport, code_of, narrow
from mailer.web.store import V

D = Delivery.__table__.c  # type: ignore[attr-defined]

if TYPE_CHECKING:
    from mailer.delivery.ledger import Ledger
    from mailer.web.snapshot import Board

# What a mail scanner's fetch looks like: a HEAD, or an agent that is no browser a person
# uses (Safe Links and its kin, link previews, libraries). A guess, shown as one.
_SCANNER = re.compile(
    r"bot|crawl|spider|scan|preview|safelinks|defender|proofpoint|mimecast|barracuda|"
    r"python|curl|wget|httpx|java/|go-http|okhttp|libwww|headlesschrome",
    re.IGNORECASE,
)


def looks_like_scanner(method: str, user_agent: str) -> bool:
    return (
        method == "HEAD"
        or not user_agent.startswith("Mozilla/")
        or bool(_SCANNER.search(user_agent))
    )


@dataclass(frozen=True)
class Opened:
    people: int = 0
    scanners: int = 0
    last_at: str = ""  # ISO, UTC
    last_agent: str = ""


def opened(ledger: Ledger) -> dict[str, Opened]:
    """Per office, its link's opens: by people, by scanners, and the last one."""
    found: dict[str, Opened] = {}
    with ledger.reads.connect() as conn:
        rows = conn.execute(
            select(V.invitee_id, V.method, V.user_agent, V.at)
            .where(V.campaign_id == ledger.campaign_id)
            .order_by(V.at, V.id)
        ).all()
    for row in rows:
        seen = found.get(row.invitee_id, Opened())
        scanner = looks_like_scanner(row.method, row.user_agent)
        found[row.invitee_id] = Opened(
            seen.people + (not scanner), seen.scanners + scanner, row.at.isoformat(),
            row.user_agent[:120],
        )  # fmt: skip
    return found


def filters_of(query: Mapping[str, str]) -> Filters:
    """The filters a dashboard URL names (empty ones: none); `MailerError` for a wrong one."""

    def given(name: str) -> str | None:
        value = query.get(name, "").strip()
        return value[:80] or None

    return Filters(given("province"), given("agency"), given("attendance"), given("delivery"))


def sent_kinds(ledger: Ledger) -> list[str]:
    """The kinds of message the ledger holds for offices (invitation, reminder:…, update…)."""
    with ledger.reads.connect() as conn:
        found = conn.execute(
            select(D.kind)
            .where(D.campaign_id == ledger.campaign_id, D.invitee_id.is_not(None))
            .distinct()
        ).scalars()
        return sorted({"invitation", *found}, key=lambda k: (k != "invitation", k))


OFFICES_PER_PAGE = 100
LINES_PER_PAGE = 80  # of the matrix: the 76 provinces fit on one


def kind_of(query: Mapping[str, str], kinds: list[str]) -> str:
    """The message whose delivery the view shows (default the invitation; `kind=reminder:R
    &delivery=sent&attendance=no_reply` is "no answer after reminder R"), one of `kinds`."""
    kind = query.get("kind", "").strip()[:64] or "invitation"
    if kind != "invitation" and kind not in kinds:
        raise MailerError(f"kind {kind!r}: no such message was sent; one of {kinds}")
    return kind


NAMES = ("kind", "province", "agency", "attendance", "delivery", "lines", "page")


def canonical(query: Mapping[str, str]) -> dict[str, str]:
    """The parts of a dashboard URL's query that name its view, trimmed, in one order (what
    the board keeps views under: any other parameter is no other view)."""
    found = {}
    for name in NAMES:
        value = query.get(name, "").strip()[: 6 if name in ("lines", "page") else 80]
        if name in ("lines", "page") and not value.isdigit():
            continue
        if value:
            found[name] = value
    return found


def key_of(query: Mapping[str, str]) -> str:
    return urlencode(canonical(query))


def report_of(board: Board, query: Mapping[str, str]) -> StatusReport:
    """`mailer status` of the view a dashboard URL names (`board` is its kind's), made once
    per board and filters."""
    filters = filters_of(query)
    key = urlencode({k: v for k, v in canonical(query).items() if k not in ("lines", "page")})
    return board.keep("report", key, lambda: narrow(board.report, filters))


def totals(report: StatusReport) -> dict[str, Any]:
    """What `status --json` says under "totals"."""
    answers = {k.value: n for k, n in (report.attendance or {}).items()}
    return {**report.totals, "attendance": answers}


def _page(query: Mapping[str, str], name: str, count: int, size: int) -> tuple[int, int]:
    """The page a view shows (1 if none or a wrong one) and how many there are."""
    pages = max(1, -(-count // size))
    given = query.get(name, "1").strip()[:6]
    number = int(given) if given.isdigit() else 1
    return min(max(number, 1), pages), pages


@dataclass(frozen=True)
class View:
    """What one dashboard URL shows: its report, the matrix lines and offices on its pages."""

    report: StatusReport
    agencies: list[str]
    lines: list[MatrixRow]
    offices: list[InviteeStatus]
    pages: dict[str, Any]  # per pager ("lines", "page"): its number, count and items


def shown(board: Board, query: Mapping[str, str]) -> View:
    """The view `query` names, made once per board (and query)."""
    return board.keep("view", key_of(query), lambda: _view(board, query))


def _view(board: Board, query: Mapping[str, str]) -> View:
    report = report_of(board, query)
    agencies, rows = matrix(report)
    pages: dict[str, Any] = {}
    cut_out: dict[str, list[Any]] = {}
    for name, items, size in (
        ("lines", rows, LINES_PER_PAGE),
        ("page", report.invitees, OFFICES_PER_PAGE),
    ):
        number, count = _page(query, name, len(items), size)
        pages[name] = {"number": number, "count": count, "total": len(items)}
        cut_out[name] = items[(number - 1) * size : number * size]
    return View(report, agencies, cut_out["lines"], cut_out["page"], pages)


def _links(query: Mapping[str, str], name: str, page: dict[str, Any]) -> dict[str, Any]:
    """A pager's values with the query strings of the pages before and after this one."""

    def to(number: int) -> str:
        return urlencode({**query, name: str(number)}) if 1 <= number <= page["count"] else ""

    return {**page, "prev": to(page["number"] - 1), "next": to(page["number"] + 1)}


def live_values(board: Board, query: Mapping[str, str]) -> dict[str, Any]:
    """What the page's script refreshes: the view's totals, the offices it shows now (in
    the matrix or the list) with the attendance of each and its Thai label. An office the
    page shows that left the view (it answered, on a "no answer" view) is not among them:
    the script then says the list changed."""
    view = shown(board, query)
    ids = {o for row in view.lines for o in row.offices if o is not None}
    ids.update(i.invitee_id for i in view.offices)
    found = {i.invitee_id: i.attendance for i in view.report.invitees if i.invitee_id in ids}
    return {
        "totals": totals(view.report),
        "offices": {k: [v.value, ATTENDANCE_TH[v], MARKS[v][0]] for k, v in sorted(found.items())},
        "read_at": board.read_at.isoformat(),
    }


def board_values(board: Board, query: Mapping[str, str]) -> dict[str, Any]:
    """The dashboard's values: totals, matrix, offices (with "link opened"), the filters,
    the pages."""
    view = shown(board, query)
    report, agencies = view.report, view.agencies
    filters = filters_of(query)
    everyone = board.report.invitees
    provinces = sorted({(code_of(i), i.province) for i in everyone})
    return {
        "totals": _totals(report),
        "agencies": [{"code": a, "short": AGENCY_SHORT.get(a, a)} for a in agencies],
        "matrix": [
            {
                "code": r.code,
                "province": r.province,
                "cells": [_cell(c, agencies[n], r.offices[n]) for n, c in enumerate(r.cells)],
            }
            for r in view.lines
        ],
        "offices": [_office(i, board.opens.get(i.invitee_id)) for i in view.offices],
        "pages": {name: _links(query, name, p) for name, p in view.pages.items()},
        "read_at": board.read_at.astimezone(BANGKOK).strftime("%H:%M:%S"),
        "filters": {
            "province": filters.province or "",
            "agency": filters.agency or "",
            "attendance": filters.attendance or "",
            "delivery": filters.delivery or "",
            "kind": query.get("kind", "") or "invitation",
        },
        "choices": {
            "provinces": [{"value": c, "label": f"{p} ({c})"} for c, p in provinces],
            "agencies": [
                {"value": a, "label": AGENCY_LABELS.get(a, a)}
                for a in sorted({i.agency for i in everyone})
            ],
            "attendance": [{"value": s.value, "label": ATTENDANCE_TH[s]} for s in STATUSES],
            "delivery": [{"value": k, "label": v} for k, v in DELIVERY_TH.items()],
            "kinds": board.kinds,
            "reminders": [k for k in board.kinds if k.startswith("reminder:")],
        },
    }


def _totals(report: StatusReport) -> dict[str, Any]:
    delivery = [{"key": k, "label": DELIVERY_TH.get(k, k), "n": v}
                for k, v in report.totals.items() if k != "invitees"]  # fmt: skip
    answers = [{"key": s.value, "label": ATTENDANCE_TH[s], "n": n}
               for s, n in (report.attendance or {}).items()]  # fmt: skip
    return {"invitees": report.totals["invitees"], "delivery": delivery, "attendance": answers}


def _cell(found: Any, agency: str, office: str | None) -> dict[str, str]:
    if found is None:
        return {"mark": "", "status": "", "label": "", "agency": agency, "office": ""}
    symbol, _ = MARKS[found]
    return {"mark": symbol, "status": found.value, "label": ATTENDANCE_TH[found],
            "agency": agency, "office": office or ""}  # fmt: skip


def _office(item: Any, seen: Opened | None) -> dict[str, Any]:
    return {
        "id": item.invitee_id,
        "organisation": item.organisation,
        "province": item.province,
        "delivery": DELIVERY_TH.get(item.delivery, item.delivery),
        "delivery_state": item.delivery,
        "attendance": ATTENDANCE_TH[item.attendance],
        "status": item.attendance.value,
        "evidence": item.attendance_evidence or "",
        "representative": dict(item.representative or {}),
        "opened": asdict(seen) if seen else None,
    }


def review_values(ledger: Ledger) -> dict[str, Any]:
    items = [
        {"id": r.id, "invitee_id": r.invitee_id or "", "kind": r.kind, "evidence": r.evidence,
         "subject": r.subject}
        for r in review(ledger)
    ]  # fmt: skip
    return {"items": items, "answers": [{"value": a.value, "label": ATTENDANCE_TH[a]}
                                        for a in ANSWERS]}  # fmt: skip


MEDIA = {
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "csv": "text/csv; charset=utf-8",
}


def export_bytes(report: StatusReport, what: str, suffix: str) -> bytes:
    """The export `mailer export` writes (`what`: all, call-sheet, attendees), as bytes."""
    with tempfile.TemporaryDirectory(prefix="mailer-export-") as folder:
        path = Path(folder) / f"{what}.{suffix}"
        export(report, path, what)
        return path.read_bytes()
