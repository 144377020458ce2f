"""What an incoming message is, in DESIGN.md §4's order: bounce → calendar reply →
auto-reply → human reply. Pure: bytes in, a `Classification` out (matching it to an office
is `match.py`'s job). Anything unsure is `needs_review`, with the evidence — never a guess.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import Message
from email.utils import parseaddr
from typing import Any

from flufl.bounce import all_failures

from mailer.replies.text import body_text, calendars, header_text, new_text

PARTSTAT = {
    "ACCEPTED": "accepted",
    "DECLINED": "declined",
    "TENTATIVE": "tentative",
    "DELEGATED": "representative",
}
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
_MSGID = re.compile(r"<[^<>\s]+@[^<>\s]+>")


@dataclass
class Classification:
    kind: str  # bounce | calendar_reply | auto_reply | human_reply
    outcome: str  # accepted | declined | tentative | representative | bounced |
    #               bounce_temporary | auto_reply | needs_review
    evidence: str
    sender: str = ""
    subject: str = ""
    message_id: str = ""
    thread_ids: list[str] = field(default_factory=list)  # In-Reply-To, References, quoted
    uid: str | None = None
    sequence: int | None = None
    failed_recipients: list[str] = field(default_factory=list)
    representative: dict[str, str] = field(default_factory=dict)  # name, position, phone


def parse(raw: bytes) -> Message:
    """compat32: header access is several times faster than policy.default's, and every
    header we read goes through `header_text`, which decodes it."""
    return message_from_bytes(raw)


def classify(raw: bytes) -> Classification:
    message = parse(raw)
    sender = parseaddr(header_text(message, "From"))[1].lower()
    subject = " ".join(header_text(message, "Subject").split())
    base = {
        "sender": sender,
        "subject": subject,
        "message_id": header_text(message, "Message-ID").strip(),
        "thread_ids": _MSGID.findall(
            header_text(message, "In-Reply-To") + " " + header_text(message, "References")
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
    try:
        temporary, permanent = all_failures(message)
    except Exception:
        temporary, permanent = frozenset(), frozenset()
    if not (temporary or permanent or looks_like):
        return None
    # The original message travels inside the bounce: its Message-ID names our delivery.
    quoted = [m for m in _MSGID.findall(raw.decode("utf-8", "replace")) if m != base["message_id"]]
    addresses = [a.decode("utf-8", "replace").lower() for a in (permanent or temporary)]
    threads = list(dict.fromkeys([*base["thread_ids"], *quoted]))
    if permanent:
        return Classification(
            "bounce", "bounced", f"permanent failure for {', '.join(addresses)}",
            failed_recipients=addresses, **{**base, "thread_ids": threads},
        )  # fmt: skip
    if temporary:
        return Classification(
            "bounce", "bounce_temporary", f"temporary failure for {', '.join(addresses)}",
            failed_recipients=addresses, **{**base, "thread_ids": threads},
        )  # fmt: skip
    return Classification(
        "bounce", "needs_review", "looks like a bounce but names no failed address",
        **{**base, "thread_ids": threads},
    )  # fmt: skip


def _calendar_reply(message: Message, base: dict[str, Any]) -> Classification | None:
    for calendar in calendars(message):
        method = str(calendar.get("METHOD", "")).upper()
        if method not in ("REPLY", "COUNTER"):
            continue
        events = calendar.walk("VEVENT")
        if not events:
            continue
        event = events[0]
        uid = str(event.get("UID", "")) or None
        try:
            sequence = int(str(event.get("SEQUENCE", 0)))
        except ValueError:
            evidence = f"a calendar reply with an unreadable SEQUENCE ({event.get('SEQUENCE')!s})"
            return Classification("calendar_reply", "needs_review", evidence, uid=uid, **base)
        attendees = event.get("ATTENDEE")
        attendees = attendees if isinstance(attendees, list) else [attendees] if attendees else []
        comment = " ".join(str(c) for c in _as_list(event.get("COMMENT")))
        if method == "COUNTER":
            return Classification(
                "calendar_reply", "needs_review", "a counter-proposal (METHOD:COUNTER): "
                f"{comment or 'another time proposed'}", uid=uid, sequence=sequence, **base,
            )  # fmt: skip
        if len(attendees) != 1 and not any(
            a.params.get("PARTSTAT", "").upper() == "DELEGATED" for a in attendees
        ):
            evidence = f"a calendar reply with {len(attendees)} attendees"
            return Classification(
                "calendar_reply", "needs_review", evidence, uid=uid, sequence=sequence, **base
            )
        answering = next(
            (a for a in attendees if a.params.get("PARTSTAT", "").upper() == "DELEGATED"),
            attendees[0],
        )
        partstat = answering.params.get("PARTSTAT", "NEEDS-ACTION").upper()
        outcome = PARTSTAT.get(partstat, "needs_review")
        comment = comment or answering.params.get("X-RESPONSE-COMMENT", "")
        representative = {}
        if outcome == "representative":
            delegate = str(answering.params.get("DELEGATED-TO", "")).strip('"')
            named = next((a for a in attendees if str(a).lower() == delegate.lower()), None)
            name = named.params.get("CN", "") if named is not None else ""
            representative = {
                "name": name or delegate.removeprefix("mailto:"),
                "email": delegate.removeprefix("mailto:"),
            }
        evidence = f"calendar reply, PARTSTAT={partstat}, SEQUENCE={sequence}"
        if comment:
            evidence += f", comment: {comment}"
        return Classification(
            "calendar_reply", outcome, evidence, uid=uid, sequence=sequence,
            representative=representative, **base,
        )  # fmt: skip
    return None


def _as_list(value: object) -> list[object]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def _auto_reply(message: Message, base: dict[str, Any]) -> Classification | None:
    auto = header_text(message, "Auto-Submitted").strip().lower()
    precedence = header_text(message, "Precedence").strip().lower()
    signals = []
    if auto and auto != "no":
        signals.append(f"Auto-Submitted: {auto}")
    for name in ("X-Autoreply", "X-Autorespond", "X-Auto-Response-Suppress"):
        if header_text(message, name) and name != "X-Auto-Response-Suppress":
            signals.append(name)
    if precedence in ("auto_reply", "bulk", "junk"):
        signals.append(f"Precedence: {precedence}")
    if _AUTO_SUBJECT.search(base["subject"]):
        signals.append(f"subject: {base['subject'][:60]}")
    if not signals:
        return None
    return Classification("auto_reply", "auto_reply", "; ".join(signals), **base)


_TITLE = r"(?:นางสาว|นาง|นาย|น\.ส\.|ดร\.|ว่าที่\s?ร\.ต\.|Mr\.?|Mrs\.?|Ms\.?|Miss|Dr\.?)"
_REPRESENTATIVE = re.compile(
    r"(มอบหมาย|เข้าร่วมแทน|ร่วมแทน|ไปแทน|ส่งผู้แทน|เป็นผู้แทน|ผู้แทน(?:ของ|เข้าร่วม)|เป็นตัวแทน|"
    r"send (?:a |our )?representative|representative will|on (?:my|our) behalf|"
    r"will attend instead|attend in (?:my|his|her) place|delegate)",
    re.IGNORECASE,
)
_DECLINE = re.compile(
    r"(ไม่สามารถ(?:เข้าร่วม|ไป|มา|ตอบรับ)|ไม่(?:ขอ)?เข้าร่วม|ไม่สะดวก|ติดภารกิจ|ติดราชการ|ขอปฏิเสธ|ไม่ได้เข้าร่วม|"
    r"ขออภัย.{0,30}ไม่|cannot (?:attend|accept)|can't (?:attend|accept)|can not attend|"
    r"unable to (?:attend|join|accept)|"
    r"will not (?:be able to )?attend|won't (?:be able to )?attend|regret|decline)",
    re.IGNORECASE,
)
# A decline phrase with the rest of its (space-free, Thai) clause: "ไม่สามารถตอบรับการเข้าร่วมได้"
_CLAUSE_OF_DECLINE = re.compile(rf"(?:{_DECLINE.pattern})\S*", re.IGNORECASE)
_TENTATIVE = re.compile(
    r"(ยังไม่แน่ใจ|ไม่แน่ใจ|อาจจะ|จะแจ้ง(?:ให้ทราบ)?(?:อีกครั้ง|ภายหลัง)|tentative|not sure|"
    r"maybe|might attend|will confirm later)",
    re.IGNORECASE,
)
_ACCEPT = re.compile(
    r"(ยินดีเข้าร่วม|จะเข้าร่วม|ขอตอบรับ|ตอบรับ(?:การ)?เข้าร่วม|ยืนยัน(?:การ)?เข้าร่วม|"
    r"เข้าร่วม(?:งาน)?(?:สัมมนา)?(?:ด้วย)?(?:ครับ|ค่ะ|คะ)|will attend|would be (?:happy|glad) to attend|"
    r"\baccept|\bconfirm|see you there|count (?:me|us) in)",
    re.IGNORECASE,
)
_NAME = re.compile(rf"{_TITLE}\s?[^\s\d,()]+(?:\s+[^\s\d,()]+)?")
_POSITION = re.compile(
    r"ตำแหน่ง\s*([^\n,()]+?)"
    r"(?=\s*(?:โทร|หมายเลข|เบอร์|เข้าร่วม|อีเมล|e-?mail|สังกัด|สำนักงาน|ได้รับ|ซึ่ง|เป็นผู้|จะ)|[\n,()]|$)"
)
_PHONE = re.compile(
    r"(?:โทร(?:ศัพท์)?(?:มือถือ)?\.?|tel\.?|phone|mobile|เบอร์(?:โทร(?:ศัพท์)?)?(?:ติดต่อ)?|ติดต่อ)"
    r"\s*:?\s*([0-9๐-๙][0-9๐-๙\s-]{7,14}[0-9๐-๙])",
    re.IGNORECASE,
)
_NEGATED = re.compile(
    r"(?:ไม่มี|ไม่สามารถ|ไม่ได้|ไม่อาจ|จะไม่|ไม่|no one|nobody|cannot|can't|unable to|not|"
    r"won't)\s*\S{0,12}$",
    re.IGNORECASE,
)
_NOT = re.compile(  # an acceptance right after these is a refusal: "ไม่เข้าร่วม", "cannot accept"
    r"(?:ไม่|not|cannot|can't|unable to|won't|will not)\s*\S{0,6}$", re.IGNORECASE
)
_QUESTION = re.compile(r"(\?|？|หรือไม่|หรือเปล่า|ไหม|มั้ย|สอบถาม|ขอทราบ)")
_THAI_DIGITS = str.maketrans("๐๑๒๓๔๕๖๗๘๙", "0123456789")


def _human_reply(message: Message, base: dict[str, Any]) -> Classification:
    text = new_text(body_text(message))
    if not text:
        return Classification("human_reply", "needs_review", "an empty reply", **base)
    found = {
        "representative": _affirmed(_REPRESENTATIVE, text),
        "declined": _DECLINE.search(text),
        "tentative": _TENTATIVE.search(text),
    }
    # A decline phrase often contains "เข้าร่วม": look for acceptance in what is left.
    rest = _CLAUSE_OF_DECLINE.sub(" ", _REPRESENTATIVE.sub(" ", text))
    found["accepted"] = _affirmed(_ACCEPT, rest, _NOT)
    said = {k: m.group(0) for k, m in found.items() if m}
    quote = " ".join("".join(c for c in text if c.isprintable() or c.isspace()).split())[:160]
    asks = _QUESTION.search(text)
    if "representative" in said:
        details = _representative(text)
        if asks and "name" not in details:  # "may we send a representative?" is no answer
            return Classification(
                "human_reply", "needs_review", f"a question ('{asks.group(0)}') in: {quote}",
                **base,
            )  # fmt: skip
        return Classification(
            "human_reply", "representative", f"'{said['representative']}' in: {quote}",
            representative=details, **base,
        )  # fmt: skip
    decisive = [k for k in ("declined", "tentative", "accepted") if k in said]
    if decisive in (["tentative"], ["accepted"]) and asks:  # "confirm the venue?" is no answer
        return Classification(
            "human_reply", "needs_review", f"a question ('{asks.group(0)}') in: {quote}", **base
        )
    if len(decisive) == 1:
        outcome = decisive[0]
        return Classification("human_reply", outcome, f"'{said[outcome]}' in: {quote}", **base)
    if "declined" in said and "accepted" in said:
        why = f"both '{said['declined']}' and '{said['accepted']}'"
    elif decisive:
        why = " and ".join(f"'{said[k]}'" for k in decisive)
    else:
        why = "no accept, decline or representative wording"
    return Classification("human_reply", "needs_review", f"{why} in: {quote}", **base)


def _affirmed(
    pattern: re.Pattern[str], text: str, negation: re.Pattern[str] = _NEGATED
) -> re.Match[str] | None:
    """The first match not negated just before it ("ไม่มีผู้แทน", "ไม่เข้าร่วม", "no one to …")."""
    for found in pattern.finditer(text):
        if not negation.search(text[max(0, found.start() - 30) : found.start()]):
            return found
    return None


def _representative(text: str) -> dict[str, str]:
    details = {}
    after = text[_REPRESENTATIVE.search(text).start() :] if _REPRESENTATIVE.search(text) else text  # type: ignore[union-attr]
    name = _NAME.search(after) or _NAME.search(text)
    if name:
        details["name"] = " ".join(name.group(0).split())
    position = _POSITION.search(text)
    if position:
        details["position"] = position.group(1).strip()
    phone = _PHONE.search(text)
    if phone:
        details["phone"] = re.sub(r"[\s-]", "", phone.group(1).translate(_THAI_DIGITS))
    return details
