"""Hardening of reply reading: only the office answers for the office (#6), an answer to an
earlier SEQUENCE is shown (#13), evidence is one line (#14), a hostile message neither
crashes a sync nor a later review."""

from __future__ import annotations

import hashlib
import mailbox
from email.message import EmailMessage
from pathlib import Path

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from mailer.cli import app
from mailer.invitees.importing import import_contacts
from mailer.replies import sources
from mailer.replies.attendance import attendance, review
from mailer.replies.sync import sync
from mailer.replies.tables import I
from tests.conftest import CAMPAIGN, CONTACTS, TEMPLATES
from tests.test_replies import COORDINATOR, _dsn, _reply

UID = "egov-seminar-2559-{}@ega.or.th"
AGRI = "saraban.th50@agri.example"  # TH-50-agri's address in contacts.csv


def _message_id(invitee_id: str, kind: str = "invitation") -> str:
    token = hashlib.sha1(f"{invitee_id}{kind}".encode()).hexdigest()[:12]
    return f"<egov-seminar-2559.{invitee_id}.{kind}.{token}@ega.or.th>"


def _sent(ws):  # type: ignore[no-untyped-def]
    """The TH-50 offices were sent their invitation (SEQUENCE 0) to their contact addresses;
    TH-50-prov's invitation is still queued."""
    import_contacts(ws.engine, CONTACTS)
    offices = [f"TH-50-{a}" for a in ("agri", "prov", "ind", "dbd", "sso", "rd", "mots")]
    with ws.engine.connect() as conn:
        rows = [(i, e) for i, e in conn.execute(select(I.invitee_id, I.emails)) if i in offices]
    ws.ledger().enqueue(rows, "invitation", 0, _message_id)
    with ws.engine.begin() as conn:
        conn.exec_driver_sql("UPDATE delivery SET state = 'sent' WHERE invitee_id <> 'TH-50-prov'")
    return ws


@pytest.fixture
def sent(make_ws):  # type: ignore[no-untyped-def]
    return _sent(make_ws())


@pytest.fixture
def sent_anywhere(make_ws, database_url: str):  # type: ignore[no-untyped-def]
    """`sent`, on SQLite and on PostgreSQL."""
    return _sent(make_ws(DATABASE_URL=database_url))


