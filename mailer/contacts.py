"""Import and validate the invitee list (`contacts.csv` or `.xlsx`).

Every row is checked before anything is written; either the whole file is imported or
nothing is (unless `skip_invalid`). Re-importing updates rows by `invitee_id` and never
duplicates an invitee. CSV may be UTF-8, UTF-8 with BOM, or windows-874/TIS-620 (what
Thai Excel writes).
"""

from __future__ import annotations

import csv
import io
import re
import unicodedata
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

from email_validator import EmailNotValidError, validate_email
from sqlalchemy import Engine
from sqlmodel import col, select

from mailer.db import session
from mailer.errors import ContactsError
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
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_PROVINCE_FROM_ID = re.compile(r"^(TH-\d{2})-")
SALUTATION_PREFIX = "เรียน"


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
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    not_in_file: int = 0
    written: bool = False


def read_contacts(path: Path) -> ImportReport:
    """Read and validate every row; writes nothing."""
    report = ImportReport(source=str(path))
    rows = _read_xlsx(path) if path.suffix.lower() in {".xlsx", ".xlsm"} else _read_csv(path)
    seen_ids: dict[str, int] = {}
    by_address: dict[str, list[tuple[int, str]]] = defaultdict(list)
    header_seen = False
    for line, values in rows:
        if not header_seen:
            columns = _header(path, values)
            header_seen = True
            continue
        if not any(v.strip() for v in values):
            continue  # blank line
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
        record = _validate_row(str(path), line, data, report)
        if record is None:
            continue
        if record.invitee_id in seen_ids:
            report.errors.append(
                RowProblem(
                    str(path),
                    line,
                    f"invitee_id {record.invitee_id!r} is already used on line "
                    f"{seen_ids[record.invitee_id]}; each office needs its own id",
                )
            )
            continue
        seen_ids[record.invitee_id] = line
        for address in record.email:
            by_address[address.lower()].append((line, record.invitee_id))
        report.records.append(record)
    if not header_seen:
        raise ContactsError(f"{path}: the file is empty; the first line must name the columns")
    for address, users in by_address.items():
        if len(users) > 1:
            ids = ", ".join(f"{i} (line {n})" for n, i in users)
            report.warnings.append(
                RowProblem(
                    str(path),
                    users[0][0],
                    f"{address} is shared by {len(users)} offices: {ids}. Each office "
                    "still gets its own invitation; check this is a shared (saraban) inbox",
                )
            )
    return report


def import_contacts(engine: Engine, path: Path, *, skip_invalid: bool = False) -> ImportReport:
    """Validate the file, then write it in one transaction (or nothing, on errors)."""
    report = read_contacts(path)
    if report.errors and not skip_invalid:
        return report
    now = datetime.now(UTC)
    with session(engine) as db:
        existing = {row.invitee_id: row for row in db.exec(select(Invitee)).all()}
        file_ids = set()
        for record in report.records:
            file_ids.add(record.invitee_id)
            values = {
                "organisation": record.organisation,
                "salutation": record.salutation,
                "province": record.province,
                "province_code": record.province_code,
                "agency": record.agency,
                "emails": "; ".join(record.email),
                "phone": record.phone,
            }
            row = existing.get(record.invitee_id)
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
        report.not_in_file = len(set(existing) - file_ids)
        db.commit()
    report.written = True
    return report


def _header(path: Path, values: list[str]) -> list[str]:
    columns = []
    for raw in values:
        name = raw.strip().lstrip("\ufeff").strip().lower().replace(" ", "_")
        name = _ALIASES.get(name, name)
        columns.append(name if name in COLUMNS else "")
    missing = [c for c in REQUIRED if c not in columns]
    if missing:
        found = ", ".join(v.strip() for v in values if v.strip()) or "nothing"
        raise ContactsError(
            f"{path}, line 1: the header has no column {', '.join(missing)} (found: {found}). "
            f"The first line must name the columns: {', '.join(COLUMNS)}"
        )
    return columns


def _clean(value: str) -> str:
    return unicodedata.normalize("NFC", value).strip()


