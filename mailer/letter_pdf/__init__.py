"""The official letter (หนังสือภายนอก) as a PDF: one office, one event version, one kind.

    printer = LetterPrinter(composer)            # once per campaign
    data = printer.render(settings, invitee, version, "invitation")   # bytes, pure

`settings` is the campaign's `[letter]` table (`LetterSettings`), `version` the event as the
ledger row's SEQUENCE tells it (`LetterVersion`; `letter_version` reads it from the ledger).
"""

from mailer.campaign.letter import LetterProblem, LetterSettings, running
from mailer.letter_pdf.ledger import letter_version
from mailer.letter_pdf.printer import LetterPrinter
from mailer.letter_pdf.settings import Kind, LetterVersion

__all__ = [
    "Kind",
    "LetterPrinter",
    "LetterProblem",
    "LetterSettings",
    "LetterVersion",
    "letter_version",
    "running",
]
