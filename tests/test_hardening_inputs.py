"""Hardening: every bad invitee file gets a precise `Error: …` and exit 1, never a traceback,
never a second office for the same id, never a whole hostile field printed back."""

from __future__ import annotations

import time
import zipfile
from pathlib import Path

import pytest
from openpyxl import Workbook
from sqlmodel import select
from typer.testing import CliRunner

from mailer.cli import app
from mailer.db import open_database, session
from mailer.invitees.importing import COLUMNS
from mailer.models import Invitee
from tests.conftest import CAMPAIGN, TEMPLATES, free_port

HEADER = ",".join(COLUMNS)
GOOD = (
    "TH-50-agri,TH-50,เชียงใหม่,agri,สำนักงานเกษตรจังหวัดเชียงใหม่,"
    "เรียน เกษตรจังหวัดเชียงใหม่,saraban.th50@agri.example,0 5300 0002"
)
COORDINATOR = "thannop.sirithamwilai@ega.or.th"


def _env(tmp_path: Path, database_url: str | None = None) -> dict[str, str]:
    return {
        "DATABASE_URL": database_url or f"sqlite:///{tmp_path / 'mailer.db'}",
        "MAILER_CAMPAIGN": str(CAMPAIGN),
        "MAILER_TEMPLATES": str(TEMPLATES),
        "MAILER_MAILDIR": str(tmp_path / "maildir"),
        "SMTP_PORT": str(free_port()),
    }


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return _env(tmp_path)


def run(env: dict[str, str], *args: str):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(app, list(args), env=env, catch_exceptions=False)


def _csv(tmp_path: Path, *rows: str, name: str = "contacts.csv", header: str = HEADER) -> Path:
    path = tmp_path / name
    path.write_text("\n".join((header, *rows)) + "\n", encoding="utf-8")
    return path


def _row(**changes: str) -> str:
    values = dict(zip(COLUMNS, GOOD.split(","), strict=True))
    values.update(changes)
    return ",".join(values[c] for c in COLUMNS)


def _stored(database_url: str) -> dict[str, Invitee]:
    engine = open_database(database_url)
    try:
        with session(engine) as db:
            return {r.invitee_id: r for r in db.exec(select(Invitee)).all()}
    finally:
        engine.dispose()


# --- Hardening #4 (import side): SMTPUTF8, IDN domains, the campaign's own addresses ------


def test_a_non_ascii_local_part_is_refused_with_its_line(env, tmp_path: Path) -> None:
    path = _csv(tmp_path, GOOD, _row(invitee_id="TH-50-ind", email="สมชาย@ind.example"))
    result = run(env, "import", str(path))
    assert result.exit_code == 1, result.output
    assert f"{path}, line 3: 'สมชาย@ind.example' has letters before the @" in result.output
    assert "SMTPUTF8" in result.output
    assert "ask the office for an ASCII address" in result.output
    assert "Error: " in result.output
    assert "nothing was imported" in result.output
    assert "Traceback" not in result.output


def test_an_idn_domain_is_stored_in_its_ascii_form(env, tmp_path: Path) -> None:
    path = _csv(tmp_path, _row(email="saraban@ไทย.ไทย; other@xn--o3cw4h.xn--o3cw4h"))
    result = run(env, "import", str(path))
    assert result.exit_code == 0, result.output
    (stored,) = _stored(env["DATABASE_URL"]).values()
    assert stored.emails == "saraban@xn--o3cw4h.xn--o3cw4h; other@xn--o3cw4h.xn--o3cw4h"
    result = run(env, "preview", "TH-50-agri")  # and a message can be made for it
    assert result.exit_code == 0, result.output
    assert "To: saraban@xn--o3cw4h.xn--o3cw4h, other@xn--o3cw4h.xn--o3cw4h" in result.output


@pytest.mark.parametrize("address", [COORDINATOR, "Thannop.Sirithamwilai@EGA.or.th"])
def test_an_office_given_the_coordinators_address_is_refused(
    env, tmp_path: Path, address: str
) -> None:
    path = _csv(tmp_path, GOOD, _row(invitee_id="TH-50-ind", email=f"x@ind.example; {address}"))
    result = run(env, "import", str(path))
    assert result.exit_code == 1, result.output
    assert (
        f"{path}, line 3: {address} is the campaign's own address (coordinator.email, "
        "sender.email)" in result.output
    )
    assert "a calendar cannot invite its own organizer" in result.output
    assert _stored(env["DATABASE_URL"]) == {}


