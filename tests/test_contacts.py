"""The invitee list: the shipped file, the encodings Thai Excel writes, and every bad row."""

from __future__ import annotations

import csv
import io
from collections import Counter
from pathlib import Path

import pytest
from openpyxl import Workbook
from sqlmodel import select

from mailer.db import session
from mailer.errors import ContactsError
from mailer.invitees.importing import COLUMNS, import_contacts, read_contacts
from mailer.models import Invitee
from tests.conftest import CONTACTS

HEADER = ",".join(COLUMNS)
GOOD = "TH-50-agri,TH-50,เชียงใหม่,agri,สำนักงานเกษตรจังหวัดเชียงใหม่,เรียน เกษตรจังหวัดเชียงใหม่,saraban.th50@agri.example,0 5300 0002"


def _write(tmp_path: Path, text: str, encoding: str = "utf-8", name: str = "contacts.csv") -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode(encoding))
    return path


def _rows(engine) -> dict[str, Invitee]:  # type: ignore[no-untyped-def]
    with session(engine) as db:
        return {r.invitee_id: r for r in db.exec(select(Invitee)).all()}


def test_the_shipped_list_is_76_provinces_by_7_agencies() -> None:
    report = read_contacts(CONTACTS)
    assert report.errors == []
    assert report.warnings == []
    records = report.records
    assert len(records) == 532
    assert len({r.province_code for r in records}) == 76
    assert "TH-10" not in {r.province_code for r in records}  # Bangkok is not invited
    assert set(Counter(r.province_code for r in records).values()) == {7}
    assert set(Counter(r.agency for r in records).values()) == {76}
    assert all(r.salutation.startswith("เรียน ") for r in records)
    assert all(a.endswith(".example") for r in records for a in r.email)
    assert len({r.invitee_id for r in records}) == 532


def test_import_then_reimport_updates_and_never_duplicates(make_ws, tmp_path: Path) -> None:
    ws = make_ws()
    first = import_contacts(ws.engine, CONTACTS)
    assert (first.created, first.updated, first.unchanged) == (532, 0, 0)
    changed = CONTACTS.read_text(encoding="utf-8").replace(
        "saraban.th50@agri.example", "new.th50@agri.example"
    )
    second = import_contacts(ws.engine, _write(tmp_path, changed))
    assert (second.created, second.updated, second.unchanged) == (0, 1, 531)
    rows = _rows(ws.engine)
    assert len(rows) == 532
    assert rows["TH-50-agri"].emails == "new.th50@agri.example"


@pytest.mark.parametrize(
    ("encoding", "prefix"),
    [("utf-8", b""), ("utf-8", b"\xef\xbb\xbf"), ("cp874", b""), ("tis-620", b"")],
)
def test_encodings_thai_excel_writes(tmp_path: Path, encoding: str, prefix: bytes) -> None:
    path = tmp_path / "contacts.csv"
    path.write_bytes(prefix + f"{HEADER}\r\n{GOOD}\r\n".encode(encoding))
    (record,) = read_contacts(path).records
    assert record.organisation == "สำนักงานเกษตรจังหวัดเชียงใหม่"
    assert record.salutation == "เรียน เกษตรจังหวัดเชียงใหม่"


def test_xlsx(tmp_path: Path) -> None:
    book = Workbook()
    sheet = book.active
    sheet.append(list(COLUMNS))
    sheet.append(GOOD.split(","))
    path = tmp_path / "contacts.xlsx"
    book.save(path)
    (record,) = read_contacts(path).records
    assert record.invitee_id == "TH-50-agri"
    assert record.email == ("saraban.th50@agri.example",)


def test_undecodable_bytes_name_the_fix(tmp_path: Path) -> None:
    path = tmp_path / "contacts.csv"
    path.write_bytes(f"{HEADER}\n".encode() + b"TH-50-agri,\xff\xfe\xdb\n")
    with pytest.raises(
        ContactsError, match=r"contacts\.csv: byte \d+ is neither UTF-8 nor windows-874.*CSV UTF-8"
    ):
        read_contacts(path)


def test_missing_column_is_named(tmp_path: Path) -> None:
    path = _write(tmp_path, "invitee_id,organisation,salutation\nTH-50-agri,x,เรียน x\n")
    with pytest.raises(
        ContactsError,
        match=r"line 1: the header has no column email \(found: invitee_id, organisation, salutation\)",
    ):
        read_contacts(path)


