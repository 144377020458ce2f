"""The official letter as a PDF (issue #16): what the clerk reads back, how Thai lines break,
how the page looks (a golden image), and that the same inputs give the same bytes.

The text is read back with poppler's `pdftotext -raw` (content order, a line per printed
line). The PDF spells ำ as the two glyphs it is drawn with, ํ + า (its Unicode compatibility
decomposition; `mailer.letter_pdf.text_layer`), so `read_back` puts ำ together again before
a comparison; nothing else is normalised.
"""

from __future__ import annotations

import itertools
import logging
import os
import re
import shutil
import subprocess
import sys
import unicodedata
from dataclasses import replace
from datetime import date
from pathlib import Path

import pytest
from PIL import Image, ImageChops
from pythainlp.tokenize import word_tokenize

from mailer.campaign import load_campaign
from mailer.compose import Composer
from mailer.invitees.importing import import_contacts
from mailer.letter_pdf import (
    LetterPrinter,
    LetterProblem,
    LetterSettings,
    LetterVersion,
    letter_version,
    running,
)
from mailer.letter_pdf.printer import LocalFiles
from mailer.rounds.send import send_announcement, send_round
from mailer.versions import Change
from tests.conftest import CAMPAIGN, CONTACTS, ROOT, TEMPLATES, FakeClock, Mailhog
from tests.test_changes import _moved
from tests.test_compose import CHIANG_MAI_AGRI

GOLDEN = Path(__file__).parent / "golden"
SETTINGS = LetterSettings(
    number="สรอ ๐๑๐๐/ว ๑๒๓",
    later_numbers={1: "สรอ ๐๑๐๐/ว ๑๔๕", 2: "สรอ ๐๑๐๐/ว ๑๕๐"},
    enclosures=("กำหนดการ", "แผนที่สถานที่จัดงาน"),
)
FIRST_DAY = date(2016, 11, 1)
THAI_LETTER = re.compile("[\u0e01-\u0e4e]")
PAGE_NUMBER = re.compile(r"^- [๐-๙]+ -$")  # "- ๒ -" atop page 2 (drawn after its text)
MARKS = {0x0E31, *range(0x0E34, 0x0E3B), *range(0x0E47, 0x0E4F)}  # never first on a line
# Words libthai broke across lines in the 2559 letter before `breaks.hold_words`.
COMPOUNDS = ("หน่วยงาน", "ความพร้อม", "คำเชิญ", "ขอความกรุณา")


@pytest.fixture(scope="module")
def printer() -> LetterPrinter:
    return LetterPrinter(Composer(load_campaign(CAMPAIGN), TEMPLATES))


def _invitation(printer: LetterPrinter) -> LetterVersion:
    return LetterVersion(printer.composer.campaign.event, 0, FIRST_DAY)


def _update(printer: LetterPrinter) -> LetterVersion:
    moved = Change("venue", "สถานที่", "ห้องออดิทอเรียม", "ห้องประชุมจูปิเตอร์ ๔ – ๖")
    event = printer.composer.campaign.event
    return LetterVersion(event, 1, date(2016, 11, 8), (moved,), first_dated=FIRST_DAY)


def _cancel(printer: LetterPrinter) -> LetterVersion:
    event = printer.composer.campaign.event
    return LetterVersion(event, 2, date(2016, 11, 15), first_dated=FIRST_DAY)


@pytest.fixture(scope="module")
def letters(printer: LetterPrinter) -> dict[str, bytes]:
    return {
        "invitation": printer.render(SETTINGS, CHIANG_MAI_AGRI, _invitation(printer), "invitation"),
        "update": printer.render(SETTINGS, CHIANG_MAI_AGRI, _update(printer), "update"),
        "cancel": printer.render(SETTINGS, CHIANG_MAI_AGRI, _cancel(printer), "cancel"),
    }


def pdf_lines(data: bytes) -> list[str]:
    out = subprocess.run(
        ["pdftotext", "-raw", "-enc", "UTF-8", "-", "-"],
        input=data,
        capture_output=True,
        check=True,
    ).stdout.decode()
    lines = out.replace("\f", "\n").splitlines()
    return [line for line in lines if line.strip() and not PAGE_NUMBER.match(line)]


