"""From the coordinator's mailbox to stored, classified, matched replies.

`sync` stores every new message raw (a re-sync of the same source adds nothing), classifies
it (`classify.py`), and matches it to an office (`matching.py`): by thread (In-Reply-To /
References → the ledger's Message-IDs), by calendar UID, by a bounce's failed address, then
by the sender's address — and counts it only when it is tied to that office
(docs/design.md §6); otherwise it goes to review with the reason. What the stored replies
mean for each office is `attendance.py`'s.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from mailer.replies.classify import Classification, Unreadable, classify
from mailer.replies.matching import Directory, Match, match
from mailer.replies.statuses import DECISIVE, Attendance, NoAnswer, Outcome
from mailer.replies.tables import MESSAGES, M
from mailer.replies.text import one_line

if TYPE_CHECKING:
    from mailer.campaign import Campaign
    from mailer.delivery.ledger import Ledger


@dataclass
class SyncReport:
    source: str
    seen: int = 0
    new: int = 0
    outcomes: dict[Outcome, int] = field(default_factory=dict)
    unmatched: int = 0
    not_counted: int = 0  # named an office but not tied to it (docs/design.md §6): in review


def sync(
    ledger: Ledger, campaign: Campaign, source: str, messages: Iterable[tuple[str, bytes]]
) -> SyncReport:
    """Store, classify and match every message not seen before from `source`."""
    report = SyncReport(source)
    directory = Directory.read(ledger)
    with ledger.reads.connect() as conn:
        known = {key for (key,) in conn.execute(select(M.source_key).where(M.source == source))}
    for key, raw in messages:
        report.seen += 1
        if key in known:
            continue
        c = _read(raw)
        if c.message_id in directory.coordinators:  # our own digest, in the coordinator's box
            evidence = "the coordinator's own daily digest (our Message-ID): nothing to read"
            c = replace(c, outcome=NoAnswer.auto_reply, evidence=evidence)
        found = match(c, campaign, directory)
        stored = _Stored.of(c, found, directory.sequences.get(found.invitee_id or "", 0))
        try:
            with ledger.engine.begin() as tx:
                tx.execute(
                    MESSAGES.insert().values(
                        source=source, source_key=key, message_id=c.message_id[:998] or None,
                        raw=raw, fetched_at=ledger.clock(), kind=c.kind,
                        outcome=stored.outcome.value, invitee_id=found.invitee_id,
                        matched_by=found.matched_by, sequence=c.sequence, stale=stored.stale,
                        evidence=stored.evidence,
                        representative=json.dumps(c.representative, ensure_ascii=False),
                    )
                )  # fmt: skip
        except IntegrityError:
            continue  # another sync stored it meanwhile
        report.new += 1
        report.outcomes[stored.outcome] = report.outcomes.get(stored.outcome, 0) + 1
        report.unmatched += found.invitee_id is None and c.kind != "auto_reply"
        report.not_counted += found.invitee_id is not None and stored.shown_only
    return report


@dataclass(frozen=True)
class _Stored:
    """What is stored of a message besides itself: its outcome, whether it answers an older
    version, and the evidence with why it does not count."""

    outcome: Outcome
    stale: bool
    evidence: str
    shown_only: bool  # it names an office but does not count for it

    @classmethod
    def of(cls, c: Classification, found: Match, latest: int) -> _Stored:
        counts = found.tied or c.outcome == NoAnswer.auto_reply
        outcome = c.outcome if counts else Attendance.needs_review
        stale = c.sequence is not None and c.sequence < latest  # answers an older version
        evidence = one_line(c.evidence, 200)
        if stale:
            evidence = (
                f"answered the earlier version (SEQUENCE {c.sequence}; the office was since "
                f"sent SEQUENCE {latest}), so it does not count: {evidence}"
            )
        if found.note:
            evidence += f" ({found.note})"
        shown_only = not counts or (stale and outcome in DECISIVE)
        return cls(outcome, stale, one_line(evidence, 600), shown_only)


def _read(raw: bytes) -> Classification:
    """The classification, or why the message could not be read (it is kept raw)."""
    try:
        return classify(raw)
    except Unreadable as exc:
        evidence = f"not read: {exc}; the raw message is kept for you to open"
        return Classification("unreadable", Attendance.needs_review, evidence)
    except Exception as exc:  # one unreadable message never stops a sync
        evidence = f"could not be read: {type(exc).__name__}: {one_line(str(exc), 120)}"
        return Classification("unknown", Attendance.needs_review, evidence)


def highest_uid(ledger: Ledger, source: str, validity: int) -> int:
    """The highest IMAP UID stored from `source` under this UIDVALIDITY (0 if none)."""
    prefix = f"imap:{validity}:"
    with ledger.reads.connect() as conn:
        keys = conn.execute(
            select(M.source_key).where(M.source == source, M.source_key.startswith(prefix))
        )
        return max((int(key.removeprefix(prefix)) for (key,) in keys), default=0)