def test_a_broken_campaign_file_does_not_stop_import_but_says_what_was_not_checked(
    env, tmp_path: Path
) -> None:
    broken = tmp_path / "campaign.toml"
    broken.write_text("[campaign\n", encoding="utf-8")
    env["MAILER_CAMPAIGN"] = str(broken)
    result = run(env, "import", str(_csv(tmp_path, GOOD)))
    assert result.exit_code == 0, result.output
    assert "Imported 1 invitee(s)" in result.output
    assert "not checked against the campaign's coordinator and sender" in result.output
    assert "mailer check" in result.output


def test_check_contacts_refuses_the_coordinators_address(env, tmp_path: Path) -> None:
    path = _csv(tmp_path, _row(email=COORDINATOR))
    result = run(env, "check", "--contacts", str(path))
    assert result.exit_code == 1, result.output
    assert f"{path}, line 2: {COORDINATOR} is the campaign's own address" in result.output


# --- Hardening #5: invitee ids compare case-insensitively ---------------------------------


def test_reimporting_an_id_in_another_case_updates_the_same_office(env, tmp_path: Path) -> None:
    assert run(env, "import", str(_csv(tmp_path, GOOD))).exit_code == 0
    again = _csv(tmp_path, _row(invitee_id="th-50-AGRI", phone="0 5300 0009"), name="again.csv")
    result = run(env, "import", str(again))
    assert result.exit_code == 0, result.output
    assert "0 new, 1 updated, 0 unchanged" in result.output
    stored = _stored(env["DATABASE_URL"])
    assert list(stored) == ["TH-50-agri"]  # the stored id is kept
    assert stored["TH-50-agri"].phone == "0 5300 0009"


def test_two_ids_differing_only_by_case_in_one_file_are_a_duplicate(env, tmp_path: Path) -> None:
    path = _csv(tmp_path, GOOD, _row(invitee_id="th-50-agri", email="other@agri.example"))
    result = run(env, "import", str(path))
    assert result.exit_code == 1, result.output
    assert (
        f"{path}, line 3: invitee_id 'th-50-agri' is already used on line 2 (as 'TH-50-agri')"
        in result.output
    )


def test_an_address_of_another_office_in_the_database_is_a_warning(env, tmp_path: Path) -> None:
    assert run(env, "import", str(_csv(tmp_path, GOOD))).exit_code == 0
    other = _row(invitee_id="TH-50-ind", agency="ind", email="SARABAN.th50@agri.example")
    result = run(env, "import", str(_csv(tmp_path, other, name="more.csv")))
    assert result.exit_code == 0, result.output
    assert (
        "line 2: SARABAN.th50@agri.example already belongs to TH-50-agri in the database"
        in result.output
    )
    assert "1 new" in result.output


# --- Hardening #9: bounded reading ------------------------------------------------------


def _bomb(path: Path, megabytes: int) -> Path:
    """A real workbook whose one sheet inflates to `megabytes` MB: a good header, and one
    office whose email cell is all 'A'."""
    book = Workbook()
    book.active.append(list(COLUMNS))
    book.save(path)
    with zipfile.ZipFile(path) as source:
        members = {name: source.read(name) for name in source.namelist()}

    def row(number: int, values: list[bytes]) -> bytes:
        cells = b"".join(
            b'<c r="%s%d" t="inlineStr"><is><t>%s</t></is></c>' % (bytes([65 + i]), number, v)
            for i, v in enumerate(values)
        )
        return b'<row r="%d">%s</row>' % (number, cells)

    office = [v.encode() for v in GOOD.split(",")]
    office[COLUMNS.index("email")] = b"A" * (megabytes * 1024 * 1024)
    members["xl/worksheets/sheet1.xml"] = (
        b'<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'
        b"<sheetData>"
        + row(1, [c.encode() for c in COLUMNS])
        + row(2, office)
        + b"</sheetData></worksheet>"
    )
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as bomb:
        for name, data in members.items():
            bomb.writestr(name, data)
    return path


