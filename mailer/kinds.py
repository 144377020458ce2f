"""What a ledger row is, as a value read once: `invitation`, `reminder:<rule id>`,
`update:<sequence>`, `cancel` or `confirm:<n>` (the confirmation of an office's n-th answer
on its page, mailer/replies/online.py) — the text stored in the `kind` column."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Name = Literal["invitation", "reminder", "update", "cancel", "confirm"]
UPDATE_PREFIX = "update:"  # for the ledger queries that pick out updates


@dataclass(frozen=True)
class LedgerKind:
    name: Name
    rule: str = ""  # a reminder's rule id
    sequence: int = 0  # an update's SEQUENCE
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
        if colon and head == "confirm" and tail.isdecimal():
            return cls("confirm", number=int(tail))
        raise ValueError(f"{text!r} is not a kind of ledger row")

    def __str__(self) -> str:
        if self.name == "reminder":
            return f"reminder:{self.rule}"
        if self.name == "update":
            return f"{UPDATE_PREFIX}{self.sequence}"
        if self.name == "confirm":
            return f"confirm:{self.number}"
        return self.name


INVITATION = LedgerKind("invitation")
CANCEL = LedgerKind("cancel")


def reminder(rule_id: str) -> LedgerKind:
    return LedgerKind("reminder", rule=rule_id)


def update(sequence: int) -> LedgerKind:
    return LedgerKind("update", sequence=sequence)


def confirm(number: int) -> LedgerKind:
    return LedgerKind("confirm", number=number)