def _calendar(
    sender: str, uid: str, partstat: str, *, attendee: str | None = None, sequence: int = 0,
    comment: str = "", headers: dict[str, str] | None = None, extra: str = "",
) -> bytes:  # fmt: skip
    ics = (
        "BEGIN:VCALENDAR\r\nPRODID:-//Google Inc//Google Calendar 70.9054//EN\r\nVERSION:2.0\r\n"
        "METHOD:REPLY\r\nBEGIN:VEVENT\r\nDTSTART:20161122T060000Z\r\nDTEND:20161122T093000Z\r\n"
        f"UID:{uid}\r\nSEQUENCE:{sequence}\r\n"
        f"ATTENDEE;CN=Someone;PARTSTAT={partstat}{extra}:mailto:{attendee or sender}\r\n"
        + (f"COMMENT:{comment}\r\n" if comment else "")
        + f"ORGANIZER:mailto:{COORDINATOR}\r\nSUMMARY:สัมมนา\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    )
    message = EmailMessage()
    message["From"] = sender
    message["To"] = COORDINATOR
    message["Subject"] = f"{partstat.title()}: สัมมนา"
    for name, value in (headers or {}).items():
        message[name] = value
    message.set_content("Someone has answered this invitation.")
    message.add_alternative(ics, subtype="calendar", params={"method": "REPLY"})
    return message.as_bytes()


def _queue(ws) -> dict[str | None, list[str]]:  # type: ignore[no-untyped-def]
    found: dict[str | None, list[str]] = {}
    for item in review(ws.ledger()):
        found.setdefault(item.invitee_id, []).append(item.evidence)
    return found


# --- #6 Only the office answers for the office ---------------------------------------------


@pytest.mark.slow
def test_a_forged_calendar_reply_with_a_guessed_uid_does_not_count(sent_anywhere, clock) -> None:  # type: ignore[no-untyped-def]
    sent = sent_anywhere
    sync(
        sent.ledger(),
        sent.campaign,
        "eml:x",
        [("real", _calendar(AGRI, UID.format("TH-50-agri"), "ACCEPTED"))],
    )
    clock.advance(minutes=5)
    forged = _calendar("attacker@evil.example", UID.format("TH-50-agri"), "DECLINED")
    sync(sent.ledger(), sent.campaign, "eml:x", [("forged", forged)])
    found = attendance(sent.ledger())["TH-50-agri"]
    assert found.status == "accepted"
    (evidence,) = _queue(sent)["TH-50-agri"]
    assert "PARTSTAT=DECLINED" in evidence
    assert "not counted: from attacker@evil.example, not an address of TH-50-agri" in evidence


def test_a_forged_delegation_names_no_representative(sent) -> None:  # type: ignore[no-untyped-def]
    forged = _calendar(
        "attacker@evil.example", UID.format("TH-50-ind"), "DELEGATED",
        extra=';DELEGATED-TO="mailto:fake@evil.example"',
    )  # fmt: skip
    sync(sent.ledger(), sent.campaign, "eml:x", [("forged", forged)])
    found = attendance(sent.ledger())["TH-50-ind"]
    assert (found.status, found.representative) == ("needs_review", {})


def test_the_office_answers_as_attendee_through_a_calendar_service(sent) -> None:  # type: ignore[no-untyped-def]
    relayed = _calendar(
        "calendar-notification@google.example", UID.format("TH-50-agri"), "ACCEPTED", attendee=AGRI
    )
    sync(sent.ledger(), sent.campaign, "eml:x", [("1", relayed)])
    assert attendance(sent.ledger())["TH-50-agri"].status == "accepted"


def test_a_calendar_reply_to_an_entry_that_is_not_ours_does_not_count(sent) -> None:  # type: ignore[no-untyped-def]
    other = _calendar(AGRI, "weekly-meeting-77@agri.example", "DECLINED")
    sync(sent.ledger(), sent.campaign, "eml:x", [("1", other)])
    found = attendance(sent.ledger())["TH-50-agri"]
    assert found.status == "needs_review"
    assert "weekly-meeting-77@agri.example is not one of this campaign's" in found.evidence


def test_a_forged_bounce_with_a_made_up_message_id_does_not_mark_bounced(sent) -> None:  # type: ignore[no-untyped-def]
    forged = _dsn(AGRI, "<egov-seminar-2559.TH-50-agri.invitation.000000000000@ega.or.th>")
    sync(sent.ledger(), sent.campaign, "eml:x", [("1", forged)])
    found = attendance(sent.ledger())["TH-50-agri"]
    assert found.status == "needs_review"
    assert "a Message-ID shaped like ours that we never sent" in found.evidence


def test_a_bounce_for_an_address_we_never_sent_to_does_not_count(sent) -> None:  # type: ignore[no-untyped-def]
    sync(
        sent.ledger(),
        sent.campaign,
        "eml:x",
        [("1", _dsn("saraban.th50@prov.example", "<unrelated@mx.example>"))],
    )
    found = attendance(sent.ledger())["TH-50-prov"]  # its invitation is still queued
    assert found.status == "needs_review"
    assert "which we have not sent to" in found.evidence


def test_a_bounce_naming_another_offices_address_than_our_message_does_not_count(sent) -> None:  # type: ignore[no-untyped-def]
    crossed = _dsn("saraban.th50@ind.example", _message_id("TH-50-agri"))
    sync(sent.ledger(), sent.campaign, "eml:x", [("1", crossed)])
    assert attendance(sent.ledger())["TH-50-agri"].status == "needs_review"
    assert attendance(sent.ledger()).get("TH-50-ind") is None


def test_a_real_bounce_still_counts(sent) -> None:  # type: ignore[no-untyped-def]
    sync(
        sent.ledger(),
        sent.campaign,
        "eml:x",
        [("1", _dsn("saraban.th50@sso.example", _message_id("TH-50-sso")))],
    )
    sync(
        sent.ledger(),
        sent.campaign,
        "eml:x",
        [("2", _dsn("saraban.th50@rd.example", "<unrelated@mx.example>"))],
    )
    found = attendance(sent.ledger())
    assert (found["TH-50-sso"].status, found["TH-50-rd"].status) == ("bounced", "bounced")


@pytest.mark.slow
def test_our_message_id_quoted_in_a_body_is_not_a_thread(sent) -> None:  # type: ignore[no-untyped-def]
    pasted = _reply(
        "stranger@else.example", f"ยินดีเข้าร่วม\n\nMessage-ID: {_message_id('TH-50-agri')}"
    )
    report = sync(sent.ledger(), sent.campaign, "eml:x", [("1", pasted)])
    assert report.unmatched == 1
    assert "TH-50-agri" not in attendance(sent.ledger())


def test_an_auto_reply_header_does_not_hide_an_answer(sent) -> None:  # type: ignore[no-untyped-def]
    marked = EmailMessage()
    marked["From"] = AGRI
    marked["Subject"] = "Re: ขอเชิญเข้าร่วมงานสัมมนา"
    marked["Precedence"] = "bulk"  # what some saraban systems add to everything
    marked["Auto-Submitted"] = "auto-generated"
    marked.set_content("ยินดีเข้าร่วมค่ะ")
    calendar = _calendar(
        "saraban.th50@rd.example", UID.format("TH-50-rd"), "DECLINED",
        headers={"Auto-Submitted": "auto-generated"},
    )  # fmt: skip
    sync(sent.ledger(), sent.campaign, "eml:x", [("1", marked.as_bytes()), ("2", calendar)])
    found = attendance(sent.ledger())
    assert found["TH-50-agri"].status == "needs_review"
    assert "marked automatic" in found["TH-50-agri"].evidence
    assert "reads as accepted" in found["TH-50-agri"].evidence
    assert found["TH-50-rd"].status == "declined"  # a calendar reply is read before


def test_a_from_that_failed_dmarc_is_no_tie_but_our_thread_still_is(sent) -> None:  # type: ignore[no-untyped-def]
    verdict = (
        "mx.google.com; dkim=none; spf=softfail smtp.mailfrom=evil.example; "
        "dmarc=fail (p=NONE sp=NONE dis=NONE) header.from=agri.example"
    )
    spoofed = _calendar(
        AGRI, UID.format("TH-50-agri"), "DECLINED", headers={"Authentication-Results": verdict}
    )
    threaded = EmailMessage()
    threaded["From"] = "saraban.th50@ind.example"
    threaded["Authentication-Results"] = verdict.replace("agri.example", "ind.example")
    threaded["In-Reply-To"] = _message_id("TH-50-ind")
    threaded.set_content("ยินดีเข้าร่วมครับ")
    sync(sent.ledger(), sent.campaign, "eml:x", [("1", spoofed), ("2", threaded.as_bytes())])
    found = attendance(sent.ledger())
    assert found["TH-50-agri"].status == "needs_review"
    assert "agri.example failed DMARC" in found["TH-50-agri"].evidence
    assert found["TH-50-ind"].status == "accepted"  # a Message-ID we sent is no From line


# --- #13 An answer to an older SEQUENCE is shown ------------------------------------------


def _update(ws, *offices: str) -> None:  # type: ignore[no-untyped-def]
    ws.ledger().enqueue(
        [(o, f"saraban.th50@{o.split('-')[-1]}.example") for o in offices], "update:1", 1,
        lambda i: _message_id(i, "update"),
    )  # fmt: skip
    with ws.engine.begin() as conn:
        conn.exec_driver_sql("UPDATE delivery SET state = 'sent' WHERE kind = 'update:1'")


@pytest.mark.slow
def test_an_answer_to_the_earlier_version_is_shown_but_does_not_count(sent_anywhere, clock) -> None:  # type: ignore[no-untyped-def]
    sent = sent_anywhere
    _update(sent, "TH-50-agri")
    sync(
        sent.ledger(),
        sent.campaign,
        "eml:x",
        [("old", _calendar(AGRI, UID.format("TH-50-agri"), "DECLINED"))],
    )
    found = attendance(sent.ledger())["TH-50-agri"]
    assert found.status == "no_reply"
    assert "answered the earlier version (SEQUENCE 0" in found.evidence
    assert "PARTSTAT=DECLINED" in found.evidence
    (evidence,) = _queue(sent)["TH-50-agri"]
    assert "answered the earlier version" in evidence
    clock.advance(minutes=5)  # the office answers the current version: settled
    new = _calendar(AGRI, UID.format("TH-50-agri"), "ACCEPTED", sequence=1)
    sync(sent.ledger(), sent.campaign, "eml:x", [("new", new)])
    assert attendance(sent.ledger())["TH-50-agri"].status == "accepted"
    assert "TH-50-agri" not in _queue(sent)


def test_a_late_answer_to_the_earlier_version_is_shown_after_the_current_one(sent, clock) -> None:  # type: ignore[no-untyped-def]
    _update(sent, "TH-50-agri")
    sync(
        sent.ledger(),
        sent.campaign,
        "eml:x",
        [("new", _calendar(AGRI, UID.format("TH-50-agri"), "ACCEPTED", sequence=1))],
    )
    clock.advance(minutes=5)
    sync(
        sent.ledger(),
        sent.campaign,
        "eml:x",
        [("old", _calendar(AGRI, UID.format("TH-50-agri"), "DECLINED"))],
    )
    assert attendance(sent.ledger())["TH-50-agri"].status == "accepted"
    assert "answered the earlier version" in _queue(sent)["TH-50-agri"][0]


# --- #14 Evidence is one line ---------------------------------------------------------------


def test_evidence_and_subjects_are_one_printable_line(sent) -> None:  # type: ignore[no-untyped-def]
    comment = "ติดภารกิจ\\nขออภัย\x1b[31m" + "ยาว" * 500
    hostile = _calendar(
        "attacker@evil.example", UID.format("TH-50-agri"), "DECLINED", comment=comment
    ).replace(b"Subject: ", b"Subject: =?utf-8?q?line=0Anext=1B[2J?= ", 1)
    sync(sent.ledger(), sent.campaign, "eml:x", [("1", hostile)])
    found = attendance(sent.ledger())["TH-50-agri"]
    (item,) = list(review(sent.ledger()))
    for text in (found.evidence, item.evidence, item.subject):
        assert text.isprintable(), text
    assert "ติดภารกิจ ขออภัย" in found.evidence
    assert "characters)" in found.evidence
    assert len(found.evidence) < 700


# --- Hostile messages -----------------------------------------------------------------------


def _nested(depth: int) -> bytes:
    parts = [b"From: a@b.example\r\nSubject: deep\r\nMIME-Version: 1.0\r\n"]
    for i in range(depth):
        parts.append(f'Content-Type: multipart/mixed; boundary="b{i}"\r\n\r\n--b{i}\r\n'.encode())
    parts.append(b"Content-Type: text/plain\r\n\r\nyes\r\n")
    parts.extend(f"--b{i}--\r\n".encode() for i in reversed(range(depth)))
    return b"".join(parts)


@pytest.mark.slow
def test_a_deeply_nested_message_is_kept_marked_and_reviewable(sent, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    box = mailbox.mbox(tmp_path / "in.mbox")
    box.add(_reply(AGRI, "ยินดีเข้าร่วม", _message_id("TH-50-agri")))
    box.close()
    with (tmp_path / "in.mbox").open("ab") as handle:
        handle.write(b"From a@b.example Tue Nov  1 09:00:00 2016\n" + _nested(1000) + b"\n")
    report = sync(sent.ledger(), sent.campaign, "mbox:x", sources.mbox(tmp_path / "in.mbox"))
    assert (report.seen, report.new) == (2, 2)
    (item,) = list(review(sent.ledger()))
    assert item.kind == "unreadable"
    assert item.subject == "deep"
    assert "nested more than 50 levels deep" in item.evidence
    with sent.engine.connect() as conn:
        raws = [r for (r,) in conn.exec_driver_sql("SELECT raw FROM inbound_message")]
    assert any(r.startswith(b"From: a@b.example\r\nSubject: deep") for r in raws)  # kept raw
    again = sync(sent.ledger(), sent.campaign, "mbox:x", sources.mbox(tmp_path / "in.mbox"))
    assert (again.seen, again.new) == (2, 0)


@pytest.mark.slow
def test_a_folder_named_like_a_message_is_named_not_a_traceback(sent, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    inbox = tmp_path / "inbox"
    (inbox / "x.eml").mkdir(parents=True)
    (inbox / "a.eml").write_bytes(_reply(AGRI, "ยินดีเข้าร่วม"))
    env = {
        "DATABASE_URL": sent.settings.database_url,
        "MAILER_CAMPAIGN": str(CAMPAIGN),
        "MAILER_TEMPLATES": str(TEMPLATES),
    }
    result = CliRunner().invoke(app, ["replies", "sync", "--eml-dir", str(inbox)], env=env)
    assert result.exit_code == 1, result.output
    assert f"Error: {inbox / 'x.eml'} is a folder, not a message file" in result.output
    assert "Traceback" not in result.output


def test_the_cli_says_what_did_not_count_and_review_shows_why(sent, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    forged = _calendar("attacker@evil.example", UID.format("TH-50-agri"), "DECLINED")
    (inbox / "forged.eml").write_bytes(forged)
    env = {
        "DATABASE_URL": sent.settings.database_url,
        "MAILER_CAMPAIGN": str(CAMPAIGN),
        "MAILER_TEMPLATES": str(TEMPLATES),
    }
    runner = CliRunner()
    result = runner.invoke(app, ["replies", "sync", "--eml-dir", str(inbox)], env=env)
    assert result.exit_code == 0, result.output
    assert "1 new of 1 message(s)" in result.output
    assert "needs_review 1" in result.output
    assert "1 name an office but do not count by themselves" in result.output
    result = runner.invoke(app, ["replies", "review"], env=env)
    assert "TH-50-agri [calendar_reply] Declined: สัมมนา" in result.output
    assert "not counted: from attacker@evil.example, not an address of TH-50-agri" in result.output


def test_a_bounce_for_an_address_that_took_a_partly_delivered_message_counts(sent) -> None:  # type: ignore[no-untyped-def]
    """#3 with #6: TH-50-prov's invitation went to one of its addresses and waits for a retry
    of another; a later bounce for the address that took it names an address we sent to."""
    with sent.engine.begin() as conn:
        conn.exec_driver_sql(
            "UPDATE delivery SET state = 'retry_wait', delivered_to = 'saraban.th50@prov.example' "
            "WHERE invitee_id = 'TH-50-prov'"
        )
    sync(
        sent.ledger(),
        sent.campaign,
        "eml:x",
        [("1", _dsn("saraban.th50@prov.example", _message_id("TH-50-prov")))],
    )
    assert attendance(sent.ledger())["TH-50-prov"].status == "bounced"
