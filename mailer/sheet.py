"""The printable attendance sheet (ใบลงทะเบียน) for the registration desk: an HTML page
(Jinja2, autoescaped) laid out for A4, Thai fonts from Debian's fonts-thai-tlwg (Garuda,
Loma) or Sarabun when installed; print it, or "save as PDF" from the browser."""

from __future__ import annotations

from itertools import groupby
from pathlib import Path

import jinja2

from mailer.errors import MailerError, TemplateProblem
from mailer.exports import sheet
from mailer.report import status
from mailer.thai import thai_digits, thai_when
from mailer.workspace import Workspace


def write_sheet(ws: Workspace, path: Path) -> int:
    rows = sheet(status(ws), "attendees").rows
    provinces = [
        {"name": name, "people": list(people)} for name, people in groupby(rows, key=lambda r: r[1])
    ]
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(ws.settings.templates_dir),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )
    env.filters["thai_digits"] = thai_digits
    event = ws.campaign.event
    try:
        page = env.get_template("sheet/attendance.html").render(
            title=event.title,
            when=thai_when(event.start, event.end, ws.campaign.timezone),
            venue=event.venue,
            provinces=provinces,
            total=len(rows),
        )
    except jinja2.TemplateError as exc:
        raise TemplateProblem(f"templates/sheet/attendance.html: {exc}") from exc
    try:
        path.write_text(page, encoding="utf-8")
    except OSError as exc:
        raise MailerError(f"{path}: cannot write the file: {exc.strerror or exc}") from exc
    return len(rows)
