"""Letter + invitation → one MIME message, shaped as docs/design.md §5 says:

    multipart/mixed
    ├── multipart/alternative
    │   ├── text/plain; charset=utf-8          (base64)
    │   ├── text/html;  charset=utf-8          (base64)
    │   └── text/calendar; charset=utf-8; method=REQUEST   (base64, no Content-Disposition)
    ├── application/ics; name=invite.ics       (attachment, base64)
    └── application/pdf; name=letter-<office>.pdf   (only when the mail carries one: the
                                                     official letter, `Attachment`)

A message of method "" (a confirmation of an answer given on the office's page) carries
no calendar: its multipart/mixed holds the multipart/alternative of text and HTML alone.

The bytes are written by `mime` (see there for why not `EmailMessage`): every header value
that comes from data is folded to one line and encoded, so no CSV field can add a header.
With a `signer` (DKIM: `mailer.delivery.dkim`), its signature is the last thing added.

With `links` (personal links on: mailer/web/links.py), every letter's templates receive
`rsvp_url`, the office's own page; otherwise, and in a --test-to sample, it is "".
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from email.utils import format_datetime
from pathlib import Path
from typing import Any, Protocol

from mailer.campaign import Campaign, Event
from mailer.compose import mime
from mailer.compose.invites import CalendarVersion, InviteBuilder
from mailer.compose.letters import Letter, LetterRenderer
from mailer.errors import MessageProblem, TemplateProblem, cut
from mailer.identity import event_uid
from mailer.invitees.importing import InviteeRecord
from mailer.thai import thai_date, thai_short_date, thai_time_range, thai_when

AUTO_RESPONSE_SUPPRESS = "OOF, AutoReply"  # never "All": it also hides bounces


@dataclass(frozen=True)
class OutgoingMail:
    """What to compose: which office, which template, and the ledger's fixed identity."""

    invitee: InviteeRecord
    template: str
    message_id: str
    sequence: int
    method: str = "REQUEST"
    automatic: bool = False
    test: bool = False  # a sample (--test-to): its own UID, a marked subject
    extra: Mapping[str, object] = field(default_factory=dict)  # e.g. an update's changes
    # The event version to tell: the ledger row's (`mailer.versions.event_at`) when sending;
    # None only for what is not sent from the ledger (preview, check, a --test-to sample),
    # which shows the campaign file's event.
    event: Event | None = None
    attachments: tuple[Attachment, ...] = ()


@dataclass(frozen=True)
class Attachment:
    """A file the message carries after invite.ics: saved as `filename` (ASCII), shown as
    `title` (Thai allowed: RFC 2231), e.g. the official letter as PDF (`mailer.letter_pdf`)."""

    filename: str
    title: str
    data: bytes
    content_type: str = "application/pdf"


@dataclass(frozen=True)
class ComposedMessage:
    message_id: str
    envelope_from: str
    recipients: tuple[str, ...]
    subject: str
    data: bytes


class Signer(Protocol):
    def sign(self, data: bytes) -> bytes:
        """The message with a signature header in front."""
        ...


