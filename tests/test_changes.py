"""Event changes and cancellation reach every calendar: same UID, SEQUENCE+1, one message
per office per step, read back by two independent iCalendar parsers."""

from __future__ import annotations

import functools
import os
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest
import vobject

from mailer.campaign import load_campaign
from mailer.compose import Composer, OutgoingMail
from mailer.errors import MailerError
from mailer.identity import new_message_id
from mailer.invitees.importing import InviteeRecord, import_contacts
from mailer.rounds.send import send_announcement, send_round
from mailer.versions import pending_change, versions
from mailer.views.report import status
from tests.conftest import CAMPAIGN, CONTACTS, TEMPLATES, Mailhog
from tests.helpers import calendar_of, decoded, parse, part, raw_headers, text_of

GOLDEN = Path(__file__).parent / "golden"
MOVED = CAMPAIGN.read_text(encoding="utf-8").replace(
    "start = 2016-11-22T13:00:00\nend = 2016-11-22T16:30:00",
    "start = 2016-11-22T15:00:00\nend = 2016-11-22T18:30:00",
)


def _moved(tmp_path: Path) -> Path:
    path = tmp_path / "moved.toml"
    path.write_text(MOVED, encoding="utf-8")
    return path


@functools.cache
def _sequence(raw: bytes) -> int:
    """The SEQUENCE of a message's calendar (each of the 1,596 messages read once: the
    email package's header parsing was most of this file's minute)."""
    return int(calendar_of(parse(raw)).walk("VEVENT")[0]["SEQUENCE"])


def _step(messages: list[bytes], sequence: int) -> list[bytes]:
    """The messages of one step (the Maildir does not keep arrival order)."""
    return [raw for raw in messages if _sequence(raw) == sequence]


def _by_office(messages: list[bytes]) -> dict[str, list[bytes]]:
    found: dict[str, list[bytes]] = {}
    for raw in messages:
        (to,) = [v for k, v in raw_headers(raw) if k == "Delivered-To"]
        found.setdefault(to, []).append(raw)
    return found


