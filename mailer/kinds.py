"""What a ledger row is, as a value read once: `invitation`, `reminder:<rule id>`,
`update:<sequence>`, `cancel` or `confirm:<n>` (the confirmation of an office's n-th
answer on its page, mailer/replies/online.py) — an office's — or `digest:<YYYY-MM-DD>`, the
coordinator's daily digest (a row of no office: its `invitee_id` is NULL) — the text stored in
the `kind` column."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Literal

Name = Literal["invitation", "reminder", "update", "cancel", "confirm", "digest"]
UPDATE_PREFIX = "update:"  # for the ledger queries that pick out updates
DIGEST_PREFIX = "digest:"  # … and the coordinator's digests


@dataclass(frozen=True)
class LedgerKind:
    name: Name
    rule: str = ""  # a reminder's rule id
    sequence: int = 0  # an update's SEQUENCE
    day: date | None = None  # a digest's day (campaign time zone)
    number: int = 0  # a confirmation's answer number

    @classmethod
    def parse(cls, text: str) -> LedgerKind:
        head, colon, tail = text.partition(":")
        if not colon and head in ("invitation", "cancel"):
            return cls(head)  # type: ignore[arg-type]
        if colon and head == "reminder" and tail:
            return cls("reminder", rule=tail)
        if colon and head == "update" and tail.isdecimal():
            return cls("update", sequence=int(tail))
        if colon and head == "digest" and _is_day(tail):
            return cls("digest", day=date.fromisoformat(tail))
        if colon and head == "confirm" and tail.isdecimal():
            return cls("confirm", number=int(tail))
        raise ValueError(f"{text!r} is not a kind of ledger row")

    def __str__(self) -> str:
        if self.name == "reminder":
            return f"reminder:{self.rule}"
        if self.name == "update":
            return f"{UPDATE_PREFIX}{self.sequence}"
        if self.name == "digest" and self.day is not None:
            return f"{DIGEST_PREFIX}{self.day.isoformat()}"
        if self.name == "confirm":
            return f"confirm:{self.number}"
        return self.name

    @property
    def coordinators(self) -> bool:
        """A row of no office: it goes to the coordinator (the digest)."""
        return self.name == "digest"


def _is_day(text: str) -> bool:
    """YYYY-MM-DD exactly (what `digest` writes), a real day."""
    if len(text) != 10 or text[4] != "-" or text[7] != "-":
        return False
    try:
        date.fromisoformat(text)
    except ValueError:
        return False
    return True


INVITATION = LedgerKind("invitation")
CANCEL = LedgerKind("cancel")


def reminder(rule_id: str) -> LedgerKind:
    return LedgerKind("reminder", rule=rule_id)


def update(sequence: int) -> LedgerKind:
    return LedgerKind("update", sequence=sequence)


def digest(day: date) -> LedgerKind:
    return LedgerKind("digest", day=day)


def confirm(number: int) -> LedgerKind:
    return LedgerKind("confirm", number=number)
