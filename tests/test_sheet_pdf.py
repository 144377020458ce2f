"""The desk's sheets as PDFs written by mailer itself (issue #16): A4, page numbers, the
table's heading again on every page, a column to sign, one set of column widths for every
province, and Thai that reads back as written (`pdftotext`)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mailer.cli import app
from mailer.invitees.importing import import_contacts
from mailer.replies.attendance import mark
from mailer.rounds.send import select_invitees
from tests.conftest import CONTACTS, cli_env
from tests.test_letter_pdf import read_back

_WORD = re.compile(r'<word xMin="([\d.]+)"[^>]*>([^<]*)</word>')


@pytest.fixture
def coming(make_ws, tmp_path: Path) -> dict[str, str]:  # type: ignore[no-untyped-def]
    """90 offices marked as coming (five pages of the attendance sheet); the CLI's env."""
    ws = make_ws()
    import_contacts(ws.engine, CONTACTS)
    for invitee in select_invitees(ws.engine)[:90]:
        mark(ws.ledger(), invitee.invitee_id, "accepted", representative={}, note="")
    return cli_env(tmp_path, DATABASE_URL=ws.settings.database_url)


def _pages(pdf: Path) -> list[str]:
    text = subprocess.run(
        ["pdftotext", "-layout", "-enc", "UTF-8", str(pdf), "-"],
        capture_output=True, check=True, text=True,
    ).stdout  # fmt: skip
    return [read_back(page) for page in text.split("\f") if page.strip()]


def _columns(pdf: Path, heading: str) -> set[float]:
    """Where each printed `heading` word starts (points from the left), on every page."""
    bbox = subprocess.run(
        ["pdftotext", "-bbox", "-enc", "UTF-8", str(pdf), "-"],
        capture_output=True, check=True, text=True,
    ).stdout  # fmt: skip
    return {round(float(x), 1) for x, word in _WORD.findall(bbox) if read_back(word) == heading}


def _size(pdf: Path) -> str:
    info = subprocess.run(["pdfinfo", str(pdf)], capture_output=True, check=True, text=True)
    return re.search(r"Page size:\s+(.*)", info.stdout)[1]  # type: ignore[index]


@pytest.mark.slow
def test_the_attendance_sheet_pdf(coming: dict[str, str], tmp_path: Path) -> None:
    pdf = tmp_path / "attendance.pdf"
    result = CliRunner().invoke(app, ["sheet", str(pdf)], env=coming)
    assert result.exit_code == 0, result.output
    assert "90 attendee(s)" in result.output
    assert "595.276 x 841.89 pts (A4)" in _size(pdf)
    pages = _pages(pdf)
    assert len(pages) >= 3
    for number, page in enumerate(pages, start=1):
        thai = str(number).translate(str.maketrans("0123456789", "๐๑๒๓๔๕๖๗๘๙"))
        assert re.search(rf"\n\s*{thai}\s*/\s*[๐-๙]+\s*$", page), page[-200:]
        heading = next(line for line in page.splitlines() if "ลงชื่อ" in line)
        assert heading.split() == ["ลำดับ", "หน่วยงาน", "ผู้เข้าร่วม", "ตำแหน่ง", "โทรศัพท์", "ลงชื่อ"]
    assert "ใบลงทะเบียนผู้เข้าร่วมงานสัมมนา" in pages[0]
    assert "สำนักงานอุตสาหกรรมจังหวัดปทุมธานี" in "".join(pages)  # Thai as written (ำ too)
    assert "รวม ๙๐ คน" in pages[-1]
    # one column layout for every province's table: each heading word starts at one place
    for heading in ("หน่วยงาน", "ผู้เข้าร่วม", "ลงชื่อ"):
        assert len(_columns(pdf, heading)) == 1, heading


@pytest.mark.slow
def test_the_call_sheet_pdf(coming: dict[str, str], tmp_path: Path) -> None:
    pdf = tmp_path / "call-sheet.pdf"
    result = CliRunner().invoke(app, ["export", str(pdf), "--what", "call-sheet"], env=coming)
    assert result.exit_code == 0, result.output
    assert "442 row(s)" in result.output  # 532 offices, 90 coming
    assert "841.89 x 595.276 pts (A4)" in _size(pdf)  # landscape: room to note each call
    pages = _pages(pdf)
    assert len(pages) > 2
    for page in pages[:3]:
        assert "รหัส" in page
        assert "ผลการโทร / ผู้โทร" in page
        assert re.search(r"\n\s*[๐-๙]+\s*/\s*[๐-๙]+\s*$", page)
    assert "ยังไม่ตอบ" in pages[1]
    assert len(_columns(pdf, "อีเมล")) == 1
    html = tmp_path / "call-sheet.html"
    result = CliRunner().invoke(app, ["export", str(html), "--what", "call-sheet"], env=coming)
    assert result.exit_code == 0, result.output
    assert "table-layout: fixed" in html.read_text(encoding="utf-8")
