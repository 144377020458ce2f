"""Reading incoming mail robustly: parts, charsets (Thai Outlook writes windows-874 or
TIS-620, sometimes undeclared), and the new text of a reply without its quoted history or
signature."""

from __future__ import annotations

import html
import re
from email.header import decode_header
from email.message import Message

from icalendar import Calendar

_THAI_FALLBACK = "cp874"  # windows-874, a superset of TIS-620
_ALIASES = {"tis-620": "cp874", "tis620": "cp874", "windows-874": "cp874", "x-windows-874": "cp874"}


def payload_text(part: Message) -> str:
    """Decode a text part by its declared charset, falling back to UTF-8 then windows-874;
    a bad byte becomes U+FFFD, never an exception."""
    data = part.get_payload(decode=True)
    if not isinstance(data, bytes):
        return str(part.get_payload() or "")
    declared = (part.get_content_charset() or "").lower()
    for charset in [_ALIASES.get(declared, declared), "utf-8"]:
        if not charset:
            continue
        try:
            return data.decode(charset)
        except (LookupError, UnicodeDecodeError):
            continue
    return data.decode(_THAI_FALLBACK, "replace")  # a bad byte becomes U+FFFD


def body_text(message: Message) -> str:
    """The plain-text body (or the HTML one, tags stripped), attachments ignored."""
    plain, rich = [], []
    for part in message.walk():
        if part.is_multipart() or part.get_content_disposition() == "attachment":
            continue
        if part.get_content_type() == "text/plain":
            plain.append(payload_text(part))
        elif part.get_content_type() == "text/html":
            rich.append(_strip_html(payload_text(part)))
    return "\n".join(plain or rich)


def _strip_html(markup: str) -> str:
    markup = re.sub(r"(?is)<(script|style)\b.*?</\1>", " ", markup)
    markup = re.sub(r"(?i)<br\s*/?>|</p>|</div>|</tr>", "\n", markup)
    return html.unescape(re.sub(r"<[^>]+>", " ", markup))


def calendars(message: Message) -> list[Calendar]:
    """Every parsable iCalendar object in the message (text/calendar or an .ics file)."""
    found = []
    for part in message.walk():
        name = (part.get_filename() or "").lower()
        if part.get_content_type() in ("text/calendar", "application/ics") or name.endswith(".ics"):
            try:
                found.append(Calendar.from_ical(payload_text(part)))
            except (ValueError, IndexError, KeyError):
                continue
    return found


_QUOTE_STARTS = re.compile(
    r"^\s*(?:"
    r"On .{0,200}wrote:|"  # Gmail, Apple Mail
    r"-{2,}\s*Original Message\s*-{2,}|"  # Outlook (plain)
    r"-{2,}\s*ข้อความต้นฉบับ\s*-{2,}|"
    r"From:\s.+|"  # Outlook's header block
    r"จาก:\s.+|ผู้ส่ง:\s.+|"
    r"เมื่อ .{0,200}(?:เขียนว่า|เขียน):|"
    r"_{10,}"
    r")\s*$",
    re.IGNORECASE,
)
_SIGNATURE_STARTS = re.compile(
    r"^\s*(?:--\s*|ขอแสดงความนับถือ|ด้วยความนับถือ|ขอบคุณค่ะ|ขอบคุณครับ|Best regards,?|Regards,?|"
    r"Kind regards,?|Sincerely,?|Sent from my .*)\s*$",
    re.IGNORECASE,
)


def new_text(body: str) -> str:
    """What the sender wrote: quoted lines, the quoted original and the signature removed."""
    kept = []
    for line in body.replace("\r\n", "\n").split("\n"):
        if _QUOTE_STARTS.match(line) or _SIGNATURE_STARTS.match(line):
            break
        if line.lstrip().startswith(">"):
            continue
        kept.append(line)
    return "\n".join(kept).strip()


def header_text(message: Message, name: str) -> str:
    """A header as text, RFC 2047 words decoded (windows-874 ones too); never raises."""
    value = message.get(name)
    if value is None:
        return ""
    try:
        words = decode_header(str(value))
    except (ValueError, IndexError, LookupError):
        return str(value)
    parts = []
    for chunk, charset in words:
        if isinstance(chunk, str):
            parts.append(chunk)
            continue
        charset = _ALIASES.get((charset or "").lower(), charset or "utf-8")
        try:
            parts.append(chunk.decode(charset))
        except (LookupError, UnicodeDecodeError):
            parts.append(chunk.decode(_THAI_FALLBACK, "replace"))
    return "".join(parts)
