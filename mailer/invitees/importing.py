"""Import the invitee list (`contacts.csv` or `.xlsx`) into the database.

Every row is checked first (`mailer.invitees.validation`); either the whole file is
imported or nothing is (unless `skip_invalid`). Re-importing updates rows by `invitee_id`
(compared without regard to case, the stored spelling kept) and never duplicates an
invitee.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import Engine
from sqlmodel import select

from mailer.db import session
from mailer.errors import some
from mailer.invitees.records import RECORD_COLUMNS, InviteeColumns, InviteeRecord
from mailer.invitees.validation import COLUMNS, ImportReport, RowProblem, read_contacts
from mailer.models import Invitee, split_emails

__all__ = [  # the invitee values and the validation are also reached from here, as before
    "COLUMNS",
    "RECORD_COLUMNS",
    "ImportReport",
    "InviteeColumns",
    "InviteeRecord",
    "RowProblem",
    "import_contacts",
    "read_contacts",
]


def import_contacts(
    engine: Engine,
    path: Path,
    *,
    skip_invalid: bool = False,
    reserved: Mapping[str, str] | None = None,
) -> ImportReport:
    """Validate the file, then write it in one transaction (or nothing, on errors).

    An id matches a stored office whatever its case (`th-50-agri` updates `TH-50-agri`, and
    the stored spelling is kept). An address that belongs to another stored office, not in
    this file, is a warning."""
    report = read_contacts(path, reserved=reserved)
    if report.errors and not (skip_invalid and report.records):
        return report
    now = datetime.now(UTC)
    with session(engine) as db:
        stored = db.exec(select(Invitee)).all()
        exact = {row.invitee_id: row for row in stored}
        folded: dict[str, Invitee] = {}
        for invitee in stored:
            folded.setdefault(invitee.invitee_id.lower(), invitee)
        matched: set[str] = set()
        for record in report.records:
            found = exact.get(record.invitee_id) or folded.get(record.invitee_id.lower())
            if found is not None:
                matched.add(found.invitee_id)
        _warn_of_addresses_held_elsewhere(report, stored, matched)
        for record in report.records:
            values = {
                "organisation": record.organisation,
                "salutation": record.salutation,
                "province": record.province,
                "province_code": record.province_code,
                "agency": record.agency,
                "emails": "; ".join(record.email),
                "phone": record.phone,
            }
            row = exact.get(record.invitee_id) or folded.get(record.invitee_id.lower())
            if row is None:
                db.add(
                    Invitee(invitee_id=record.invitee_id, created_at=now, updated_at=now, **values)
                )
                report.created += 1
            elif any(getattr(row, k) != v for k, v in values.items()):
                for key, value in values.items():
                    setattr(row, key, value)
                row.updated_at = now
                db.add(row)
                report.updated += 1
            else:
                report.unchanged += 1
        report.not_in_file = len(set(exact) - matched)
        db.commit()
    report.written = True
    return report


def _warn_of_addresses_held_elsewhere(
    report: ImportReport, stored: Sequence[Invitee], matched: set[str]
) -> None:
    """An address of a stored office that this file does not list is worth a look."""
    holders: dict[str, list[str]] = defaultdict(list)
    for row in stored:
        if row.invitee_id not in matched:
            for address in split_emails(row.emails):
                holders[address.lower()].append(row.invitee_id)
    if not holders:
        return
    for record in report.records:
        for address in record.email:
            others = holders.get(address.lower())
            if others:
                report.warnings.append(
                    RowProblem(
                        report.source,
                        report.lines[record.invitee_id],
                        f"{address} already belongs to {some(others)} in the database "
                        "(not in this file). Each office still gets its own invitation; check "
                        "this is a shared (saraban) inbox, or correct the address",
                    )
                )
