"""Property: any Thai/English office name survives CSV → DB → template → MIME → parse
unchanged, and no name can add a header."""

from __future__ import annotations

import csv
import html
import io
import tempfile
import unicodedata
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from markupsafe import escape

from mailer.campaign import load_campaign
from mailer.compose import Composer, OutgoingMail
from mailer.db import open_database
from mailer.delivery.transport import _starts_a_line_with_dot
from mailer.invitees.importing import COLUMNS, InviteeRecord, import_contacts
from mailer.rounds.send import select_invitees
from tests.conftest import CAMPAIGN, TEMPLATES
from tests.helpers import calendar_of, decoded, parse, raw_headers, text_of

THAI = "".join(chr(c) for c in range(0x0E01, 0x0E3B)) + "".join(
    chr(c) for c in range(0x0E40, 0x0E5C)
)
ALPHABET = THAI + "abcxyzABCXYZ0123456789 \"',;:<>@()[]\\.-_=?&"
WORD = st.text(alphabet=ALPHABET.replace(" ", ""), min_size=1, max_size=20)
NAME = st.lists(WORD, min_size=1, max_size=6).map(" ".join)
NOW = datetime(2016, 11, 1, 2, 0, tzinfo=UTC)
EXPECTED_HEADERS = {
    "Return-Path", "From", "To", "Reply-To", "Subject", "Date", "Message-ID",
    "X-Auto-Response-Suppress", "MIME-Version", "Content-Type", "Content-Language",
}  # fmt: skip
COMPOSER = Composer(load_campaign(CAMPAIGN), TEMPLATES)


def _csv(name: str) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(COLUMNS)
    writer.writerow(["TH-50-x", "TH-50", "เชียงใหม่", "x", name, f"เรียน {name}", "a@x.example", ""])
    return buffer.getvalue()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(name=NAME)
@pytest.mark.slow
def test_any_name_survives_and_cannot_inject_headers(name: str) -> None:
    name = unicodedata.normalize("NFC", name).strip()
    if not name:
        return
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "contacts.csv"
        path.write_text(_csv(name), encoding="utf-8")
        engine = open_database(f"sqlite:///{folder}/m.db")
        try:
            report = import_contacts(engine, path)
            assert report.errors == [], report.errors
            (invitee,) = select_invitees(engine)
        finally:
            engine.dispose()
    assert invitee.organisation == name
    message = COMPOSER.compose(OutgoingMail(invitee, "invitation", "<p@t>", 0), NOW)
    headers = raw_headers(message.data)
    assert {k for k, _ in headers} <= EXPECTED_HEADERS
    assert sorted(k for k, _ in headers) == sorted({k for k, _ in headers})  # none twice
    to = decoded(dict(headers)["To"])
    assert to.endswith(" <a@x.example>")
    parsed = parse(message.data)
    assert parsed["To"].addresses[0].addr_spec == "a@x.example"
    assert len(parsed["To"].addresses) == 1
    assert f"เรียน {name}" in text_of(parsed, "text/plain")
    page = text_of(parsed, "text/html")
    assert str(escape(name)) in page  # autoescaped: a name can never become markup
    assert name in html.unescape(page)
    (event,) = calendar_of(parsed).walk("VEVENT")
    assert event["ATTENDEE"].params["CN"] == name.replace("\\", "/")  # see display_name()
    assert event["ATTENDEE"].params["CUTYPE"] == "INDIVIDUAL"


@given(st.sampled_from(["\r\n", "\n", "\r", "\u2028", "\x0b"]), NAME, NAME)
@settings(max_examples=20, deadline=None)
@pytest.mark.slow
def test_line_breaks_in_names_are_refused_at_import(brk: str, left: str, right: str) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "contacts.csv"
        path.write_text(
            _csv(f"{left}{brk}Bcc: victim@evil.example{brk}{right}"), encoding="utf-8", newline=""
        )
        engine = open_database(f"sqlite:///{folder}/m.db")
        try:
            report = import_contacts(engine, path)
            assert not report.written
            assert any("line break" in str(p) for p in report.errors)
            assert select_invitees(engine) == []
        finally:
            engine.dispose()


def test_a_name_with_a_line_break_cannot_reach_a_header_even_past_import() -> None:
    evil = InviteeRecord("X-1", "ชื่อ\r\nBcc: victim@evil.example", "เรียน x", ("a@x.example",))
    message = COMPOSER.compose(OutgoingMail(evil, "invitation", "<p@t>", 0), NOW)
    assert "Bcc" not in {k for k, _ in raw_headers(message.data)}
    assert b"victim@evil.example" not in message.data.split(b"\r\n\r\n", 1)[0]


@given(st.text(min_size=1, max_size=300).filter(lambda t: t.strip()))
@settings(max_examples=200, deadline=None)
def test_any_subject_is_encoded_within_rfc2047_limits(text: str) -> None:
    from mailer.compose import mime

    line = mime.unstructured("Subject", text)
    assert line.isascii()
    assert line.endswith(b"\r\n")
    folded = line.decode("ascii")[:-2]
    assert all(len(part) <= 78 for part in folded.split("\r\n"))
    for word in folded.removeprefix("Subject: ").split("\r\n "):
        assert len(word) <= 75 or (word.isascii() and "=?" not in word)
    assert decoded(folded.removeprefix("Subject: ")) == mime.one_line(text)


@settings(max_examples=500, deadline=None)
@given(
    data=st.binary(max_size=200)
    | st.lists(st.sampled_from([b".", b"\r\n", b"a", b"\n"])).map(b"".join)
)
@pytest.mark.slow
def test_the_dot_check_agrees_with_a_plain_search(data: bytes) -> None:
    assert _starts_a_line_with_dot(data) == (data.startswith(b".") or b"\n." in data)
