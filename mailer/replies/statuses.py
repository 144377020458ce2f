"""The words of attendance: what an office's attendance can be, and what one message can read
as. A module of its own, importing only `enum` and `mailer.errors` (which imports nothing),
so the command line can name them in its help without loading reply tracking.

The values are the strings the database stores and `status --json` prints.
"""

from __future__ import annotations

from enum import StrEnum
from typing import TypeAlias

from mailer.errors import MailerError


class Attendance(StrEnum):
    """An office's attendance (also what a mark records and most messages read as)."""

    no_reply = "no_reply"
    accepted = "accepted"
    declined = "declined"
    tentative = "tentative"
    representative = "representative"
    bounced = "bounced"
    needs_review = "needs_review"


class NoAnswer(StrEnum):
    """What a message can read as that says nothing about the office's attendance."""

    auto_reply = "auto_reply"
    bounce_temporary = "bounce_temporary"


Outcome: TypeAlias = Attendance | NoAnswer  # what one message reads as (its `outcome` column)

STATUSES = tuple(Attendance)  # every attendance an office can have, in the order shown
ANSWERS = (  # what an office can answer; what `mark` records
    Attendance.accepted,
    Attendance.declined,
    Attendance.tentative,
    Attendance.representative,
)
DECISIVE = (*ANSWERS, Attendance.bounced)  # the readings that settle an office's attendance
COMING = (Attendance.accepted, Attendance.representative)  # someone comes for the office
TO_CHASE = (Attendance.no_reply, Attendance.bounced, Attendance.needs_review)  # by phone


def outcome(value: str) -> Outcome:
    """A stored `outcome` as its value."""
    return Attendance(value) if value in STATUSES else NoAnswer(value)


def one_of(text: str, among: tuple[Attendance, ...], given: str) -> Attendance:
    """`text` as one of `among`, or a `MailerError` saying what was `given` (e.g. "status 'x'")
    and what it may be."""
    if text not in among:
        raise MailerError(f"{given} is not one of {', '.join(among)}")
    return Attendance(text)
