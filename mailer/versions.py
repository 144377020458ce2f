"""The event as each iCalendar SEQUENCE told it (docs/design.md §4), and what changed.

The database keeps the event as sent at each SEQUENCE (`event_version`); this module is
that table's one writer and reader. A message is composed from the version its ledger row
names, never from whatever the campaign file says now.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, select

from mailer.campaign import Event
from mailer.delivery.ledger import Ledger
from mailer.errors import MailerError
from mailer.models import DeliveryState, EventVersion

S = DeliveryState
VERSIONS = EventVersion.__table__  # type: ignore[attr-defined]
V = VERSIONS.c
SIGNIFICANT = ("when", "venue")


@dataclass(frozen=True)
class Snapshot:
    """What the offices' calendars were told: the event's name, time and place."""

    title: str
    summary: str
    start: str  # ISO 8601 with offset
    end: str
    venue: str
    # The letter's background paragraphs (kept since schema 0007; older versions have none
    # stored and take the campaign file's, which never change a calendar).
    background: tuple[str, ...] | None = None

    @classmethod
    def of(cls, event: Event) -> Snapshot:
        return cls(
            event.title,
            event.summary,
            event.start.isoformat(),
            event.end.isoformat(),
            event.venue,
            event.background,
        )

    @classmethod
    def stored(cls, text: str) -> Snapshot:
        data = json.loads(text)
        if data.get("background") is not None:
            data["background"] = tuple(data["background"])
        return cls(**data)

    def event(self, fallback: Event) -> Event:
        """This version as the composer takes it (`fallback`: the campaign file's event,
        for what an older stored version lacks)."""
        return Event(
            title=self.title,
            start=datetime.fromisoformat(self.start),
            end=datetime.fromisoformat(self.end),
            venue=self.venue,
            background=self.background if self.background is not None else fallback.background,
            summary=self.summary,
        )

    def when(self, zone: ZoneInfo) -> str:
        from mailer.thai import thai_when  # PyThaiNLP: loaded only when a change is shown

        return thai_when(datetime.fromisoformat(self.start), datetime.fromisoformat(self.end), zone)


@dataclass(frozen=True)
class Change:
    field: str  # when | venue | title
    label: str  # Thai, for the letter
    old: str
    new: str

    @property
    def significant(self) -> bool:
        return self.field in SIGNIFICANT


def diff(old: Snapshot, new: Snapshot, zone: ZoneInfo) -> list[Change]:
    changes = []
    if (old.start, old.end) != (new.start, new.end):
        changes.append(Change("when", "วันและเวลา", old.when(zone), new.when(zone)))
    if old.venue != new.venue:
        changes.append(Change("venue", "สถานที่", old.venue, new.venue))
    if old.title != new.title or old.summary != new.summary:
        changes.append(Change("title", "ชื่องาน", old.title, new.title))
    return changes


@dataclass(frozen=True)
class Version:
    sequence: int
    reason: str
    snapshot: Snapshot
    created_at: datetime | None = None  # when it was stored (the PDF letter's date)

    @property
    def cancels(self) -> bool:
        """This version is the cancellation: nothing but it goes out after it."""
        return self.reason == "cancel"


def cancelled(found: list[Version]) -> bool:
    """Whether the event's latest announced version (of `versions(...)`) is its cancellation."""
    return bool(found) and found[-1].cancels


def versions(ledger: Ledger) -> list[Version]:
    with ledger.reads.connect() as conn:
        rows = conn.execute(
            select(V.sequence, V.reason, V.event, V.created_at)
            .where(V.campaign_id == ledger.campaign_id)
            .order_by(V.sequence)
        ).all()
    return [Version(r.sequence, r.reason, Snapshot.stored(r.event), r.created_at) for r in rows]


def record_version(
    conn: Connection, ledger: Ledger, sequence: int, reason: str, event: Event
) -> None:
    conn.execute(
        VERSIONS.insert().values(
            campaign_id=ledger.campaign_id,
            sequence=sequence,
            reason=reason,
            event=json.dumps(asdict(Snapshot.of(event)), ensure_ascii=False),
            created_at=ledger.clock(),
        )
    )


def first_version(ledger: Ledger, event: Event) -> None:
    """Remember the event as the invitation tells it (once, when it is first enqueued)."""
    if versions(ledger):
        return
    sequence = ledger.campaign_state().sequence
    with ledger.engine.begin() as conn:
        record_version(conn, ledger, sequence, "invitation", event)


def event_at(ledger: Ledger, sequence: int, fallback: Event) -> Event:
    """The event as the ledger row of SEQUENCE `sequence` must tell it: the version stored
    for that SEQUENCE. A message is never composed from whatever the campaign file says
    now (an edit is announced by `send update`, which stores the next version).

    `fallback` (the campaign file's event) is used only while no version is stored at all
    (nothing was sent yet). A row naming a SEQUENCE that has no version raises
    `MailerError`: that office's message fails alone, with the reason."""
    found = {v.sequence: v for v in versions(ledger)}
    if sequence in found:
        return found[sequence].snapshot.event(fallback)
    if not found:
        return fallback
    raise MailerError(
        f"the ledger names event version SEQUENCE {sequence}, which this database does not "
        f"hold (it holds {', '.join(str(s) for s in sorted(found))}); the message was not sent"
    )


def changes_at(ledger: Ledger, sequence: int, zone: ZoneInfo) -> list[Change]:
    """What update `sequence` changed, against the version before it."""
    found = {v.sequence: v for v in versions(ledger)}
    earlier = [s for s in found if s < sequence]
    if sequence not in found or not earlier:
        return []
    return diff(found[max(earlier)].snapshot, found[sequence].snapshot, zone)


@dataclass(frozen=True)
class PendingChange:
    """The campaign file's event against the last version sent."""

    sequence: int
    cancelled: bool
    changes: list[Change]

    @property
    def significant(self) -> bool:
        return any(c.significant for c in self.changes)

    def describe(self) -> str:
        lines = [f"{c.label}: {c.old} → {c.new}" for c in self.changes]
        return "; ".join(lines)


def pending_change(ledger: Ledger, event: Event, zone: ZoneInfo) -> PendingChange | None:
    """None before anything was sent; otherwise how the event differs from what was sent."""
    found = versions(ledger)
    if not found:
        return None
    latest = found[-1]
    return PendingChange(
        latest.sequence, latest.cancels, diff(latest.snapshot, Snapshot.of(event), zone)
    )
