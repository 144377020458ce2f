"""Import and validate the invitee list (`contacts.csv` or `.xlsx`).

Every row is checked before anything is written; either the whole file is imported or
nothing is (unless `skip_invalid`). Re-importing updates rows by `invitee_id` (compared
without regard to case, the stored spelling kept) and never duplicates an invitee. Every
field fits its database column on SQLite and PostgreSQL alike (the lengths come from
`mailer.models.Invitee`). Reading the file, bounded, is `mailer.invitees.files`.
"""

from __future__ import annotations

import re
import unicodedata
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import Engine
from sqlmodel import select

from mailer.db import session
from mailer.errors import ContactsError, cut
from mailer.invitees.addresses import NeedsSmtpUtf8, NotAnAddress, ascii_address
from mailer.invitees.files import read_rows
from mailer.invitees.records import RECORD_COLUMNS, InviteeColumns, InviteeRecord
from mailer.models import Invitee, split_emails
from mailer.thai import script_slips

COLUMNS = (
    "invitee_id",
    "province_code",
    "province",
    "agency",
    "organisation",
    "salutation",
    "email",
    "phone",
)
REQUIRED = ("invitee_id", "organisation", "salutation", "email")
_ALIASES = {
    "id": "invitee_id",
    "รหัส": "invitee_id",
    "organization": "organisation",
    "office": "organisation",
    "หน่วยงาน": "organisation",
    "เรียน": "salutation",
    "emails": "email",
    "e-mail": "email",
    "อีเมล": "email",
    "จังหวัด": "province",
    "รหัสจังหวัด": "province_code",
    "ประเภทหน่วยงาน": "agency",
    "telephone": "phone",
    "tel": "phone",
    "โทรศัพท์": "phone",
}
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")  # its length is the column's (below)
MAX_TEXT = 2_000  # a field stored as TEXT: no office name or address list comes near it


def _column_limits() -> dict[str, int]:
    """The most characters each field may hold: its column's length, else `MAX_TEXT`."""
    table = Invitee.metadata.tables[str(Invitee.__tablename__)]
    limits = {}
    for name in COLUMNS:
        length = getattr(table.columns["emails" if name == "email" else name].type, "length", None)
        limits[name] = length if isinstance(length, int) else MAX_TEXT
    return limits


LIMITS = _column_limits()
__all__ = [  # the invitee values are also reached from here, as before
    "COLUMNS",
    "RECORD_COLUMNS",
    "ImportReport",
    "InviteeColumns",
    "InviteeRecord",
    "RowProblem",
    "import_contacts",
    "read_contacts",
]
_PROVINCE_FROM_ID = re.compile(r"^(TH-\d{2})-")
SALUTATION_PREFIX = "เรียน"


@dataclass(frozen=True)
class RowProblem:
    source: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.source}, line {self.line}: {self.message}"


@dataclass
class ImportReport:
    source: str
    records: list[InviteeRecord] = field(default_factory=list)
    errors: list[RowProblem] = field(default_factory=list)
    warnings: list[RowProblem] = field(default_factory=list)
    rows: int = 0  # non-blank rows below the header, valid or not
    lines: dict[str, int] = field(default_factory=dict)  # invitee_id → its line in the file
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    not_in_file: int = 0
    written: bool = False

    @property
    def bad_rows(self) -> int:
        """Rows with at least one error (a row may have several)."""
        return len({problem.line for problem in self.errors})


