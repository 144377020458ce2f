"""The invitation as mail clients and calendars will read it (docs/design.md §5)."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

import pytest
import vobject

from mailer.campaign import load_campaign
from mailer.compose import Composer, OutgoingMail
from mailer.errors import TemplateProblem
from mailer.invitees.importing import InviteeRecord
from tests.conftest import CAMPAIGN, TEMPLATES
from tests.helpers import (
    EXPECTED_TREE,
    calendar_of,
    decoded,
    parse,
    part,
    raw_headers,
    text_of,
    tree,
)

GOLDEN = Path(__file__).parent / "golden"
NOW = datetime(2016, 11, 1, 2, 0, tzinfo=UTC)
CHIANG_MAI_AGRI = InviteeRecord(
    invitee_id="TH-50-agri",
    organisation="สำนักงานเกษตรจังหวัดเชียงใหม่",
    salutation="เรียน เกษตรจังหวัดเชียงใหม่",
    email=("saraban.th50@agri.example",),
    province="เชียงใหม่",
    province_code="TH-50",
    agency="agri",
    phone="0 5000 0002",
)
MESSAGE_ID = "<egov-seminar-2559.TH-50-agri.invitation.0123456789ab@ega.or.th>"


@pytest.fixture(scope="module")
def composer() -> Composer:
    return Composer(load_campaign(CAMPAIGN), TEMPLATES)


def _compose(composer: Composer, invitee: InviteeRecord = CHIANG_MAI_AGRI, **kw: object) -> bytes:
    mail = OutgoingMail(invitee, "invitation", MESSAGE_ID, 0, **kw)  # type: ignore[arg-type]
    return composer.compose(mail, NOW).data


def _golden(name: str, data: bytes) -> None:
    path = GOLDEN / name
    if os.environ.get("UPDATE_GOLDEN"):
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(data)
    assert data == path.read_bytes(), (
        f"{name} differs from the golden file (UPDATE_GOLDEN=1 to accept)"
    )


def test_mime_tree_is_exactly_the_design(composer: Composer) -> None:
    raw = _compose(composer)
    message = parse(raw)
    assert tree(message) == EXPECTED_TREE
    assert [p.defects for p in message.walk()] == [[]] * 6  # the stdlib parser is content
    assert all(len(line) <= 78 for line in raw.split(b"\r\n"))
    assert b"\n" not in raw.replace(b"\r\n", b"")
    assert b"\r" not in raw.replace(b"\r\n", b"")
    calendar_part = part(message, "text/calendar")
    assert calendar_part.get_param("method") == "REQUEST"
    assert calendar_part.get_content_charset() == "utf-8"
    assert "Content-Disposition" not in calendar_part
    attachment = part(message, "application/ics")
    assert attachment.get_filename() == "invite.ics"
    assert attachment.get_param("name") == "invite.ics"
    assert attachment.get_payload(decode=True) == calendar_part.get_payload(decode=True)


def test_headers_are_ascii_rfc2047_and_name_the_coordinator(composer: Composer) -> None:
    raw = _compose(composer)
    head = raw.split(b"\r\n\r\n", 1)[0]
    assert head.isascii()
    assert all(len(line) <= 78 for line in head.split(b"\r\n"))
    headers = dict(raw_headers(raw))
    assert decoded(headers["Subject"]) == (
        "ขอเชิญเข้าร่วมงานสัมมนา รายงานผลการสำรวจระดับความพร้อมการพัฒนาธรรมาภิบาลดิจิทัล "
        "หน่วยงานภาครัฐระดับจังหวัด ประจำปี ๒๕๕๙ (๒๒ พ.ย. ๒๕๕๙)"
    )
    assert decoded(headers["To"]) == "สำนักงานเกษตรจังหวัดเชียงใหม่ <saraban.th50@agri.example>"
    assert decoded(headers["Reply-To"]) == "นายธรรมพ ศิริธรรมวิไล <thannop.sirithamwilai@ega.or.th>"
    assert headers["Message-ID"] == MESSAGE_ID
    assert headers["Date"] == "Tue, 01 Nov 2016 09:00:00 +0700"
    assert headers["X-Auto-Response-Suppress"] == "OOF, AutoReply"
    assert "Auto-Submitted" not in headers  # the invitation is sent by a person's command
    assert headers["Content-Language"] == "th"


def test_thai_letter_follows_the_source_letter(composer: Composer) -> None:
    message = parse(_compose(composer))
    text = text_of(message, "text/plain")
    html = text_of(message, "text/html")
    for body in (text, html):
        assert "เรียน เกษตรจังหวัดเชียงใหม่" in body
        assert "วันอังคารที่ ๒๒ พฤศจิกายน ๒๕๕๙ เวลา ๑๓.๐๐ – ๑๖.๓๐ น." in body
        assert "ห้องออดิทอเรียม อาคารทรงกลม ศูนย์ประชุมวายุภักษ์" in body
        assert "๐๘ ๑๘๔๕ ๑๔๕๙" in body
        assert "thannop.sirithamwilai@ega.or.th" in body
        assert "\u09a1" not in body
        assert "\u09bf" not in body
    assert text.startswith("เรื่อง ขอเชิญเข้าร่วมงานสัมมนา")
    assert "<img" not in html
    assert "http://" not in html
    assert "https://" not in html


def test_calendar_is_a_request_for_the_seminar_in_bangkok_time(composer: Composer) -> None:
    message = parse(_compose(composer))
    calendar = calendar_of(message)
    assert calendar["METHOD"] == "REQUEST" == part(message, "text/calendar").get_param("method")
    (event,) = calendar.walk("VEVENT")
    assert datetime(2016, 11, 22, 6, 0, tzinfo=UTC) == event.DTSTART
    assert datetime(2016, 11, 22, 9, 30, tzinfo=UTC) == event.DTEND
    assert event["DTSTART"].params["TZID"] == "Asia/Bangkok"
    assert [tz["TZID"] for tz in calendar.walk("VTIMEZONE")] == ["Asia/Bangkok"]
    assert "X-WR-TIMEZONE" not in calendar
    assert event["UID"] == "egov-seminar-2559-TH-50-agri@ega.or.th"
    assert event["SEQUENCE"] == 0
    assert event.DTSTAMP == NOW
    assert str(event["ORGANIZER"]) == "mailto:thannop.sirithamwilai@ega.or.th"
    assert event["ORGANIZER"].params["CN"] == "นายธรรมพ ศิริธรรมวิไล"
    attendee = event["ATTENDEE"]
    assert not isinstance(attendee, list), "the invitee must be the only ATTENDEE"
    assert str(attendee) == "mailto:saraban.th50@agri.example"
    assert dict(attendee.params) == {
        "CN": "สำนักงานเกษตรจังหวัดเชียงใหม่",
        "CUTYPE": "INDIVIDUAL",
        "ROLE": "REQ-PARTICIPANT",
        "PARTSTAT": "NEEDS-ACTION",
        "RSVP": "TRUE",
    }
    assert len(event.walk("VALARM")) == 1
    assert event["STATUS"] == "CONFIRMED"


def test_a_second_parser_reads_the_same_event(composer: Composer) -> None:
    """vobject is independent of icalendar: both must agree on what the calendar says."""
    ics = part(parse(_compose(composer)), "text/calendar").get_payload(decode=True)
    parsed = vobject.readOne(ics.decode("utf-8"))
    assert parsed.method.value == "REQUEST"
    assert parsed.vevent.uid.value == "egov-seminar-2559-TH-50-agri@ega.or.th"
    assert parsed.vevent.dtstart.value.astimezone(UTC) == datetime(2016, 11, 22, 6, 0, tzinfo=UTC)
    assert parsed.vevent.dtend.value.astimezone(UTC) == datetime(2016, 11, 22, 9, 30, tzinfo=UTC)


def test_golden_ics_and_eml(composer: Composer) -> None:
    raw = _compose(composer)
    _golden("invitation-TH-50-agri.eml", raw)
    _golden("invitation-TH-50-agri.ics", part(parse(raw), "text/calendar").get_payload(decode=True))


def test_same_input_gives_the_same_bytes(composer: Composer) -> None:
    assert _compose(composer) == _compose(composer)


def test_several_addresses_go_to_and_cc_and_each_is_an_attendee(composer: Composer) -> None:
    """Hardening #12: whichever address opens it, the client finds itself on the guest list."""
    invitee = InviteeRecord(
        "TH-50-prov",
        "สำนักงานจังหวัดเชียงใหม่",
        "เรียน หัวหน้าสำนักงานจังหวัดเชียงใหม่",
        ("a@prov.example", "b@prov.example"),
    )
    mail = OutgoingMail(invitee, "invitation", MESSAGE_ID, 0)
    composed = composer.compose(mail, NOW)
    assert composed.recipients == ("a@prov.example", "b@prov.example")
    headers = dict(raw_headers(composed.data))
    assert decoded(headers["Cc"]).endswith("<b@prov.example>")
    (event,) = calendar_of(parse(composed.data)).walk("VEVENT")
    attendees = event["ATTENDEE"]
    assert [str(a) for a in attendees] == ["mailto:a@prov.example", "mailto:b@prov.example"]
    for attendee in attendees:
        assert attendee.params["CN"] == "สำนักงานจังหวัดเชียงใหม่"
        assert attendee.params["RSVP"] == "TRUE"
        assert attendee.params["PARTSTAT"] == "NEEDS-ACTION"
    assert "mailto:thannop.sirithamwilai@ega.or.th" not in [str(a) for a in attendees]


