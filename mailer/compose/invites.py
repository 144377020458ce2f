"""The iCalendar part: one VEVENT per invitee, with that invitee as the only ATTENDEE.

Built with icalendar, which does all escaping and line folding. The VTIMEZONE is built
once per campaign (`InviteBuilder.__init__`) and shared by every message. Calendar dates
are Gregorian; the Buddhist Era appears only in the Thai prose.
"""

from __future__ import annotations

import functools
from datetime import UTC, datetime, timedelta

from icalendar import Alarm, Calendar, Event, Timezone, vCalAddress, vDatetime, vText
from icalendar.parser import Parameters
from icalendar.parser.content_line import Contentline

from mailer.campaign import Campaign
from mailer.contacts import InviteeRecord
from mailer.thai import thai_when

PRODID = "-//EGA Thailand//mailer//TH"
_BEGIN_EVENT = b"BEGIN:VEVENT\r\n"
METHODS = ("REQUEST", "CANCEL")


def display_name(name: str) -> str:
    """A name for a CN parameter. RFC 5545 allows a backslash there, but icalendar (and
    clients) read `\\;` as an escape and lose the parameters after it: show it as `/`."""
    return name.replace("\\", "/")


def event_uid(campaign: Campaign, invitee_id: str) -> str:
    """Stable, ASCII, per invitee: a reply from any address still names the office."""
    return f"{campaign.id}-{invitee_id}@{campaign.uid_domain}"


class InviteBuilder:
    def __init__(self, campaign: Campaign) -> None:
        self.campaign = campaign
        self.vtimezone = Timezone.from_tzid(campaign.timezone.key)
        event = campaign.event
        coordinator = campaign.coordinator
        self.description = "\n".join(
            [
                event.title,
                thai_when(event.start, event.end, campaign.timezone),
                f"ณ {event.venue}",
                "",
                f"ผู้ประสานงาน: {coordinator.name} {coordinator.unit}",
                f"โทร. {coordinator.mobile}  อีเมล {coordinator.email}",
            ]
        )

    def _organizer(self) -> vCalAddress:
        coordinator = self.campaign.coordinator
        organizer = vCalAddress(f"mailto:{coordinator.email}")
        organizer.params["CN"] = display_name(coordinator.name)
        return organizer

    @functools.cache  # noqa: B019 - one builder per campaign, a handful of keys
    def _shared(self, method: str, sequence: int) -> tuple[bytes, bytes]:
        """The calendar around the per-invitee lines, built by icalendar once per
        (method, sequence): everything before and after UID, DTSTAMP and ATTENDEE."""
        campaign = self.campaign
        zone = campaign.timezone
        cal = Calendar()
        cal.add("prodid", PRODID)
        cal.add("version", "2.0")
        cal.add("calscale", "GREGORIAN")
        cal.add("method", method)
        cal.add_component(self.vtimezone)
        event = Event()
        event.add("dtstart", campaign.event.start.astimezone(zone))
        event.add("dtend", campaign.event.end.astimezone(zone))
        event.add("sequence", sequence)
        event.add("summary", campaign.event.summary)
        event.add("location", campaign.event.venue)
        event.add("description", self.description)
        event.add("organizer", self._organizer())
        event.add("class", "PUBLIC")
        event.add("transp", "OPAQUE")
        if method == "CANCEL":
            event.add("status", "CANCELLED")
        else:
            event.add("status", "CONFIRMED")
            alarm = Alarm()
            alarm.add("action", "DISPLAY")
            alarm.add("description", campaign.event.summary)
            alarm.add("trigger", timedelta(days=-1))
            event.add_component(alarm)
        cal.add_component(event)
        head, marker, tail = cal.to_ical().partition(_BEGIN_EVENT)
        return head + marker, tail

    def build(
        self,
        invitee: InviteeRecord,
        *,
        uid: str,
        method: str,
        sequence: int,
        stamp: datetime,
    ) -> bytes:
        """The whole VCALENDAR for one invitee: the shared lines (written by icalendar once
        per method and SEQUENCE) around this invitee's DTSTAMP, UID and ATTENDEE lines."""
        if method not in METHODS:
            raise ValueError(f"unknown iTIP method {method!r}")
        attendee = vCalAddress(f"mailto:{invitee.primary_email}")
        params = Parameters()
        params["CN"] = display_name(invitee.organisation)
        params["CUTYPE"] = "INDIVIDUAL"
        params["ROLE"] = "REQ-PARTICIPANT"
        params["PARTSTAT"] = "NEEDS-ACTION"
        params["RSVP"] = "FALSE" if method == "CANCEL" else "TRUE"
        # icalendar escapes and folds every line (DESIGN §4); only the Component round trip
        # (building an Event to serialise three lines) is skipped.
        lines = (
            Contentline.from_parts("DTSTAMP", Parameters(), vDatetime(stamp.astimezone(UTC))),
            Contentline.from_parts("UID", Parameters(), vText(uid)),
            Contentline.from_parts("ATTENDEE", params, attendee),
        )
        head, tail = self._shared(method, sequence)
        return head + b"".join(line.to_ical() + b"\r\n" for line in lines) + tail
