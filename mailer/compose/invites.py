"""The iCalendar part: one VEVENT per invitee, with every address of that office as an
ATTENDEE (and nobody else).

Built with icalendar, which does all escaping and line folding. The VTIMEZONE is built
once per campaign (`InviteBuilder.__init__`) and shared by every message; the lines around
the per-invitee ones once per event version, method and SEQUENCE. The event is always the
version the ledger row names (`mailer.versions.event_at`), never whatever the campaign file
says now. Calendar dates are Gregorian; the Buddhist Era appears only in the Thai prose.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from icalendar import Alarm, Calendar, Event, Timezone, vCalAddress, vDatetime, vText
from icalendar.parser import Parameters
from icalendar.parser.content_line import Contentline

from mailer import campaign as campaigns
from mailer.campaign import Campaign
from mailer.invitees.importing import InviteeRecord
from mailer.thai import thai_when

PRODID = "-//EGA Thailand//mailer//TH"
_BEGIN_EVENT = b"BEGIN:VEVENT\r\n"
METHODS = ("REQUEST", "CANCEL")


def display_name(name: str) -> str:
    """A name for a CN parameter. RFC 5545 allows a backslash there, but icalendar (and
    clients) read `\\;` as an escape and lose the parameters after it: show it as `/`."""
    return name.replace("\\", "/")


@functools.lru_cache(maxsize=8)
def _vtimezone_lines(key: str) -> bytes:
    # icalendar walks every transition of the zone to build it: 60 ms for Asia/Bangkok,
    # once per process now, not once per answer page (`python -m bench.web`).
    zone = Timezone.from_tzid(key)
    zone.pop("COMMENT", None)
    return bytes(zone.to_ical())


def _vtimezone(key: str) -> Timezone:
    """The generated VTIMEZONE, without the COMMENT icalendar puts directly in it (RFC 5545
    allows COMMENT only inside STANDARD/DAYLIGHT; strict parsers reject it there): a new
    component each time, read from the lines made once per zone."""
    zone = Timezone.from_ical(_vtimezone_lines(key))
    assert isinstance(zone, Timezone)
    return zone


@dataclass(frozen=True)
class CalendarVersion:
    """What every office's calendar of one message says alike: the event version, the iTIP
    method and the SEQUENCE (its lines are built once per such version)."""

    event: campaigns.Event
    method: str
    sequence: int


class InviteBuilder:
    def __init__(self, campaign: Campaign) -> None:
        self.campaign = campaign

    @functools.cached_property
    def vtimezone(self) -> Timezone:
        return _vtimezone(self.campaign.timezone.key)

    def description(self, event: campaigns.Event) -> str:
        coordinator = self.campaign.coordinator
        return "\n".join(
            [
                event.title,
                thai_when(event.start, event.end, self.campaign.timezone),
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
    def _shared(self, calendar: CalendarVersion) -> tuple[bytes, bytes]:
        """The calendar around the per-invitee lines, built by icalendar once per (event
        version, method, sequence): everything before and after UID, DTSTAMP and ATTENDEE."""
        version, method, sequence = calendar.event, calendar.method, calendar.sequence
        zone = self.campaign.timezone
        cal = Calendar()
        cal.add("prodid", PRODID)
        cal.add("version", "2.0")
        cal.add("calscale", "GREGORIAN")
        cal.add("method", method)
        cal.add_component(self.vtimezone)
        event = Event()
        event.add("dtstart", version.start.astimezone(zone))
        event.add("dtend", version.end.astimezone(zone))
        event.add("sequence", sequence)
        event.add("summary", version.summary)
        event.add("location", version.venue)
        event.add("description", self.description(version))
        event.add("organizer", self._organizer())
        event.add("class", "PUBLIC")
        event.add("transp", "OPAQUE")
        if method == "CANCEL":
            event.add("status", "CANCELLED")
        else:
            event.add("status", "CONFIRMED")
            alarm = Alarm()
            alarm.add("action", "DISPLAY")
            alarm.add("description", version.summary)
            alarm.add("trigger", timedelta(days=-1))
            event.add_component(alarm)
        cal.add_component(event)
        head, marker, tail = cal.to_ical().partition(_BEGIN_EVENT)
        return head + marker, tail

    def build(
        self, invitee: InviteeRecord, calendar: CalendarVersion, *, uid: str, stamp: datetime
    ) -> bytes:
        """The whole VCALENDAR for one invitee: the shared lines (written by icalendar once
        per event version, method and SEQUENCE) around this invitee's DTSTAMP, UID and one
        ATTENDEE line per address of the office (whichever of them opens it, the client
        finds itself on the guest list and shows the buttons)."""
        method = calendar.method
        if method not in METHODS:
            raise ValueError(f"unknown iTIP method {method!r}")
        # icalendar escapes and folds every line (docs/design.md §5); only the Component round trip
        # (building an Event to serialise a few lines) is skipped.
        lines = [
            Contentline.from_parts("DTSTAMP", Parameters(), vDatetime(stamp.astimezone(UTC))),
            Contentline.from_parts("UID", Parameters(), vText(uid)),
        ]
        for address in invitee.email:
            params = Parameters()
            params["CN"] = display_name(invitee.organisation)
            params["CUTYPE"] = "INDIVIDUAL"
            params["ROLE"] = "REQ-PARTICIPANT"
            params["PARTSTAT"] = "NEEDS-ACTION"
            params["RSVP"] = "FALSE" if method == "CANCEL" else "TRUE"
            attendee = vCalAddress(f"mailto:{address}")
            lines.append(Contentline.from_parts("ATTENDEE", params, attendee))
        head, tail = self._shared(calendar)
        return head + b"".join(line.to_ical() + b"\r\n" for line in lines) + tail