@pytest.mark.slow
def test_invite_move_update_cancel(make_ws, smtp_server: Mailhog, tmp_path: Path) -> None:
    ws = make_ws(SMTP_PORT=str(smtp_server.port))
    import_contacts(ws.engine, CONTACTS)
    assert send_round(ws, "invitation").drain.sent == 532
    invitations = smtp_server.messages()

    moved = make_ws(SMTP_PORT=str(smtp_server.port), MAILER_CAMPAIGN=str(_moved(tmp_path)))
    pending = pending_change(moved.ledger(), moved.campaign.event, moved.campaign.timezone)
    assert pending is not None
    assert pending.significant
    assert pending.sequence == 0
    assert pending.describe() == (
        "วันและเวลา: วันอังคารที่ ๒๒ พฤศจิกายน ๒๕๕๙ เวลา ๑๓.๐๐ – ๑๖.๓๐ น. → "
        "วันอังคารที่ ๒๒ พฤศจิกายน ๒๕๕๙ เวลา ๑๕.๐๐ – ๑๘.๓๐ น."
    )
    result, stats = send_announcement(moved, cancel=False)
    assert (result.kind, result.sequence, result.offices, stats.sent) == ("update:1", 1, 532, 532)
    updates = _step(smtp_server.messages(), 1)
    per_office = _by_office(updates)
    assert len(per_office) == 532
    assert {len(v) for v in per_office.values()} == {1}
    first_invite = {to: raws[0] for to, raws in _by_office(invitations).items()}
    for to, (raw,) in per_office.items():
        message = parse(raw)
        calendar = calendar_of(message)
        (event,) = calendar.walk("VEVENT")
        (original,) = calendar_of(parse(first_invite[to])).walk("VEVENT")
        assert event["UID"] == original["UID"]
        assert event["SEQUENCE"] == 1
        assert calendar["METHOD"] == "REQUEST"
        assert datetime(2016, 11, 22, 8, 0, tzinfo=UTC) == event.DTSTART
        assert event["ATTENDEE"].params["PARTSTAT"] == "NEEDS-ACTION"
        assert event["ATTENDEE"].params["RSVP"] == "TRUE"
    sample = parse(next(iter(per_office.values()))[0])
    assert decoded(dict(raw_headers(next(iter(per_office.values()))[0]))["Subject"]).startswith(
        "แจ้งเปลี่ยนแปลง: "
    )
    body = text_of(sample, "text/plain")
    assert "เดิม วันอังคารที่ ๒๒ พฤศจิกายน ๒๕๕๙ เวลา ๑๓.๐๐ – ๑๖.๓๐ น." in body
    assert "เปลี่ยนเป็น วันอังคารที่ ๒๒ พฤศจิกายน ๒๕๕๙ เวลา ๑๕.๐๐ – ๑๘.๓๐ น." in body

    with pytest.raises(MailerError, match="nothing significant changed"):
        send_announcement(moved, cancel=False)

    result, stats = send_announcement(moved, cancel=True)
    assert (result.kind, result.sequence, stats.sent) == ("cancel", 2, 532)
    assert len(smtp_server.messages()) == 3 * 532
    cancels = _by_office(_step(smtp_server.messages(), 2))
    assert len(cancels) == 532
    assert {len(v) for v in cancels.values()} == {1}
    for to, (raw,) in cancels.items():
        message = parse(raw)
        assert part(message, "text/calendar").get_param("method") == "CANCEL"
        calendar = calendar_of(message)
        (event,) = calendar.walk("VEVENT")
        assert calendar["METHOD"] == "CANCEL"
        assert event["STATUS"] == "CANCELLED"
        assert event["SEQUENCE"] == 2
        assert not event.walk("VALARM")
        (original,) = calendar_of(parse(first_invite[to])).walk("VEVENT")
        assert event["UID"] == original["UID"]
        parsed = vobject.readOne(part(message, "text/calendar").get_payload(decode=True).decode())
        assert parsed.method.value == "CANCEL"
        assert parsed.vevent.sequence.value == "2"
        assert parsed.vevent.uid.value == str(original["UID"])

    with pytest.raises(MailerError, match="already cancelled"):
        send_announcement(moved, cancel=True)
    with pytest.raises(MailerError, match="the event was cancelled"):
        send_round(moved, "invitation")
    assert [v.reason for v in versions(moved.ledger())] == ["invitation", "update", "cancel"]
    report = status(moved.ledger(), moved.campaign)
    assert report.event is not None
    assert report.event.cancelled
    assert report.to_json()["event"]["sequence"] == 2


@pytest.mark.slow
def test_nothing_sent_yet_means_nothing_to_update(make_ws, smtp_server: Mailhog) -> None:
    ws = make_ws(SMTP_PORT=str(smtp_server.port))
    import_contacts(ws.engine, CONTACTS)
    with pytest.raises(MailerError, match="no invitation has been sent yet"):
        send_announcement(ws, cancel=False)


@pytest.mark.slow
def test_dry_run_writes_nothing(make_ws, smtp_server: Mailhog, tmp_path: Path) -> None:
    ws = make_ws(SMTP_PORT=str(smtp_server.port))
    import_contacts(ws.engine, CONTACTS)
    send_round(ws, "invitation", only=["TH-50"])
    moved = make_ws(SMTP_PORT=str(smtp_server.port), MAILER_CAMPAIGN=str(_moved(tmp_path)))
    result, _ = send_announcement(moved, cancel=False, dry_run=True)
    assert (result.sequence, result.offices, result.enqueued) == (1, 7, 0)
    assert len(smtp_server.messages()) == 7
    assert [v.reason for v in versions(moved.ledger())] == ["invitation"]


@pytest.mark.slow
def test_an_update_skips_offices_that_declined(
    make_ws, smtp_server: Mailhog, tmp_path: Path
) -> None:
    from mailer.replies.attendance import mark

    ws = make_ws(SMTP_PORT=str(smtp_server.port))
    import_contacts(ws.engine, CONTACTS)
    send_round(ws, "invitation", only=["TH-50"])
    mark(ws.ledger(), "TH-50-prov", "declined", representative={}, note="")
    moved = make_ws(SMTP_PORT=str(smtp_server.port), MAILER_CAMPAIGN=str(_moved(tmp_path)))
    result, stats = send_announcement(moved, cancel=False)
    assert (result.offices, stats.sent) == (6, 6)
    assert "saraban.th50@prov.example" not in _by_office(_step(smtp_server.messages(), 1))
    result, stats = send_announcement(moved, cancel=True)
    assert stats.sent == 7  # a cancellation reaches every calendar that holds the invitation


