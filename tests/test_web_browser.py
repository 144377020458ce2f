"""The answer page in a real headless Chromium (Debian's, driven by Playwright, no downloaded
browser) at a phone's width: the link from a delivered message, an answer in two clicks
(representative included, with a Thai name), the confirmation, no sideways scrolling, large
touch targets. Screenshots are kept in the test's folder."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mailer.replies.attendance import attendance
from mailer.replies.statuses import Attendance
from tests.conftest import FakeClock, Mailhog
from tests.test_web import Web, _serve

MEASURE = """() => ({
  scroll: document.documentElement.scrollWidth,
  width: document.documentElement.clientWidth,
  small: [...document.querySelectorAll('label.choice, button.send, .representative input')]
    .filter(el => el.offsetParent !== null && el.getBoundingClientRect().height < 44)
    .map(el => el.outerHTML.slice(0, 80)),
})"""


@pytest.fixture
def web(make_ws, smtp_server: Mailhog, clock: FakeClock) -> Iterator[Web]:  # type: ignore[no-untyped-def]
    yield from _serve(make_ws, smtp_server, clock, ["TH-50"])


def _fits(page: Any, where: str) -> None:
    seen = page.evaluate(MEASURE)
    assert seen["scroll"] <= seen["width"], f"{where}: scrolls sideways ({seen})"
    assert not seen["small"], f"{where}: touch targets under 44 px: {seen['small']}"


@pytest.mark.slow
def test_a_representative_answered_in_two_clicks_on_a_phone(
    browser: Any, web: Web, tmp_path: Path
) -> None:
    context = browser.new_context(
        viewport={"width": 360, "height": 740}, is_mobile=True, has_touch=True
    )
    page = context.new_page()
    try:
        assert page.goto(web.links["TH-50-agri"]).status == 200
        _fits(page, "the page at 360 px")
        page.screenshot(path=str(tmp_path / "rsvp-phone.png"), full_page=True)
        assert page.evaluate("document.fonts.check('16px Garuda')")

        page.click("label[for=choice-representative]")  # click 1
        _fits(page, "the page with the representative's fields at 360 px")
        page.fill("#rep-name", "นางสาวสมหญิง ใจดี")
        page.fill("#rep-position", "นักวิชาการคอมพิวเตอร์ชำนาญการพิเศษ")
        page.fill("#rep-phone", "๐๘ ๑๒๓๔ ๕๖๗๘")
        page.click("button.send")  # click 2
        page.wait_for_selector("#done")
        assert "บันทึกคำตอบแล้ว" in page.inner_text("#done")
        assert "นางสาวสมหญิง ใจดี" in page.inner_text("#done")
        _fits(page, "the confirmation at 360 px")
        page.screenshot(path=str(tmp_path / "done-phone.png"), full_page=True)
    finally:
        context.close()
    found = attendance(web.ws.ledger())["TH-50-agri"]
    assert found.status == Attendance.representative
    assert found.representative["name"] == "นางสาวสมหญิง ใจดี"
    assert "HeadlessChrome" in found.evidence or "Chrome" in found.evidence

    desktop = browser.new_page(viewport={"width": 1280, "height": 900})
    try:
        desktop.goto(web.links["TH-50-prov"])
        desktop.click("label[for=choice-accepted]")
        desktop.click("button.send")
        desktop.wait_for_selector("#done")
        desktop.screenshot(path=str(tmp_path / "done-desktop.png"), full_page=True)
    finally:
        desktop.close()
    assert attendance(web.ws.ledger())["TH-50-prov"].status == Attendance.accepted