def test_the_vtimezone_carries_no_comment_of_its_own(composer: Composer) -> None:
    """Hardening #14: RFC 5545 allows COMMENT in STANDARD/DAYLIGHT, not in VTIMEZONE."""
    (zone,) = calendar_of(parse(_compose(composer))).walk("VTIMEZONE")
    assert "COMMENT" not in zone
    assert zone["TZID"] == "Asia/Bangkok"
    assert [c.name for c in zone.subcomponents] == ["STANDARD"]


def test_test_sample_has_its_own_uid_and_a_marked_subject(composer: Composer) -> None:
    message = parse(_compose(composer, test=True))
    (event,) = calendar_of(message).walk("VEVENT")
    assert event["UID"] == "test-egov-seminar-2559-TH-50-agri@ega.or.th"
    assert decoded(dict(raw_headers(_compose(composer, test=True)))["Subject"]).startswith(
        "[ทดสอบ] "
    )


def test_reminders_are_marked_auto_submitted(composer: Composer) -> None:
    headers = dict(raw_headers(_compose(composer, automatic=True)))
    assert headers["Auto-Submitted"] == "auto-generated"


def test_the_organizer_cannot_be_invited(composer: Composer) -> None:
    invitee = InviteeRecord("X-1", "สรอ.", "เรียน สรอ.", ("thannop.sirithamwilai@ega.or.th",))
    with pytest.raises(TemplateProblem, match="coordinator's own"):
        composer.compose(OutgoingMail(invitee, "invitation", MESSAGE_ID, 0), NOW)


def test_zero_width_text_stays_in_headers_and_evidence() -> None:
    """A zero-width joiner makes 👩‍💻 one emoji, a zero-width space marks a Thai word break:
    both stay in a header and in a reply's evidence; a bidi override does not."""
    from email import message_from_bytes, policy

    from mailer.compose import mime
    from mailer.replies.text import one_line

    text = "👩\u200d💻 สำนักงาน\u200bจังหวัด\u202e"
    header = mime.unstructured("Subject", text) + b"\r\n"
    assert str(message_from_bytes(header, policy=policy.default)["Subject"]) == text[:-1]
    assert one_line(text) == text[:-1]
