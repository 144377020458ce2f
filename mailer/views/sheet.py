"""The sheets the registration desk prints: the attendance sheet (ใบลงทะเบียน, `mailer sheet`)
and any export as a printed table (`mailer export call-sheet.pdf --what call-sheet`).

Both are HTML pages of `templates/sheet/` (Jinja2, sandboxed and autoescaped like every
template) laid out for A4: one table per province, every table with the same column widths
(`table-layout: fixed` and the widths below), its heading repeated on each page it runs
onto, page numbers, and a column to sign (or to note the call in). Named `.pdf`, the page
is printed by WeasyPrint as the official letter is (`mailer.letter_pdf.printer.print_page`:
local files only, the campaign's `[letter]` font, Thai text that reads back as written);
named `.html`, it is written as it is for a browser.
"""

from __future__ import annotations

from itertools import groupby
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jinja2

from mailer.compose.letters import environment, render_problem
from mailer.errors import MailerError, TemplateProblem
from mailer.thai import thai_when
from mailer.views.exports import Sheet, sheet

if TYPE_CHECKING:
    from mailer.campaign import Campaign
    from mailer.views.report import StatusReport

ATTENDANCE = "sheet/attendance.html"
TABLE = "sheet/table.html"
# Per export (`--what`): the blank column to write in, and every column's width in % (the
# province is each table's heading, not a column).
WRITE_IN = {"attendees": "ลงชื่อ", "call-sheet": "ผลการโทร / ผู้โทร", "all": "หมายเหตุ"}
WIDTHS = {
    "attendees": (6, 30, 20, 18, 12, 14),
    "call-sheet": (9, 22, 10, 19, 8, 12, 20),
    "all": (7, 14, 12, 8, 7, 7, 9, 8, 8, 7, 6, 7),
}


def write_sheet(report: StatusReport, campaign: Campaign, templates: Path, path: Path) -> int:
    """Write the attendance sheet of who is coming in `report` to `path` (.pdf: printed;
    else the HTML page); returns how many are on it."""
    rows = sheet(report, "attendees").rows
    provinces = [
        {"name": name, "people": list(people)} for name, people in groupby(rows, key=lambda r: r[1])
    ]
    values = {"provinces": provinces, "total": len(rows)}
    _write(_page(campaign, templates, ATTENDANCE, values), campaign, templates, path)
    return len(rows)


def write_table(
    report: StatusReport, what: str, campaign: Campaign, templates: Path, path: Path
) -> Sheet:
    """Write an export (`--what`) as a printed table, by province: .pdf or .html."""
    found = sheet(report, what)
    sections = [
        {"name": name, "rows": [[*row[:1], *row[2:]] for row in rows]}
        for name, rows in groupby(found.rows, key=lambda r: r[1])
    ]
    values = {
        "heading": found.title,
        "headings": [*found.headings[:1], *found.headings[2:], WRITE_IN[what]],
        "widths": WIDTHS[what],
        "sections": sections,
        "total": len(found.rows),
        "landscape": what != "attendees",  # the wide ones, and room to note a call
    }
    _write(_page(campaign, templates, TABLE, values), campaign, templates, path)
    return found


def _page(campaign: Campaign, templates: Path, name: str, values: dict[str, Any]) -> str:
    event = campaign.event
    try:  # sandboxed like every template (mailer.compose.letters.environment)
        template = environment(templates, campaign.timezone, autoescape=True).get_template(name)
    except jinja2.TemplateNotFound as exc:
        raise TemplateProblem(f"{templates / name}: missing; restore it from mailer") from exc
    except jinja2.TemplateSyntaxError as exc:
        raise TemplateProblem(f"{exc.filename or templates / name}, line {exc.lineno}: "
                              f"{exc.message}") from exc  # fmt: skip
    try:
        return template.render(
            title=event.title,
            when=thai_when(event.start, event.end, campaign.timezone),
            venue=event.venue,
            font=campaign.letter.font,
            font_urls=[f.resolve().as_uri() for f in campaign.letter.font_files],
            **values,
        )
    except Exception as exc:  # any error of the template's making: file, line, what
        raise render_problem(exc, templates, str(templates / name), "the sheet") from exc


def _write(page: str, campaign: Campaign, templates: Path, path: Path) -> None:
    if path.suffix.lower() == ".pdf":
        from mailer.letter_pdf.printer import print_page  # WeasyPrint: only for a PDF

        data = print_page(page, templates, campaign.letter.font_files)
    else:
        data = page.encode("utf-8")
    try:
        path.write_bytes(data)
    except OSError as exc:
        raise MailerError(f"{path}: cannot write the file: {exc.strerror or exc}") from exc
