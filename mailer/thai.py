"""Thai rendering: Buddhist-Era dates, Thai digits, and a script check.

Dates come from PyThaiNLP's `thai_strftime` (Buddhist Era, Thai month and day names);
this module only fixes the shapes the letter uses, e.g.
"วันอังคารที่ ๒๒ พฤศจิกายน ๒๕๕๙" and "เวลา ๑๓.๐๐ – ๑๖.๓๐ น.".
Every function takes an aware datetime and converts it to the zone it is given, so a UTC
value from the database renders in Bangkok time.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from datetime import date, datetime, tzinfo

from pythainlp.util import arabic_digit_to_thai_digit, thai_strftime

EN_DASH = "\u2013"


def thai_digits(value: object) -> str:
    """`"13.00"` → `"๑๓.๐๐"`; anything else is left as it is."""
    return str(arabic_digit_to_thai_digit(str(value)))


def _local(moment: datetime, zone: tzinfo | None) -> datetime:
    if moment.tzinfo is None:
        raise ValueError(f"{moment!r} has no time zone; mailer only handles aware datetimes")
    return moment.astimezone(zone) if zone is not None else moment


def thai_date(moment: datetime, zone: tzinfo | None = None) -> str:
    """ "วันอังคารที่ ๒๒ พฤศจิกายน ๒๕๕๙" (weekday, day, month, B.E. year)."""
    local = _local(moment, zone)
    return str(thai_strftime(local, "%Aที่ %-d %B %Y", thaidigit=True))


def thai_day(day: date) -> str:
    """ "๑ พฤศจิกายน ๒๕๕๙": an official letter's date line (day, month, B.E. year)."""
    return str(thai_strftime(datetime(day.year, day.month, day.day), "%-d %B %Y", thaidigit=True))


def thai_short_date(moment: datetime, zone: tzinfo | None = None) -> str:
    """ "๒๒ พ.ย. ๒๕๕๙"."""
    local = _local(moment, zone)
    return str(thai_strftime(local, "%-d %b %Y", thaidigit=True))


def thai_time(moment: datetime, zone: tzinfo | None = None) -> str:
    """ "๑๓.๐๐" (24-hour clock with a dot, as Thai official letters write it)."""
    local = _local(moment, zone)
    return thai_digits(f"{local:%H.%M}")


def thai_time_range(start: datetime, end: datetime, zone: tzinfo | None = None) -> str:
    """ "เวลา ๑๓.๐๐ – ๑๖.๓๐ น."."""
    return f"เวลา {thai_time(start, zone)} {EN_DASH} {thai_time(end, zone)} น."


def thai_when(start: datetime, end: datetime, zone: tzinfo | None = None) -> str:
    """The letter's full line: "วันอังคารที่ ๒๒ พฤศจิกายน ๒๕๕๙ เวลา ๑๓.๐๐ – ๑๖.๓๐ น."."""
    return f"{thai_date(start, zone)} {thai_time_range(start, end, zone)}"


# --- the script check --------------------------------------------------------------------

_EXPECTED_SCRIPTS = ("THAI", "LATIN")


@dataclass(frozen=True)
class ScriptSlip:
    """A letter of an unexpected script inside Thai text (e.g. Bengali ড in a Thai word)."""

    where: str
    offset: int
    char: str
    name: str
    context: str

    def describe(self) -> str:
        return (
            f"{self.where}: character {self.offset + 1} is {self.name} "
            f"(U+{ord(self.char):04X}) inside Thai text: …{self.context}…; "
            "retype the word in Thai"
        )


def script_slips(text: str, where: str) -> list[ScriptSlip]:
    """Letters and combining marks that are neither Thai nor Latin.

    Digits, punctuation, symbols and spaces are fine in any script; a Bengali or Lao
    letter typed by accident in the middle of a Thai word is not.
    """
    slips = []
    for offset, char in enumerate(text):
        category = unicodedata.category(char)
        if not category.startswith(("L", "M")):
            continue
        name = unicodedata.name(char, "UNKNOWN CHARACTER")
        if name.startswith(_EXPECTED_SCRIPTS):
            continue
        context = text[max(0, offset - 8) : offset + 8].replace("\n", " ")
        slips.append(ScriptSlip(where, offset, char, name, context))
    return slips