def _validate_row(
    source: str, line: int, data: dict[str, str], report: ImportReport
) -> InviteeRecord | None:
    problems: list[str] = []
    values = {k: _clean(v) for k, v in data.items()}
    for name, value in values.items():
        if any(c in value for c in "\r\n\x0b\x0c\x85\u2028\u2029"):
            problems.append(f"{name} contains a line break; put it on one line")
        elif any(unicodedata.category(c) == "Cc" for c in value):
            problems.append(f"{name} contains a control character; retype it")
    for name in REQUIRED:
        if not values.get(name):
            problems.append(f"{name} is empty; every office needs one")
    invitee_id = values.get("invitee_id", "")
    if invitee_id and not _ID.match(invitee_id):
        problems.append(
            f"invitee_id {invitee_id!r} may only hold ASCII letters, digits, '.', '_' and '-' "
            "(e.g. TH-50-agri)"
        )
    addresses: list[str] = []
    for raw in re.split(r"[;,]", values.get("email", "")):
        raw = raw.strip()
        if not raw:
            continue
        try:
            addresses.append(validate_email(raw, check_deliverability=False).normalized)
        except EmailNotValidError as exc:
            problems.append(
                f"{raw!r} is not an email address ({exc}). Fix the address or remove the row"
            )
    if values.get("email") and not addresses and not problems:
        problems.append("email holds no address")
    if problems:
        report.errors.extend(RowProblem(source, line, p) for p in problems)
        return None
    salutation = values["salutation"]
    if not salutation.startswith(SALUTATION_PREFIX):
        report.warnings.append(
            RowProblem(
                source, line, f"salutation {salutation!r} does not start with เรียน; added it"
            )
        )
        salutation = f"{SALUTATION_PREFIX} {salutation}"
    for name in ("organisation", "salutation", "province"):
        for slip in script_slips(values.get(name, ""), name):
            report.warnings.append(RowProblem(source, line, slip.describe()))
    province_code = values.get("province_code", "")
    if not province_code and (match := _PROVINCE_FROM_ID.match(invitee_id)):
        province_code = match.group(1)
    return InviteeRecord(
        invitee_id=invitee_id,
        organisation=values["organisation"],
        salutation=salutation,
        email=tuple(dict.fromkeys(addresses)),
        province=values.get("province", ""),
        province_code=province_code,
        agency=values.get("agency", ""),
        phone=values.get("phone", ""),
    )


def decode_csv_bytes(raw: bytes, source: str) -> str:
    """UTF-8 (with or without BOM), else windows-874 (a superset of TIS-620)."""
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as utf8_error:
        try:
            return raw.decode("cp874")
        except UnicodeDecodeError:
            raise ContactsError(
                f"{source}: byte {utf8_error.start} is neither UTF-8 nor windows-874/TIS-620. "
                "Save the file from Excel as 'CSV UTF-8 (Comma delimited)' and import it again"
            ) from utf8_error


def _read_csv(path: Path) -> Iterator[tuple[int, list[str]]]:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ContactsError(f"{path}: cannot read the file: {exc.strerror}") from exc
    if raw.startswith(b"PK\x03\x04"):
        raise ContactsError(f"{path}: this is an Excel workbook; name it .xlsx to import it")
    text = decode_csv_bytes(raw, str(path))
    first = text.split("\n", 1)[0]
    delimiter = max(",;\t", key=first.count)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    line = 1
    try:
        for values in reader:
            yield line, values
            line = reader.line_num + 1
    except csv.Error as exc:
        raise ContactsError(
            f"{path}, line {reader.line_num}: {exc}; check the quotes on this line"
        ) from exc


def _read_xlsx(path: Path) -> Iterator[tuple[int, list[str]]]:
    from openpyxl import load_workbook
    from openpyxl.utils.exceptions import InvalidFileException

    try:
        book = load_workbook(path, read_only=True, data_only=True)
    except (OSError, InvalidFileException, KeyError, ValueError) as exc:
        raise ContactsError(
            f"{path}: cannot read the workbook ({exc}); save it again as .xlsx"
        ) from exc
    try:
        sheet = book.worksheets[0]
        for number, row in enumerate(sheet.iter_rows(values_only=True), start=1):
            yield number, ["" if v is None else _cell_text(v) for v in row]
    finally:
        book.close()


def _cell_text(value: object) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)