@pytest.mark.slow
def test_a_zip_bomb_workbook_is_refused_before_it_is_opened(env, tmp_path: Path) -> None:
    path = _bomb(tmp_path / "contacts.xlsx", megabytes=80)
    assert path.stat().st_size < 400_000
    started = time.monotonic()
    result = run(env, "import", str(path))
    assert time.monotonic() - started < 5
    assert result.exit_code == 1, result.output[:2000]
    assert len(result.output) < 1000, result.output[:2000]
    assert f"Error: {path}: xl/worksheets/sheet1.xml inflates to 80.0 MB" in result.output
    assert "at most 64 MB" in result.output


def test_a_csv_renamed_xlsx_is_named(env, tmp_path: Path) -> None:
    path = _csv(tmp_path, GOOD, name="contacts.xlsx")
    result = run(env, "import", str(path))
    assert result.exit_code == 1
    assert f"Error: {path}: this is not an Excel workbook (not a zip file)" in result.output
    assert "If it is a CSV file, name it .csv" in result.output


def test_a_long_cell_is_cut_and_its_length_said(env, tmp_path: Path) -> None:
    long_address = "a" * 100_000 + "@x.example"
    path = _csv(tmp_path, _row(email=long_address), _row(invitee_id="TH-50-ind", agency="i" * 5000))
    result = run(env, "import", str(path))
    assert result.exit_code == 1, result.output[:2000]
    assert len(result.output) < 1500, result.output[:2000]
    assert f"{path}, line 2: email is 100,010 characters long; at most 2,000" in result.output
    assert f"{path}, line 3: agency is 5,000 characters long; at most 32" in result.output
    assert "… (5,000 characters)" in result.output


def test_a_bad_address_is_never_printed_whole(env, tmp_path: Path) -> None:
    path = _csv(tmp_path, _row(email="x" * 1500))
    result = run(env, "import", str(path))
    assert result.exit_code == 1
    assert "'" + "x" * 60 + "… (1,500 characters)' is not an email address" in result.output
    assert len(result.output) < 1000, result.output


def test_too_many_rows_are_refused_early(env, tmp_path: Path) -> None:
    path = tmp_path / "contacts.csv"
    path.write_text(HEADER + "\n" + ",,,,,,,\n" * 100_001, encoding="utf-8")
    result = run(env, "import", str(path))
    assert result.exit_code == 1
    assert f"Error: {path}: more than 100,000 rows" in result.output


@pytest.mark.slow
def test_a_workbook_with_too_many_rows_is_refused(env, tmp_path: Path) -> None:
    book = Workbook()
    book.active.append(list(COLUMNS))
    book.active.cell(row=100_002, column=1, value="x")  # the rows between are empty
    path = tmp_path / "contacts.xlsx"
    book.save(path)
    result = run(env, "import", str(path))
    assert result.exit_code == 1, result.output
    assert f"Error: {path}: more than 100,000 rows" in result.output


# --- lengths the database holds: the same answer on SQLite and PostgreSQL ----------------


@pytest.mark.slow
def test_fields_longer_than_their_columns_are_refused_on_both_databases(
    database_url: str, tmp_path: Path
) -> None:
    env = _env(tmp_path, database_url)
    row = _row(agency="a" * 33, phone="0" * 65, province_code="TH-" + "5" * 14)
    path = _csv(tmp_path, row)
    result = run(env, "import", str(path))
    assert result.exit_code == 1, result.output
    for text in (
        "line 2: province_code is 17 characters long; at most 16",
        "line 2: agency is 33 characters long; at most 32",
        "line 2: phone is 65 characters long; at most 64",
    ):
        assert text in result.output, result.output
    assert _stored(database_url) == {}
    # at the limits exactly, both databases take it
    fits = _row(agency="a" * 32, phone="0" * 64, province_code="TH-" + "5" * 13)
    result = run(env, "import", str(_csv(tmp_path, fits, name="fits.csv")))
    assert result.exit_code == 0, result.output
    assert _stored(database_url)["TH-50-agri"].agency == "a" * 32


# --- unclear or let through ---------------------------------------------------------------