def read_contacts(path: Path, *, reserved: Mapping[str, str] | None = None) -> ImportReport:
    """Read and validate every row; writes nothing.

    `reserved` maps the campaign's own addresses (lower case) to the keys that name them
    (`Campaign.own_addresses`); an office given one of them is an error."""
    report = ImportReport(source=str(path))
    seen_ids: dict[str, tuple[int, str]] = {}
    by_address: dict[str, list[tuple[int, str]]] = defaultdict(list)
    columns: list[str] | None = None
    for row in read_rows(path):
        line, values = row.line, row.values
        if columns is None:
            columns = _header(path, values)
            continue
        if not any(v.strip() for v in values) and not row.formulas:
            continue  # blank line
        report.rows += 1
        if len(values) > len(columns) and any(v.strip() for v in values[len(columns) :]):
            report.errors.append(
                RowProblem(
                    str(path),
                    line,
                    f"has {len(values)} fields but the header has {len(columns)}; "
                    "quote any field that contains a comma",
                )
            )
            continue
        data = {
            name: (values[i] if i < len(values) else "") for i, name in enumerate(columns) if name
        }
        formulas = {columns[i]: f for i, f in row.formulas if i < len(columns) and columns[i]}
        record = _validate_row(str(path), line, data, formulas, reserved or {}, report)
        if record is None:
            continue
        key = record.invitee_id.lower()
        if key in seen_ids:
            first_line, first_id = seen_ids[key]
            spelled = f" (as {first_id!r})" if first_id != record.invitee_id else ""
            report.errors.append(
                RowProblem(
                    str(path),
                    line,
                    f"invitee_id {record.invitee_id!r} is already used on line {first_line}"
                    f"{spelled}; ids are compared without regard to case, and each office "
                    "needs its own id",
                )
            )
            continue
        seen_ids[key] = (line, record.invitee_id)
        report.lines[record.invitee_id] = line
        for address in record.email:
            by_address[address.lower()].append((line, record.invitee_id))
        report.records.append(record)
    if columns is None:
        raise ContactsError(f"{path}: the file is empty; the first line must name the columns")
    if report.rows == 0:
        raise ContactsError(
            f"{path}: no invitee rows after the header; add one row per office below it "
            "and import again"
        )
    for address, users in by_address.items():
        if len(users) > 1:
            ids = _some(f"{i} (line {n})" for n, i in users)
            report.warnings.append(
                RowProblem(
                    str(path),
                    users[0][0],
                    f"{address} is shared by {len(users)} offices: {ids}. Each office "
                    "still gets its own invitation; check this is a shared (saraban) inbox",
                )
            )
    return report


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
                        f"{address} already belongs to {_some(others)} in the database "
                        "(not in this file). Each office still gets its own invitation; check "
                        "this is a shared (saraban) inbox, or correct the address",
                    )
                )


def _header(path: Path, values: tuple[str, ...]) -> list[str]:
    columns: list[str] = []
    for number, raw in enumerate(values, start=1):
        name = raw.strip().lstrip("\ufeff").strip().lower().replace(" ", "_")
        name = _ALIASES.get(name, name)
        if name in COLUMNS and name in columns:
            raise ContactsError(
                f"{path}, line 1: the column {name} appears twice (columns "
                f"{columns.index(name) + 1} and {number}); keep one"
            )
        columns.append(name if name in COLUMNS else "")
    missing = [c for c in REQUIRED if c not in columns]
    if missing:
        found = ", ".join(v.strip() for v in values if v.strip()) or "nothing"
        raise ContactsError(
            f"{path}, line 1: the header has no column {', '.join(missing)} "
            f"(found: {cut(found, 200)}). "
            f"The first line must name the columns: {', '.join(COLUMNS)}"
        )
    return columns


def _clean(value: str) -> str:
    return unicodedata.normalize("NFC", value).strip()


