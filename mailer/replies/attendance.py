"""From stored replies and the coordinator's marks to each office's attendance.

`attendance` derives each office's status from its replies and the coordinator's marks,
with the history kept: a mark always wins over an automatic reading, and a calendar reply
to an older SEQUENCE is kept and shown but never overrides. `mark` records the
coordinator's decision; `review` lists what needs a human.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import or_, select

from mailer.errors import MailerError
from mailer.models import AttendanceMark, InboundMessage, Invitee
from mailer.replies.classify import headers
from mailer.replies.statuses import DECISIVE, MARKABLE
from mailer.replies.text import MAX_LINE, header_text, one_line
from mailer.workspace import Workspace

MESSAGES = InboundMessage.__table__  # type: ignore[attr-defined]
M = MESSAGES.c
MARKS = AttendanceMark.__table__  # type: ignore[attr-defined]
K = MARKS.c
INVITEES = Invitee.__table__  # type: ignore[attr-defined]
I = INVITEES.c  # noqa: E741


@dataclass(frozen=True)
class Attendance:
    invitee_id: str
    status: str
    source: str  # "reply <id>", "mark", or ""
    at: datetime | None
    representative: dict[str, str]
    evidence: str
    history: list[dict[str, object]]


def attendance(ws: Workspace) -> dict[str, Attendance]:
    """Each office's status, derived from its replies and the coordinator's marks.

    A mark wins; then the latest answer that counts (a bounce never hides an answer); then
    the latest message that needs review. An office whose only answers are to an earlier
    SEQUENCE stays `no_reply` (the update asked it again), with that answer as evidence."""
    ledger = ws.ledger()
    events: dict[str, list[dict[str, object]]] = {}
    with ledger.reads.connect() as conn:
        for row in conn.execute(
            select(M.id, M.invitee_id, M.outcome, M.kind, M.stale, M.evidence,
                   M.representative, M.fetched_at)
            .where(M.invitee_id.is_not(None)).order_by(M.fetched_at, M.id)
        ):  # fmt: skip
            events.setdefault(row.invitee_id, []).append(
                {"source": f"reply {row.id}", "status": row.outcome, "kind": row.kind,
                 "stale": bool(row.stale), "evidence": one_line(row.evidence, 600),
                 "representative": json.loads(row.representative or "{}"), "at": row.fetched_at}
            )  # fmt: skip
        for decided in conn.execute(
            select(K.id, K.invitee_id, K.status, K.note, K.representative, K.marked_at)
            .where(K.campaign_id == ledger.campaign_id).order_by(K.marked_at, K.id)
        ):  # fmt: skip
            events.setdefault(decided.invitee_id, []).append(
                {"source": "mark", "status": decided.status, "kind": "mark", "stale": False,
                 "evidence": decided.note or "marked by the coordinator",
                 "representative": json.loads(decided.representative or "{}"),
                 "at": decided.marked_at}
            )  # fmt: skip
    result = {}
    for invitee_id, history in events.items():
        history.sort(key=lambda e: e["at"])  # type: ignore[arg-type, return-value]
        marks = [e for e in history if e["source"] == "mark"]
        live = [e for e in history if not e["stale"] and e["status"] in DECISIVE]
        answered = [e for e in live if e["status"] != "bounced"]
        live = answered or live  # a bounce (a Cc address, a reminder) never hides an answer
        unsure = [e for e in history if e["status"] == "needs_review"]
        earlier = [e for e in history if e["stale"] and e["status"] in DECISIVE]
        chosen = marks[-1] if marks else live[-1] if live else unsure[-1] if unsure else None
        if chosen is None and earlier:  # shown, but it does not count
            chosen = {**earlier[-1], "status": "no_reply", "representative": {}}
        if chosen is None:
            continue
        # Details only from what counts: an unverified message names no representative.
        details = chosen["representative"] if chosen["status"] in DECISIVE else {}
        result[invitee_id] = Attendance(
            invitee_id, str(chosen["status"]), str(chosen["source"]), chosen["at"],  # type: ignore[arg-type]
            details, str(chosen["evidence"]), history,  # type: ignore[arg-type]
        )  # fmt: skip
    return result


def mark(
    ws: Workspace, invitee_id: str, status: str, *, representative: dict[str, str], note: str
) -> None:
    if status not in MARKABLE:
        raise MailerError(f"status {status!r} is not one of {', '.join(MARKABLE)}")
    with ws.ledger().reads.connect() as conn:
        if conn.execute(select(I.invitee_id).where(I.invitee_id == invitee_id)).first() is None:
            raise MailerError(f"no invitee {invitee_id!r}; see `mailer status` for the ids")
    with ws.engine.begin() as conn:
        conn.execute(
            MARKS.insert().values(
                campaign_id=ws.campaign.id, invitee_id=invitee_id, status=status,
                representative=json.dumps(representative, ensure_ascii=False), note=note,
                marked_at=ws.clock(),
            )
        )  # fmt: skip


@dataclass(frozen=True)
class ReviewItem:
    id: int
    invitee_id: str | None
    kind: str
    evidence: str
    subject: str


def review(ws: Workspace) -> Iterator[ReviewItem]:
    """Messages that need a human: unsure, not tied to the office they name, or not matched
    to any office, and not since settled by a mark for that office; and answers to an
    earlier SEQUENCE, until a mark or an answer to the current version settles them."""
    marked: dict[str, datetime] = {}
    answered: dict[str, datetime] = {}
    for invitee_id, found in attendance(ws).items():
        for e in found.history:
            at: datetime = e["at"]  # type: ignore[assignment]
            if e["source"] == "mark":
                marked[invitee_id] = max(at, marked.get(invitee_id, at))
            elif not e["stale"] and e["status"] in DECISIVE:
                answered[invitee_id] = max(at, answered.get(invitee_id, at))
    with ws.ledger().reads.connect() as conn:
        rows = conn.execute(
            select(M.id, M.invitee_id, M.kind, M.outcome, M.evidence, M.raw, M.fetched_at)
            .where(or_(M.outcome == "needs_review", M.stale.is_(True)))
            .order_by(M.id)
        ).all()  # fmt: skip
    for row in rows:
        if row.outcome != "needs_review" and row.outcome not in DECISIVE:
            continue
        settled = marked.get(row.invitee_id)
        if row.outcome != "needs_review" and row.invitee_id in answered:
            later = answered[row.invitee_id]
            settled = max(later, settled) if settled else later
        if settled is not None and settled >= row.fetched_at:
            continue
        subject = one_line(header_text(headers(row.raw), "Subject"), MAX_LINE)
        yield ReviewItem(row.id, row.invitee_id, row.kind, one_line(row.evidence, 600), subject)
