"""Hardening #7: one hostile message must not hold up a sync. What is examined is capped,
and every pattern is linear in it; the timeout is generous (this asserts no timing)."""

from __future__ import annotations

from email.message import EmailMessage

import pytest

from mailer.replies import text
from mailer.replies.classify import classify

MEGABYTE = 1_000_000


def _message(body: str, subtype: str = "plain", **headers: str) -> bytes:
    """Written by hand: the standard library's own header folding is slow on such input."""
    fields = {"From": "someone@else.example", "Subject": "Re: seminar", **headers}
    head = "".join(f"{name.replace('_', '-')}: {value}\r\n" for name, value in fields.items())
    return (
        f"{head}MIME-Version: 1.0\r\nContent-Type: text/{subtype}; charset=utf-8\r\n"
        "Content-Transfer-Encoding: 8bit\r\n\r\n"
    ).encode() + body.encode()


HOSTILE_BODIES = {
    "a run of '--' and spaces": "--" + " " * MEGABYTE + "x",
    "'-- ' repeated": "-- " * (MEGABYTE // 3),
    "one line of spaces then a signature": " " * MEGABYTE + "--",
    "'ตำแหน่ง' and spaces": ("มอบหมาย ตำแหน่ง" + " " * 200) * (MEGABYTE // 215),
    "'โทร' and spaces": ("ส่งผู้แทน โทร" + " " * 300) * (MEGABYTE // 313),
    "'On' without 'wrote:'": "On " * (MEGABYTE // 3),
    "'<a@' without '>'": "<" + "a@" * (MEGABYTE // 2),
    "decline clauses": "ไม่สะดวก" * (MEGABYTE // 8),
}


@pytest.mark.timeout(20)
@pytest.mark.parametrize("body", HOSTILE_BODIES.values(), ids=HOSTILE_BODIES.keys())
def test_a_megabyte_of_hostile_text_is_read_in_bounded_work(body: str) -> None:
    assert len(text.new_text(body)) <= text.MAX_NEW_TEXT
    result = classify(_message(body))
    assert result.kind == "human_reply"
    assert len(result.evidence) <= text.MAX_EVIDENCE + 40


@pytest.mark.timeout(20)
@pytest.mark.parametrize(
    "markup",
    ["<script" * (MEGABYTE // 7), "<" * MEGABYTE, "<p>ยินดีเข้าร่วม</p><style>" + "x" * MEGABYTE],
    ids=["unclosed scripts", "a megabyte of '<'", "an unclosed style"],
)
def test_hostile_html_is_read_in_bounded_work(markup: str) -> None:
    result = classify(_message(markup, "html"))
    assert result.kind == "human_reply"


def test_html_is_still_read() -> None:
    page = "<p>ยินดีเข้าร่วม<br>ครับ</p><script>alert('ไม่สะดวก')</script><style>p{}</style>"
    assert classify(_message(page, "html")).outcome == "accepted"


@pytest.mark.timeout(20)
@pytest.mark.parametrize(
    "headers",
    [
        {"From": "(" * 5000 + "a@b.example"},
        {"From": "a@" * 50_000},
        {"Subject": "=?utf-8?q?a?= " * 70_000},
        {"References": "<a@b> " * 150_000},
        {"Subject": "Undeliverable", "X_Filler": "x"},
    ],
    ids=["nested comments", "a@ repeated", "encoded words", "references", "bounce-like"],
)
def test_hostile_headers_are_read_in_bounded_work(headers: dict[str, str]) -> None:
    result = classify(_message("ยินดีเข้าร่วม\n" + "-- " * (MEGABYTE // 3), **headers))
    assert len(result.sender) <= 254
    assert len(result.subject) <= text.MAX_LINE + 40


@pytest.mark.slow
def test_the_examined_text_is_capped() -> None:
    long_body = "ยินดีเข้าร่วม\n" + "x" * (2 * MEGABYTE)
    assert len(text.new_text(long_body)) <= text.MAX_NEW_TEXT
    message = EmailMessage()
    message.set_content(long_body)
    message.add_alternative("<p>" + "y" * MEGABYTE + "</p>", subtype="html")
    assert len(text.body_text(message)) <= text.MAX_BODY
    assert classify(message.as_bytes()).outcome == "accepted"  # the answer is at the top
