"""End to end, as an office and the coordinator meet it: all 532 invitations sent through the
real sending path to a real SMTP server on loopback, one office's personal link read from
its delivered message, the dashboard open in one real headless Chromium page (Debian's,
driven by Playwright) while the office answers "representative" at a phone's width in
another, and the dashboard following without a reload; then that answer read back from
`mailer status --json`, `mailer export` (.xlsx, .csv), `mailer sheet` (PDF, `pdftotext`)
and the dashboard's filtered export. Nothing is mocked but the clock.

Screenshots are test artefacts: in `$MAILER_TEST_ARTEFACTS/<test>/` when that is set (it
must be outside the repository or ignored by git, e.g. var/test-artefacts), else in the
test's tmp_path; the folder is printed (`pytest -rP` shows it)."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from openpyxl import load_workbook

from mailer.replies.attendance import attendance
from mailer.replies.statuses import Attendance
from tests.conftest import ROOT, FakeClock, Mailhog, cli_env, needed
from tests.helpers import parse, text_of
from tests.test_dashboard import HASH, PASSWORD
from tests.test_letter_pdf import read_back
from tests.test_web import Web, _serve

OFFICE = "TH-96-dbd"  # one of the 532, in the matrix's last row
REP = {"name": "นายประเสริฐ ศรีสุข", "position": "นักวิชาการพาณิชย์ชำนาญการ", "phone": "๐๘๑ ๒๓๔ ๕๖๗๘"}
PHONE = {"width": 360, "height": 740}
DESKTOP = {"width": 1280, "height": 900}
WAIT_MS = 10_000  # the dashboard refreshes every 0.5 s here; a change must show well within
MAILER = [sys.executable, "-m", "mailer"]
# Every press the page gets (mouse or finger), reported to the test across navigations;
# typing into a field is not a press. A label's forwarded click makes no pointerdown.
PRESSES = """document.addEventListener("pointerdown", (e) => {
  if (e.isTrusted) { window.__pressed(e.pointerType + " " + e.target.tagName); }
}, true);"""
# What the open dashboard shows of the office: the totals (dashboard.js keeps them), and the
# contract the dashboard's matrix cell and office entry keep (updated by the same polling).
SHOWN = """(office) => {
  const cells = [...document.querySelectorAll(`#matrix td[data-office="${office}"]`)];
  const entry = document.querySelector(`#office-${office} [data-status]`);
  return {
    representative: Number(document.querySelector('[data-attendance="representative"]').textContent),
    cells: cells.map((c) => [c.dataset.status, c.className]),
    entry: entry && entry.dataset.status,
    marker: window.__marker === undefined ? null : window.__marker,
  };
}"""


@pytest.fixture
def live(make_ws, smtp_server: Mailhog, clock: FakeClock) -> Iterator[Web]:  # type: ignore[no-untyped-def]
    """Every invitation sent (532 delivered); the app with the dashboard polling fast."""
    yield from _serve(make_ws, smtp_server, clock, [], password_hash=HASH, refresh_seconds=0.5)


@pytest.fixture
def chiang_mai(make_ws, smtp_server: Mailhog, clock: FakeClock) -> Iterator[Web]:  # type: ignore[no-untyped-def]
    """Chiang Mai's seven invitations sent; the dashboard on."""
    yield from _serve(make_ws, smtp_server, clock, ["TH-50"], password_hash=HASH)


@pytest.fixture
def artefacts(tmp_path: Path, request: pytest.FixtureRequest) -> Path:
    chosen = os.environ.get("MAILER_TEST_ARTEFACTS")
    folder = (Path(chosen) / request.node.name if chosen else tmp_path / "artefacts").resolve()
    if folder.is_relative_to(ROOT):
        ignored = subprocess.run(["git", "-C", str(ROOT), "check-ignore", "-q", str(folder)])
        if ignored.returncode != 0:
            pytest.fail(f"MAILER_TEST_ARTEFACTS={chosen}: inside the repository and not "
                        "ignored by .gitignore; use var/test-artefacts or a folder outside it")  # fmt: skip
    folder.mkdir(parents=True, exist_ok=True)
    print(f"screenshots in {folder}")
    return folder


def _link_in_message(web: Web, office: str) -> str:
    """The office's personal link, as its mail client shows it: from the HTML part of the
    message the SMTP server received, the same link in the plain-text part."""
    messages = [parse(raw) for raw in web.smtp.messages()]
    assert len(messages) == len(web.links)  # one invitation per office sent, no more
    (message,) = [
        m for m in messages if f"egov-seminar-2559.{office}.invitation." in str(m["Message-ID"])
    ]
    hrefs = set(re.findall(r'href="([^"]+)"', text_of(message, "text/html")))
    (link,) = {h for h in hrefs if h.startswith(f"{web.base}/r/")}
    assert link in text_of(message, "text/plain")
    return link