def read_back(text: str) -> str:
    """The text as typed: marks in Unicode's canonical order (NFC: the PDF has them in the
    order they are drawn, ผ + ้ + ู), and ำ put together from the PDF's ํ + า (and ํ + tone
    mark + า, as น้ำ is drawn)."""
    text = unicodedata.normalize("NFC", text)
    text = re.sub("\u0e4d([\u0e48-\u0e4b])\u0e32", "\\1\u0e33", text)
    return text.replace("\u0e4d\u0e32", "\u0e33")


def _text(data: bytes) -> str:
    return read_back("\n".join(pdf_lines(data)))


def _flat(text: str) -> str:
    return "".join(text.split())


@pytest.mark.slow
def test_the_clerk_reads_number_date_subject_salutation_and_time(letters: dict[str, bytes]) -> None:
    lines = [read_back(line) for line in pdf_lines(letters["invitation"])]
    text = "\n".join(lines)
    assert lines[0].startswith("ที่ สรอ ๐๑๐๐/ว ๑๒๓ สำนักงานรัฐบาลอิเล็กทรอนิกส์ (องค์การมหาชน)")
    assert "๑ พฤศจิกายน ๒๕๕๙" in lines  # the date line, B.E. and Thai digits
    assert "เรียน เกษตรจังหวัดเชียงใหม่" in lines
    assert any(line.startswith("เรื่อง ขอเชิญเข้าร่วมงานสัมมนา รายงานผลการสำรวจ") for line in lines)
    # the seminar's day and time as the seed letter writes them (a line may break at a space)
    assert _flat("ในวันอังคารที่ ๒๒ พฤศจิกายน ๒๕๕๙ เวลา ๑๓.๐๐ – ๑๖.๓๐ น.") in _flat(text)
    assert "สิ่งที่ส่งมาด้วย ๑. กำหนดการ" in lines
    assert "ขอแสดงความนับถือ" in lines
    assert "(ผู้มีอำนาจลงนาม)" in lines
    assert "ผู้อำนวยการสำนักงานรัฐบาลอิเล็กทรอนิกส์" in lines
    assert lines[-3:] == [
        "ส่วนนโยบายรัฐบาลอิเล็กทรอนิกส์",
        "โทรศัพท์เคลื่อนที่ ๐๘ ๑๘๔๕ ๑๔๕๙",
        "ไปรษณีย์อิเล็กทรอนิกส์ thannop.sirithamwilai@ega.or.th",
    ]
    assert "อ้างถึง" not in text  # none given for the first letter
    assert "\u200b" not in text  # the breaks' marks are not text


@pytest.mark.slow
def test_the_body_is_the_emails_text(printer: LetterPrinter, letters: dict[str, bytes]) -> None:
    """The letter says what the e-mail says: every paragraph of the e-mail's plain text."""
    mail = printer.composer.letter(CHIANG_MAI_AGRI, "invitation")
    body = mail.text.split("รายละเอียดงาน")[0]
    paragraphs = [p for p in body.split("\n\n") if p.strip().startswith(("ตามที่", "สรอ.", "อนึ่ง"))]
    assert len(paragraphs) >= 3
    flat = _flat(_text(letters["invitation"]))
    for paragraph in paragraphs:
        assert _flat(paragraph) in flat


@pytest.mark.slow
def test_an_update_says_what_changed_and_names_the_first_letter(letters: dict[str, bytes]) -> None:
    lines = [read_back(line) for line in pdf_lines(letters["update"])]
    assert lines[0].startswith("ที่ สรอ ๐๑๐๐/ว ๑๔๕ ")  # its own number
    assert "๘ พฤศจิกายน ๒๕๕๙" in lines  # its own date
    assert any(line.startswith("เรื่อง แจ้งเปลี่ยนแปลงรายละเอียดงานสัมมนา") for line in lines)
    assert "อ้างถึง หนังสือที่ สรอ ๐๑๐๐/ว ๑๒๓ ลงวันที่ ๑ พฤศจิกายน ๒๕๕๙" in lines
    flat = _flat("\n".join(lines))
    assert _flat("เปลี่ยนเป็น ห้องประชุมจูปิเตอร์ ๔ – ๖") in flat


