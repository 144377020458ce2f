"""Reading messages back the way a mail client would."""

from __future__ import annotations

from email import message_from_bytes, policy
from email.header import decode_header, make_header
from email.message import EmailMessage
from email.parser import BytesHeaderParser
from pathlib import Path

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


def write_synthetic_contacts(path: Path, count: int) -> None:
    """`count` made-up offices (SYN-00000 …) on a reserved example domain."""
    import csv

    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["invitee_id", "organisation", "salutation", "email"])
        for n in range(count):
            name = f"สำนักงานทดสอบที่ {n}"
            writer.writerow(
                [f"SYN-{n:05d}", name, f"เรียน หัวหน้า{name}", f"o{n:05d}@synthetic.example"]
            )


def campaign_due_now(source: Path, target: Path) -> Path:
    """The campaign moved to 2030 with its follow-up round due a minute ago (real clock)."""
    from datetime import UTC, datetime, timedelta

    due = (datetime.now(UTC) - timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    target.write_text(
        source.read_text(encoding="utf-8")
        .replace("2016-11-22T13:00:00", "2030-11-22T13:00:00")
        .replace("2016-11-22T16:30:00", "2030-11-22T16:30:00")
        .replace("days_before = 7\ntime = 09:00:00\n", f"at = {due}\n"),
        encoding="utf-8",
    )
    return target