def _fits(page: Any, folder: Path | None, name: str, *, whole: bool = True) -> None:
    """No sideways scrolling; the screenshot kept as an artefact (`whole`: the full page,
    else what the screen shows: the dashboard lists all 532 offices below its matrix).
    A phone (is_mobile) zooms a too-wide page out, so innerWidth grows with the page: the
    layout viewport (clientWidth) is the measure, and innerWidth must still be the screen's."""
    scroll, inner, width = page.evaluate(
        "[document.documentElement.scrollWidth, innerWidth, document.documentElement.clientWidth]"
    )
    assert scroll <= width, f"{name}: scrolls sideways ({scroll} px wide at {width} px)"
    assert inner == page.viewport_size["width"], f"{name}: zoomed out to {inner} px"
    if folder is not None:
        page.screenshot(path=str(folder / f"{name}.png"), full_page=whole)


def _answer_on_a_phone(browser: Any, link: str, folder: Path | None) -> tuple[list[str], str]:
    """Open the link at 360 × 740, choose ส่งผู้แทน, type the three fields, send; returns the
    presses the page got and the confirmation's text."""
    context = browser.new_context(viewport=PHONE, is_mobile=True, has_touch=True)
    presses: list[str] = []
    context.expose_binding("__pressed", lambda _source, what: presses.append(what))
    context.add_init_script(PRESSES)
    try:
        page = context.new_page()
        assert page.goto(link).status == 200
        _fits(page, folder, "rsvp-phone")
        page.tap("label[for=choice-representative]")  # press 1: choose
        for key, value in REP.items():
            page.fill(f"#rep-{key}", value)
        page.tap("button.send")  # press 2: send
        page.wait_for_selector("#done")
        _fits(page, folder, "confirmation-phone")
        return presses, page.inner_text("#done")
    finally:
        context.close()


def _log_in(browser: Any, base: str, view: str = "") -> Any:
    """The coordinator's page at a desktop's width, logged in, on the dashboard (`view`:
    its query, e.g. one province: the list of offices is paged, a page shows 100)."""
    page = browser.new_context(viewport=DESKTOP).new_page()
    assert page.goto(f"{base}/dashboard").url.endswith("/dashboard/login")
    page.fill("#password", PASSWORD)
    page.click("button.send")
    page.wait_for_selector("#matrix")
    if view:
        page.goto(f"{base}/dashboard?{view}")
        page.wait_for_selector("#matrix")
    return page


def _until(page: Any, what: str, condition: str, office: str) -> dict[str, Any]:
    """Wait (bounded) until `condition` holds of what the page shows; say what it showed."""
    from playwright.sync_api import TimeoutError as Timeout

    check = f"(office) => {{ const s = ({SHOWN})(office); return {condition}; }}"
    try:
        page.wait_for_function(check, arg=office, timeout=WAIT_MS, polling=100)
        return dict(page.evaluate(SHOWN, office))
    except Timeout:
        pass  # said below, without Playwright's traceback
    pytest.fail(f"{what}: not within {WAIT_MS // 1000} s; shown: {page.evaluate(SHOWN, office)}")


@pytest.mark.slow
def test_an_office_answers_from_its_message_on_a_phone_and_the_open_dashboard_follows(
    browser: Any, live: Web, artefacts: Path
) -> None:
    assert len(live.links) == 532
    link = _link_in_message(live, OFFICE)
    desk = _log_in(browser, live.base, "province=TH-96")  # its province: cell and entry
    try:
        desk.evaluate("window.__marker = 1")  # gone if the page reloads
        navigations: list[str] = []
        desk.on(
            "framenavigated", lambda f: navigations.append(f.url) if f == desk.main_frame else None
        )
        before = desk.evaluate(SHOWN, OFFICE)
        assert before["representative"] == 0

        presses, done = _answer_on_a_phone(browser, link, artefacts)
        assert presses == ["touch LABEL", "touch BUTTON"], presses  # two, honestly counted
        assert "บันทึกคำตอบแล้ว" in done
        for value in REP.values():
            assert value in done
        found = attendance(live.ws.ledger())[OFFICE]
        assert found.status == Attendance.representative
        assert found.representative == REP
        assert "HeadlessChrome" in found.evidence

        again = desk.context.new_page()  # the same link on a desktop: the answer so far
        assert again.goto(link).status == 200
        assert REP["name"] in again.inner_text("#so-far")
        _fits(again, artefacts, "rsvp-desktop")
        again.close()

        after = _until(desk, "the totals", "s.representative === 1", OFFICE)
        assert after["marker"] == 1
        assert navigations == []
        _fits(desk, artefacts, "dashboard-desktop", whole=False)
        desk.locator("#matrix").screenshot(path=str(artefacts / "dashboard-matrix.png"))
        desk.set_viewport_size(PHONE)
        _fits(desk, artefacts, "dashboard-phone", whole=False)

        # The matrix cell and the office's entry, by the dashboard's contract: one
        # <td data-office=ID data-status=S class="status-S">, and #office-ID [data-status].
        contract = f'td[data-office="{OFFICE}"] and #office-{OFFICE} [data-status]'
        assert before["cells"] == [["no_reply", "status-no_reply"]], (contract, before)
        assert before["entry"] == "no_reply", (contract, before)
        shown = _until(desk, "the office's cell and entry",
                       's.entry === "representative" && s.cells.length === 1 && '
                       's.cells[0][0] === "representative" && '
                       's.cells[0][1].split(" ").includes("status-representative")', OFFICE)  # fmt: skip
        assert shown["marker"] == 1
        assert navigations == []
    finally:
        desk.context.close()


