"""What a free-text reply says: Thai and English accept, decline, tentative and
representative wording (with the representative's name, position and phone), negations
("ไม่เข้าร่วม", "cannot accept") and questions. Pure: the new text of a reply in, a `Reading`
out. Every pattern is linear in the text, and the text is capped (`text.MAX_NEW_TEXT`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from mailer.redact import printable
from mailer.replies.statuses import Attendance

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
# Where two runs of spaces meet, or a lazy run is followed by a lookahead, the repetitions are
# bounded (a position or a phone number is short): unbounded, they were quadratic.
_POSITION = re.compile(
    r"ตำแหน่ง\s{0,5}([^\n,()]{1,120}?)"
    r"(?=\s{0,5}(?:โทร|หมายเลข|เบอร์|เข้าร่วม|อีเมล|e-?mail|สังกัด|สำนักงาน|ได้รับ|ซึ่ง|เป็นผู้|จะ)|[\n,()]|$)"
)
_PHONE = re.compile(
    r"(?:โทร(?:ศัพท์)?(?:มือถือ)?\.?|tel\.?|phone|mobile|เบอร์(?:โทร(?:ศัพท์)?)?(?:ติดต่อ)?|ติดต่อ)"
    r"\s{0,10}:?\s{0,10}([0-9๐-๙][0-9๐-๙\s-]{7,14}[0-9๐-๙])",
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
_ONE_OF = (Attendance.declined, Attendance.tentative, Attendance.accepted)  # weighed in this order


@dataclass(frozen=True)
class Reading:
    outcome: Attendance  # one of `statuses.ANSWERS`, or needs_review
    evidence: str
    representative: dict[str, str] = field(default_factory=dict)


def read(text: str) -> Reading:
    """What the new text of a reply answers, or `needs_review` with why."""
    if not text:
        return Reading(Attendance.needs_review, "an empty reply")
    found = {
        Attendance.representative: _affirmed(_REPRESENTATIVE, text),
        Attendance.declined: _DECLINE.search(text),
        Attendance.tentative: _TENTATIVE.search(text),
    }
    # A decline phrase often contains "เข้าร่วม": look for acceptance in what is left.
    rest = _CLAUSE_OF_DECLINE.sub(" ", _REPRESENTATIVE.sub(" ", text))
    found[Attendance.accepted] = _affirmed(_ACCEPT, rest, _NOT)
    said = {k: m.group(0) for k, m in found.items() if m}
    quote = " ".join("".join(c for c in text[:2000] if printable(c) or c.isspace()).split())
    quote = quote[:160]
    asks = _QUESTION.search(text)
    unsure = Attendance.needs_review
    if Attendance.representative in said:
        details = _representative(text)
        if asks and "name" not in details:  # "may we send a representative?" is no answer
            return Reading(unsure, f"a question ('{asks.group(0)}') in: {quote}")
        return Reading(
            Attendance.representative, f"'{said[Attendance.representative]}' in: {quote}", details
        )
    decisive = [k for k in _ONE_OF if k in said]
    if decisive in ([Attendance.tentative], [Attendance.accepted]) and asks:
        # "confirm the venue?" is no answer
        return Reading(unsure, f"a question ('{asks.group(0)}') in: {quote}")
    if len(decisive) == 1:
        outcome = decisive[0]
        return Reading(outcome, f"'{said[outcome]}' in: {quote}")
    if Attendance.declined in said and Attendance.accepted in said:
        why = f"both '{said[Attendance.declined]}' and '{said[Attendance.accepted]}'"
    elif decisive:
        why = " and ".join(f"'{said[k]}'" for k in decisive)
    else:
        why = "no accept, decline or representative wording"
    return Reading(unsure, f"{why} in: {quote}")


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
    named = _REPRESENTATIVE.search(text)
    after = text[named.start() :] if named else text
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
