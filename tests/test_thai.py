"""Buddhist-Era dates, Thai digits, and letters of the wrong script."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from hypothesis import given
from hypothesis import strategies as st

from mailer.thai import script_slips, thai_date, thai_digits, thai_short_date, thai_when

BANGKOK = ZoneInfo("Asia/Bangkok")
# The seed letter's line, as typed: two Bengali letters (U+09A1, U+09BF) in "ออดิทอเรียม".
SEED_LINE = "ณ ห้องออডিทอเรียม อาคารทรงกลม ศูนย์ประชุมวายุภักษ์"


def test_the_letters_date_line_from_a_utc_value() -> None:
    start = datetime(2016, 11, 22, 6, 0, tzinfo=UTC)
    end = datetime(2016, 11, 22, 9, 30, tzinfo=UTC)
    assert thai_when(start, end, BANGKOK) == "วันอังคารที่ ๒๒ พฤศจิกายน ๒๕๕๙ เวลา ๑๓.๐๐ – ๑๖.๓๐ น."
    assert thai_short_date(start, BANGKOK) == "๒๒ พ.ย. ๒๕๕๙"


def test_the_date_is_the_bangkok_date_not_the_utc_date() -> None:
    late = datetime(2016, 11, 21, 18, 30, tzinfo=UTC)  # 01:30 on the 22nd in Bangkok
    assert thai_date(late, BANGKOK) == "วันอังคารที่ ๒๒ พฤศจิกายน ๒๕๕๙"


def test_thai_digits() -> None:
    assert thai_digits("08 1845 1459") == "๐๘ ๑๘๔๕ ๑๔๕๙"


@given(st.text(alphabet=st.characters(codec="utf-8")))
def test_thai_digits_changes_only_digits(text: str) -> None:
    converted = thai_digits(text)
    assert len(converted) == len(text)
    assert all(a == b or (a in "0123456789") for a, b in zip(text, converted, strict=True))


def test_the_bengali_letters_of_the_seed_letter_are_found() -> None:
    slips = script_slips(SEED_LINE, "letter")
    assert [(s.char, s.name) for s in slips] == [
        ("\u09a1", "BENGALI LETTER DDA"),
        ("\u09bf", "BENGALI VOWEL SIGN I"),
    ]
    assert "retype the word in Thai" in slips[0].describe()
    assert script_slips(SEED_LINE.replace("ডি", "ดิ"), "letter") == []


def test_latin_digits_and_punctuation_are_fine() -> None:
    assert script_slips("สรอ. (EGA) โทร. 02-612-6000 — “ทดสอบ” ๒๕๕๙", "x") == []
