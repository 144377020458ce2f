"""From the coordinator's mailbox to each office's attendance.

`sync` stores every new message raw (a re-sync of the same source adds nothing), classifies
it, and matches it to an office: by thread (In-Reply-To/References → the ledger's
Message-IDs), by calendar UID, by a bounce's failed address, then by the sender's address.
`attendance` derives each office's status from its replies and the coordinator's marks,
with the history kept: a mark always wins over an automatic reading, and a calendar reply
to an older SEQUENCE is kept but never overrides.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from mailer.errors import MailerError
from mailer.models import AttendanceMark, InboundMessage, Invitee
from mailer.outbox import D
from mailer.replies.classify import Classification, classify, parse
from mailer.replies.text import header_text
from mailer.workspace import Workspace

MESSAGES = InboundMessage.__table__  # type: ignore[attr-defined]
M = MESSAGES.c
MARKS = AttendanceMark.__table__  # type: ignore[attr-defined]
K = MARKS.c
INVITEES = Invitee.__table__  # type: ignore[attr-defined]
I = INVITEES.c  # noqa: E741
DECISIVE = ("accepted", "declined", "tentative", "representative", "bounced")
STATUSES = ("no_reply", *DECISIVE, "needs_review")
MARKABLE = ("accepted", "declined", "tentative", "representative")


@dataclass
class SyncReport:
    source: str
    seen: int = 0
    new: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)
    unmatched: int = 0


def _offices_by_address(ws: Workspace) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    with ws.ledger().reads.connect() as conn:
        for invitee_id, emails in conn.execute(select(I.invitee_id, I.emails)):
            for address in emails.split(";"):
                if address.strip():
                    found.setdefault(address.strip().lower(), []).append(invitee_id)
    return found


def _by_message_id(ws: Workspace) -> dict[str, str]:
    ledger = ws.ledger()
    with ledger.reads.connect() as conn:
        rows = conn.execute(
            select(D.message_id, D.invitee_id).where(D.campaign_id == ledger.campaign_id)
        )
        return {message_id: invitee_id for message_id, invitee_id in rows}


@dataclass(frozen=True)
class Directory:
    """What matching looks things up in, read once per sync."""

    threads: dict[str, str]  # our Message-ID → invitee_id
    addresses: dict[str, list[str]]  # address → invitee_ids
    ids: frozenset[str]
    sequences: dict[str, int]  # the latest SEQUENCE each office was sent

    @classmethod
    def read(cls, ws: Workspace) -> Directory:
        addresses = _offices_by_address(ws)
        ids = frozenset(i for found in addresses.values() for i in found)
        ledger = ws.ledger()
        with ledger.reads.connect() as conn:
            rows = conn.execute(
                select(D.invitee_id, func.max(D.sequence))
                .where(
                    D.campaign_id == ledger.campaign_id,
                    D.state.in_(["sent", "uncertain"]),
                )
                .group_by(D.invitee_id)
            )
            sequences = {invitee_id: int(top) for invitee_id, top in rows}
        return cls(_by_message_id(ws), addresses, ids, sequences)


@dataclass(frozen=True)
class Match:
    invitee_id: str | None
    matched_by: str | None
    note: str = ""


def match(c: Classification, ws: Workspace, directory: Directory) -> Match:
    for message_id in c.thread_ids:
        if message_id in directory.threads:
            return Match(directory.threads[message_id], "thread")
    if c.uid:
        campaign = ws.campaign
        pattern = rf"^(test-)?{re.escape(campaign.id)}-(.+)@{re.escape(campaign.uid_domain)}$"
        found = re.match(pattern, c.uid, flags=re.IGNORECASE)
        if found and found.group(1):
            return Match(None, None, "answers a --test-to sample, not an office's invitation")
        if found and found.group(2) in directory.ids:
            return Match(found.group(2), "uid")
    for address in [*c.failed_recipients, c.sender]:
        offices = directory.addresses.get(address, [])
        if len(offices) == 1:
            return Match(offices[0], "sender" if address == c.sender else "bounce")
        if len(offices) > 1:
            return Match(None, None, f"{address} is shared by {', '.join(offices)}")
    return Match(None, None, "no thread, calendar UID or known address names an office")


def sync(ws: Workspace, source: str, messages: Iterable[tuple[str, bytes]]) -> SyncReport:
    """Store, classify and match every message not seen before from `source`."""
    report = SyncReport(source)
    directory = Directory.read(ws)
    with ws.ledger().reads.connect() as conn:
        known = {key for (key,) in conn.execute(select(M.source_key).where(M.source == source))}
    for key, raw in messages:
        report.seen += 1
        if key in known:
            continue
        try:
            c = classify(raw)
        except Exception as exc:
            c = Classification("unknown", "needs_review", f"could not be read: {exc!r}")
        found = match(c, ws, directory)
        evidence = c.evidence + (f" ({found.note})" if found.note else "")
        outcome = c.outcome if found.invitee_id or c.kind == "auto_reply" else "needs_review"
        latest = directory.sequences.get(found.invitee_id or "", 0)
        stale = c.sequence is not None and c.sequence < latest  # answers an older version
        try:
            with ws.engine.begin() as tx:
                tx.execute(
                    MESSAGES.insert().values(
                        source=source, source_key=key, message_id=c.message_id or None, raw=raw,
                        fetched_at=ws.clock(), kind=c.kind, outcome=outcome,
                        invitee_id=found.invitee_id, matched_by=found.matched_by,
                        sequence=c.sequence, stale=stale, evidence=evidence,
                        representative=json.dumps(c.representative, ensure_ascii=False),
                    )
                )  # fmt: skip
        except IntegrityError:
            continue  # another sync stored it meanwhile
        report.new += 1
        report.outcomes[outcome] = report.outcomes.get(outcome, 0) + 1
        report.unmatched += found.invitee_id is None and c.kind != "auto_reply"
    return report


def highest_uid(ws: Workspace, source: str, validity: int) -> int:
    """The highest IMAP UID stored from `source` under this UIDVALIDITY (0 if none)."""
    prefix = f"imap:{validity}:"
    with ws.ledger().reads.connect() as conn:
        keys = conn.execute(
            select(M.source_key).where(M.source == source, M.source_key.startswith(prefix))
        )
        return max((int(key.removeprefix(prefix)) for (key,) in keys), default=0)


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
    """Each office's status, derived from its replies and the coordinator's marks."""
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
                 "stale": row.stale, "evidence": row.evidence,
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
        chosen = marks[-1] if marks else live[-1] if live else unsure[-1] if unsure else None
        if chosen is None:
            continue
        result[invitee_id] = Attendance(
            invitee_id, str(chosen["status"]), str(chosen["source"]), chosen["at"],  # type: ignore[arg-type]
            chosen["representative"], str(chosen["evidence"]), history,  # type: ignore[arg-type]
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
    """Messages that need a human: unsure, or not matched to any office, and not since
    settled by a mark for that office."""
    marks = {k: a.at for k, a in attendance(ws).items() if a.source == "mark"}
    with ws.ledger().reads.connect() as conn:
        rows = conn.execute(
            select(M.id, M.invitee_id, M.kind, M.evidence, M.raw, M.fetched_at)
            .where(M.outcome == "needs_review").order_by(M.id)
        ).all()  # fmt: skip
    for row in rows:
        settled = row.invitee_id in marks and marks[row.invitee_id] >= row.fetched_at
        if not settled:
            subject = header_text(parse(row.raw), "Subject")
            yield ReviewItem(row.id, row.invitee_id, row.kind, row.evidence, subject)