class Composer:
    """Everything built once per campaign; `compose` is then cheap and pure."""

    def __init__(
        self,
        campaign: Campaign,
        templates_dir: Path,
        *,
        signer: Signer | None = None,
        links: Callable[[str], str] | None = None,  # invitee id → its personal link
    ) -> None:
        self.campaign = campaign
        self.templates_dir = templates_dir
        self.signer = signer
        self.links = links
        self.invites = InviteBuilder(campaign)
        self._renderers: dict[str, LetterRenderer] = {}
        self._contexts: dict[Event, dict[str, Any]] = {}

    def _base_context(self, event: Event) -> dict[str, Any]:
        """What every letter about this event version receives (built once per version)."""
        if event not in self._contexts:
            zone = self.campaign.timezone
            self._contexts[event] = {
                "campaign_id": self.campaign.id,
                "event": event,
                "coordinator": self.campaign.coordinator,
                "sender": self.campaign.sender,
                "thai": {
                    "date": thai_date(event.start, zone),
                    "short_date": thai_short_date(event.start, zone),
                    "time_range": thai_time_range(event.start, event.end, zone),
                    "when": thai_when(event.start, event.end, zone),
                },
            }
        return self._contexts[event]

    def about(self, event: Event | None = None) -> dict[str, Any]:
        """What every letter receives about the campaign and the event (`event`, else the
        campaign file's), without an office: the coordinator's digest is built on it."""
        return dict(self._base_context(event or self.campaign.event))

    def renderer(self, template: str) -> LetterRenderer:
        if template not in self._renderers:
            self._renderers[template] = LetterRenderer(
                self.templates_dir, template, self.campaign.timezone
            )
        return self._renderers[template]

    def letter(
        self,
        invitee: InviteeRecord,
        template: str,
        extra: Mapping[str, object] | None = None,
        event: Event | None = None,
    ) -> Letter:
        context = self.context(invitee, extra, event)
        return self.renderer(template).render(context, invitee.invitee_id)

    def context(
        self,
        invitee: InviteeRecord,
        extra: Mapping[str, object] | None = None,
        event: Event | None = None,
    ) -> dict[str, Any]:
        """What a letter's templates receive for this office: the e-mail's, and the same
        values for the PDF letter (`mailer.letter_pdf`), which reuses the e-mail's text."""
        return {
            **self._base_context(event or self.campaign.event),
            "rsvp_url": self.links(invitee.invitee_id) if self.links else "",
            **(extra or {}),
            "invitee": invitee,
            "uid": event_uid(self.campaign, invitee.invitee_id),
        }

    def compose(self, mail: OutgoingMail, now: datetime, *, signed: bool = True) -> ComposedMessage:
        """The whole message, signed if there is a signer (`signed=False`: not, for what
        only looks at it, `mailer check`). An office whose message cannot be built (an
        address no header can carry, stored by an older import) raises `MessageProblem`."""
        try:
            message = self._compose(mail, now)
        except ValueError as problem:  # email.headerregistry / mime refuse the value
            raise MessageProblem(
                f"{mail.invitee.invitee_id}: its message cannot be built ({cut(str(problem))}); "
                "fix its addresses in the invitee list and import it again"
            ) from problem
        if self.signer is None or not signed:
            return message
        return replace(message, data=self.signer.sign(message.data))

    def _compose(self, mail: OutgoingMail, now: datetime) -> ComposedMessage:
        campaign = self.campaign
        invitee = mail.invitee
        coordinator = campaign.coordinator.email.lower()
        if any(address.lower() == coordinator for address in invitee.email):
            raise TemplateProblem(
                f"{invitee.invitee_id}: its address is the coordinator's own "
                f"({campaign.coordinator.email}); a calendar cannot invite its organizer. "
                "Fix the address in the invitee list"
            )
        event = mail.event or campaign.event
        extra = {**mail.extra, "rsvp_url": ""} if mail.test else mail.extra  # not its link
        letter = self.letter(invitee, mail.template, extra, event)
        uid = event_uid(campaign, invitee.invitee_id, test=mail.test)
        subject = letter.subject
        if mail.test:
            subject = f"[ทดสอบ] {subject}"
        calendar = CalendarVersion(event, mail.method, mail.sequence)
        ics = self.invites.build(invitee, calendar, uid=uid, stamp=now) if mail.method else None
        return ComposedMessage(
            message_id=mail.message_id,
            envelope_from=campaign.sender.email,
            recipients=invitee.email,
            subject=subject,
            data=self._headers(mail, subject, now) + self._body(mail, letter, ics),
        )

    def _headers(self, mail: OutgoingMail, subject: str, now: datetime) -> bytes:
        campaign = self.campaign
        invitee = mail.invitee
        headers = [
            mime.addresses("From", [(campaign.sender.name, campaign.sender.email)]),
            mime.addresses("To", [(invitee.organisation, invitee.primary_email)]),
        ]
        if len(invitee.email) > 1:
            headers.append(
                mime.addresses("Cc", [(invitee.organisation, a) for a in invitee.email[1:]])
            )
        headers += [
            mime.addresses("Reply-To", [(campaign.coordinator.name, campaign.coordinator.email)]),
            mime.unstructured("Subject", subject),
            mime.plain("Date", format_datetime(now.astimezone(campaign.timezone))),
            mime.plain("Message-ID", mail.message_id),
            mime.plain("X-Auto-Response-Suppress", AUTO_RESPONSE_SUPPRESS),
        ]
        if mail.automatic:
            headers.append(mime.plain("Auto-Submitted", "auto-generated"))
        headers += [mime.plain("Content-Language", "th"), mime.plain("MIME-Version", "1.0")]
        return b"".join(headers)

    @staticmethod
    def _body(mail: OutgoingMail, letter: Letter, ics: bytes | None) -> bytes:
        """The MIME tree of the module's docstring, its boundaries made from the Message-ID."""
        outer, inner = mime.boundaries(mail.message_id, 2)
        parts = [
            mime.leaf('text/plain; charset="utf-8"', mime.base64_body(mime.text_data(letter.text))),
            mime.leaf('text/html; charset="utf-8"', mime.base64_body(mime.text_data(letter.html))),
        ]
        if ics is None:  # a confirmation: the letter alone
            return mime.multipart("mixed", outer, [mime.multipart("alternative", inner, parts)])
        calendar = mime.base64_body(ics)  # the same bytes twice: encoded once
        parts.append(mime.leaf(f'text/calendar; charset="utf-8"; method={mail.method}', calendar))
        alternative = mime.multipart("alternative", inner, parts)
        attachment = mime.leaf(
            'application/ics; name="invite.ics"', calendar, 'attachment; filename="invite.ics"'
        )
        files = [
            mime.named_attachment(a.content_type, a.filename, a.title, a.data)
            for a in mail.attachments
        ]
        return mime.multipart("mixed", outer, [alternative, attachment, *files])
