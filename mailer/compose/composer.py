"""Letter + invitation → one MIME message, shaped as DESIGN.md §4 says:

    multipart/mixed
    ├── multipart/alternative
    │   ├── text/plain; charset=utf-8          (base64)
    │   ├── text/html;  charset=utf-8          (base64)
    │   └── text/calendar; charset=utf-8; method=REQUEST   (base64, no Content-Disposition)
    └── application/ics; name=invite.ics       (attachment, base64)

Headers are built with `email.headerregistry.Address` under `policy.SMTP` (refusing CR/LF;
`folding.SMTP_FAST` only makes Thai headers fast to serialise), and every value that comes
from data is folded to one line first, so no CSV field can add a header.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path
from typing import Any

from mailer.campaign import Campaign
from mailer.compose.folding import SMTP_FAST
from mailer.compose.invites import InviteBuilder, event_uid
from mailer.compose.letters import Letter, LetterRenderer
from mailer.contacts import InviteeRecord
from mailer.errors import TemplateProblem
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


@dataclass(frozen=True)
class ComposedMessage:
    message_id: str
    envelope_from: str
    recipients: tuple[str, ...]
    subject: str
    data: bytes


def _one_line(value: str) -> str:
    return " ".join(value.split())


def _address(name: str, email: str) -> Address:
    local, _, domain = email.rpartition("@")
    return Address(display_name=_one_line(name), username=local, domain=domain)


def new_message_id(campaign: Campaign, invitee_id: str, kind: str) -> str:
    """Made once, at enqueue, and kept forever in the ledger."""
    left = re.sub(r"[^A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]", "-", f"{campaign.id}.{invitee_id}.{kind}")
    return f"<{left}.{secrets.token_hex(6)}@{campaign.uid_domain}>"


class Composer:
    """Everything built once per campaign; `compose` is then cheap and pure."""

    def __init__(self, campaign: Campaign, templates_dir: Path) -> None:
        self.campaign = campaign
        self.templates_dir = templates_dir
        self.invites = InviteBuilder(campaign)
        self._renderers: dict[str, LetterRenderer] = {}
        event = campaign.event
        zone = campaign.timezone
        self._base_context: dict[str, Any] = {
            "campaign_id": campaign.id,
            "event": event,
            "coordinator": campaign.coordinator,
            "sender": campaign.sender,
            "thai": {
                "date": thai_date(event.start, zone),
                "short_date": thai_short_date(event.start, zone),
                "time_range": thai_time_range(event.start, event.end, zone),
                "when": thai_when(event.start, event.end, zone),
            },
        }

    def renderer(self, template: str) -> LetterRenderer:
        if template not in self._renderers:
            self._renderers[template] = LetterRenderer(
                self.templates_dir, template, self.campaign.timezone
            )
        return self._renderers[template]

    def letter(self, invitee: InviteeRecord, template: str) -> Letter:
        context = dict(
            self._base_context, invitee=invitee, uid=event_uid(self.campaign, invitee.invitee_id)
        )
        return self.renderer(template).render(context, invitee.invitee_id)

    def compose(self, mail: OutgoingMail, now: datetime) -> ComposedMessage:
        campaign = self.campaign
        invitee = mail.invitee
        coordinator = campaign.coordinator.email.lower()
        if any(address.lower() == coordinator for address in invitee.email):
            raise TemplateProblem(
                f"{invitee.invitee_id}: its address is the coordinator's own "
                f"({campaign.coordinator.email}); a calendar cannot invite its organizer. "
                "Fix the address in the invitee list"
            )
        letter = self.letter(invitee, mail.template)
        uid = event_uid(campaign, invitee.invitee_id)
        subject = letter.subject
        if mail.test:
            uid, subject = f"test-{uid}", f"[ทดสอบ] {subject}"
        ics = self.invites.build(
            invitee, uid=uid, method=mail.method, sequence=mail.sequence, stamp=now
        )

        msg = EmailMessage(policy=SMTP_FAST)
        msg["From"] = _address(campaign.sender.name, campaign.sender.email)
        msg["To"] = _address(invitee.organisation, invitee.primary_email)
        if len(invitee.email) > 1:
            msg["Cc"] = [_address(invitee.organisation, a) for a in invitee.email[1:]]
        msg["Reply-To"] = _address(campaign.coordinator.name, campaign.coordinator.email)
        msg["Subject"] = subject
        msg["Date"] = format_datetime(now.astimezone(campaign.timezone))
        msg["Message-ID"] = mail.message_id
        msg["X-Auto-Response-Suppress"] = AUTO_RESPONSE_SUPPRESS
        if mail.automatic:
            msg["Auto-Submitted"] = "auto-generated"
        msg.set_content(letter.text, subtype="plain", charset="utf-8", cte="base64")
        msg.add_alternative(letter.html, subtype="html", charset="utf-8", cte="base64")
        msg.add_alternative(
            ics.decode("utf-8"),
            subtype="calendar",
            charset="utf-8",
            cte="base64",
            params={"method": mail.method},
        )
        msg.make_mixed()
        msg.add_attachment(
            ics,
            maintype="application",
            subtype="ics",
            filename="invite.ics",
            params={"name": "invite.ics"},
        )
        msg["Content-Language"] = "th"  # after the body: set_content drops Content-* headers
        _stable_boundaries(msg, mail.message_id)
        return ComposedMessage(
            message_id=mail.message_id,
            envelope_from=campaign.sender.email,
            recipients=invitee.email,
            subject=subject,
            data=msg.as_bytes(),
        )


def _stable_boundaries(msg: EmailMessage, seed: str) -> None:
    """Boundaries derived from the Message-ID: the same message always has the same bytes."""
    for depth, part in enumerate(p for p in msg.walk() if p.is_multipart()):
        digest = hashlib.sha256(f"{seed}/{depth}".encode()).hexdigest()[:24]
        part.set_boundary(f"=_mailer_{depth}_{digest}")