def test_a_repeated_column_is_refused(env, tmp_path: Path) -> None:
    path = _csv(tmp_path, GOOD + ",second@agri.example", header=HEADER + ",E-mail")
    result = run(env, "import", str(path))
    assert result.exit_code == 1
    assert (
        f"Error: {path}, line 1: the column email appears twice (columns 7 and 9); keep one"
        in result.output
    )


def test_a_formula_cell_is_named_as_a_formula(env, tmp_path: Path) -> None:
    book = Workbook()
    book.active.append(list(COLUMNS))
    values: list[object] = GOOD.split(",")
    values[4] = '=CONCATENATE("สำนักงาน", "เกษตร")'
    book.active.append(values)
    path = tmp_path / "contacts.xlsx"
    book.save(path)
    result = run(env, "import", str(path))
    assert result.exit_code == 1, result.output
    assert (
        f'{path}, line 2: organisation is a formula (=CONCATENATE("สำนักงาน", "เกษตร")) '
        "with no saved value" in result.output
    )
    assert "organisation is empty" not in result.output


def test_a_header_only_file_is_an_error(env, tmp_path: Path) -> None:
    path = _csv(tmp_path, "", "")
    result = run(env, "import", str(path))
    assert result.exit_code == 1, result.output
    assert f"Error: {path}: no invitee rows after the header" in result.output


def test_skip_invalid_counts_bad_rows_not_problems(env, tmp_path: Path) -> None:
    bad = _row(invitee_id="TH 50 x", email="not-an-address", organisation="")  # 3 problems
    path = _csv(tmp_path, GOOD, bad)
    result = run(env, "import", str(path), "--skip-invalid")
    assert result.exit_code == 0, result.output
    assert "Imported 1 invitee(s)" in result.output
    assert "1 bad row(s) skipped" in result.output
    result = run(env, "import", str(path))
    assert result.exit_code == 1
    assert "3 problem(s) in 1 row(s), nothing was imported" in result.output


def test_check_names_stored_addresses_an_earlier_import_let_through(env, tmp_path: Path) -> None:
    """Rows imported before these checks existed are named by `mailer check`."""
    assert run(env, "import", str(_csv(tmp_path, GOOD))).exit_code == 0
    engine = open_database(env["DATABASE_URL"])
    try:
        with session(engine) as db:
            for invitee_id, emails in [
                ("TH-50-ind", "สมชาย@ind.example"),
                ("TH-50-tour", "saraban@ไทย.ไทย"),
                ("TH-50-prov", COORDINATOR),
            ]:
                row = db.exec(select(Invitee).where(Invitee.invitee_id == "TH-50-agri")).one()
                db.add(Invitee(**{**row.model_dump(), "invitee_id": invitee_id, "emails": emails}))
            db.commit()
    finally:
        engine.dispose()
    result = run(env, "check")
    assert result.exit_code == 1, result.output
    assert "database: TH-50-ind: 'สมชาย@ind.example' has letters before the @" in result.output
    assert (
        "database: TH-50-tour: 'saraban@ไทย.ไทย' is stored with an international domain; run "
        "`mailer import` again to store it as saraban@xn--o3cw4h.xn--o3cw4h" in result.output
    )
    assert (
        f"database: TH-50-prov is invited at {COORDINATOR}, the campaign's own address"
        in result.output
    )


def test_a_workbook_with_a_broken_sheet_is_named(env, tmp_path: Path) -> None:
    path = tmp_path / "contacts.xlsx"
    book = Workbook()
    book.active.append(list(COLUMNS))
    book.save(path)
    with zipfile.ZipFile(path) as source:
        members = {name: source.read(name) for name in source.namelist()}
    members["xl/worksheets/sheet1.xml"] = members["xl/worksheets/sheet1.xml"][:-40]
    with zipfile.ZipFile(path, "w") as broken:
        for name, data in members.items():
            broken.writestr(name, data)
    result = run(env, "import", str(path))
    assert result.exit_code == 1, result.output
    assert f"Error: {path}: cannot read the workbook (" in result.output
    assert "save it again as .xlsx" in result.output


