"""Read the rows of an invitee file (CSV or `.xlsx`), bounded before anything big is read.

A CSV may be UTF-8, UTF-8 with BOM, or windows-874/TIS-620 (what Thai Excel writes). A
workbook is a zip: its members' uncompressed sizes are checked before openpyxl opens it, so
a small file that would inflate to gigabytes is refused at once. Either kind stops at
`MAX_ROWS` rows.
"""

from __future__ import annotations

import csv
import io
import zipfile
import zlib
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from mailer.errors import ContactsError

MAX_ROWS = 100_000  # 532 offices are invited; 100,000 rows is not an invitee list
MAX_FILE_BYTES = 64 * 1024 * 1024  # a CSV, or all of a workbook's members uncompressed
MAX_COLUMNS = 100  # of a workbook, only these are read (a cell in column XFD pads nothing)
WORKBOOK_SUFFIXES = {".xlsx", ".xlsm"}
_T = TypeVar("_T")


@dataclass(frozen=True)
class SourceRow:
    """One line of the file: its cells as text, and the cells that hold a formula with no
    saved value (column index → the formula), which read as empty."""

    line: int
    values: tuple[str, ...]
    formulas: tuple[tuple[int, str], ...] = ()


def read_rows(path: Path) -> Iterator[SourceRow]:
    workbook = path.suffix.lower() in WORKBOOK_SUFFIXES
    rows = _read_xlsx(path) if workbook else _read_csv(path)
    for count, row in enumerate(rows, start=1):
        if count > MAX_ROWS:
            raise ContactsError(
                f"{path}: more than {MAX_ROWS:,} rows; an invitee list is one row per office. "
                "Check that this is the right file, or remove the empty rows below the list"
            )
        yield row


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


def _megabytes(size: int) -> str:
    return f"{size / (1024 * 1024):,.1f} MB"


def _read_csv(path: Path) -> Iterator[SourceRow]:
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise ContactsError(
                f"{path}: the file is {_megabytes(size)}, at most "
                f"{MAX_FILE_BYTES // (1024 * 1024)} MB is read; check that this is the right file"
            )
        with path.open("rb") as handle:  # a FIFO or /dev/zero reports no size: read a bounded
            raw = handle.read(MAX_FILE_BYTES + 1)  # amount, whatever stat() said
        if len(raw) > MAX_FILE_BYTES:
            raise ContactsError(
                f"{path}: more than {MAX_FILE_BYTES // (1024 * 1024)} MB; at most that is "
                "read; check that this is the right file"
            )
    except OSError as exc:
        raise ContactsError(f"{path}: cannot read the file: {exc.strerror}") from exc
    if raw.startswith(b"PK\x03\x04"):
        raise ContactsError(f"{path}: this is an Excel workbook; name it .xlsx to import it")
    if raw.startswith(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"):  # OLE2: Excel 97–2003
        raise ContactsError(
            f"{path}: this is an old Excel workbook (.xls); save it as .xlsx "
            "(Excel Workbook) or 'CSV UTF-8 (Comma delimited)' and import that"
        )
    text = decode_csv_bytes(raw, str(path))
    first = text.split("\n", 1)[0]
    delimiter = max(",;\t", key=first.count)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    line = 1
    try:
        for values in reader:
            yield SourceRow(line, tuple(values))
            line = reader.line_num + 1
    except csv.Error as exc:
        raise ContactsError(
            f"{path}, line {reader.line_num}: {exc}; check the quotes on this line"
        ) from exc


def _check_workbook(path: Path) -> None:
    """Refuse what is not a workbook, or one that would inflate past `MAX_FILE_BYTES`.

    The sizes come from the zip's directory; Python's zipfile never inflates a member past
    the size it declares, so checking them bounds what openpyxl can read."""
    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
    except OSError as exc:
        raise ContactsError(f"{path}: cannot read the file: {exc.strerror}") from exc
    except zipfile.BadZipFile as exc:
        raise ContactsError(
            f"{path}: this is not an Excel workbook (not a zip file). If it is a CSV file, "
            "name it .csv; otherwise save it again from Excel as .xlsx"
        ) from exc
    limit = f"at most {MAX_FILE_BYTES // (1024 * 1024)} MB is read"
    for member in members:
        if member.file_size > MAX_FILE_BYTES:
            raise ContactsError(
                f"{path}: {member.filename[:60]} inflates to {_megabytes(member.file_size)} "
                f"({limit}); this is not an invitee list. Save the list again as .xlsx or .csv"
            )
    total = sum(member.file_size for member in members)
    if total > MAX_FILE_BYTES:
        raise ContactsError(
            f"{path}: the workbook inflates to {_megabytes(total)} ({limit}); "
            "this is not an invitee list. Save the list again as .xlsx or .csv"
        )


def _read_xlsx(path: Path) -> Iterator[SourceRow]:
    from openpyxl import load_workbook
    from openpyxl.utils.exceptions import InvalidFileException

    _check_workbook(path)
    try:
        # Saved values, and (to say which empty cells are formulas) the formulas themselves.
        values_book = load_workbook(path, read_only=True, data_only=True)
        formulas_book = load_workbook(path, read_only=True, data_only=False)
    except (OSError, InvalidFileException, KeyError, ValueError, zipfile.BadZipFile) as exc:
        raise ContactsError(
            f"{path}: cannot read the workbook ({str(exc)[:200]}); save it again as .xlsx"
        ) from exc
    sheets: list[Generator[tuple[object, ...], None, None]] = []
    try:
        for book in (values_book, formulas_book):
            if not book.worksheets:
                raise ContactsError(f"{path}: the workbook has no sheet; put the list on one")
            sheet = book.worksheets[0]
            sheet.reset_dimensions()  # a forged <dimension> must not pad every row
            sheets.append(sheet.iter_rows(max_col=MAX_COLUMNS, values_only=True))
        for number, (values, formulas) in enumerate(
            _unbroken(path, zip(*sheets, strict=True)), start=1
        ):
            cells = values
            yield SourceRow(
                number,
                tuple("" if v is None else _cell_text(v) for v in cells),
                tuple(
                    (i, f)
                    for i, (v, f) in enumerate(zip(cells, formulas, strict=False))
                    if v is None and isinstance(f, str) and f.startswith("=")
                ),
            )
    finally:
        for rows in sheets:  # each holds its sheet open inside the zip until closed
            rows.close()
        values_book.close()
        formulas_book.close()


def _unbroken(path: Path, rows: Iterator[_T]) -> Iterator[_T]:
    """The rows, with a damaged sheet (bad XML, a bad CRC, a cut-off member) named."""
    while True:
        try:
            row = next(rows)
        except StopIteration:
            return
        except (SyntaxError, zipfile.BadZipFile, zlib.error, EOFError, ValueError, KeyError) as exc:
            raise ContactsError(
                f"{path}: cannot read the workbook ({str(exc)[:200]}); save it again as .xlsx"
            ) from exc
        yield row


def _cell_text(value: object) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)