def test_every_bad_row_is_named_and_nothing_is_written(make_ws, tmp_path: Path) -> None:
    rows = [
        GOOD,
        "TH-50-prov,TH-50,เชียงใหม่,prov,สำนักงานจังหวัดเชียงใหม่,เรียน หัวหน้าสำนักงานจังหวัดเชียงใหม่,saraban@@nan.example,",
        "TH-50-agri,TH-50,เชียงใหม่,agri,ซ้ำ,เรียน ซ้ำ,dup@agri.example,",
        '"TH-51-ind",TH-51,ลำพูน,ind,"สำนักงาน\r\nอุตสาหกรรม",เรียน อุตสาหกรรมจังหวัดลำพูน,x@ind.example,',
        "TH-52-ind,TH-52,ลำปาง,ind,,เรียน อุตสาหกรรมจังหวัดลำปาง,y@ind.example,",
        "TH 53 ind,TH-53,อุตรดิตถ์,ind,สำนักงานอุตสาหกรรมจังหวัดอุตรดิตถ์,เรียน อุตสาหกรรม,z@ind.example,",
        "TH-54-ind,TH-54,แพร่,ind,สำนักงาน,เรียน x,a@ind.example,,extra,fields",
    ]
    path = _write(tmp_path, HEADER + "\n" + "\n".join(rows) + "\n")
    ws = make_ws()
    report = import_contacts(ws.engine, path)
    messages = [str(p) for p in report.errors]
    assert not report.written
    assert _rows(ws.engine) == {}
    expected = [
        (3, "'saraban@@nan.example' is not an email address"),
        (4, "invitee_id 'TH-50-agri' is already used on line 2"),
        (5, "organisation contains a line break"),
        (7, "organisation is empty"),
        (8, "invitee_id 'TH 53 ind' may only hold ASCII letters"),
        (9, "has 10 fields but the header has 8"),
    ]
    for line, text in expected:
        assert any(m.startswith(f"{path}, line {line}: ") and text in m for m in messages), (
            line,
            messages,
        )
    assert len(messages) == len(expected)


def test_skip_invalid_imports_the_good_rows(make_ws, tmp_path: Path) -> None:
    bad = "TH-50-prov,TH-50,เชียงใหม่,prov,x,เรียน x,not-an-address,"
    path = _write(tmp_path, f"{HEADER}\n{GOOD}\n{bad}\n")
    ws = make_ws()
    report = import_contacts(ws.engine, path, skip_invalid=True)
    assert report.written
    assert len(report.errors) == 1
    assert set(_rows(ws.engine)) == {"TH-50-agri"}


def test_quotes_and_commas_in_names_are_kept(tmp_path: Path) -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(COLUMNS)
    name = 'สำนักงาน "ทดสอบ", จังหวัด <เชียงใหม่>'
    writer.writerow(["TH-50-x", "TH-50", "เชียงใหม่", "x", name, f"เรียน {name}", "a@x.example", ""])
    (record,) = read_contacts(_write(tmp_path, buffer.getvalue())).records
    assert record.organisation == name


def test_a_shared_saraban_inbox_is_a_warning_not_an_error(tmp_path: Path) -> None:
    other = GOOD.replace("TH-50-agri", "TH-50-ind").replace(",agri,", ",ind,")
    report = read_contacts(_write(tmp_path, f"{HEADER}\n{GOOD}\n{other}\n"))
    assert report.errors == []
    assert len(report.records) == 2
    (warning,) = report.warnings
    assert (
        "saraban.th50@agri.example is shared by 2 offices: TH-50-agri (line 2), TH-50-ind (line 3)"
        in str(warning)
    )


def test_several_addresses_and_a_missing_salutation_word(tmp_path: Path) -> None:
    row = "TH-50-agri,,เชียงใหม่,agri,สำนักงานเกษตรจังหวัดเชียงใหม่,เกษตรจังหวัดเชียงใหม่,a@agri.example; b@agri.example,"
    report = read_contacts(_write(tmp_path, f"{HEADER}\n{row}\n"))
    (record,) = report.records
    assert record.email == ("a@agri.example", "b@agri.example")
    assert record.salutation == "เรียน เกษตรจังหวัดเชียงใหม่"
    assert record.province_code == "TH-50"  # taken from the id
    assert any("does not start with เรียน" in str(w) for w in report.warnings)


def test_bengali_letters_in_a_name_are_flagged(tmp_path: Path) -> None:
    row = GOOD.replace("สำนักงานเกษตรจังหวัดเชียงใหม่", "สำนักงานเกษตรจังหวัดเชียงใหম่")
    report = read_contacts(_write(tmp_path, f"{HEADER}\n{row}\n"))
    assert any("BENGALI" in str(w) and "line 2" in str(w) for w in report.warnings)


def test_an_excel_file_named_csv_is_explained(tmp_path: Path) -> None:
    book = Workbook()
    path = tmp_path / "contacts.csv"
    book.save(path)
    with pytest.raises(ContactsError, match=r"Excel workbook; name it \.xlsx"):
        read_contacts(path)


def test_an_empty_file(tmp_path: Path) -> None:
    with pytest.raises(ContactsError, match="the file is empty"):
        read_contacts(_write(tmp_path, ""))
