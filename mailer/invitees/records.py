"""One invited office as plain values: what templates, the composer and the ledger read.

`InviteeRecord` is built from a stored `Invitee` or from a plain row of `RECORD_COLUMNS`
(cheaper than ORM objects on the hot path). `mailer.invitees.validation` makes them from a file.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from sqlmodel import col

from mailer.models import Invitee, split_emails

# What an `InviteeRecord` is made of, for reading plain rows where ORM objects cost too much.
RECORD_COLUMNS = (
    col(Invitee.invitee_id),
    col(Invitee.organisation),
    col(Invitee.salutation),
    col(Invitee.emails),
    col(Invitee.province),
    col(Invitee.province_code),
    col(Invitee.agency),
    col(Invitee.phone),
)


class InviteeColumns(Protocol):
    """An `Invitee`, or a row of `RECORD_COLUMNS`."""

    @property
    def invitee_id(self) -> str: ...
    @property
    def organisation(self) -> str: ...
    @property
    def salutation(self) -> str: ...
    @property
    def emails(self) -> str: ...
    @property
    def province(self) -> str: ...
    @property
    def province_code(self) -> str: ...
    @property
    def agency(self) -> str: ...
    @property
    def phone(self) -> str: ...


@dataclass(frozen=True)
class InviteeRecord:
    """One invited office as plain values (what templates and the composer receive)."""

    invitee_id: str
    organisation: str
    salutation: str
    email: tuple[str, ...]
    province: str = ""
    province_code: str = ""
    agency: str = ""
    phone: str = ""

    @property
    def primary_email(self) -> str:
        return self.email[0]

    @classmethod
    def from_row(cls, row: InviteeColumns) -> InviteeRecord:
        """From an `Invitee`, or a plain row of its columns (`RECORD_COLUMNS`)."""
        return cls(
            invitee_id=row.invitee_id,
            organisation=row.organisation,
            salutation=row.salutation,
            email=tuple(split_emails(row.emails)),
            province=row.province,
            province_code=row.province_code,
            agency=row.agency,
            phone=row.phone,
        )
