"""From stored replies and the coordinator's marks to each office's attendance.

`attendance` derives each office's `OfficeAttendance` from its replies, its answers on its
own page (`mailer.replies.online`) and the coordinator's marks, with the history kept
(`AttendanceEvent`s): a mark always wins over an automatic reading or a page answer, and a
reply or page answer to an older SEQUENCE is kept and shown but never overrides. `changed`
says which offices' attendance moved between two moments (the coordinator's digest). `mark`
records the coordinator's decision; `review` lists what needs a human.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import Connection, func, or_, select

from mailer.errors import MailerError
from mailer.replies.classify import headers
from mailer.replies.statuses import ANSWERS, DECISIVE, Attendance, Outcome, one_of, outcome
from mailer.replies.tables import MARKS, I, K, M, V, W
from mailer.replies.text import MAX_LINE, header_text, one_line

if TYPE_CHECKING:
    from mailer.delivery.ledger import Ledger

MARK = "mark"  # the source (and kind) of a coordinator's mark in a history
WEB = "web"  # the kind of an answer given on the office's page; its source is "web <id>"


@dataclass(frozen=True)
class AttendanceEvent:
    """One entry of an office's history: a stored reply, or a coordinator's mark."""

    source: str  # "reply <id>", "web <id>" or "mark"
    status: Outcome  # what the reply read as, what was answered, or what was marked
    kind: str  # the message's kind (calendar_reply, human_reply, bounce, …), "web" or "mark"
    stale: bool  # it answers an earlier SEQUENCE: shown, never counted
    evidence: str
    representative: dict[str, str]
    at: datetime  # when the reply was stored or the mark made

    @property
    def is_mark(self) -> bool:
        return self.source == MARK

    @property
    def counts(self) -> bool:
        """A decisive reading of the current version (a mark, an answer, a bounce)."""
        return not self.stale and self.status in DECISIVE


@dataclass(frozen=True)
class OfficeAttendance:
    """An office's attendance, derived: its status, what decided it, and its history."""

    invitee_id: str
    status: Attendance
    source: str  # "reply <id>", "web <id>" or "mark"
    at: datetime
    representative: dict[str, str]
    evidence: str
    history: list[AttendanceEvent]


def attendance(ledger: Ledger, only: str | None = None) -> dict[str, OfficeAttendance]:
    """Each office's attendance (or only office `only`'s), derived from its replies, its
    page answers and the coordinator's marks (of the ledger's campaign); an office with
    none has no entry (it is `no_reply`)."""
    return _as_of(_histories(ledger, only), None)


def _as_of(
    histories: dict[str, list[AttendanceEvent]], until: datetime | None
) -> dict[str, OfficeAttendance]:
    """Each office's attendance from what was stored or marked before `until` (None: all)."""
    result = {}
    for invitee_id, history in histories.items():
        kept = history if until is None else [e for e in history if e.at < until]
        found = _decide(invitee_id, kept) if kept else None
        if found is not None:
            result[invitee_id] = found
    return result


@dataclass(frozen=True)
class AttendanceChange:
    """An office whose attendance moved: what it was, and what it became (and why)."""

    invitee_id: str
    before: Attendance
    after: OfficeAttendance


def changed(ledger: Ledger, since: datetime | None, until: datetime) -> list[AttendanceChange]:
    """The offices whose attendance as it stood at `until` differs from what it was at
    `since` (None: from the start, so every office with an attendance), by invitee id. Each
    moment counts what was stored or marked before it, so windows that meet never count a
    change twice or lose one."""
    histories = _histories(ledger)
    before = _as_of(histories, since) if since is not None else {}
    after = _as_of(histories, until)
    found = []
    for invitee_id, now in sorted(after.items()):
        then = before[invitee_id].status if invitee_id in before else Attendance.no_reply
        if now.status != then:
            found.append(AttendanceChange(invitee_id, then, now))
    return found


def _histories(ledger: Ledger, only: str | None = None) -> dict[str, list[AttendanceEvent]]:
    """Every office's replies, page answers and marks (or office `only`'s), oldest first."""
    events: dict[str, list[AttendanceEvent]] = {}
    replies = M.invitee_id.is_not(None) if only is None else M.invitee_id == only
    marks = K.campaign_id == ledger.campaign_id
    if only is not None:
        marks &= K.invitee_id == only
    with ledger.reads.connect() as conn:
        for row in conn.execute(
            select(M.id, M.invitee_id, M.outcome, M.kind, M.stale, M.evidence,
                   M.representative, M.fetched_at)
            .where(replies).order_by(M.fetched_at, M.id)
        ):  # fmt: skip
            events.setdefault(row.invitee_id, []).append(
                AttendanceEvent(
                    source=f"reply {row.id}",
                    status=outcome(row.outcome),
                    kind=row.kind,
                    stale=bool(row.stale),
                    evidence=one_line(row.evidence, 600),
                    representative=json.loads(row.representative or "{}"),
                    at=row.fetched_at,
                )
            )
        for decided in conn.execute(
            select(K.id, K.invitee_id, K.status, K.note, K.representative, K.marked_at)
            .where(marks).order_by(K.marked_at, K.id)
        ):  # fmt: skip
            events.setdefault(decided.invitee_id, []).append(
                AttendanceEvent(
                    source=MARK,
                    status=Attendance(decided.status),
                    kind=MARK,
                    stale=False,
                    evidence=decided.note or "marked by the coordinator",
                    representative=json.loads(decided.representative or "{}"),
                    at=decided.marked_at,
                )
            )
        for answered in _web_answers(conn, ledger.campaign_id, only):
            events.setdefault(answered[0], []).append(answered[1])
    for history in events.values():
        history.sort(key=lambda e: e.at)
    return events


