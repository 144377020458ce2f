"""The campaign's `[letter]` table as a value: what the official letter (หนังสือเชิญ) needs
besides the e-mail's values — its number, the agency's address, the signer, the contact block,
the font — and whether invitations carry it as a PDF (`attach`).

The defaults are the 2559 seminar's letter (`../shared/seed/invitation-2559.txt`); the number,
the address and the signer are examples the campaign must replace (`mailer check` says so).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from mailer.errors import MailerError
from mailer.thai import thai_digits

_FONT_NAME = re.compile(r"^[\w][\w \-]{0,62}$")  # a family name CSS can carry unquoted-safe


class LetterProblem(MailerError):
    """The letter cannot be made as asked (no number for an update, a font name CSS cannot
    carry, a file the letter may not read)."""


@dataclass(frozen=True)
class LetterSettings:
    # ที่: the invitation's number, one for all offices (a circular letter: ว), unless
    # `per_office_numbers` gives an office its own (from the saraban register; see `running`).
    number: str = "สรอ ๐๑๐๐/ว ๐๐๐"
    agency_address: tuple[str, ...] = (
        "สำนักงานรัฐบาลอิเล็กทรอนิกส์ (องค์การมหาชน)",
        "๑๐๘ อาคารบางกอกไทยทาวเวอร์ ชั้น ๑๗",
        "ถนนรางน้ำ แขวงถนนพญาไท",
        "เขตราชเทวี กรุงเทพฯ ๑๐๔๐๐",
    )
    emblem: Path | None = None  # the agency's emblem (ครุฑ or its logo); none is shipped
    signer_name: str = "ผู้มีอำนาจลงนาม"  # printed in parentheses under the signature
    signer_position: tuple[str, ...] = ("ผู้อำนวยการสำนักงานรัฐบาลอิเล็กทรอนิกส์",)
    # The owner of the matter (ส่วนราชการเจ้าของเรื่อง) and how to reach it; empty: the
    # campaign's coordinator (unit, mobile, e-mail), as the seed letter gives them.
    contact: tuple[str, ...] = ()
    font: str = "Laksaman"  # a family fontconfig knows, or one of `font_files`
    font_files: tuple[Path, ...] = ()  # local TrueType/OpenType files for `font` (@font-face)
    per_office_numbers: Mapping[str, str] = field(default_factory=dict)  # invitee id → ที่
    references: tuple[str, ...] = ()  # อ้างถึง
    enclosures: tuple[str, ...] = ()  # สิ่งที่ส่งมาด้วย
    # The numbers of the later letters (แจ้งเปลี่ยนแปลง, แจ้งยกเลิก), by the SEQUENCE they tell.
    later_numbers: Mapping[int, str] = field(default_factory=dict)
    dated: date | None = None  # the invitation's date as signed; None: the day it was queued
    attach: bool = False  # invitations, updates and cancellations carry letter-<office>.pdf

    def __post_init__(self) -> None:
        if not _FONT_NAME.match(self.font):
            raise LetterProblem(
                f"letter font {self.font!r}: a font family name is letters, digits, spaces "
                'and hyphens (e.g. "Laksaman" or "TH Sarabun New")'
            )

    def number_for(self, invitee_id: str, sequence: int, first_sequence: int) -> str:
        """ที่ of the letter telling `sequence` to this office."""
        if sequence == first_sequence:
            return self.per_office_numbers.get(invitee_id, self.number)
        if sequence in self.later_numbers:
            return self.later_numbers[sequence]
        raise LetterProblem(
            f"the letter for event version SEQUENCE {sequence} has no number; add it to the "
            f'campaign\'s [letter.later_numbers] (e.g. {sequence} = "สรอ ๐๑๐๐/ว ๑๔๕")'
        )


def running(prefix: str, first: int, invitee_ids: Iterable[str]) -> dict[str, str]:
    """Per-office numbers from the register: office i (in the order given) gets
    `prefix` + `first + i` in Thai digits, e.g. "สรอ ๐๑๐๐/" + "๑๐๐๑"."""
    return {who: f"{prefix}{thai_digits(first + i)}" for i, who in enumerate(invitee_ids)}
