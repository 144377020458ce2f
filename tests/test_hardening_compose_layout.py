"""Every letter is fluid: read at a phone's width (375 px, as the Gmail and Outlook apps show
it) nothing scrolls sideways or is cut, and on a wide screen the letter keeps a column of at
most 640 px. Checked in a real headless Chromium (Debian's, driven by Playwright; no browser
is downloaded); the screenshots are kept in the test's tmp_path."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from mailer.campaign import load_campaign
from mailer.compose import Composer, OutgoingMail
from mailer.invitees.importing import InviteeRecord
from mailer.versions import Change
from tests.conftest import CAMPAIGN, TEMPLATES
from tests.helpers import parse, text_of

KINDS = ["invitation", "followup", "reminder", "update", "cancel"]
CHANGES = [
    Change("when", "วันและเวลา", "วันอังคารที่ ๒๒ พฤศจิกายน ๒๕๕๙ เวลา ๑๓.๐๐ – ๑๖.๓๐ น.",
           "วันพฤหัสบดีที่ ๒๔ พฤศจิกายน ๒๕๕๙ เวลา ๑๕.๐๐ – ๑๘.๓๐ น."),
    Change("venue", "สถานที่", "ห้องออดิทอเรียม อาคารทรงกลม ศูนย์ประชุมวายุภักษ์",
           "ห้องประชุม 2 ชั้น 12 อาคาร B ศูนย์ราชการเฉลิมพระเกียรติ ๘๐ พรรษา"),
]  # fmt: skip
OFFICES = [
    InviteeRecord("TH-50-agri", "สำนักงานเกษตรจังหวัดเชียงใหม่", "เรียน เกษตรจังหวัดเชียงใหม่",
                  ("saraban.th50@agri.example",)),
    InviteeRecord("TH-14-x", "สำนักงาน" + "ABCDEFGHIJ" * 8 + " 2 (สาขาที่ 13)",
                  "เรียน " + "ผู้อำนวยการสำนักงานส่งเสริมการปกครองท้องถิ่นจังหวัดพระนครศรีอยุธยา" * 2,
                  ("o@x.example",)),
]  # fmt: skip
MEASURE = """() => {
  const width = window.innerWidth;
  const out = [];
  for (const el of document.body.querySelectorAll('*')) {
    const box = el.getBoundingClientRect();
    if (box.width === 0 && box.height === 0) continue;
    const name = el.tagName.toLowerCase() + (el.textContent || '').trim().slice(0, 30);
    if (box.left < -0.5 || box.right > width + 0.5) out.push(['outside', name, box.left, box.right]);
    if (el.scrollWidth > el.clientWidth + 1 && getComputedStyle(el).display !== 'inline')
      out.push(['cut', name, el.scrollWidth, el.clientWidth]);
  }
  const column = document.querySelector('table table');
  return {scroll: document.documentElement.scrollWidth, width: width,
          column: column.getBoundingClientRect().width, problems: out};
}"""


@pytest.fixture(scope="module")
def composer() -> Composer:
    return Composer(load_campaign(CAMPAIGN), TEMPLATES)


def _html(composer: Composer, kind: str, office: InviteeRecord) -> str:
    method, sequence = ("CANCEL", 2) if kind == "cancel" else ("REQUEST", int(kind == "update"))
    mail = OutgoingMail(office, kind, "<m@x.example>", sequence, method, extra={"changes": CHANGES})
    now = datetime(2016, 11, 10, 2, 0, tzinfo=UTC)
    return text_of(parse(composer.compose(mail, now).data), "text/html")


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.slow
def test_every_letter_fits_a_phone_and_keeps_a_column_on_a_wide_screen(
    browser: Any, composer: Composer, kind: str, tmp_path: Path
) -> None:
    for n, office in enumerate(OFFICES):
        html = _html(composer, kind, office)
        for width in (375, 1024):
            page = browser.new_page(viewport={"width": width, "height": 800})
            try:
                page.set_content(html)
                seen = page.evaluate(MEASURE)
                page.screenshot(path=str(tmp_path / f"{kind}-{n}-{width}px.png"), full_page=True)
            finally:
                page.close()
            where = f"{kind}, office {n}, {width} px (screenshots in {tmp_path})"
            assert seen["scroll"] <= seen["width"], f"{where}: scrolls sideways: {seen['scroll']}"
            assert seen["problems"] == [], where
            assert seen["column"] <= (width if width < 640 else 642), where
            if width > 700:
                assert seen["column"] >= 600, f"{where}: the column shrank to {seen['column']}"


@pytest.mark.parametrize("kind", KINDS)
def test_no_fixed_width_and_no_image_in_any_letter(composer: Composer, kind: str) -> None:
    html = _html(composer, kind, OFFICES[0])
    outside_outlook = re.sub(r"<!--\[if mso\]>.*?<!\[endif\]-->", "", html, flags=re.S)
    assert re.findall(r'\swidth="\d+"|[^-]width:\s*\d+px', outside_outlook) == []
    assert "max-width:640px" in html
    assert "<img" not in html
    assert "background-image" not in html
    assert "url(" not in html
