"""The coordinator's view: the matrix, the exports read back cell by cell, the printable
sheet rendered by a real headless Chromium."""

from __future__ import annotations

import csv
import shutil
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest
from openpyxl import load_workbook
from typer.testing import CliRunner

from mailer.cli import app
from mailer.invitees.importing import import_contacts
from mailer.labels import ATTENDANCE_TH
from mailer.replies.attendance import mark
from mailer.rounds.send import send_round
from mailer.views.exports import export, matrix
from mailer.views.report import Filters, status
from mailer.workspace import Workspace
from tests.conftest import (
    CAMPAIGN,
    CHROMIUM,
    CONTACTS,
    TEMPLATES,
    DevServer,
    FakeClock,
    free_port,
    make_settings,
    needed,
)

SEEDED = {
    "TH-50-agri": ("accepted", {}),
    "TH-50-prov": ("declined", {}),
    "TH-11-ind": (
        "representative",
        {"name": "นางสาวสมหญิง ใจดี", "position": "นักวิเคราะห์นโยบายและแผน", "phone": "0812345678"},
    ),
    "TH-96-dbd": ("tentative", {}),
}


@pytest.fixture(scope="module")
def seeded_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The ledger of the batch sent for real to a loopback SMTP server, with SEEDED's
    marks: made once for this file (532 sends take seconds), copied for each test."""
    folder = tmp_path_factory.mktemp("seeded")
    port = free_port()
    clock = FakeClock(datetime(2016, 11, 1, 2, 0, tzinfo=UTC))
    with DevServer("127.0.0.1", port, folder / "received"):
        ws = Workspace(make_settings(folder, SMTP_PORT=str(port)), clock=clock, sleep=clock.sleep)
        try:
            import_contacts(ws.engine, CONTACTS)
            assert send_round(ws, "invitation").drain.sent == 532
            for invitee_id, (state, rep) in SEEDED.items():
                mark(ws.ledger(), invitee_id, state, representative=rep, note="โทรยืนยัน")
        finally:
            ws.close()  # the last connection gone: the WAL is checkpointed into the file
    return folder / "mailer.db"


@pytest.fixture
def seeded(make_ws, seeded_file: Path, tmp_path: Path):  # type: ignore[no-untyped-def]
    shutil.copyfile(seeded_file, tmp_path / "mailer.db")
    return make_ws()


@pytest.mark.slow
def test_the_matrix_is_76_provinces_by_7_agencies(seeded) -> None:  # type: ignore[no-untyped-def]
    agencies, rows = matrix(status(seeded.ledger(), seeded.campaign))
    assert agencies == ["prov", "agri", "rd", "ind", "mots", "sso", "dbd"]
    assert len(rows) == 76
    assert all(len(r.cells) == 7 for r in rows)
    cell = {(r.code, a): s for r in rows for a, s in zip(agencies, r.cells, strict=True)}
    assert cell[("TH-50", "agri")] == "accepted"
    assert cell[("TH-50", "prov")] == "declined"
    assert cell[("TH-11", "ind")] == "representative"
    assert cell[("TH-96", "dbd")] == "tentative"
    assert sum(1 for s in cell.values() if s == "no_reply") == 532 - 4


@pytest.mark.parametrize(("columns", "blocks"), [("100", 2), ("80", 1)])
@pytest.mark.slow
def test_the_matrix_reads_right_in_thai_at_a_terminals_width(
    seeded, columns: str, blocks: int
) -> None:  # type: ignore[no-untyped-def]
    """One Home #4: headings whole ("สนจ.", not "ส…"), and every row as wide as a terminal
    counts it (wcwidth: Thai vowels above and below and tone marks take no column), so the
    marks of one agency stand in one column; two blocks where they fit, else one."""
    import wcwidth

    from mailer.labels import AGENCY_SHORT

    env = {"DATABASE_URL": seeded.settings.database_url, "MAILER_CAMPAIGN": str(CAMPAIGN),
           "MAILER_TEMPLATES": str(TEMPLATES), "COLUMNS": columns}  # fmt: skip
    result = CliRunner().invoke(app, ["status"], env=env)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    top = next(n for n, line in enumerate(lines) if line.startswith("จังหวัด"))
    body = lines[top : top + 1 + -(-76 // blocks)]
    assert body[0].split() == (["จังหวัด", *AGENCY_SHORT.values()]) * blocks
    assert "…" not in "".join(body)
    widths = {wcwidth.wcswidth(line) for line in body}
    assert len(widths) == 1, body[:3]
    assert widths.pop() <= int(columns), body[:3]
    provinces = [w for line in body[1:] for w in line.split() if not set(w) <= set("·✓✗?!‼◐")]
    assert len(provinces) == 76


@pytest.mark.slow
def test_status_on_screen_and_its_filters(seeded) -> None:  # type: ignore[no-untyped-def]
    env = {"DATABASE_URL": seeded.settings.database_url, "MAILER_CAMPAIGN": str(CAMPAIGN),
           "MAILER_TEMPLATES": str(TEMPLATES), "COLUMNS": "120"}  # fmt: skip
    result = CliRunner().invoke(app, ["status"], env=env)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    chiang_mai = next(line for line in lines if line.startswith("เชียงใหม่"))
    assert chiang_mai.split()[1:3] == ["✗", "✓"]  # สนจ. declined, กษจ. accepted
    assert "✓ เข้าร่วม" in result.output
    assert "สนจ. จังหวัด" in result.output
    assert len([line for line in lines if "·" in line]) <= 40  # fits a terminal: two blocks
    only = status(seeded.ledger(), seeded.campaign, filters=Filters(province="เชียงใหม่"))
    assert [i.invitee_id for i in only.invitees][:2] == ["TH-50-agri", "TH-50-dbd"]
    assert len(only.invitees) == 7
    assert [
        i.invitee_id
        for i in status(
            seeded.ledger(), seeded.campaign, filters=Filters(attendance="declined")
        ).invitees
    ] == ["TH-50-prov"]
    assert (
        len(status(seeded.ledger(), seeded.campaign, filters=Filters(agency="sso")).invitees) == 76
    )
    result = CliRunner().invoke(app, ["status", "--attendance", "maybe"], env=env)
    assert result.exit_code == 1
    assert "is not one of no_reply, accepted" in result.output


@pytest.mark.parametrize("what", ["all", "call-sheet", "attendees"])
@pytest.mark.slow
def test_exports_read_back_cell_by_cell(seeded, tmp_path: Path, what: str) -> None:  # type: ignore[no-untyped-def]
    report = status(seeded.ledger(), seeded.campaign)
    by_id = {i.invitee_id: i for i in report.invitees}
    written = export(report, tmp_path / "out.xlsx", what)
    sheet = load_workbook(tmp_path / "out.xlsx").active
    xlsx = [
        [("" if c is None else str(c)) for c in row] for row in sheet.iter_rows(values_only=True)
    ]
    export(report, tmp_path / "out.csv", what)
    raw = (tmp_path / "out.csv").read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")  # BOM: Excel opens Thai right
    with (tmp_path / "out.csv").open(encoding="utf-8-sig", newline="") as handle:
        rows = list(csv.reader(handle))
    assert rows == xlsx == [written.headings, *written.rows]
    if what == "all":
        assert len(rows) == 533
        for row in rows[1:]:
            item = by_id[row[0]]
            assert (row[2], row[3], row[6]) == (
                item.organisation,
                item.email,
                ATTENDANCE_TH[item.attendance],
            )
        rep = next(r for r in rows if r[0] == "TH-11-ind")
        assert rep[7:10] == ["นางสาวสมหญิง ใจดี", "นักวิเคราะห์นโยบายและแผน", "0812345678"]
        assert rep[10] == "2016-11-01 09:00"  # when it was marked, in Bangkok time (frozen clock)
        assert rep[11] == "mark: โทรยืนยัน"
    elif what == "call-sheet":
        assert len(rows) == 1 + 532 - 4
        assert {r[0] for r in rows[1:]}.isdisjoint(SEEDED)
        assert all(r[3] == by_id[r[0]].phone for r in rows[1:])
        codes = [r[0].rsplit("-", 1)[0] for r in rows[1:]]
        assert codes == sorted(codes)
    else:
        assert rows[0] == ["ลำดับ", "จังหวัด", "หน่วยงาน", "ผู้เข้าร่วม", "ตำแหน่ง", "โทรศัพท์"]
        assert [r[2] for r in rows[1:]] == [
            "สำนักงานอุตสาหกรรมจังหวัดสมุทรปราการ",
            "สำนักงานเกษตรจังหวัดเชียงใหม่",
        ]
        assert rows[1][3:] == ["นางสาวสมหญิง ใจดี", "นักวิเคราะห์นโยบายและแผน", "0812345678"]


def test_an_empty_campaign_exports_valid_files_and_says_so(make_ws, tmp_path: Path) -> None:
    ws = make_ws()
    env = {
        "DATABASE_URL": ws.settings.database_url,
        "MAILER_CAMPAIGN": str(CAMPAIGN),
        "MAILER_TEMPLATES": str(TEMPLATES),
    }
    result = CliRunner().invoke(
        app, ["export", str(tmp_path / "empty.xlsx"), "--what", "attendees"], env=env
    )
    assert result.exit_code == 0, result.output
    assert "no offices in" in result.output
    assert "only the headings" in result.output
    assert [
        list(r) for r in load_workbook(tmp_path / "empty.xlsx").active.iter_rows(values_only=True)
    ] == [["ลำดับ", "จังหวัด", "หน่วยงาน", "ผู้เข้าร่วม", "ตำแหน่ง", "โทรศัพท์"]]
    result = CliRunner().invoke(app, ["export", str(tmp_path / "x.txt")], env=env)
    assert result.exit_code == 1
    assert "name the file .xlsx (Excel) or .csv" in result.output


@pytest.fixture
def chromium() -> str:
    if not Path(CHROMIUM).is_file():
        needed("Chromium is not installed (apt-get install chromium)")
    return CHROMIUM


@pytest.mark.slow
def test_the_attendance_sheet_renders_in_chromium(seeded, tmp_path: Path, chromium: str) -> None:  # type: ignore[no-untyped-def]
    env = {
        "DATABASE_URL": seeded.settings.database_url,
        "MAILER_CAMPAIGN": str(CAMPAIGN),
        "MAILER_TEMPLATES": str(TEMPLATES),
    }
    page = tmp_path / "sheet.html"
    result = CliRunner().invoke(app, ["sheet", str(page)], env=env)
    assert result.exit_code == 0
    assert "2 attendee(s)" in result.output
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={tmp_path / 'profile'}"]  # fmt: skip
    dom = subprocess.run(
        [chromium, *flags, "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120
    )
    assert "นางสาวสมหญิง ใจดี" in dom.stdout
    assert "สำนักงานเกษตรจังหวัดเชียงใหม่" in dom.stdout
    assert "รวม ๒ คน" in dom.stdout
    pdf = tmp_path / "sheet.pdf"
    subprocess.run([chromium, *flags, f"--print-to-pdf={pdf}", "--no-pdf-header-footer", page.as_uri()],
                   capture_output=True, timeout=120)  # fmt: skip
    assert pdf.read_bytes().startswith(b"%PDF")
    assert pdf.stat().st_size > 5000


@pytest.mark.slow
def test_data_can_never_become_a_spreadsheet_formula(seeded, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    with seeded.engine.begin() as conn:
        conn.exec_driver_sql(
            "UPDATE invitee SET organisation = '=HYPERLINK(\"http://x.example\",\"คลิก\")' WHERE invitee_id = 'TH-50-agri'"
        )
    report = status(seeded.ledger(), seeded.campaign)
    export(report, tmp_path / "f.xlsx", "all")
    export(report, tmp_path / "f.csv", "all")
    cell = next(
        r
        for r in load_workbook(tmp_path / "f.xlsx").active.iter_rows()
        if r[0].value == "TH-50-agri"
    )[2]
    assert cell.data_type == "s"
    assert cell.value.startswith("=HYPERLINK")
    with (tmp_path / "f.csv").open(encoding="utf-8-sig", newline="") as handle:
        row = next(r for r in csv.reader(handle) if r[0] == "TH-50-agri")
    assert row[2].startswith("'=HYPERLINK")


@pytest.mark.slow
def test_odd_bytes_in_evidence_and_colliding_ids(seeded, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from mailer.invitees.importing import import_contacts

    mark(
        seeded.ledger(),
        "TH-50-rd",
        "accepted",
        representative={},
        note="bell \x07 and escape \x1b[31m",
    )
    export(
        status(seeded.ledger(), seeded.campaign), tmp_path / "odd.xlsx", "all"
    )  # openpyxl refuses control characters
    row = next(
        r
        for r in load_workbook(tmp_path / "odd.xlsx").active.iter_rows(values_only=True)
        if r[0] == "TH-50-rd"
    )
    assert row[-1] == "mark: bell  and escape [31m"
    extra = tmp_path / "extra.csv"
    extra.write_text(
        "invitee_id,province_code,province,agency,organisation,salutation,email\n"
        "TH-50-agri2,TH-50,เชียงใหม่,agri,สำนักงานเกษตรอำเภอ,เรียน เกษตรอำเภอ,x@agri2.example\n",
        encoding="utf-8",
    )
    import_contacts(seeded.engine, extra)
    mark(seeded.ledger(), "TH-50-agri2", "declined", representative={}, note="")
    agencies, rows = matrix(status(seeded.ledger(), seeded.campaign))
    chiang_mai = [r for r in rows if r.code == "TH-50"]
    assert len(chiang_mai) == 2  # the second agri office gets its own line; nothing hidden
    assert sorted(r.cells[agencies.index("agri")] for r in chiang_mai) == ["accepted", "declined"]
