"""The library's way of writing an invitation: `email.message.EmailMessage`."""

from __future__ import annotations

from datetime import datetime
from email import policy
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime

from mailer.compose import Composer, OutgoingMail
from mailer.compose.composer import AUTO_RESPONSE_SUPPRESS
from mailer.compose.invites import CalendarVersion
from mailer.identity import event_uid

# --- 1. MIME ---------------------------------------------------------------------------


def stdlib_message(composer: Composer, mail: OutgoingMail, now: datetime) -> bytes:
    """The message `composer.compose(mail, now)` writes, built with `EmailMessage` from the
    same letter and calendar: the same headers, tree, charsets and attachment."""
    campaign = composer.campaign
    invitee = mail.invitee
    event = mail.event or campaign.event
    letter = composer.letter(invitee, mail.template, mail.extra, event)
    uid = event_uid(campaign, invitee.invitee_id, test=mail.test)
    ics = composer.invites.build(
        invitee, CalendarVersion(event, mail.method, mail.sequence), uid=uid, stamp=now
    )
    msg = EmailMessage(policy=policy.SMTP)
    msg["From"] = Address(campaign.sender.name, addr_spec=campaign.sender.email)
    msg["To"] = Address(invitee.organisation, addr_spec=invitee.primary_email)
    if len(invitee.email) > 1:
        msg["Cc"] = [Address(invitee.organisation, addr_spec=a) for a in invitee.email[1:]]
    msg["Reply-To"] = Address(campaign.coordinator.name, addr_spec=campaign.coordinator.email)
    msg["Subject"] = f"[ทดสอบ] {letter.subject}" if mail.test else letter.subject
    msg["Date"] = format_datetime(now.astimezone(campaign.timezone))
    msg["Message-ID"] = mail.message_id
    msg["X-Auto-Response-Suppress"] = AUTO_RESPONSE_SUPPRESS
    if mail.automatic:
        msg["Auto-Submitted"] = "auto-generated"
    msg.set_content(letter.text, cte="base64")
    msg.add_alternative(letter.html, subtype="html", cte="base64")
    msg.add_alternative(ics, "text", "calendar", params={"charset": "utf-8", "method": mail.method})
    msg.add_attachment(
        ics, "application", "ics", filename="invite.ics", params={"name": "invite.ics"}
    )
    msg["Content-Language"] = "th"  # after the body: `set_content` moves Content-* headers
    return msg.as_bytes()
