"""Reading messages back the way a mail client would."""

from __future__ import annotations

from email import message_from_bytes, policy
from email.header import decode_header, make_header
from email.message import EmailMessage
from email.parser import BytesHeaderParser

from icalendar import Calendar

EXPECTED_TREE = [
    (0, "multipart/mixed", None, None),
    (1, "multipart/alternative", None, None),
    (2, "text/plain", None, "base64"),
    (2, "text/html", None, "base64"),
    (2, "text/calendar", None, "base64"),
    (1, "application/ics", "attachment", "base64"),
]


def parse(raw: bytes) -> EmailMessage:
    message = message_from_bytes(raw, policy=policy.default)
    assert isinstance(message, EmailMessage)
    return message


def raw_headers(raw: bytes) -> list[tuple[str, str]]:
    """Top-level headers exactly as on the wire (name, unfolded raw value)."""
    return list(BytesHeaderParser(policy=policy.compat32).parsebytes(raw).items())


def decoded(raw_value: str) -> str:
    """RFC 2047 decoding as mail clients do it (adjacent encoded words joined)."""
    return str(make_header(decode_header(raw_value)))


def tree(message: EmailMessage) -> list[tuple[int, str, str | None, str | None]]:
    shape = []

    def walk(part: EmailMessage, depth: int) -> None:
        cte = part.get("Content-Transfer-Encoding")
        shape.append((depth, part.get_content_type(), part.get_content_disposition(), cte))
        if part.is_multipart():
            for child in part.iter_parts():
                walk(child, depth + 1)  # type: ignore[arg-type]

    walk(message, 0)
    return shape


def part(message: EmailMessage, content_type: str) -> EmailMessage:
    for candidate in message.walk():
        if candidate.get_content_type() == content_type:
            return candidate  # type: ignore[return-value]
    raise AssertionError(f"no {content_type} part")


def text_of(message: EmailMessage, content_type: str) -> str:
    return str(part(message, content_type).get_content())


def calendar_of(message: EmailMessage) -> Calendar:
    return Calendar.from_ical(part(message, "text/calendar").get_payload(decode=True))
