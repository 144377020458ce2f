"""Hardening #15: nothing in our letters that spam filters count as mixed-charset text.

rspamd's R_MIXED_CHARSET (chartable module, Debian's rspamd 3.4) scores each word of each
text part, the subject and the From name, after Unicode NFKC normalisation and ICU word
breaking. A word of at most 10 characters gets one point per non-spacing mark, Latin-1 or
Latin Extended letter (capped at 4), 0.25 for a letter of a non-Latin script right after a
digit inside a word, and points for a Latin word switching to a Latin look-alike letter
(Cyrillic "а"). The part's score is the mean over its words; × 5.0 is the symbol's weight.

Thai vowel and tone marks are non-spacing marks, so Thai text itself scores ~0.7 a word
(3.5–3.9 points on our letters, measured with `python -m bench.spam`): that is not ours to
change. What is ours is everything else that would add to it, and the invisible characters
that break words where no reader sees a break. The letters are checked here as rendered,
for every office of contacts.csv and every kind of letter.
"""

from __future__ import annotations

import html
import re
import unicodedata
from datetime import timedelta
from pathlib import Path

import pytest

from mailer.campaign import load_campaign
from mailer.compose import Composer
from mailer.invitees.importing import read_contacts
from mailer.versions import Change, Snapshot, diff
from tests.conftest import CAMPAIGN, ROOT, TEMPLATES

KINDS = ("invitation", "followup", "reminder", "update", "cancel")
THAI_LETTER = "\u0e01-\u0e30\u0e32\u0e33\u0e40-\u0e46"  # consonants, vowels written in line
DIGIT = "0-9\u0e50-\u0e59"
# Letters and marks rspamd counts as diacritics (Latin-1 Supplement, Latin Extended-A/B,
# Latin Extended Additional, Combining Diacritical Marks), e.g. "é" typed in a name.
LATIN_DIACRITIC = re.compile(r"[\u00c0-\u024f\u1e00-\u1eff\u0300-\u036f]")
UNUSUAL = re.compile(r"[^\t\n\r\x20-\x7e\u0e01-\u0e3a\u0e3f-\u0e5b]")
THAI_MARK = "\u0e31\u0e34-\u0e3a\u0e47-\u0e4e"  # vowels above/below, tone marks
# rspamd adds 0.25 when a non-Latin letter follows digits that follow anything in a word.
DIGIT_THEN_THAI = re.compile(rf"(?:[^\W\d_]|[{THAI_MARK}])[{DIGIT}]+[{THAI_LETTER}]")
# Not scored by rspamd 3.4 (a Thai letter is not a Latin look-alike), but the source letter
# always leaves a space there ("ไปรษณีย์อิเล็กทรอนิกส์ thannop…"), and so do we.
THAI_LATIN_JOINED = re.compile(rf"[{THAI_LETTER}{THAI_MARK}][A-Za-z]|[A-Za-z][{THAI_LETTER}]")


def slips(text: str) -> list[str]:
    """What in `text` adds to R_MIXED_CHARSET beyond Thai itself, or breaks a word unseen."""
    found = []
    for match in UNUSUAL.finditer(text):  # the rest is ASCII or Thai: fine one by one
        char, i = match.group(), match.start()
        name = unicodedata.name(char, f"U+{ord(char):04X}")
        if _invisible(char):
            found.append(f"invisible {name} at {i}")
        elif LATIN_DIACRITIC.match(char):
            found.append(f"Latin diacritic {name} at {i}")
        elif unicodedata.category(char).startswith("L"):
            found.append(f"letter {name} at {i}")  # neither Thai nor Latin: Bengali, Cyrillic…
    for pattern, what in (
        (DIGIT_THEN_THAI, "digits inside a word"),
        (THAI_LATIN_JOINED, "Thai and Latin joined"),
    ):
        found += [f"{what}: {m.group()!r} at {m.start()}" for m in pattern.finditer(text)]
    return found


def _invisible(char: str) -> bool:
    return unicodedata.category(char) == "Cf"  # ZWSP, ZWJ, word joiner, BOM, soft hyphen…