@pytest.mark.slow
def test_a_cancellation_says_so_and_names_the_first_letter(letters: dict[str, bytes]) -> None:
    lines = [read_back(line) for line in pdf_lines(letters["cancel"])]
    assert lines[0].startswith("ที่ สรอ ๐๑๐๐/ว ๑๕๐ ")
    assert "๑๕ พฤศจิกายน ๒๕๕๙" in lines
    assert any(line.startswith("เรื่อง แจ้งยกเลิกงานสัมมนา") for line in lines)
    assert "อ้างถึง หนังสือที่ สรอ ๐๑๐๐/ว ๑๒๓ ลงวันที่ ๑ พฤศจิกายน ๒๕๕๙" in lines
    assert "งานดังกล่าวได้ยกเลิกแล้ว" in _flat("\n".join(lines))


def _breaks_inside_words(lines: list[str]) -> list[str]:
    """Each place a line ends inside a word, as PyThaiNLP reads the two lines together
    (where a Thai letter meets a Thai letter: elsewhere a space or a block ends the line)."""
    inside = []
    for this, following in itertools.pairwise(lines):
        if not (THAI_LETTER.match(this[-1]) and THAI_LETTER.match(following[0])):
            continue
        joined = this + following
        cut, at = len(this), 0
        for word in word_tokenize(joined, engine="newmm", keep_whitespace=True):
            if at < cut < at + len(word):
                inside.append(f"{this[-12:]}|{following[:12]} (the word {word!r})")
            at += len(word)
    return inside


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["invitation", "update", "cancel"])
def test_thai_lines_break_between_words(letters: dict[str, bytes], kind: str) -> None:
    lines = [read_back(line) for line in pdf_lines(letters[kind])]
    assert [line for line in lines if ord(line[0]) in MARKS] == []
    assert _breaks_inside_words(lines) == []
    for word in COMPOUNDS:
        for this, following in itertools.pairwise(lines):
            for i in range(1, len(word)):
                assert not (this.endswith(word[:i]) and following.startswith(word[i:])), word


@pytest.mark.slow
def test_every_character_has_a_glyph(
    printer: LetterPrinter, caplog: pytest.LogCaptureFixture
) -> None:
    """No .notdef box (WeasyPrint warns of each), and only the letter's font is embedded."""
    with caplog.at_level(logging.WARNING, logger="weasyprint"):
        data = printer.render(SETTINGS, CHIANG_MAI_AGRI, _update(printer), "update")
    assert [r.getMessage() for r in caplog.records] == []
    fonts = subprocess.run(["pdffonts", "-"], input=data, capture_output=True, check=True)
    names = {line.split()[0].split("+")[-1] for line in fonts.stdout.decode().splitlines()[2:]}
    assert names <= {"Laksaman", "Laksaman-Bold"}


@pytest.mark.slow
def test_the_same_inputs_give_the_same_bytes(
    printer: LetterPrinter, letters: dict[str, bytes], tmp_path: Path
) -> None:
    """A retry (in this process or another) sends exactly what the first attempt sent."""
    again = printer.render(SETTINGS, CHIANG_MAI_AGRI, _invitation(printer), "invitation")
    assert again == letters["invitation"]
    script = (
        "import sys\n"
        "from tests.test_letter_pdf import *\n"
        "from tests.test_letter_pdf import _invitation\n"
        "p = LetterPrinter(Composer(load_campaign(CAMPAIGN), TEMPLATES))\n"
        "sys.stdout.buffer.write(p.render(SETTINGS, CHIANG_MAI_AGRI, _invitation(p), 'invitation'))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    other = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, check=True, env=env, cwd=tmp_path
    ).stdout
    assert other == letters["invitation"]
    info = subprocess.run(
        ["pdfinfo", "-isodates", "-"], input=again, capture_output=True, check=True
    )
    assert "CreationDate:    2016-11-01T00:00:00" in info.stdout.decode()  # the letter's own date
    other_office = replace(CHIANG_MAI_AGRI, salutation="เรียน ผู้อำนวยการสำนักงานจังหวัดเชียงใหม่")
    assert printer.render(SETTINGS, other_office, _invitation(printer), "invitation") != again


def _png(data: bytes, tmp_path: Path, name: str) -> Path:
    prefix = tmp_path / name
    subprocess.run(
        ["pdftoppm", "-r", "50", "-png", "-f", "1", "-l", "1", "-singlefile", "-", str(prefix)],
        input=data,
        check=True,
    )
    return prefix.with_suffix(".png")


