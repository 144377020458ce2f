"""What the coordinator hands on: the province × agency matrix, the call sheet, the list for
the registration desk — as `.xlsx` (openpyxl) or `.csv` (UTF-8 with BOM, so Thai opens right
in Excel), with Thai column headings. As a table to print (`.pdf`, `.html`): see
`mailer.views.sheet.write_table`."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from mailer.errors import MailerError
from mailer.labels import AGENCY_ORDER, ATTENDANCE_TH, DELIVERY_TH, KINDS
from mailer.replies.statuses import COMING, TO_CHASE, Attendance
from mailer.views.report import InviteeStatus, StatusReport, code_of

BANGKOK = ZoneInfo("Asia/Bangkok")


@dataclass(frozen=True)
class Sheet:
    title: str
    headings: list[str]
    rows: list[list[str]]


def _rep(item: InviteeStatus, key: str) -> str:
    return (item.representative or {}).get(key, "")


def _by_place(items: Sequence[InviteeStatus]) -> list[InviteeStatus]:
    def key(item: InviteeStatus) -> tuple[str, int, str]:
        agency = AGENCY_ORDER.index(item.agency) if item.agency in AGENCY_ORDER else 99
        return (code_of(item), agency, item.invitee_id)

    return sorted(items, key=key)


def _row_all(i: InviteeStatus) -> list[str]:
    return [
        i.invitee_id,
        i.province,
        i.organisation,
        i.email,
        i.phone,
        DELIVERY_TH.get(i.delivery, i.delivery),
        ATTENDANCE_TH[i.attendance],
        _rep(i, "name"),
        _rep(i, "position"),
        _rep(i, "phone"),
        _bangkok(i.attendance_at),
        i.attendance_evidence or "",
    ]


def _bangkok(iso: str | None) -> str:
    if not iso:
        return ""
    return datetime.fromisoformat(iso).astimezone(BANGKOK).strftime("%Y-%m-%d %H:%M")


def _row_call(i: InviteeStatus) -> list[str]:
    note = i.attendance_evidence or DELIVERY_TH.get(i.delivery, "")
    return [i.invitee_id, i.province, i.organisation, i.phone, i.email,
            ATTENDANCE_TH[i.attendance], note]  # fmt: skip


def _row_attendee(n: int, i: InviteeStatus) -> list[str]:
    representative = i.attendance == Attendance.representative
    unnamed = "ผู้แทน (ยังไม่ทราบชื่อ)" if representative else "หัวหน้าหน่วยงาน"
    return [str(n), i.province, i.organisation, _rep(i, "name") or unnamed,
            _rep(i, "position"), _rep(i, "phone") or i.phone]  # fmt: skip


def sheet(report: StatusReport, what: str) -> Sheet:
    items = _by_place(report.invitees)
    if what == "all":
        headings = ["รหัส", "จังหวัด", "หน่วยงาน", "อีเมล", "โทรศัพท์", "การส่งอีเมล", "การตอบรับ",
                    "ชื่อผู้แทน", "ตำแหน่งผู้แทน", "โทรศัพท์ผู้แทน", "ตอบล่าสุดเมื่อ", "หลักฐาน"]  # fmt: skip
        return Sheet("ทุกหน่วยงาน", headings, [_row_all(i) for i in items])
    if what == "call-sheet":
        chase = [i for i in items if i.attendance in TO_CHASE]
        headings = ["รหัส", "จังหวัด", "หน่วยงาน", "โทรศัพท์", "อีเมล", "สถานะ", "หมายเหตุ"]
        return Sheet("รายชื่อหน่วยงานที่ต้องโทรติดตาม", headings, [_row_call(i) for i in chase])
    if what == "attendees":
        coming = [i for i in items if i.attendance in COMING]
        headings = ["ลำดับ", "จังหวัด", "หน่วยงาน", "ผู้เข้าร่วม", "ตำแหน่ง", "โทรศัพท์"]
        rows = [_row_attendee(n, i) for n, i in enumerate(coming, start=1)]
        return Sheet("รายชื่อผู้เข้าร่วมสัมมนา", headings, rows)
    raise MailerError(f"--what {what!r} is not one of {', '.join(KINDS)}")


def export(report: StatusReport, path: Path, what: str) -> Sheet:
    """Write the sheet to `path` (.xlsx or .csv by its extension); returns what was written."""
    result = sheet(report, what)
    suffix = path.suffix.lower()
    if suffix not in (".xlsx", ".csv"):
        raise MailerError(
            f"{path}: name the file .xlsx (Excel) or .csv (UTF-8 for Excel), or .pdf (.html) "
            "for a table to print"
        )
    try:
        if suffix == ".csv":
            with path.open("w", newline="", encoding="utf-8-sig") as handle:
                writer = csv.writer(handle)
                writer.writerow(result.headings)
                writer.writerows([[_inert(v) for v in row] for row in result.rows])
        else:
            from openpyxl import Workbook
            from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE
            from openpyxl.styles import Font

            book = Workbook()
            page = book.active
            assert page is not None
            page.title = what
            page.append(result.headings)
            for cell in page[1]:
                cell.font = Font(bold=True)
            for row in result.rows:
                page.append([ILLEGAL_CHARACTERS_RE.sub("", value) for value in row])
                for cell in page[page.max_row]:
                    cell.data_type = "s"  # text, never a formula, whatever it starts with
            page.freeze_panes = "A2"
            book.save(path)
    except OSError as exc:
        raise MailerError(f"{path}: cannot write the file: {exc.strerror or exc}") from exc
    return result


_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _inert(value: str) -> str:
    """A CSV cell Excel will not run as a formula (a name typed as "=HYPERLINK(…)")."""
    return f"'{value}" if value.startswith(_FORMULA_STARTS) else value


@dataclass(frozen=True)
class MatrixRow:
    code: str
    province: str
    cells: list[Attendance | None]  # attendance per agency column (None: no such office)
    offices: list[str | None]  # the office (invitee id) of each cell


def matrix(report: StatusReport) -> tuple[list[str], list[MatrixRow]]:
    """Provinces × agencies, one attendance per office."""
    present = {i.agency for i in report.invitees}
    agencies = [a for a in AGENCY_ORDER if a in present] + sorted(present - set(AGENCY_ORDER))
    columns = {agency: n for n, agency in enumerate(agencies)}
    rows: dict[tuple[str, int], MatrixRow] = {}
    free: dict[tuple[str, int], int] = {}  # (province, column): its first line still empty
    for item in report.invitees:
        code = item.province_code or item.province or item.invitee_id
        column = columns[item.agency]
        # Two offices of one agency in one province: another line, none hidden.
        line = free.get((code, column), 0)
        free[code, column] = line + 1
        row = rows.get((code, line))
        if row is None:
            empty = len(agencies)
            row = rows[code, line] = MatrixRow(code, item.province, [None] * empty, [None] * empty)
        row.cells[column] = item.attendance
        row.offices[column] = item.invitee_id
    return agencies, [rows[k] for k in sorted(rows)]
