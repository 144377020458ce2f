"""An office's answer on its own page (`mailer web`): the one writer of `web_answer`.

`answer` records what the office answered — coming, not coming, or sending a representative
(name, position, phone, optional e-mail) — with its evidence (when, from which address and
user agent, to which event version), as a stored event that `attendance` reads beside the
replies and the marks, under the same rules: a coordinator's mark still wins, an answer to
an earlier SEQUENCE no longer counts. One row per change of answer: the office's own latest
word given again changes nothing. Each change queues its confirmation e-mail in the same
transaction, as ledger kind `confirm:<n>` (n: the answer's number), so exactly one goes out
per change, through the ledger like every message (`confirmation` gives its template the
answer).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from mailer.errors import MailerError
from mailer.identity import new_message_id
from mailer.kinds import confirm
from mailer.labels import ATTENDANCE_TH
from mailer.models import split_emails
from mailer.replies.attendance import MARK, attendance
from mailer.replies.statuses import ANSWERS, Attendance
from mailer.replies.tables import WEB_ANSWERS, I, W

if TYPE_CHECKING:
    from mailer.campaign import Campaign
    from mailer.delivery.ledger import Ledger

# What the page offers (a tentative answer is for mail: the page asks for a decision).
CHOICES = (Attendance.accepted, Attendance.declined, Attendance.representative)
DETAILS = ("name", "position", "phone", "email")  # a representative's, in this order


@dataclass(frozen=True)
class Answer:
    status: Attendance  # one of `CHOICES`
    representative: dict[str, str] = field(default_factory=dict)  # only with representative


@dataclass(frozen=True)
class Evidence:
    """Where an answer came from: the client's address and user agent, and the event
    version (SEQUENCE) the page showed."""

    address: str
    user_agent: str
    sequence: int


@dataclass(frozen=True)
class Recorded:
    changed: bool  # False: the office's latest word already said this
    number: int  # the answer's number (1, 2, …); 0 when the page was never answered


def latest_word(ledger: Ledger, invitee_id: str) -> Answer | None:
    """What the office itself last said and still counts (a page answer or a reply, to
    the current version; not a coordinator's mark, not a bounce)."""
    found = attendance(ledger, only=invitee_id).get(invitee_id)
    if found is None:
        return None
    said = [e for e in found.history if e.source != MARK and e.counts and e.status in ANSWERS]
    if not said:
        return None
    last = said[-1]
    return Answer(Attendance(last.status), dict(last.representative))


def answer(
    ledger: Ledger, campaign: Campaign, invitee_id: str, given: Answer, evidence: Evidence
) -> Recorded:
    """Record `given` for the office (and queue its confirmation), unless the office's
    latest word already says it. Two answers at the same moment: each is numbered once
    (the unique number), the second tried again against the first."""
    if given.status not in CHOICES:
        raise ValueError(f"{given.status!r} is not an answer the page offers")
    for _ in range(3):
        if latest_word(ledger, invitee_id) == given:
            return Recorded(changed=False, number=_last_number(ledger, invitee_id))
        try:
            number = _insert(ledger, campaign, invitee_id, given, evidence)
            return Recorded(changed=True, number=number)
        except IntegrityError:  # another answer took this number first: look again
            continue
    raise RuntimeError(f"{invitee_id}: could not number its answer")  # pragma: no cover


def _insert(
    ledger: Ledger, campaign: Campaign, invitee_id: str, given: Answer, evidence: Evidence
) -> int:
    with ledger.engine.begin() as tx:
        emails = tx.execute(select(I.emails).where(I.invitee_id == invitee_id)).scalar_one()
        number = 1 + (
            tx.execute(
                select(func.max(W.number)).where(
                    W.campaign_id == ledger.campaign_id, W.invitee_id == invitee_id
                )
            ).scalar()
            or 0
        )
        tx.execute(
            WEB_ANSWERS.insert().values(
                campaign_id=ledger.campaign_id, invitee_id=invitee_id, number=number,
                status=given.status.value,
                representative=json.dumps(given.representative, ensure_ascii=False),
                sequence=evidence.sequence, address=evidence.address[:64],
                user_agent=evidence.user_agent[:500], answered_at=ledger.clock(),
            )
        )  # fmt: skip
        kind = str(confirm(number))
        ledger.enqueue(
            [(invitee_id, "; ".join(split_emails(emails)))],
            kind,
            evidence.sequence,
            lambda office: new_message_id(campaign, office, kind),
            conn=tx,
        )
    return number


def _last_number(ledger: Ledger, invitee_id: str) -> int:
    with ledger.reads.connect() as conn:
        found = conn.execute(
            select(func.max(W.number)).where(
                W.campaign_id == ledger.campaign_id, W.invitee_id == invitee_id
            )
        ).scalar()
    return int(found or 0)


def confirmation(ledger: Ledger, invitee_id: str, number: int) -> dict[str, object]:
    """What the confirmation of answer `number` tells (templates/confirm/): `answer` with
    its `status`, its Thai `label` and `representative` (name, position, phone, email;
    empty if none)."""
    with ledger.reads.connect() as conn:
        row = conn.execute(
            select(W.status, W.representative).where(
                W.campaign_id == ledger.campaign_id,
                W.invitee_id == invitee_id,
                W.number == number,
            )
        ).first()
    if row is None:
        raise MailerError(f"{invitee_id}: the ledger confirms answer {number}, which is not stored")
    details = json.loads(row.representative or "{}")
    return {
        "answer": {
            "status": row.status,
            "label": ATTENDANCE_TH[Attendance(row.status)],
            "representative": {key: details.get(key, "") for key in DETAILS},
        }
    }