def _validate_row(
    source: str,
    line: int,
    data: dict[str, str],
    formulas: dict[str, str],
    reserved: Mapping[str, str],
    report: ImportReport,
) -> InviteeRecord | None:
    problems: list[str] = []
    values = {k: _clean(v) for k, v in data.items()}
    for name, value in list(values.items()):
        if len(value) > LIMITS[name]:
            problems.append(
                f"{name} is {len(value):,} characters long; at most {LIMITS[name]:,} fit: "
                f"{cut(value)!r}"
            )
            values[name] = ""  # reported once, not again below
        elif any(c in value for c in "\r\n\x0b\x0c\x85\u2028\u2029"):
            problems.append(f"{name} contains a line break; put it on one line")
        elif any(unicodedata.category(c) == "Cc" for c in value):
            problems.append(f"{name} contains a control character; retype it")
    for name, formula in formulas.items():
        problems.append(
            f"{name} is a formula ({cut(formula)}) with no saved value; open the file in "
            "Excel and save it again, or paste the column as values"
        )
    for name in REQUIRED:
        if name not in formulas and not _clean(data.get(name, "")):
            problems.append(f"{name} is empty; every office needs one")
    invitee_id = values.get("invitee_id", "")
    if invitee_id and not _ID.match(invitee_id):
        problems.append(
            f"invitee_id {cut(invitee_id)!r} may only hold ASCII letters, digits, '.', '_' "
            "and '-' (e.g. TH-50-agri)"
        )
    addresses = _addresses(values.get("email", ""), reserved, problems)
    if values.get("email") and not addresses and not problems:
        problems.append("email holds no address")
    if problems:
        report.errors.extend(RowProblem(source, line, p) for p in problems)
        return None
    salutation = values["salutation"]
    if not salutation.startswith(SALUTATION_PREFIX):
        report.warnings.append(
            RowProblem(
                source, line, f"salutation {cut(salutation)!r} does not start with เรียน; added it"
            )
        )
        salutation = f"{SALUTATION_PREFIX} {salutation}"
    for name in ("organisation", "salutation", "province"):
        slips = script_slips(values.get(name, ""), name)
        for slip in slips[:3]:
            report.warnings.append(RowProblem(source, line, slip.describe()))
        if len(slips) > 3:
            report.warnings.append(
                RowProblem(source, line, f"{name}: {len(slips) - 3:,} more such letters")
            )
    province_code = values.get("province_code", "")
    if not province_code and (match := _PROVINCE_FROM_ID.match(invitee_id)):
        province_code = match.group(1)
    return InviteeRecord(
        invitee_id=invitee_id,
        organisation=values["organisation"],
        salutation=salutation,
        email=_once_each(addresses),
        province=values.get("province", ""),
        province_code=province_code,
        agency=values.get("agency", ""),
        phone=values.get("phone", ""),
    )


def _addresses(field: str, reserved: Mapping[str, str], problems: list[str]) -> list[str]:
    """The addresses of one `email` field in their ASCII form; problems are appended."""
    addresses: list[str] = []
    for raw in re.split(r"[;,]", field):
        raw = raw.strip()
        if not raw:
            continue
        try:
            address = ascii_address(raw)
        except NeedsSmtpUtf8 as exc:
            problems.append(
                f"{cut(raw)!r} {exc}; ask the office for an ASCII address, or remove the row"
            )
            continue
        except NotAnAddress as exc:
            problems.append(f"{cut(raw)!r} {exc}. Fix the address or remove the row")
            continue
        if (keys := reserved.get(address.lower())) is not None:
            problems.append(
                f"{cut(raw)} is the campaign's own address ({keys}): a calendar cannot invite "
                "its own organizer, and the office's answers would never reach it. Give the "
                "office its own address"
            )
            continue
        addresses.append(address)
    return addresses


def _some(names: Iterable[str], shown: int = 5) -> str:
    """The first few names, and how many more (a list of 100,000 is not a message)."""
    names = list(names)
    more = f" and {len(names) - shown:,} more" if len(names) > shown else ""
    return ", ".join(names[:shown]) + more


def _once_each(addresses: list[str]) -> tuple[str, ...]:
    """Each address once, the first spelling kept: `a@x; A@x` is one mailbox, one RCPT and
    one ATTENDEE (domains are case-blind, and no mail system here tells local parts apart)."""
    unique: dict[str, str] = {}
    for address in addresses:
        unique.setdefault(address.lower(), address)
    return tuple(unique.values())
