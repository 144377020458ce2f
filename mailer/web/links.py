"""The links an office is given: its personal page (`RsvpLinks`, what the composer puts in
every invitation, reminder and update as `rsvp_url`), and the add-to-calendar links of its
page (Google Calendar, Outlook on the web), in UTC with `Z`, built from one event version."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING
from urllib.parse import urlencode

from mailer.web.store import link_version
from mailer.web.tokens import Tokens

if TYPE_CHECKING:
    from mailer.campaign import Event
    from mailer.delivery.ledger import Ledger
    from mailer.settings import WebSettings

PAGE = "/r/"  # an office's page is MAILER_PUBLIC_URL + PAGE + token


class RsvpLinks:
    """invitee id → its personal link, signed with its current link version (read for each
    message: a link revoked a moment ago is never sent again)."""

    def __init__(self, web: WebSettings, ledger: Ledger) -> None:
        self.base = web.public_url.rstrip("/")
        self.tokens = Tokens(web.secret_key.value, ledger.campaign_id)
        self.ledger = ledger

    def __call__(self, invitee_id: str) -> str:
        token = self.tokens.make(invitee_id, link_version(self.ledger, invitee_id))
        return f"{self.base}{PAGE}{token}"


def _utc(moment: datetime, *, separators: bool) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ" if separators else "%Y%m%dT%H%M%SZ")


def google_calendar(event: Event, details: str) -> str:
    query = {
        "action": "TEMPLATE",
        "text": event.summary,
        "dates": f"{_utc(event.start, separators=False)}/{_utc(event.end, separators=False)}",
        "details": details,
        "location": event.venue,
    }
    return "https://calendar.google.com/calendar/render?" + urlencode(query)


def outlook_web(event: Event, details: str) -> str:
    query = {
        "path": "/calendar/action/compose",
        "rru": "addevent",
        "subject": event.summary,
        "startdt": _utc(event.start, separators=True),
        "enddt": _utc(event.end, separators=True),
        "body": details,
        "location": event.venue,
    }
    return "https://outlook.office.com/calendar/deeplink/compose?" + urlencode(query)
