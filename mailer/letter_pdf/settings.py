"""Which event version a letter tells: `LetterVersion` is the event as the ledger row's
SEQUENCE tells it, with the dates the letters carry. The campaign's `[letter]` table is
`mailer.campaign.letter.LetterSettings`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Literal

from mailer.campaign import Event
from mailer.versions import Change

Kind = Literal["invitation", "update", "cancel"]
KINDS: tuple[Kind, ...] = ("invitation", "update", "cancel")


@dataclass(frozen=True)
class LetterVersion:
    """The event version a letter tells (the e-mail's: `mailer.versions.event_at`), with the
    dates: its own, and the first letter's that an update or cancellation refers to."""

    event: Event
    sequence: int
    dated: date
    changes: tuple[Change, ...] = ()  # an update's (`mailer.versions.changes_at`)
    first_sequence: int = 0
    first_dated: date | None = None  # None: this is the first letter
