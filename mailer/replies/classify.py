"""What an incoming message is, in the order of docs/design.md §5: bounce → calendar reply →
auto-reply → human reply. Pure: bytes in, a `Classification` out (matching it to an office,
and whether it may answer for that office, is `matching.py`'s job). Anything unsure is
`needs_review`, with the evidence — never a guess.

Bounded work (see `text.py`): headers, bodies and calendar parts are read up to a limit, a
message nested deeper than `MAX_DEPTH` is not parsed at all, and flufl.bounce sees at most
`MAX_BOUNCE` bytes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from email import message_from_bytes
from email.message import Message
from email.parser import BytesHeaderParser
from email.utils import parseaddr
from typing import Any

from flufl.bounce import all_failures

from mailer.replies import wording
from mailer.replies.statuses import ANSWERS, Attendance, NoAnswer, Outcome
from mailer.replies.text import (
    MAX_LINE,
    body_text,
    calendars,
    header_text,
    new_text,
    one_line,
    thread_header,
)

PARTSTAT = {
    "ACCEPTED": Attendance.accepted,
    "DECLINED": Attendance.declined,
    "TENTATIVE": Attendance.tentative,
    "DELEGATED": Attendance.representative,
}
UNSURE = Attendance.needs_review
MAX_DEPTH = 50  # parts inside parts; a real reply has two or three levels
MAX_BOUNCE = 200_000  # bytes of a bounce given to flufl.bounce (the report comes first;
#                        a bounce of our ~34 KB invitation with the original is ~50 KB)
_AUTO_SUBJECT = re.compile(
    r"^\s*(?:automatic reply|auto(?:matic)?[- ]?reply|auto[- ]?response|out of (?:the )?office|"
    r"ooo\b|ตอบกลับอัตโนมัติ|การตอบกลับอัตโนมัติ|ไม่อยู่ที่สำนักงาน|autosvar|abwesenheit)",
    re.IGNORECASE,
)
_BOUNCE_SUBJECT = re.compile(
    r"(?:undeliver|delivery status notification|mail delivery (?:failed|subsystem)|"
    r"returned mail|failure notice|delivery failure|ไม่สามารถส่ง)",
    re.IGNORECASE,
)
# No "@" or "<" in the left part: each scan ends at the next "<", ">", "@" or space (linear).
_MSGID = re.compile(r"<[^<>\s@]{1,250}@[^<>\s@]{1,250}>")
_BYTES_MSGID = re.compile(rb"<[^<>\s@]{1,250}@[^<>\s@]{1,250}>")
_ADDRESS = re.compile(r"[^\s<>()\"',;:@]{1,64}@[^\s<>()\"',;:@]{1,255}")
_CONTAINER = re.compile(rb"(?i)content-type:[ \t\r\n]*(?:multipart|message)/")
_DMARC_FAIL = re.compile(r"\bdmarc[ \t]*=[ \t]*fail\b[^;]{0,200}", re.IGNORECASE)
_HEADER_FROM = re.compile(r"header\.from[ \t]*=[ \t]*([^\s;()]{1,255})", re.IGNORECASE)


class Unreadable(ValueError):
    """A message we do not parse (nested too deep); it is kept raw and shown for review."""


@dataclass
class Classification:
    kind: str  # bounce | calendar_reply | auto_reply | human_reply | unreadable
    outcome: Outcome  # an answer, bounced, needs_review, or no answer (auto_reply,
    #                   bounce_temporary)
    evidence: str
    sender: str = ""
    subject: str = ""
    message_id: str = ""
    thread_ids: list[str] = field(default_factory=list)  # In-Reply-To, References
    uid: str | None = None
    sequence: int | None = None
    failed_recipients: list[str] = field(default_factory=list)
    representative: dict[str, str] = field(default_factory=dict)  # name, position, phone
    attendee: str = ""  # the ATTENDEE whose PARTSTAT was read (a calendar reply)
    quoted_ids: list[str] = field(default_factory=list)  # Message-IDs inside a bounce
    dmarc_failed: str = ""  # the From domain a receiving server says failed DMARC


def parse(raw: bytes) -> Message:
    """compat32: header access is several times faster than policy.default's, and every
    header we read goes through `header_text`, which decodes it. Raises `Unreadable` for a
    message whose parts are nested deeper than `MAX_DEPTH` (the standard parser recurses
    once per level and would hit Python's recursion limit)."""
    if len(_CONTAINER.findall(raw)) <= MAX_DEPTH:  # cannot be deeper than its containers
        return message_from_bytes(raw)
    try:
        message = message_from_bytes(raw)
    except RecursionError:
        raise Unreadable(f"its parts are nested more than {MAX_DEPTH} levels deep") from None
    if (depth := _depth(message)) > MAX_DEPTH:
        raise Unreadable(f"its parts are nested {depth} levels deep (more than {MAX_DEPTH})")
    return message


def _depth(message: Message) -> int:
    deepest, todo = 0, [(message, 1)]
    while todo:
        part, depth = todo.pop()
        deepest = max(deepest, depth)
        payload = part.get_payload() if part.is_multipart() else None
        if isinstance(payload, list):
            todo.extend((child, depth + 1) for child in payload if isinstance(child, Message))
    return deepest


def headers(raw: bytes) -> Message:
    """Only the top-level headers: never recurses, whatever the body holds."""
    return BytesHeaderParser().parsebytes(raw)


def sender_address(value: str) -> str:
    """The address in a From header, lower-cased; a hostile one (nested comments, a
    megabyte of "a@") gives "" or the first thing shaped like an address, never an error."""
    value = value[:MAX_LINE]
    try:
        address = parseaddr(value)[1]
    except (RecursionError, ValueError, IndexError):
        address = ""
    if "@" not in address:
        found = _ADDRESS.search(value)
        address = found.group(0) if found else ""
    return one_line(address.lower(), 254)


def classify(raw: bytes) -> Classification:
    """The reading of one message; its evidence is one printable line."""
    message = parse(raw)
    found = _classify(message, raw)
    return replace(found, evidence=one_line(found.evidence))


def _dmarc_failed(message: Message, sender: str) -> str:
    """The sender's domain when a receiving server's Authentication-Results says DMARC
    failed for it. Only "fail" is read: a forger can add a "pass", which changes nothing."""
    domain = sender.rpartition("@")[2]
    for value in (message.get_all("Authentication-Results") or [])[:10]:
        for found in _DMARC_FAIL.finditer(str(value)[: MAX_LINE * 4]):
            named = _HEADER_FROM.search(found.group(0))
            if domain and (named is None or named.group(1).lower() == domain):
                return domain
    return ""


def _classify(message: Message, raw: bytes) -> Classification:
    sender = sender_address(header_text(message, "From"))
    base = {
        "sender": sender,
        "dmarc_failed": _dmarc_failed(message, sender),
        "subject": one_line(header_text(message, "Subject"), MAX_LINE),
        "message_id": header_text(message, "Message-ID", 998).strip(),
        "thread_ids": _MSGID.findall(
            thread_header(message, "In-Reply-To") + " " + thread_header(message, "References")
        ),
    }
    return (
        _bounce(message, raw, base)
        or _calendar_reply(message, base)
        or _auto_reply(message, base)
        or _human_reply(message, base)
    )


def _bounce(message: Message, raw: bytes, base: dict[str, Any]) -> Classification | None:
    looks_like = (
        message.get_content_type() == "multipart/report"
        or bool(_BOUNCE_SUBJECT.search(base["subject"]))
        or base["sender"].startswith(("mailer-daemon@", "postmaster@", "mail-daemon@"))
        or b"message/delivery-status" in raw
    )
    null_sender = header_text(message, "Return-Path").strip() == "<>"  # also autoresponders
    if not (looks_like or null_sender):  # flufl.bounce's ~40 detectors are slow
        return None
    report = message if len(raw) <= MAX_BOUNCE else parse(raw[:MAX_BOUNCE])
    try:
        temporary, permanent = all_failures(report)
    except Exception:
        temporary, permanent = frozenset(), frozenset()
    if not (temporary or permanent or looks_like):
        return None
    # The original message travels inside the bounce: its Message-ID names our delivery.
    quoted = [
        m.decode("ascii", "replace") for m in dict.fromkeys(_BYTES_MSGID.findall(raw[:MAX_BOUNCE]))
    ]
    quoted = [m for m in quoted if m != base["message_id"]][:50]
    addresses = [
        one_line(a.decode("utf-8", "replace").lower(), 254) for a in (permanent or temporary)
    ][:20]
    listed = ", ".join(addresses)
    if permanent:
        return Classification(
            "bounce", Attendance.bounced, f"permanent failure for {listed}",
            failed_recipients=addresses, quoted_ids=quoted, **base,
        )  # fmt: skip
    if temporary:
        return Classification(
            "bounce", NoAnswer.bounce_temporary, f"temporary failure for {listed}",
            failed_recipients=addresses, quoted_ids=quoted, **base,
        )  # fmt: skip
    return Classification(
        "bounce", UNSURE, "looks like a bounce but names no failed address",
        quoted_ids=quoted, **base,
    )  # fmt: skip


def _calendar_reply(message: Message, base: dict[str, Any]) -> Classification | None:
    found, oversize = calendars(message)
    for calendar in found:
        method = str(calendar.get("METHOD", "")).upper()
        if method not in ("REPLY", "COUNTER"):
            continue
        events = calendar.walk("VEVENT")
        if not events:
            continue
        return _calendar_answer(method, events[0], base)
    if oversize:
        evidence = (
            f"{oversize} calendar part(s) too large to read (over 128 KB); a reply is a few KB"
        )
        return Classification("calendar_reply", UNSURE, evidence, **base)
    return None


def _calendar_answer(method: str, event: Any, base: dict[str, Any]) -> Classification:
    uid = str(event.get("UID", ""))[:MAX_LINE] or None
    try:
        sequence = int(str(event.get("SEQUENCE", 0)))
    except ValueError:
        shown = one_line(str(event.get("SEQUENCE")), 60)
        evidence = f"a calendar reply with an unreadable SEQUENCE ({shown})"
        return Classification("calendar_reply", UNSURE, evidence, uid=uid, **base)
    attendees = _as_list(event.get("ATTENDEE"))
    comment = " ".join(str(c) for c in _as_list(event.get("COMMENT")))
    if method == "COUNTER":
        return Classification(
            "calendar_reply", UNSURE, "a counter-proposal (METHOD:COUNTER): "
            f"{comment or 'another time proposed'}", uid=uid, sequence=sequence, **base,
        )  # fmt: skip
    if len(attendees) != 1 and not any(_partstat(a) == "DELEGATED" for a in attendees):
        evidence = f"a calendar reply with {len(attendees)} attendees"
        return Classification(
            "calendar_reply", UNSURE, evidence, uid=uid, sequence=sequence, **base
        )
    answering: Any = next((a for a in attendees if _partstat(a) == "DELEGATED"), attendees[0])
    partstat = _partstat(answering) or "NEEDS-ACTION"
    outcome = PARTSTAT.get(partstat, UNSURE)
    comment = comment or str(answering.params.get("X-RESPONSE-COMMENT", ""))
    representative = {}
    if outcome == Attendance.representative:
        delegate = str(answering.params.get("DELEGATED-TO", "")).strip('"')[:MAX_LINE]
        named: Any = next((a for a in attendees if str(a).lower() == delegate.lower()), None)
        name = str(named.params.get("CN", "")) if named is not None else ""
        representative = {
            "name": one_line(name or delegate.removeprefix("mailto:"), 120),
            "email": one_line(delegate.removeprefix("mailto:"), 254),
        }
    attendee = sender_address(str(answering).removeprefix("mailto:").removeprefix("MAILTO:"))
    evidence = f"calendar reply, PARTSTAT={one_line(partstat, 40)}, SEQUENCE={sequence}"
    if comment:
        evidence += f", comment: {comment}"
    return Classification(
        "calendar_reply", outcome, evidence, uid=uid, sequence=sequence,
        representative=representative, attendee=attendee, **base,
    )  # fmt: skip


def _partstat(attendee: Any) -> str:
    params = getattr(attendee, "params", {})
    return str(params.get("PARTSTAT", "")).upper()


def _as_list(value: object) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def _auto_reply(message: Message, base: dict[str, Any]) -> Classification | None:
    auto = header_text(message, "Auto-Submitted").strip().lower()
    precedence = header_text(message, "Precedence").strip().lower()
    signals = []
    if auto and auto != "no":
        signals.append(f"Auto-Submitted: {one_line(auto, 60)}")
    for name in ("X-Autoreply", "X-Autorespond"):
        if header_text(message, name):
            signals.append(name)
    if precedence in ("auto_reply", "bulk", "junk"):
        signals.append(f"Precedence: {precedence}")
    if _AUTO_SUBJECT.search(base["subject"]):
        signals.append(f"subject: {base['subject'][:60]}")
    if not signals:
        return None
    # Anyone can add these headers (and some mail systems add Precedence: bulk to everything):
    # an auto-reply never counts as an answer, but one that reads as an answer is shown.
    reading = wording.read(new_text(body_text(message)))
    if reading.outcome in ANSWERS:
        evidence = (
            f"marked automatic ({'; '.join(signals)}) but reads as {reading.outcome}: "
            f"{reading.evidence}"
        )
        return Classification("auto_reply", UNSURE, evidence, **base)
    return Classification("auto_reply", NoAnswer.auto_reply, "; ".join(signals), **base)


def _human_reply(message: Message, base: dict[str, Any]) -> Classification:
    reading = wording.read(new_text(body_text(message)))
    return Classification(
        "human_reply", reading.outcome, reading.evidence,
        representative=reading.representative, **base,
    )  # fmt: skip
