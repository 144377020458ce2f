"""One office's official letter as PDF bytes: templates/letter/ through WeasyPrint.

The body is the e-mail's own text: the blocks `subject_line`, `body` and `request` of the
kind's `body.html`, rendered with the e-mail's values (`Composer.context`), are set in the
letter's layout. WeasyPrint lays Thai out with Pango, which breaks lines between Thai words
with libthai's dictionary (tests/test_letter_pdf.py checks it on the extracted lines).

Rendering is pure: the same settings, office, version and kind give the same bytes (no
creation time but the letter's own date, a PDF identifier made from the content), so a
retry sends what the first attempt sent. Nothing is fetched but local files the letter
names (its emblem, its fonts): any other URL, http(s) above all, stops the letter.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import weasyprint
from weasyprint.text.fonts import FontConfiguration
from weasyprint.urls import FatalURLFetchingError, URLFetcher, URLFetcherResponse

from mailer.campaign.letter import LetterProblem, LetterSettings
from mailer.compose.composer import Composer
from mailer.compose.letters import environment
from mailer.invitees.importing import InviteeRecord
from mailer.letter_pdf.breaks import hold_words
from mailer.letter_pdf.settings import KINDS, Kind, LetterVersion
from mailer.letter_pdf.text_layer import TrueTextFonts
from mailer.thai import thai_day, thai_digits

LAYOUT = "letter/letter.html"
BLOCKS = ("subject_line", "body", "request")


class _Refused(FatalURLFetchingError):  # type: ignore[misc]  # no types in WeasyPrint
    """A URL the letter may not read (WeasyPrint lets only this kind stop a render)."""


class LocalFiles(URLFetcher):  # type: ignore[misc]  # WeasyPrint has no type information
    """WeasyPrint's fetcher, for `file:` URLs of the given files and folders only."""

    def __init__(self, allowed: Sequence[Path]) -> None:
        super().__init__(allowed_protocols=("file",), allow_redirects=False)
        self.allowed = tuple(p.resolve() for p in allowed)

    def fetch(self, url: str, headers: Any = None) -> URLFetcherResponse:
        parts = urlsplit(url)
        if parts.scheme != "file" or parts.netloc not in ("", "localhost"):
            raise _Refused(f"{url}: the letter reads local files only (no network)")
        path = Path(unquote(parts.path)).resolve()
        if not any(path == root or root in path.parents for root in self.allowed):
            raise _Refused(f"{url}: not a file the letter names (its emblem, its fonts)")
        return super().fetch(url, headers)


def pdf_bytes(html: str, base_url: str, fetcher: LocalFiles, fonts: FontConfiguration) -> bytes:
    """HTML → PDF as mailer writes every PDF (the letters, the desk's sheets): only the
    local files `fetcher` allows, the text layer corrected so Thai reads back as written
    (`TrueTextFonts`), no creation time but what the HTML says, an identifier made from
    the content (the same HTML gives the same bytes)."""
    document = weasyprint.HTML(string=html, base_url=base_url, url_fetcher=fetcher).render(
        font_config=fonts
    )
    document.fonts = TrueTextFonts(document.fonts)
    identifier = hashlib.sha256(html.encode()).hexdigest()[:32].encode()
    data: bytes = document.write_pdf(pdf_identifier=identifier)
    return data


def print_page(html: str, base: Path, files: Sequence[Path]) -> bytes:
    """A page of mailer's own (the attendance sheet, the call sheet) as PDF: `files` are
    the local files it may read (the campaign's font files); `MailerError` if it asks for
    anything else."""
    try:
        return pdf_bytes(
            html, base.resolve().as_uri() + "/", LocalFiles(files), FontConfiguration()
        )
    except _Refused as refused:
        raise LetterProblem(f"the page was not made: {refused}") from None


@dataclass(frozen=True)
class _Fixed:
    """What a printer builds once per settings: the fetcher and the fonts' CSS values."""

    fetcher: LocalFiles
    font_urls: tuple[str, ...]
    emblem: str | None