def test_an_address_shared_by_very_many_offices_is_not_listed_whole(env, tmp_path: Path) -> None:
    rows = [_row(invitee_id=f"TH-50-x{n}") for n in range(1, 201)]
    result = run(env, "import", str(_csv(tmp_path, *rows)))
    assert result.exit_code == 0, result.output
    assert (
        "saraban.th50@agri.example is shared by 200 offices: TH-50-x1 (line 2), "
        "TH-50-x2 (line 3), TH-50-x3 (line 4), TH-50-x4 (line 5), TH-50-x5 (line 6) and 195 more"
        in result.output
    )
    assert "TH-50-x200" not in result.output


@pytest.mark.slow
def test_a_far_away_cell_does_not_widen_every_row(env, tmp_path: Path) -> None:
    """Only the first 100 columns of a workbook are read: a cell in column XFD on every row
    would otherwise make each row 16,384 cells wide."""
    book = Workbook()
    book.active.append(list(COLUMNS))
    for n in range(1, 2001):
        book.active.append(_row(invitee_id=f"TH-50-x{n}", email=f"x{n}@x.example").split(","))
        book.active.cell(row=n + 1, column=16_384, value="x")
    path = tmp_path / "contacts.xlsx"
    book.save(path)
    started = time.monotonic()
    result = run(env, "import", str(path))
    assert result.exit_code == 0, result.output
    assert "Imported 2000 invitee(s)" in result.output
    assert time.monotonic() - started < 10


def test_a_name_all_in_another_script_gives_a_few_warnings_not_one_per_letter(
    env, tmp_path: Path
) -> None:
    path = _csv(tmp_path, _row(organisation="สำนักงาน" + "ম" * 1500))
    result = run(env, "import", str(path))
    assert result.exit_code == 0, result.output
    assert result.output.count("BENGALI") == 3
    assert "line 2: organisation: 1,497 more such letters" in result.output


def test_skip_invalid_with_no_valid_row_imports_nothing_and_says_so(env, tmp_path: Path) -> None:
    path = _csv(tmp_path, _row(email="not-an-address"), _row(organisation=""))
    result = run(env, "import", str(path), "--skip-invalid")
    assert result.exit_code == 1, result.output
    assert f"Error: {path}: no row is valid (2 problem(s) in 2 row(s)), nothing was imported" in (
        result.output
    )
    assert "Imported" not in result.output


@pytest.mark.slow
def test_an_old_xls_workbook_is_named(env, tmp_path: Path) -> None:
    path = tmp_path / "contacts.xls"
    path.write_bytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(range(256)) * 8)
    result = run(env, "import", str(path))
    assert result.exit_code == 1, result.output
    assert f"Error: {path}: this is an old Excel workbook (.xls); save it as .xlsx" in (
        result.output
    )


def test_check_names_offices_stored_twice_under_ids_differing_by_case(env, tmp_path: Path) -> None:
    assert run(env, "import", str(_csv(tmp_path, GOOD))).exit_code == 0
    engine = open_database(env["DATABASE_URL"])
    try:
        with session(engine) as db:  # what an import before the fix did
            row = db.exec(select(Invitee)).one()
            db.add(Invitee(**{**row.model_dump(), "invitee_id": "th-50-agri"}))
            db.commit()
    finally:
        engine.dispose()
    result = run(env, "check")
    assert "! database: TH-50-agri, th-50-agri differ only by case" in result.output
    assert "so it gets two invitations" in result.output


@pytest.mark.timeout(60)
def test_a_file_that_reports_no_size_is_read_within_the_bound(env) -> None:  # type: ignore[no-untyped-def]
    """Review: /dev/zero (like a FIFO) says it is 0 bytes long; reading it all grew until
    the machine ran out of memory."""
    result = run(env, "import", "/dev/zero")
    assert result.exit_code == 1
    assert "Error: /dev/zero: more than 64 MB" in result.output


def test_one_address_written_twice_in_another_case_is_one_address(env, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Review: `a@x; A@x` became two recipients, two ATTENDEEs and a warning that the office
    shares its address with itself."""
    path = _csv(tmp_path, _row(email="saraban@prov.example; Saraban@Prov.example"))
    result = run(env, "import", str(path))
    assert result.exit_code == 0, result.output
    assert "shared by" not in result.output
    (office,) = _stored(env["DATABASE_URL"]).values()
    assert office.emails == "saraban@prov.example"
