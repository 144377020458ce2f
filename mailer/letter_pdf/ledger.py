"""The one adapter to the ledger: the event version a letter tells, read as the e-mail's
(`mailer.versions`). When `versions`/`event_at` change their signature, change it here."""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

from mailer.campaign import Event
from mailer.campaign.letter import LetterSettings
from mailer.delivery.ledger import Ledger
from mailer.letter_pdf.settings import LetterVersion
from mailer.versions import changes_at, event_at, versions


def letter_version(
    ledger: Ledger, sequence: int, fallback: Event, zone: ZoneInfo, settings: LetterSettings
) -> LetterVersion:
    """The version of SEQUENCE `sequence` with its letter's date (the day it was stored, in
    `zone`) and the first letter's (the campaign's `dated`, else the day the invitation was
    first queued). Nothing stored yet (a preview): today's date is never used; the campaign
    file's event and `settings.dated` (else the event's own day) stand in."""
    found = versions(ledger)
    event = event_at(ledger, sequence, fallback)
    if not found:
        dated = settings.dated or fallback.start.astimezone(zone).date()
        return LetterVersion(event, sequence, dated)
    first = found[0]
    first_dated = settings.dated or _day(first.created_at, zone, fallback)
    this = next((v for v in found if v.sequence == sequence), first)
    own = first_dated if this is first else _day(this.created_at, zone, fallback)
    return LetterVersion(
        event=event,
        sequence=sequence,
        dated=own,
        changes=tuple(changes_at(ledger, sequence, zone)),
        first_sequence=first.sequence,
        first_dated=None if this is first else first_dated,
    )


def _day(moment: datetime | None, zone: ZoneInfo, fallback: Event) -> date:
    return (moment or fallback.start).astimezone(zone).date()