class LetterPrinter:
    """Everything built once per campaign (the composer's values, the compiled layout, the
    fonts); `render` is then one office's letter."""

    def __init__(self, composer: Composer) -> None:
        self.composer = composer
        templates = composer.templates_dir
        self.env = environment(templates, composer.campaign.timezone, autoescape=True)
        self.env.filters["thai_day"] = thai_day
        self.layout = self.env.get_template(LAYOUT)
        self.base_url = templates.resolve().as_uri() + "/"
        self.fonts = FontConfiguration()
        self._fixed: dict[tuple[Path | None, tuple[Path, ...]], _Fixed] = {}

    def render(
        self, settings: LetterSettings, invitee: InviteeRecord, version: LetterVersion, kind: Kind
    ) -> bytes:
        """The letter telling `version` to `invitee`: the invitation, or the update or
        cancellation that refers to the first letter by its number and date."""
        html = self.html(settings, invitee, version, kind)
        fixed = self._files(settings)
        try:
            return pdf_bytes(html, self.base_url, fixed.fetcher, self.fonts)
        except _Refused as refused:
            raise LetterProblem(f"{invitee.invitee_id}: letter not made: {refused}") from None

    def html(
        self, settings: LetterSettings, invitee: InviteeRecord, version: LetterVersion, kind: Kind
    ) -> str:
        """The letter's HTML, as WeasyPrint receives it (for tests and for a look)."""
        if kind not in KINDS:
            raise LetterProblem(f"{kind!r}: a letter is one of {', '.join(KINDS)}")
        if kind != "invitation" and version.first_dated is None:
            raise LetterProblem(
                f"the {kind} letter of SEQUENCE {version.sequence} needs the first letter's "
                "date to refer to it"
            )
        extra = {"changes": list(version.changes)} if kind == "update" else {}
        context = self.composer.context(invitee, extra, version.event)
        renderer = self.composer.renderer(kind)
        blocks = {
            name: hold_words(text)  # escaped by the e-mail's HTML templates
            for name, text in renderer.blocks(context, invitee.invitee_id, BLOCKS).items()
        }
        values = self._values(settings, invitee, version, kind)
        return self.layout.render(
            dict(context, blocks=blocks, subject=blocks["subject_line"].striptags(), **values)
        )

    def _values(
        self, settings: LetterSettings, invitee: InviteeRecord, version: LetterVersion, kind: Kind
    ) -> dict[str, Any]:
        who = invitee.invitee_id
        references = list(settings.references)
        if kind != "invitation" and version.first_dated is not None:
            first = settings.number_for(who, version.first_sequence, version.first_sequence)
            references.insert(0, f"หนังสือที่ {first} ลงวันที่ {thai_day(version.first_dated)}")
        listed = [
            (label, items)
            for label, items in (("อ้างถึง", references), ("สิ่งที่ส่งมาด้วย", settings.enclosures))
            if items
        ]
        fixed = self._files(settings)
        return {
            "number": settings.number_for(who, version.sequence, version.first_sequence),
            "dated": thai_day(version.dated),
            "created": _w3c(version.dated),
            "agency_address": settings.agency_address,
            "emblem": fixed.emblem,
            "listed": listed,
            "signer_name": settings.signer_name,
            "signer_position": settings.signer_position,
            "contact": settings.contact or self._coordinator_contact(),
            "font": settings.font,
            "font_urls": fixed.font_urls,
        }

    def _coordinator_contact(self) -> tuple[str, ...]:
        """The seed letter's contact: the coordinator's unit, mobile and e-mail."""
        c = self.composer.campaign.coordinator
        return (
            c.unit,
            f"โทรศัพท์เคลื่อนที่ {thai_digits(c.mobile)}",
            f"ไปรษณีย์อิเล็กทรอนิกส์ {c.email}",
        )

    def _files(self, settings: LetterSettings) -> _Fixed:
        key = (settings.emblem, settings.font_files)
        if key not in self._fixed:
            named = [*settings.font_files, *([settings.emblem] if settings.emblem else [])]
            for path in named:
                if not path.is_file():
                    raise LetterProblem(
                        f"{path}: no such file (the campaign's [letter] names it); "
                        "fix the path or remove the setting"
                    )
            self._fixed[key] = _Fixed(
                fetcher=LocalFiles(named),
                font_urls=tuple(p.resolve().as_uri() for p in settings.font_files),
                emblem=settings.emblem.resolve().as_uri() if settings.emblem else None,
            )
        return self._fixed[key]


def _w3c(day: date) -> str:
    return day.isoformat()