def _difference(a: Image.Image, b: Image.Image) -> float:
    """The share of pixels that differ by more than a quarter of the grey scale."""
    assert a.size == b.size
    diff = ImageChops.difference(a.convert("L"), b.convert("L")).point(
        lambda v: 255 if v > 64 else 0
    )
    histogram = diff.histogram()
    return histogram[255] / (a.size[0] * a.size[1])


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["invitation", "update"])
def test_the_first_page_looks_like_the_golden_image(
    letters: dict[str, bytes], tmp_path: Path, kind: str
) -> None:
    shot = _png(letters[kind], tmp_path, f"letter-{kind}-TH-50-agri")
    print(f"rendered page: {shot}")  # the artefact to look at (pytest -s, or the tmp dir)
    golden = GOLDEN / f"letter-{kind}-TH-50-agri.png"
    if os.environ.get("UPDATE_GOLDEN"):
        shutil.copyfile(shot, golden)
    with Image.open(shot) as page, Image.open(golden) as expected:
        assert page.size == expected.size  # A4 at 50 dpi: 414 × 585
        ratio = _difference(page, expected)
    assert ratio < 0.002, (
        f"{ratio:.2%} of the page differs from {golden} (UPDATE_GOLDEN=1 to accept)"
    )


@pytest.mark.slow
def test_the_golden_comparison_can_fail(letters: dict[str, bytes], tmp_path: Path) -> None:
    """Another office's letter is not the golden image of this one (the tolerance is tight)."""
    with Image.open(GOLDEN / "letter-invitation-TH-50-agri.png") as expected:
        shot = _png(letters["update"], tmp_path, "other")
        with Image.open(shot) as page:
            assert _difference(page, expected) > 0.002


