"""Each office's letter rendered once and kept with the ledger row's version: the table
`letter_pdf`, keyed by (campaign, office, letter kind, SEQUENCE), holds the PDF and its
sha256. A row's every attempt (a retry after a 4xx, a `deliveries retry`, another worker)
attaches the stored bytes, whatever the campaign file says by then; a row rebased to a
later SEQUENCE tells another version, so it gets that version's letter.

Invitations, updates and cancellations carry a letter (`letter_kind`); reminders do not.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

import jinja2
from sqlalchemy import Table, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from mailer.campaign.letter import LetterProblem
from mailer.compose import Attachment, Composer
from mailer.compose.letters import render_problem
from mailer.compose.mime import ascii_filename
from mailer.delivery.ledger import Ledger
from mailer.errors import MailerError, cut
from mailer.invitees.importing import InviteeRecord
from mailer.kinds import LedgerKind
from mailer.letter_pdf.ledger import letter_version
from mailer.letter_pdf.printer import LAYOUT, LetterPrinter
from mailer.letter_pdf.settings import KINDS, Kind, LetterVersion
from mailer.models import LetterPdf

LETTERS: Table = LetterPdf.__table__  # type: ignore[attr-defined]
L = LETTERS.c
TITLES: dict[Kind, str] = {
    "invitation": "หนังสือเชิญ",
    "update": "แจ้งเปลี่ยนแปลง",
    "cancel": "แจ้งยกเลิก",
}

Key = tuple[str, Kind, int]  # invitee id, letter kind, SEQUENCE


def letter_kind(ledger_kind: str) -> Kind | None:
    """The letter a ledger row's message carries (None: a reminder carries none)."""
    name = LedgerKind.parse(ledger_kind).name
    return name if name in KINDS else None


def attachment(invitee_id: str, kind: Kind, pdf: bytes) -> Attachment:
    """`letter-<office id>.pdf`, shown by its Thai title (หนังสือเชิญ-<office id>.pdf)."""
    name = ascii_filename(invitee_id)
    return Attachment(f"letter-{name}.pdf", f"{TITLES[kind]}-{name}.pdf", pdf)


class LetterStore:
    """The stored letters of one campaign's ledger; `letter` renders and keeps one on first
    need (the printer is built then: WeasyPrint and the fonts load once)."""

    def __init__(self, ledger: Ledger, composer: Composer) -> None:
        self.ledger = ledger
        self.composer = composer
        self.campaign = composer.campaign
        self._printer: LetterPrinter | None = None
        self._versions: dict[int, LetterVersion] = {}

    def version(self, sequence: int) -> LetterVersion:
        """The event version a letter of `sequence` tells, with its dates (read once)."""
        if sequence not in self._versions:
            c = self.campaign
            self._versions[sequence] = letter_version(
                self.ledger, sequence, c.event, c.timezone, c.letter
            )
        return self._versions[sequence]

    def stored(self, key: Key) -> bytes | None:
        invitee_id, kind, sequence = key
        query = select(L.pdf).where(
            L.campaign_id == self.ledger.campaign_id,
            L.invitee_id == invitee_id,
            L.kind == kind,
            L.sequence == sequence,
        )
        with self.ledger.reads.connect() as conn:
            found = conn.execute(query).scalar()
        return None if found is None else bytes(found)

    def missing(self, keys: Iterable[Key]) -> list[Key]:
        """The keys (in the order given, each once) that have no stored letter yet."""
        query = select(L.invitee_id, L.kind, L.sequence).where(
            L.campaign_id == self.ledger.campaign_id
        )
        with self.ledger.reads.connect() as conn:
            have = {(r.invitee_id, r.kind, r.sequence) for r in conn.execute(query)}
        return [k for k in dict.fromkeys(keys) if k not in have]

    def keep(self, key: Key, pdf: bytes) -> bytes:
        """Store `pdf` for `key` unless a letter is stored already (another worker was first),
        and return the stored one: every process attaches the same bytes."""
        invitee_id, kind, sequence = key
        insert = pg_insert if self.ledger.engine.dialect.name == "postgresql" else sqlite_insert
        statement = (
            insert(LETTERS)
            .values(
                campaign_id=self.ledger.campaign_id,
                invitee_id=invitee_id,
                kind=kind,
                sequence=sequence,
                pdf=pdf,
                sha256=hashlib.sha256(pdf).hexdigest(),
                rendered_at=self.ledger.clock(),
            )
            .on_conflict_do_nothing(
                index_elements=["campaign_id", "invitee_id", "kind", "sequence"]
            )
        )
        with self.ledger.engine.begin() as conn:
            conn.execute(statement)
        stored = self.stored(key)
        assert stored is not None
        return stored

    def render(self, invitee: InviteeRecord, kind: Kind, sequence: int) -> bytes:
        """The letter made now (not stored); `LetterProblem` naming the office and why when
        it cannot be made, whatever went wrong inside WeasyPrint."""
        if self._printer is None:
            self._printer = LetterPrinter(self.composer)
        version = self.version(sequence)
        return render_one(self._printer, invitee, kind, version)

    def letter(self, invitee: InviteeRecord, kind: Kind, sequence: int) -> bytes:
        """The stored letter of this office's row; rendered and stored on first need."""
        key: Key = (invitee.invitee_id, kind, sequence)
        found = self.stored(key)
        if found is not None:
            return found
        return self.keep(key, self.render(invitee, kind, sequence))

    def for_row(self, ledger_kind: str, invitee: InviteeRecord, sequence: int) -> Attachment | None:
        """What the row's message attaches: its letter, or None (a reminder)."""
        kind = letter_kind(ledger_kind)
        if kind is None:
            return None
        return attachment(invitee.invitee_id, kind, self.letter(invitee, kind, sequence))


def render_one(
    printer: LetterPrinter, invitee: InviteeRecord, kind: Kind, version: LetterVersion
) -> bytes:
    """`printer.render` for one office, every failure a `MailerError` naming the office (it
    fails that office alone, never the batch)."""
    settings = printer.composer.campaign.letter
    try:
        return printer.render(settings, invitee, version, kind)
    except MailerError as problem:
        if invitee.invitee_id in str(problem):
            raise
        raise LetterProblem(f"{invitee.invitee_id}: letter not made: {problem}") from problem
    except jinja2.TemplateError as exc:  # the letter's layout: its file and line
        templates = printer.composer.templates_dir
        where = str(templates / LAYOUT)
        raise render_problem(exc, templates, where, invitee.invitee_id) from exc
    except Exception as exc:  # WeasyPrint, Pango, a font: this office's letter alone
        raise LetterProblem(
            f"{invitee.invitee_id}: letter not made: {type(exc).__name__}: {cut(str(exc))}"
        ) from exc
