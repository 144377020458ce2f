"""Validate the invitee list (`contacts.csv` or `.xlsx`): every row, before anything is
written (`mailer.invitees.importing` writes what passes).

Ids are compared without regard to case, so two rows may not differ only by it. Every
field must fit its database column on SQLite and PostgreSQL alike (the lengths come from
`mailer.models.Invitee`). Reading the file, bounded, is `mailer.invitees.files`.
"""

from __future__ import annotations

import re
import unicodedata
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from mailer.errors import ContactsError, cut, some
from mailer.invitees.addresses import NeedsSmtpUtf8, NotAnAddress, ascii_address
from mailer.invitees.files import SourceRow, read_rows
from mailer.invitees.records import InviteeRecord
from mailer.models import Invitee
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
    columns: list[str] | None = None
    for row in read_rows(path):
        if columns is None:
            columns = _header(path, row.values)
            continue
        record = _read_row(report, row, columns, reserved or {})
        if record is not None and _first_with_its_id(report, row.line, record, seen_ids):
            report.lines[record.invitee_id] = row.line
            report.records.append(record)
    if columns is None:
        raise ContactsError(f"{path}: the file is empty; the first line must name the columns")
    if report.rows == 0:
        raise ContactsError(
            f"{path}: no invitee rows after the header; add one row per office below it "
            "and import again"
        )
    _warn_of_shared_addresses(report)
    return report


def _read_row(
    report: ImportReport, row: SourceRow, columns: list[str], reserved: Mapping[str, str]
) -> InviteeRecord | None:
    """The office on one row below the header, or None: a blank row (not counted), or one
    with errors (added to `report`)."""
    values = row.values
    if not any(v.strip() for v in values) and not row.formulas:
        return None  # blank line
    report.rows += 1
    if len(values) > len(columns) and any(v.strip() for v in values[len(columns) :]):
        report.errors.append(
            RowProblem(
                report.source,
                row.line,
                f"has {len(values)} fields but the header has {len(columns)}; "
                "quote any field that contains a comma",
            )
        )
        return None
    data = {name: (values[i] if i < len(values) else "") for i, name in enumerate(columns) if name}
    formulas = {columns[i]: f for i, f in row.formulas if i < len(columns) and columns[i]}
    return _validate_row(report, row.line, data, formulas, reserved)


def _first_with_its_id(
    report: ImportReport, line: int, record: InviteeRecord, seen_ids: dict[str, tuple[int, str]]
) -> bool:
    """Whether no earlier row has this id (compared without regard to case); else an error."""
    key = record.invitee_id.lower()
    if key not in seen_ids:
        seen_ids[key] = (line, record.invitee_id)
        return True
    first_line, first_id = seen_ids[key]
    spelled = f" (as {first_id!r})" if first_id != record.invitee_id else ""
    report.errors.append(
        RowProblem(
            report.source,
            line,
            f"invitee_id {record.invitee_id!r} is already used on line {first_line}"
            f"{spelled}; ids are compared without regard to case, and each office "
            "needs its own id",
        )
    )
    return False


def _warn_of_shared_addresses(report: ImportReport) -> None:
    """An address given to several offices of the file: each still gets its own invitation."""
    by_address: dict[str, list[tuple[int, str]]] = defaultdict(list)
    for record in report.records:
        for address in record.email:
            by_address[address.lower()].append((report.lines[record.invitee_id], record.invitee_id))
    for address, users in by_address.items():
        if len(users) > 1:
            ids = some(f"{i} (line {n})" for n, i in users)
            report.warnings.append(
                RowProblem(
                    report.source,
                    users[0][0],
                    f"{address} is shared by {len(users)} offices: {ids}. Each office "
                    "still gets its own invitation; check this is a shared (saraban) inbox",
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
    report: ImportReport,
    line: int,
    data: dict[str, str],
    formulas: dict[str, str],
    reserved: Mapping[str, str],
) -> InviteeRecord | None:
    """The office of one row, or None with its errors added to `report`; what is odd but
    usable (a salutation without เรียน, letters of another script) is a warning."""
    values = {k: _clean(v) for k, v in data.items()}
    problems = _field_problems(values, data, formulas)
    invitee_id = values.get("invitee_id", "")
    addresses = _addresses(values.get("email", ""), reserved, problems)
    if values.get("email") and not addresses and not problems:
        problems.append("email holds no address")
    if problems:
        report.errors.extend(RowProblem(report.source, line, p) for p in problems)
        return None
    warnings: list[str] = []
    salutation = values["salutation"]
    if not salutation.startswith(SALUTATION_PREFIX):
        warnings.append(f"salutation {cut(salutation)!r} does not start with เรียน; added it")
        salutation = f"{SALUTATION_PREFIX} {salutation}"
    warnings += _slips(values)
    report.warnings.extend(RowProblem(report.source, line, w) for w in warnings)
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


def _field_problems(
    values: dict[str, str], data: dict[str, str], formulas: dict[str, str]
) -> list[str]:
    """What is wrong with the fields themselves (their length, characters, formulas, the
    required ones, the id's form); a field too long to store is emptied in `values`."""
    problems: list[str] = []
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
    return problems


def _slips(values: dict[str, str]) -> list[str]:
    """Letters of another script inside the Thai fields: the first three of each field,
    and how many more."""
    found: list[str] = []
    for name in ("organisation", "salutation", "province"):
        slips = script_slips(values.get(name, ""), name)
        found += [slip.describe() for slip in slips[:3]]
        if len(slips) > 3:
            found.append(f"{name}: {len(slips) - 3:,} more such letters")
    return found


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


def _once_each(addresses: list[str]) -> tuple[str, ...]:
    """Each address once, the first spelling kept: `a@x; A@x` is one mailbox, one RCPT and
    one ATTENDEE (domains are case-blind, and no mail system here tells local parts apart)."""
    unique: dict[str, str] = {}
    for address in addresses:
        unique.setdefault(address.lower(), address)
    return tuple(unique.values())
