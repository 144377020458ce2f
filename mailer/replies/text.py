"""Reading incoming mail robustly: parts, charsets (Thai Outlook writes windows-874 or
TIS-620, sometimes undeclared), and the new text of a reply without its quoted history or
signature.

Bounded work: one hostile message must not hold up a sync. Every pattern here runs in time
linear in what it reads, and what it reads is capped (the limits below): an answer is at the
top of a reply, a calendar reply is a few kilobytes, a header a few hundred characters.
"""

from __future__ import annotations

import html
import re
from email.header import decode_header
from email.message import Message

from icalendar import Calendar

from mailer.redact import printable

MAX_BODY = 64_000  # characters of body text read (all text parts together)
MAX_LINE = 1_000  # a longer line is never an attribution ("On … wrote:") or a signature
MAX_NEW_TEXT = 8_000  # characters of new text searched for an answer
MAX_HEADER = 4_000  # characters of a header decoded (References: see `thread_header`)
MAX_THREAD_HEADER = 32_000  # characters of In-Reply-To / References searched for our ids
MAX_CALENDAR = 128_000  # bytes of one calendar part parsed; a reply is a few KB
MAX_CALENDARS = 4  # calendar parts read per message
MAX_EVIDENCE = 300  # characters of evidence kept

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
    """The plain-text body (or the HTML one, tags stripped), attachments ignored; at most
    `MAX_BODY` characters."""
    plain: list[str] = []
    rich: list[str] = []
    read = 0
    for part in message.walk():
        if read >= MAX_BODY:
            break
        if part.is_multipart() or part.get_content_disposition() == "attachment":
            continue
        if part.get_content_type() == "text/plain":
            plain.append(payload_text(part)[:MAX_BODY])
        elif part.get_content_type() == "text/html":
            rich.append(_strip_html(payload_text(part)[: MAX_BODY * 4])[:MAX_BODY])
        else:
            continue
        read += len((plain or rich)[-1])
    return "\n".join(plain or rich)[:MAX_BODY]


_TAG = re.compile(r"<[^<>]*>")  # stops at the next "<": linear however many "<" there are
_BREAK = re.compile(r"(?i)<(?:br\s*/?|/p|/div|/tr)>")
_HIDDEN = re.compile(r"(?i)<(script|style)\b")


def _strip_html(markup: str) -> str:
    """Tags out, line breaks kept, script and style dropped — in one pass per pattern (an
    unclosed <script> hides the rest, as a browser would)."""
    shown, at = [], 0
    lowered = markup.lower()
    for found in _HIDDEN.finditer(markup):
        if found.start() < at:
            continue
        shown.append(markup[at : found.start()])
        end = lowered.find(f"</{found.group(1).lower()}", found.end())
        if end < 0:
            at = len(markup)
            break
        close = lowered.find(">", end)
        at = len(markup) if close < 0 else close + 1
    shown.append(markup[at:])
    text = _BREAK.sub("\n", " ".join(shown))
    return html.unescape(_TAG.sub(" ", text))


def calendars(message: Message) -> tuple[list[Calendar], int]:
    """Every parsable iCalendar object in the message (text/calendar or an .ics file), and
    how many calendar parts were too large to read (more than `MAX_CALENDAR` bytes)."""
    found: list[Calendar] = []
    oversize = 0
    for part in message.walk():
        name = (part.get_filename() or "").lower()
        if part.get_content_type() in ("text/calendar", "application/ics") or name.endswith(".ics"):
            data = part.get_payload(decode=True)
            if isinstance(data, bytes) and len(data) > MAX_CALENDAR:
                oversize += 1
                continue
            if len(found) >= MAX_CALENDARS:
                break
            try:
                found.append(Calendar.from_ical(payload_text(part)))
            except (ValueError, IndexError, KeyError):
                continue
    return found, oversize


# Matched against a stripped line with fullmatch, so no leading or trailing \s* to backtrack
# over (`--\s*` then `\s*$` over a long run of spaces was quadratic).
_QUOTE_STARTS = re.compile(
    r"On .{0,200}wrote:|"  # Gmail, Apple Mail
    r"-{2,}[ \t]*Original Message[ \t]*-{2,}|"  # Outlook (plain)
    r"-{2,}[ \t]*ข้อความต้นฉบับ[ \t]*-{2,}|"
    r"From:\s.+|"  # Outlook's header block
    r"จาก:\s.+|ผู้ส่ง:\s.+|"
    r"เมื่อ .{0,200}(?:เขียนว่า|เขียน):|"
    r"_{10,}",
    re.IGNORECASE,
)
_SIGNATURE_STARTS = re.compile(
    r"--|ขอแสดงความนับถือ|ด้วยความนับถือ|ขอบคุณค่ะ|ขอบคุณครับ|Best regards,?|Regards,?|"
    r"Kind regards,?|Sincerely,?|Sent from my .*",
    re.IGNORECASE,
)


def new_text(body: str) -> str:
    """What the sender wrote: quoted lines, the quoted original and the signature removed;
    at most `MAX_NEW_TEXT` characters, read from at most `MAX_BODY` characters of body."""
    kept: list[str] = []
    size = 0
    for line in body[:MAX_BODY].replace("\r\n", "\n").split("\n"):
        stripped = line.strip()
        if len(stripped) <= MAX_LINE and (
            _QUOTE_STARTS.fullmatch(stripped) or _SIGNATURE_STARTS.fullmatch(stripped)
        ):
            break
        if stripped.startswith(">"):
            continue
        kept.append(line)
        size += len(line) + 1
        if size >= MAX_NEW_TEXT:
            break
    return "\n".join(kept).strip()[:MAX_NEW_TEXT]


def header_text(message: Message, name: str, limit: int = MAX_HEADER) -> str:
    """A header as text (at most `limit` characters of it), RFC 2047 words decoded
    (windows-874 ones too); never raises."""
    value = message.get(name)
    if value is None:
        return ""
    value = str(value)[:limit]
    try:
        words = decode_header(value)
    except (ValueError, IndexError, LookupError):
        return value
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


def thread_header(message: Message, name: str) -> str:
    """In-Reply-To or References as sent (Message-IDs are ASCII: nothing to decode)."""
    value = message.get(name)
    return "" if value is None else str(value)[:MAX_THREAD_HEADER]


def one_line(text: str, limit: int = MAX_EVIDENCE) -> str:
    """`text` as one printable line: what is not printable (CR, LF, ESC, bidi overrides,
    line separators, unassigned code points) becomes a space, runs of spaces one; cut to
    `limit` characters with "… (N characters)"."""
    shown = text[: limit * 8]
    if not shown.isprintable():
        shown = "".join(c if printable(c) else " " for c in shown)
    flat = " ".join(shown.split())
    if len(flat) <= limit:
        return flat
    return f"{flat[:limit]}… ({len(text):,} characters)"
