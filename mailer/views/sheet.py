"""The printable attendance sheet (ใบลงทะเบียน) for the registration desk: an HTML page
(Jinja2, autoescaped) laid out for A4, Thai fonts from Debian's fonts-thai-tlwg (Garuda,
Loma) or Sarabun when installed; print it, or "save as PDF" from the browser."""

from __future__ import annotations

from itertools import groupby
from pathlib import Path
from typing import TYPE_CHECKING

import jinja2

from mailer.compose.letters import environment, render_problem
from mailer.errors import MailerError, TemplateProblem
from mailer.thai import thai_when
from mailer.views.exports import sheet

if TYPE_CHECKING:
    from mailer.campaign import Campaign
    from mailer.views.report import StatusReport


def write_sheet(report: StatusReport, campaign: Campaign, templates: Path, path: Path) -> int:
    """Write the sheet of who is coming in `report` to `path` (the template
    `sheet/attendance.html` of `templates`); returns how many are on it."""
    rows = sheet(report, "attendees").rows
    provinces = [
        {"name": name, "people": list(people)} for name, people in groupby(rows, key=lambda r: r[1])
    ]
    event = campaign.event
    name = "sheet/attendance.html"
    try:  # sandboxed like every template (mailer.compose.letters.environment)
        template = environment(templates, campaign.timezone, autoescape=True).get_template(name)
    except jinja2.TemplateNotFound as exc:
        raise TemplateProblem(f"{templates / name}: missing; restore it from mailer") from exc
    except jinja2.TemplateSyntaxError as exc:
        raise TemplateProblem(f"{exc.filename or templates / name}, line {exc.lineno}: "
                              f"{exc.message}") from exc  # fmt: skip
    try:
        page = template.render(
            title=event.title,
            when=thai_when(event.start, event.end, campaign.timezone),
            venue=event.venue,
            provinces=provinces,
            total=len(rows),
        )
    except Exception as exc:  # any error of the template's making: file, line, what
        raise render_problem(exc, templates, str(templates / name), "the sheet") from exc
    try:
        path.write_text(page, encoding="utf-8")
    except OSError as exc:
        raise MailerError(f"{path}: cannot write the file: {exc.strerror or exc}") from exc
    return len(rows)