def _mailer(env: dict[str, str], *commands: list[str]) -> list[str]:
    """Run the `mailer` commands side by side (each reads the ledger only); their output."""
    running = [
        subprocess.Popen([*MAILER, *c], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True)
        for c in commands
    ]  # fmt: skip
    outputs = []
    for command, proc in zip(commands, running, strict=True):
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, (command, err + out)
        outputs.append(out)
    return outputs


def _rows_by_heading(rows: list[list[str]], office: str) -> dict[str, str]:
    (row,) = [r for r in rows[1:] if r[0] == office]
    return dict(zip(rows[0], row, strict=True))


@pytest.mark.slow
def test_a_page_answer_reaches_status_the_exports_and_the_sheet(
    browser: Any, chiang_mai: Web, tmp_path: Path
) -> None:
    office = "TH-50-agri"
    _, done = _answer_on_a_phone(browser, chiang_mai.links[office], None)
    assert REP["name"] in done
    env = {**os.environ, **cli_env(tmp_path, DATABASE_URL=chiang_mai.ws.settings.database_url)}

    pdf = tmp_path / "attendance.pdf"
    shown, _, _, _, printed = _mailer(env, ["status", "--json"],
                                      ["export", str(tmp_path / "all.xlsx")],
                                      ["export", str(tmp_path / "all.csv")],
                                      ["export", str(tmp_path / "attendees.csv"), "--what", "attendees"],
                                      ["sheet", str(pdf)])  # fmt: skip
    (row,) = [i for i in json.loads(shown)["invitees"] if i["invitee_id"] == office]
    assert row["attendance"] == "representative"
    assert row["attendance_evidence"].startswith("web ")
    assert {k: row["representative"][k] for k in REP} == REP

    book = load_workbook(tmp_path / "all.xlsx").active
    xlsx = [["" if c is None else str(c) for c in r] for r in book.iter_rows(values_only=True)]
    with (tmp_path / "all.csv").open(encoding="utf-8-sig", newline="") as handle:
        rows = list(csv.reader(handle))
    assert rows == xlsx
    assert len(rows) == 1 + 532
    cells = _rows_by_heading(rows, office)
    assert cells["การตอบรับ"] == "ส่งผู้แทน"
    assert (cells["ชื่อผู้แทน"], cells["ตำแหน่งผู้แทน"], cells["โทรศัพท์ผู้แทน"]) == tuple(REP.values())
    assert cells["หลักฐาน"].startswith("web ")
    with (tmp_path / "attendees.csv").open(encoding="utf-8-sig", newline="") as handle:
        coming = list(csv.reader(handle))
    assert coming == [["ลำดับ", "จังหวัด", "หน่วยงาน", "ผู้เข้าร่วม", "ตำแหน่ง", "โทรศัพท์"],
                      ["1", "เชียงใหม่", "สำนักงานเกษตรจังหวัดเชียงใหม่", *REP.values()]]  # fmt: skip

    assert "1 attendee(s)" in printed
    if shutil.which("pdftotext") is None:
        needed("pdftotext is not installed (apt-get install poppler-utils)")
    text = read_back(subprocess.run(["pdftotext", "-raw", "-enc", "UTF-8", str(pdf), "-"],
                                    capture_output=True, check=True, text=True).stdout)  # fmt: skip
    flat = "".join(text.split())
    for value in (*REP.values(), "สำนักงานเกษตรจังหวัดเชียงใหม่", "รวม๑คน"):
        assert "".join(value.split()) in flat, value

    desk = _log_in(browser, chiang_mai.base)
    try:
        got = desk.request.get(f"{chiang_mai.base}/dashboard/export.csv?attendance=representative")
        assert got.status == 200
        filtered = list(csv.reader(io.StringIO(got.body().decode("utf-8-sig"))))
    finally:
        desk.context.close()
    assert filtered[0] == rows[0]  # the same Thai headings as `mailer export`
    assert [r[0] for r in filtered[1:]] == [office]
    assert _rows_by_heading(filtered, office)["ชื่อผู้แทน"] == REP["name"]