def _web_answers(
    conn: Connection, campaign_id: str, only: str | None
) -> Iterator[tuple[str, AttendanceEvent]]:
    """The answers given on the offices' pages, each with its evidence; one given to an
    earlier SEQUENCE than the latest announced is stale, as a reply to it would be."""
    latest = conn.execute(select(func.max(V.sequence)).where(V.campaign_id == campaign_id)).scalar()
    chosen = W.campaign_id == campaign_id
    if only is not None:
        chosen &= W.invitee_id == only
    for row in conn.execute(select(*W).where(chosen).order_by(W.answered_at, W.id)):
        evidence = (
            f"answered on its page (answer {row.number}) at {row.answered_at:%Y-%m-%d %H:%M:%S}Z "
            f"from {row.address or 'an unknown address'}, to event version SEQUENCE "
            f"{row.sequence}; user agent: {one_line(row.user_agent, 200) or '(none)'}"
        )
        yield (
            row.invitee_id,
            AttendanceEvent(
                source=f"{WEB} {row.id}",
                status=Attendance(row.status),
                kind=WEB,
                stale=latest is not None and row.sequence < latest,
                evidence=evidence,
                representative=json.loads(row.representative or "{}"),
                at=row.answered_at,
            ),
        )


def _decide(invitee_id: str, history: list[AttendanceEvent]) -> OfficeAttendance | None:
    """A mark wins; then the latest answer that counts (a bounce never hides an answer); then
    the latest message that needs review. An office whose only answers are to an earlier
    SEQUENCE stays `no_reply` (the update asked it again), with that answer as evidence."""
    marks = [e for e in history if e.is_mark]
    live = [e for e in history if e.counts]
    answered = [e for e in live if e.status != Attendance.bounced]
    live = answered or live  # a bounce (a Cc address, a reminder) never hides an answer
    unsure = [e for e in history if e.status == Attendance.needs_review]
    earlier = [e for e in history if e.stale and e.status in DECISIVE]
    chosen = marks[-1] if marks else live[-1] if live else unsure[-1] if unsure else None
    if chosen is None and earlier:  # shown, but it does not count
        chosen = replace(earlier[-1], status=Attendance.no_reply, representative={})
    if chosen is None:
        return None
    status = Attendance(chosen.status)  # a mark, a decisive reading, needs_review or no_reply
    # Details only from what counts: an unverified message names no representative.
    details = chosen.representative if status in DECISIVE else {}
    return OfficeAttendance(
        invitee_id, status, chosen.source, chosen.at, details, chosen.evidence, history
    )


def mark(
    ledger: Ledger,
    invitee_id: str,
    status: Attendance,
    *,
    representative: dict[str, str],
    note: str,
) -> None:
    """Record the coordinator's decision for an office (one of `ANSWERS`); it wins over any
    automatic reading, before or after it."""
    shown = str(status)  # its value, member or not
    status = one_of(shown, ANSWERS, f"status {shown!r}")
    with ledger.reads.connect() as conn:
        if conn.execute(select(I.invitee_id).where(I.invitee_id == invitee_id)).first() is None:
            raise MailerError(f"no invitee {invitee_id!r}; see `mailer status` for the ids")
    with ledger.engine.begin() as conn:
        conn.execute(
            MARKS.insert().values(
                campaign_id=ledger.campaign_id, invitee_id=invitee_id, status=status.value,
                representative=json.dumps(representative, ensure_ascii=False), note=note,
                marked_at=ledger.clock(),
            )
        )  # fmt: skip


@dataclass(frozen=True)
class ReviewItem:
    id: int
    invitee_id: str | None
    kind: str
    evidence: str
    subject: str


def review(ledger: Ledger) -> Iterator[ReviewItem]:
    """Messages that need a human: unsure, not tied to the office they name, or not matched
    to any office, and not since settled by a mark for that office; and answers to an
    earlier SEQUENCE, until a mark or an answer to the current version settles them."""
    marked: dict[str, datetime] = {}
    answered: dict[str, datetime] = {}
    for invitee_id, found in attendance(ledger).items():
        for e in found.history:
            if e.is_mark:
                marked[invitee_id] = max(e.at, marked.get(invitee_id, e.at))
            elif e.counts:
                answered[invitee_id] = max(e.at, answered.get(invitee_id, e.at))
    with ledger.reads.connect() as conn:
        rows = conn.execute(
            select(M.id, M.invitee_id, M.kind, M.outcome, M.evidence, M.raw, M.fetched_at)
            .where(or_(M.outcome == Attendance.needs_review.value, M.stale.is_(True)))
            .order_by(M.id)
        ).all()  # fmt: skip
    for row in rows:
        unsure = row.outcome == Attendance.needs_review
        if not unsure and row.outcome not in DECISIVE:
            continue
        settled = marked.get(row.invitee_id)
        if not unsure and row.invitee_id in answered:
            later = answered[row.invitee_id]
            settled = max(later, settled) if settled else later
        if settled is not None and settled >= row.fetched_at:
            continue
        subject = one_line(header_text(headers(row.raw), "Subject"), MAX_LINE)
        yield ReviewItem(row.id, row.invitee_id, row.kind, one_line(row.evidence, 600), subject)