@pytest.mark.slow
def test_the_emblem_is_drawn_when_the_campaign_names_one(
    printer: LetterPrinter, tmp_path: Path
) -> None:
    emblem = tmp_path / "emblem.png"
    Image.new("RGB", (120, 120), (200, 20, 20)).save(emblem)
    settings = replace(SETTINGS, emblem=emblem)
    data = printer.render(settings, CHIANG_MAI_AGRI, _invitation(printer), "invitation")
    images = subprocess.run(
        ["pdfimages", "-list", "-"], input=data, capture_output=True, check=True
    )
    assert len(images.stdout.decode().splitlines()) == 3  # two heading lines and the emblem
    with Image.open(_png(data, tmp_path, "emblem")) as page:
        red = page.convert("RGB").getpixel((page.size[0] // 2, 40))
    assert red[0] > 150 > red[1]  # at the top, in the middle
    plain = subprocess.run(
        ["pdfimages", "-list", "-"],
        input=printer.render(SETTINGS, CHIANG_MAI_AGRI, _invitation(printer), "invitation"),
        capture_output=True,
        check=True,
    )
    assert len(plain.stdout.decode().splitlines()) == 2  # none without one


@pytest.mark.slow
def test_per_office_numbers(printer: LetterPrinter) -> None:
    numbers = running("สรอ ๐๑๐๐/", 1001, ["TH-10-prov", "TH-50-agri"])
    settings = replace(SETTINGS, per_office_numbers=numbers)
    data = printer.render(settings, CHIANG_MAI_AGRI, _invitation(printer), "invitation")
    assert pdf_lines(data)[0].startswith("ที่ สรอ ๐๑๐๐/๑๐๐๒ ")
    update = printer.render(settings, CHIANG_MAI_AGRI, _update(printer), "update")
    assert "อ้างถึง หนังสือที่ สรอ ๐๑๐๐/๑๐๐๒ ลงวันที่ ๑ พฤศจิกายน ๒๕๕๙" in pdf_lines(update)


def test_running_numbers_are_thai_and_in_order() -> None:
    assert running("สรอ ๐๑๐๐/", 998, ["a", "b", "c"]) == {
        "a": "สรอ ๐๑๐๐/๙๙๘",
        "b": "สรอ ๐๑๐๐/๙๙๙",
        "c": "สรอ ๐๑๐๐/๑๐๐๐",
    }


def test_a_later_letter_without_a_number_is_refused(printer: LetterPrinter) -> None:
    with pytest.raises(LetterProblem, match=r"SEQUENCE 1 has no number; .*later_numbers"):
        printer.html(LetterSettings(), CHIANG_MAI_AGRI, _update(printer), "update")


def test_an_update_needs_the_first_letters_date(printer: LetterPrinter) -> None:
    version = replace(_update(printer), first_dated=None)
    with pytest.raises(LetterProblem, match="needs the first letter's date"):
        printer.html(SETTINGS, CHIANG_MAI_AGRI, version, "update")


@pytest.mark.parametrize("font", ['Laksaman"; } body { display: none', "", "a{b}"])
def test_a_font_name_css_cannot_carry_is_refused(font: str) -> None:
    with pytest.raises(LetterProblem, match="font family name"):
        LetterSettings(font=font)


def test_the_fetcher_reads_only_the_files_it_was_given(tmp_path: Path) -> None:
    mine = tmp_path / "emblem.png"
    mine.write_bytes(b"x")
    fetcher = LocalFiles([mine])
    response = fetcher.fetch(mine.as_uri())
    assert response.read() == b"x"
    response.close()
    for url in ("https://ega.or.th/emblem.png", "http://127.0.0.1/x", "file:///etc/passwd"):
        with pytest.raises(BaseException, match=r"local files only|not a file the letter names"):
            fetcher.fetch(url)


@pytest.mark.slow
def test_a_template_that_asks_for_the_network_stops_the_letter(tmp_path: Path) -> None:
    templates = tmp_path / "templates"
    shutil.copytree(TEMPLATES, templates)
    layout = templates / "letter" / "letter.html"
    layout.write_text(
        layout.read_text().replace("<body>", '<body><img src="https://ega.or.th/garuda.png">')
    )
    printer = LetterPrinter(Composer(load_campaign(CAMPAIGN), templates))
    with pytest.raises(LetterProblem, match=r"TH-50-agri: .*https://ega.or.th/garuda.png.*local"):
        printer.render(SETTINGS, CHIANG_MAI_AGRI, _invitation(printer), "invitation")


def test_the_letter_html_is_escaped(printer: LetterPrinter) -> None:
    hostile = replace(CHIANG_MAI_AGRI, salutation='เรียน <img src="https://x.example/">')
    html = printer.html(SETTINGS, hostile, _invitation(printer), "invitation")
    assert '<img src="https://x.example/">' not in html
    assert "เรียน &lt;img" in html


@pytest.mark.slow
def test_the_letter_tells_the_version_the_ledger_stored(
    make_ws, smtp_server: Mailhog, clock: FakeClock, tmp_path: Path
) -> None:
    """`letter_version` reads what the e-mail is composed from: the event of that SEQUENCE,
    its changes, its day, and the first letter's day for the reference."""
    ws = make_ws(SMTP_PORT=str(smtp_server.port))
    import_contacts(ws.engine, CONTACTS)
    campaign = ws.campaign
    before = letter_version(ws.ledger(), 0, campaign.event, campaign.timezone, SETTINGS)
    assert (before.dated, before.first_dated) == (date(2016, 11, 22), None)  # nothing stored
    send_round(ws, "invitation", only=["TH-50"])
    clock.advance(days=7)
    moved = make_ws(SMTP_PORT=str(smtp_server.port), MAILER_CAMPAIGN=str(_moved(tmp_path)))
    send_announcement(moved, cancel=False)
    ledger, zone = moved.ledger(), moved.campaign.timezone
    first = letter_version(ledger, 0, moved.campaign.event, zone, SETTINGS)
    assert (first.dated, first.first_dated, first.changes) == (FIRST_DAY, None, ())
    assert first.event.start.astimezone(zone).hour == 13  # the invitation's time, not the moved one
    update = letter_version(ledger, 1, moved.campaign.event, zone, SETTINGS)
    assert (update.dated, update.first_dated) == (date(2016, 11, 8), FIRST_DAY)
    assert [c.field for c in update.changes] == ["when"]
    printer = LetterPrinter(moved.composer)
    lines = [
        read_back(x) for x in pdf_lines(printer.render(SETTINGS, CHIANG_MAI_AGRI, update, "update"))
    ]
    assert "อ้างถึง หนังสือที่ สรอ ๐๑๐๐/ว ๑๒๓ ลงวันที่ ๑ พฤศจิกายน ๒๕๕๙" in lines
    assert "๘ พฤศจิกายน ๒๕๕๙" in lines
    assert _flat("เปลี่ยนเป็น วันอังคารที่ ๒๒ พฤศจิกายน ๒๕๕๙ เวลา ๑๕.๐๐ – ๑๘.๓๐ น.") in _flat(
        "".join(lines)
    )
