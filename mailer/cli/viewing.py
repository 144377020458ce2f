"""The coordinator's view: `status` (totals and the province × agency matrix), `export`,
and the printable registration sheet."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.cells import cell_len
from rich.table import Table
from rich.text import Text

from mailer.cli.app import app, emit_json, flag, out, workspace
from mailer.labels import AGENCY_LABELS, AGENCY_SHORT, ATTENDANCE_TH, KINDS, MARKS

if TYPE_CHECKING:
    from mailer.views.report import StatusReport


@app.command()
def status(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
    province: Annotated[
        str | None, typer.Option(help="Only this province: TH-50 or เชียงใหม่.")
    ] = None,
    agency: Annotated[str | None, typer.Option(help="Only this agency code, e.g. agri.")] = None,
    attendance: Annotated[
        str | None, typer.Option(help="Only offices with this attendance.")
    ] = None,
) -> None:
    """Totals per delivery state and attendance, and the province × agency matrix (one
    coloured cell per office).

    Example: mailer status --attendance no_reply
    """
    from mailer.views.report import Filters
    from mailer.views.report import status as status_report

    ws = workspace(ctx)
    filters = Filters(province, agency, attendance)  # checked before the database is opened
    report = status_report(ws.ledger(), ws.campaign, filters=filters)
    if as_json:
        emit_json(report.to_json())
        return
    _totals(report)
    _matrix(report)
    if report.event is not None and report.event.cancelled:
        flag(out, "✗", "red", f"The event was cancelled (SEQUENCE {report.event.sequence}).")
    elif report.event is not None and report.event.significant:
        flag(
            out, "!", "yellow",
            f"The event changed since SEQUENCE {report.event.sequence} was sent: "
            f"{report.event.describe()}. Run `mailer send update`.",
        )  # fmt: skip
    attention = [
        i
        for i in report.invitees
        if i.delivery in {"failed", "uncertain", "retry_wait"} or i.partly_delivered
    ]
    for item in attention[:20]:
        state = f"{item.delivery}, partly delivered" if item.partly_delivered else item.delivery
        flag(out, "!", "yellow", f"{item.invitee_id} {item.organisation} <{item.email}>: "
             f"{state}: {item.last_reply}")  # fmt: skip
    if len(attention) > 20:
        out.print(f"… and {len(attention) - 20} more: mailer deliveries --state failed")


def _totals(report: StatusReport) -> None:
    table = Table(title=f"Campaign {report.campaign_id}: {report.totals['invitees']} offices")
    table.add_column("delivery")
    table.add_column("", justify="right")
    table.add_column("attendance")
    table.add_column("", justify="right")
    deliveries = [(k, v) for k, v in report.totals.items() if v and k != "invitees"]
    answers = [(f"{k} ({ATTENDANCE_TH[k]})", v) for k, v in (report.attendance or {}).items() if v]
    for n in range(max(len(deliveries), len(answers))):
        d = deliveries[n] if n < len(deliveries) else ("", "")
        a = answers[n] if n < len(answers) else ("", "")
        table.add_row(d[0], str(d[1]), a[0], str(a[1]))
    out.print(table)


def _matrix(report: StatusReport) -> None:
    from mailer.views.exports import matrix

    agencies, rows = matrix(report)
    if not rows:
        out.print("No offices to show.")
        return
    # Widths as a terminal counts them (Thai vowels above and below and tone marks take no
    # column: Rich's cell_len, as wcwidth): headings whole, rows straight, two blocks side by
    # side (76 provinces in 38 lines) when the terminal is wide enough, else one.
    names = [row.province or row.code for row in rows]
    name_width = min(max(cell_len(name) for name in [*names, "จังหวัด"]), 16)
    headings = [AGENCY_SHORT.get(agency, agency[:4]) for agency in agencies]
    block = name_width + 1 + sum(cell_len(heading) + 1 for heading in headings)
    blocks = 2 if len(rows) > 1 and out.width >= 2 * block + 2 else 1
    lines = -(-len(rows) // blocks)
    table = Table(box=None, pad_edge=False, show_edge=False, padding=(0, 1, 0, 0))
    for number in range(blocks):
        if number:
            table.add_column("", width=1)  # a gap between the blocks
        table.add_column("จังหวัด", no_wrap=True, min_width=name_width, max_width=name_width)
        for heading in headings:
            width = cell_len(heading)
            table.add_column(heading, justify="center", no_wrap=True, min_width=width)
    for n in range(lines):
        cells: list[Text | str] = []
        for number in range(blocks):
            if number:
                cells.append("")
            at = n + number * lines
            if at >= len(rows):
                cells += [""] * (len(agencies) + 1)
                continue
            cells.append(names[at])
            for status in rows[at].cells:
                mark, style = MARKS[status] if status else (" ", "")
                cells.append(Text(mark, style=style))
        table.add_row(*cells)
    out.print(table)
    legend = Text("  ")
    for status, (mark, style) in MARKS.items():
        legend.append(mark, style=style).append(f" {ATTENDANCE_TH[status]}  ")
    out.print(legend)
    out.print(
        "  " + "  ".join(f"{AGENCY_SHORT.get(a, a)} {AGENCY_LABELS.get(a, a)}" for a in agencies)
    )


@app.command("export")
def export_cmd(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="status.xlsx, status.csv, or call-sheet.pdf")],
    what: Annotated[str, typer.Option(help=" | ".join(KINDS))] = "all",
) -> None:
    """Write every office (all), the offices to chase by phone (call-sheet), or who is
    coming for the registration desk (attendees), with Thai headings; as .pdf (or .html) a
    table to print, by province, with a column to write in.

    Example: mailer export call-sheet.pdf --what call-sheet
    """
    from mailer.views.exports import export
    from mailer.views.report import status as status_report

    ws = workspace(ctx)
    report = status_report(ws.ledger(), ws.campaign)
    if file.suffix.lower() in (".pdf", ".html"):
        from mailer.views.sheet import write_table

        written = write_table(report, what, ws.campaign, ws.settings.templates_dir, file)
    else:
        written = export(report, file, what)
    if not written.rows:
        out.print(f'Wrote {file}: no offices in "{written.title}" yet (only the headings).')
    else:
        out.print(f"Wrote {file}: {written.title}, {len(written.rows)} row(s).")


@app.command("sheet")
def sheet_cmd(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="attendance.pdf (A4), or attendance.html")],
) -> None:
    """The printable attendance sheet (ใบลงทะเบียน) for the registration desk: everyone
    coming, by province, with a column to sign; .pdf is written ready to print (A4).

    Example: mailer sheet attendance.pdf
    """
    from mailer.views.report import status as status_report
    from mailer.views.sheet import write_sheet

    ws = workspace(ctx)
    report = status_report(ws.ledger(), ws.campaign)
    count = write_sheet(report, ws.campaign, ws.settings.templates_dir, file)
    how = (
        "Print it (A4)."
        if file.suffix.lower() == ".pdf"
        else "Open it in a browser and print (A4)."
    )
    out.print(f"Wrote {file}: {count} attendee(s). {how}")