@pytest.mark.slow
def test_a_cancellation_stops_what_was_still_queued(make_ws, smtp_server: Mailhog) -> None:
    ws = make_ws(SMTP_PORT=str(smtp_server.port))
    import_contacts(ws.engine, CONTACTS)
    send_round(ws, "invitation", only=["TH-50"])
    ledger = ws.ledger()
    ledger.enqueue(
        [("TH-51-agri", "saraban.th51@agri.example")], "invitation", 0,
        lambda i: new_message_id(ws.campaign, i, "invitation"),
    )  # fmt: skip
    result, stats = send_announcement(ws, cancel=True)
    assert (result.enqueued, result.stopped_queued, stats.sent) == (7, 1, 7)
    row = next(i for i in status(ws.ledger(), ws.campaign).invitees if i.invitee_id == "TH-51-agri")
    assert row.delivery == "failed"
    assert row.last_reply == "not sent: the event was cancelled"
    assert Counter(len(v) for v in _by_office(smtp_server.messages()).values()) == Counter({2: 7})


@pytest.mark.parametrize(
    ("name", "method", "sequence"), [("update", "REQUEST", 1), ("cancel", "CANCEL", 2)]
)
def test_golden_update_and_cancel(name: str, method: str, sequence: int) -> None:
    composer = Composer(load_campaign(CAMPAIGN), TEMPLATES)
    invitee = InviteeRecord(
        "TH-50-agri", "สำนักงานเกษตรจังหวัดเชียงใหม่", "เรียน เกษตรจังหวัดเชียงใหม่",
        ("saraban.th50@agri.example",),
    )  # fmt: skip
    mail = OutgoingMail(
        invitee, name, "<golden@ega.or.th>", sequence, method, extra={"changes": []}
    )
    raw = composer.compose(mail, datetime(2016, 11, 10, 2, 0, tzinfo=UTC)).data
    ics = part(parse(raw), "text/calendar").get_payload(decode=True)
    path = GOLDEN / f"{name}-TH-50-agri.ics"
    if os.environ.get("UPDATE_GOLDEN"):
        path.write_bytes(ics)
    assert ics == path.read_bytes()
    parsed = vobject.readOne(ics.decode())
    assert parsed.method.value == method
    assert parsed.vevent.sequence.value == str(sequence)
    assert parsed.vevent.uid.value == "egov-seminar-2559-TH-50-agri@ega.or.th"


@pytest.mark.slow
def test_a_cancellation_also_stops_updates_not_yet_sent(
    make_ws, smtp_server: Mailhog, tmp_path: Path
) -> None:
    from mailer.rounds.announce import announce

    ws = make_ws(SMTP_PORT=str(smtp_server.port))
    import_contacts(ws.engine, CONTACTS)
    send_round(ws, "invitation", only=["TH-50"])
    moved = make_ws(SMTP_PORT=str(smtp_server.port), MAILER_CAMPAIGN=str(_moved(tmp_path)))
    assert (
        announce(moved.ledger(), moved.campaign, cancel=False, dry_run=False).enqueued == 7
    )  # not sent
    result, stats = send_announcement(moved, cancel=True)
    assert (result.stopped_queued, stats.sent) == (7, 7)
    assert _step(smtp_server.messages(), 1) == []  # no "moved" update after the cancellation


def test_the_scheduler_rereads_the_campaign_file(make_ws, tmp_path: Path) -> None:
    path = tmp_path / "campaign.toml"
    path.write_text(CAMPAIGN.read_text(encoding="utf-8"), encoding="utf-8")
    ws = make_ws(MAILER_CAMPAIGN=str(path))
    assert ws.campaign.event.start.hour == 13
    path.write_text(MOVED, encoding="utf-8")
    assert ws.campaign.event.start.hour == 13  # cached for the life of a command
    ws.reload()
    assert ws.campaign.event.start.hour == 15
    assert ws.composer.campaign.event.start.hour == 15