def visible_text(page: str) -> str:
    """The HTML part as a filter's tokenizer reads it: the text between the tags."""
    page = re.sub(r"<style\b.*?</style>", " ", page, flags=re.S | re.I)
    return html.unescape(re.sub(r"<[^>]*>", "", page))


@pytest.mark.parametrize(
    "bad",
    [
        "งาน\u200bสัมมนา",  # a zero-width space, invisible
        "ขอ\u200dเชิญ",
        "ประจำปี๒๕๕๙ขึ้น",  # digits inside a Thai word: 0.25 in rspamd
        "ห้องA1ประชุม",
        "อีเมลthannop",
        "คุณRené",
        "ออডিทอเรียม",  # the seed letter's two Bengali letters
        "еga.or.th",  # Cyrillic е
    ],
)
def test_the_check_sees_what_filters_count(bad: str) -> None:
    assert slips(f"เรียน ท่าน {bad} งาน")


def test_the_letters_own_shapes_pass() -> None:
    good = "ประจำปี ๒๕๕๙ (สรอ.) เวลา ๑๓.๐๐ – ๑๖.๓๐ น. โทร. ๐๘ ๑๘๔๕ ๑๔๕๙ thannop.sirithamwilai@ega.or.th TH-50"
    assert slips(good) == []


@pytest.fixture(scope="module")
def letters() -> list[tuple[str, str, str, str]]:
    campaign = load_campaign(CAMPAIGN)
    composer = Composer(campaign, TEMPLATES)
    event = campaign.event
    moved = Snapshot(
        event.title,
        event.summary,
        (event.start + timedelta(hours=2)).isoformat(),
        (event.end + timedelta(hours=2)).isoformat(),
        event.venue + " ชั้น ๒",
    )
    changes: list[Change] = diff(Snapshot.of(event), moved, campaign.timezone)
    out = []
    for invitee in read_contacts(ROOT / "contacts.csv").records:
        for kind in KINDS:
            letter = composer.letter(invitee, kind, {"changes": changes})
            out.append(
                (f"{kind} to {invitee.invitee_id}", letter.subject, letter.text, letter.html)
            )
    return out


@pytest.mark.slow
def test_no_letter_adds_to_mixed_charset_beyond_thai(
    letters: list[tuple[str, str, str, str]],
) -> None:
    problems: dict[str, list[str]] = {}
    for where, subject, text, page in letters:
        for part, value in (("subject", subject), ("text", text), ("html", visible_text(page))):
            if found := slips(value):
                problems.setdefault(f"{where}, {part}", found[:3])
        hidden = [m.group() for m in UNUSUAL.finditer(page) if _invisible(m.group())]
        if hidden:  # in the markup, where visible_text() does not look
            problems.setdefault(f"{where}, html source", [ascii(c) for c in hidden[:3]])
    assert len(letters) == 532 * len(KINDS)
    assert problems == {}, list(problems.items())[:10]


def test_the_sender_name_is_clean_too() -> None:
    campaign = load_campaign(CAMPAIGN)
    assert slips(campaign.sender.name) == []
    assert slips(campaign.coordinator.name) == []


def test_the_benchmark_reads_the_words_rspamd_logs(tmp_path: Path) -> None:
    from bench.spam import WORD_LOG, WordReport

    line = (
        "2026-12-01 11:44:01 #18741(normal) <3aab9f>; chartable; "
        "rspamd_chartable_process_word_utf: word สํานักงาน, badness: 2.00"
    )
    match = WORD_LOG.search(line)
    assert match is not None
    assert match[1] == "3aab9f"
    assert float(match[3]) == 2.0
    words = [(match[2], 2.0), ("café", 1.0), ("๒๕๕๙", 0.0), ("ไทย๕๐ไทย", 0.25), ("เรื่อง", 2.0)]
    report = WordReport(words)
    assert report.ours == [("café", 1.0), ("ไทย๕๐ไทย", 0.25)]
    assert report.thai_marks == 4.0
