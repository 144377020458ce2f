"""The coordinator's daily digest as a message: `templates/digest/` (subject, text, HTML, in
the shared layout) filled with the values the rounds computed from the ledger at compose
time, written out as

    multipart/alternative
    ├── text/plain; charset=utf-8   (base64)
    └── text/html;  charset=utf-8   (base64)

No calendar part and no Reply-To: it goes to the coordinator (the campaign's `[digest] to`,
else the coordinator's own address), from the sender, marked `Auto-Submitted:
auto-generated` so no auto-reply answers it. Header values are written by `mime`, as every
other message's are.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from email.utils import format_datetime

from mailer.campaign import Event
from mailer.compose import mime
from mailer.compose.composer import AUTO_RESPONSE_SUPPRESS, ComposedMessage, Composer
from mailer.errors import MessageProblem, cut

TEMPLATE = "digest"
WHO = "the coordinator's digest"  # how a template problem names what it was rendering


@dataclass(frozen=True)
class DigestMail:
    """What to compose: the ledger row's Message-ID, the event version to show, and the
    digest's values (see `mailer.rounds.digest`)."""

    message_id: str
    values: Mapping[str, object]
    event: Event | None = None  # None: the campaign file's


def digest_address(composer: Composer) -> tuple[str, str]:
    """(display name, address) the digest goes to: `[digest] to`, else the coordinator."""
    campaign = composer.campaign
    coordinator = campaign.coordinator
    to = campaign.digest.to if campaign.digest is not None else ""
    if to and to.lower() != coordinator.email.lower():
        return "", to
    return coordinator.name, coordinator.email


def compose_digest(composer: Composer, mail: DigestMail, now: datetime) -> ComposedMessage:
    """The whole digest message (`MessageProblem` when an address cannot be written)."""
    context = dict(composer.about(mail.event), **mail.values)
    letter = composer.renderer(TEMPLATE).render(context, WHO)
    name, address = digest_address(composer)
    sender = composer.campaign.sender
    try:
        headers = [
            mime.addresses("From", [(sender.name, sender.email)]),
            mime.addresses("To", [(name, address)]),
            mime.unstructured("Subject", letter.subject),
            mime.plain("Date", format_datetime(now.astimezone(composer.campaign.timezone))),
            mime.plain("Message-ID", mail.message_id),
            mime.plain("Auto-Submitted", "auto-generated"),
            mime.plain("X-Auto-Response-Suppress", AUTO_RESPONSE_SUPPRESS),
            mime.plain("Content-Language", "th"),
            mime.plain("MIME-Version", "1.0"),
        ]
    except ValueError as problem:
        raise MessageProblem(
            f"the digest cannot be built ({cut(str(problem))}); check [digest] to and the "
            "sender's address in the campaign file"
        ) from problem
    (boundary,) = mime.boundaries(mail.message_id, 1)
    body = mime.multipart(
        "alternative",
        boundary,
        [
            mime.leaf('text/plain; charset="utf-8"', mime.base64_body(mime.text_data(letter.text))),
            mime.leaf('text/html; charset="utf-8"', mime.base64_body(mime.text_data(letter.html))),
        ],
    )
    data = b"".join(headers) + body
    return ComposedMessage(
        message_id=mail.message_id,
        envelope_from=sender.email,
        recipients=(address,),
        subject=letter.subject,
        data=composer.signer.sign(data) if composer.signer is not None else data,  # DKIM too
    )
