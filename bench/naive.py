"""The baseline written the obvious way with the same libraries: for each invitee a fresh
EmailMessage and a fresh VTIMEZONE, one SMTP session, no ledger."""

from __future__ import annotations

import smtplib
import sys
import time
from datetime import UTC, datetime
from email import policy
from email.headerregistry import Address
from email.message import EmailMessage
from pathlib import Path

from icalendar import Calendar, Event, vCalAddress

from mailer.campaign import load_campaign
from mailer.compose import Composer
from mailer.invitees.importing import InviteeRecord


def main(contacts: Path, port: int, limit: int) -> None:
    import csv

    campaign = load_campaign(Path("schedules/egov-seminar-2559.toml"))
    letters = Composer(campaign, Path("templates"))  # the same templates, rendered by Jinja2
    smtp = smtplib.SMTP("127.0.0.1", port)
    sent = 0
    start = time.perf_counter()
    with contacts.open(encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            if sent >= limit:
                break
            invitee = InviteeRecord(
                row["invitee_id"], row["organisation"], row["salutation"], (row["email"],)
            )
            letter = letters.letter(invitee, "invitation")
            cal = Calendar()
            cal.add("prodid", "-//naive//")
            cal.add("version", "2.0")
            cal.add("method", "REQUEST")
            event = Event()
            event.add("uid", f"{row['invitee_id']}@naive")
            event.add("dtstamp", datetime.now(UTC))
            event.add("dtstart", campaign.event.start)
            event.add("dtend", campaign.event.end)
            event.add("summary", campaign.event.summary)
            attendee = vCalAddress(f"mailto:{row['email']}")
            attendee.params["CN"] = row["organisation"]
            event.add("attendee", attendee)
            event.add("organizer", f"mailto:{campaign.coordinator.email}")
            cal.add_component(event)
            cal.add_missing_timezones()  # a fresh VTIMEZONE for every invitee
            ics = cal.to_ical()
            msg = EmailMessage(policy=policy.SMTP)
            msg["From"] = Address(campaign.sender.name, addr_spec=campaign.sender.email)
            msg["To"] = Address(row["organisation"], addr_spec=row["email"])
            msg["Subject"] = letter.subject
            msg.set_content(letter.text)
            msg.add_alternative(letter.html, subtype="html")
            msg.add_alternative(
                ics, maintype="text", subtype="calendar", params={"method": "REQUEST"}
            )
            msg.add_attachment(ics, maintype="application", subtype="ics", filename="invite.ics")
            smtp.send_message(msg)
            sent += 1
    elapsed = time.perf_counter() - start
    smtp.quit()
    print(f"{sent} {elapsed:.6f}")


if __name__ == "__main__":
    main(Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]))
