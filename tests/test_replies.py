"""Replies in the coordinator's mailbox become each office's attendance."""

from __future__ import annotations

import json
import mailbox
from email.message import EmailMessage
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mailer.cli import app
from mailer.errors import MailerError
from mailer.invitees.importing import import_contacts
from mailer.replies import sources
from mailer.replies.attendance import attendance, mark, review
from mailer.replies.classify import classify
from mailer.replies.sync import sync
from mailer.rounds.send import send_round
from mailer.views.report import status
from tests.conftest import CAMPAIGN, CONTACTS, TEMPLATES, Mailhog
from tests.helpers import calendar_of, parse

COORDINATOR = "thannop.sirithamwilai@ega.or.th"


def _our_ids(ws) -> dict[str, str]:  # type: ignore[no-untyped-def]
    return {
        i.invitee_id: i.message_id
        for i in status(ws.ledger(), ws.campaign).invitees
        if i.message_id
    }


def _reply(sender: str, body: str, in_reply_to: str | None = None, charset: str = "utf-8") -> bytes:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = COORDINATOR
    message["Subject"] = "Re: ขอเชิญเข้าร่วมงานสัมมนา"
    if in_reply_to:
        message["In-Reply-To"] = in_reply_to
    quoted = "\n\nOn Tue, 1 Nov 2016 at 09:00, สรอ. wrote:\n> ขอเชิญเข้าร่วม ... โปรดตอบรับการเข้าร่วม\n"
    message.set_content(body + quoted, charset=charset)
    return message.as_bytes()


def _calendar_reply(sender: str, uid: str, partstat: str, sequence: int = 0) -> bytes:
    ics = (
        "BEGIN:VCALENDAR\r\nPRODID:-//Google Inc//Google Calendar 70.9054//EN\r\nVERSION:2.0\r\n"
        "METHOD:REPLY\r\nBEGIN:VEVENT\r\nDTSTART:20161122T060000Z\r\nDTEND:20161122T093000Z\r\n"
        f"UID:{uid}\r\nSEQUENCE:{sequence}\r\n"
        f"ATTENDEE;CN=Someone;PARTSTAT={partstat}:mailto:{sender}\r\n"
        f"ORGANIZER:mailto:{COORDINATOR}\r\nSUMMARY:สัมมนา\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    )
    message = EmailMessage()
    message["From"] = sender
    message["To"] = COORDINATOR
    message["Subject"] = f"{partstat.title()}: สัมมนา @ Tue Nov 22, 2016 1pm - 4:30pm (ICT)"
    message.set_content("Someone has accepted this invitation.")
    message.add_alternative(ics, subtype="calendar", params={"method": "REPLY"})
    return message.as_bytes()


def _dsn(failed: str, original_id: str) -> bytes:
    return (
        "From: MAILER-DAEMON@mx.example (Mail Delivery System)\r\n"
        f"To: {COORDINATOR}\r\nSubject: Undelivered Mail Returned to Sender\r\n"
        "MIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="B"\r\n\r\n'
        "--B\r\nContent-Type: text/plain\r\n\r\nI'm sorry to have to inform you that your message "
        "could not be delivered.\r\n\r\n"
        f"--B\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.example\r\n\r\n"
        f"Final-Recipient: rfc822; {failed}\r\nOriginal-Recipient: rfc822;{failed}\r\n"
        "Action: failed\r\nStatus: 5.1.1\r\n"
        "Diagnostic-Code: smtp; 550 5.1.1 <x>: Recipient address rejected: User unknown\r\n\r\n"
        f"--B\r\nContent-Type: text/rfc822-headers\r\n\r\nMessage-ID: {original_id}\r\n"
        f"To: {failed}\r\n\r\n--B--\r\n"
    ).encode()


@pytest.fixture
def invited(make_ws, smtp_server: Mailhog):  # type: ignore[no-untyped-def]
    ws = make_ws(SMTP_PORT=str(smtp_server.port))
    import_contacts(ws.engine, CONTACTS)
    send_round(ws, "invitation", only=["TH-50"])
    return ws


def _mailbox(tmp_path: Path, messages: list[bytes]) -> Path:
    box = mailbox.Maildir(tmp_path / "coordinator", create=True)
    for raw in messages:
        box.add(raw)
    return tmp_path / "coordinator"


@pytest.mark.slow
def test_sync_classifies_matches_and_derives_attendance(invited, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    ws = invited
    ids = _our_ids(ws)
    uid = "egov-seminar-2559-TH-50-dbd@ega.or.th"
    messages = [
        _reply("saraban.th50@agri.example", "ยินดีเข้าร่วมค่ะ", ids["TH-50-agri"]),
        _reply("someone@gmail.example", "ติดภารกิจ ไม่สามารถเข้าร่วมได้ ขออภัยครับ", ids["TH-50-prov"]),
        _reply(
            "saraban.th50@ind.example",
            "ขอมอบหมายให้ นางสาวสมหญิง ใจดี ตำแหน่ง นักวิเคราะห์นโยบายและแผนชำนาญการ "
            "โทร. 08 1234 5678 เข้าร่วมแทน",
            ids["TH-50-ind"],
        ),
        _calendar_reply("deputy@gmail.example", uid, "ACCEPTED"),
        _dsn("saraban.th50@sso.example", ids["TH-50-sso"]),
        _reply("saraban.th50@rd.example", "จอดรถได้ที่ไหนครับ", ids["TH-50-rd"]),
        _reply("stranger@else.example", "ยินดีเข้าร่วม"),
    ]
    box = _mailbox(tmp_path, messages)
    report = sync(ws.ledger(), ws.campaign, "maildir:test", sources.maildir(box))
    assert (report.seen, report.new, report.unmatched) == (7, 7, 1)
    found = attendance(ws.ledger())
    assert found["TH-50-agri"].status == "accepted"
    assert found["TH-50-prov"].status == "declined"
    assert found["TH-50-ind"].status == "representative"
    assert found["TH-50-ind"].representative == {
        "name": "นางสาวสมหญิง ใจดี",
        "position": "นักวิเคราะห์นโยบายและแผนชำนาญการ",
        "phone": "0812345678",
    }
    # Named by its UID from an unknown address: not the office's answer by itself (docs/design.md §6).
    assert found["TH-50-dbd"].status == "needs_review"
    assert "not counted: from deputy@gmail.example" in found["TH-50-dbd"].evidence
    assert found["TH-50-sso"].status == "bounced"
    assert found["TH-50-rd"].status == "needs_review"
    assert "TH-50-mots" not in found
    again = sync(ws.ledger(), ws.campaign, "maildir:test", sources.maildir(box))
    assert (again.seen, again.new) == (7, 0)
    queue = list(review(ws.ledger()))
    assert {item.invitee_id for item in queue} == {"TH-50-rd", "TH-50-dbd", None}
    by_id = {i.invitee_id: i for i in status(ws.ledger(), ws.campaign).invitees}
    assert by_id["TH-50-mots"].attendance == "no_reply"
    assert by_id["TH-50-ind"].representative["name"] == "นางสาวสมหญิง ใจดี"  # type: ignore[index]


@pytest.mark.slow
def test_a_mark_wins_over_later_automatic_readings(invited, clock) -> None:  # type: ignore[no-untyped-def]
    ws = invited
    ids = _our_ids(ws)
    mark(ws.ledger(), "TH-50-agri", "declined", representative={}, note="phoned: they cannot come")
    clock.advance(minutes=5)
    sync(
        ws.ledger(),
        ws.campaign,
        "eml:x",
        [("k1", _reply("saraban.th50@agri.example", "ยินดีเข้าร่วม", ids["TH-50-agri"]))],
    )
    answer = attendance(ws.ledger())["TH-50-agri"]
    assert answer.status == "declined"
    assert answer.source == "mark"
    assert [e.status for e in answer.history] == ["declined", "accepted"]


def test_a_reply_to_an_older_sequence_is_kept_but_does_not_override(invited) -> None:  # type: ignore[no-untyped-def]
    ws = invited
    uid = "egov-seminar-2559-TH-50-agri@ega.or.th"
    ws.ledger().enqueue(
        [("TH-50-agri", "saraban.th50@agri.example")], "update:1", 1, lambda i: "<u1@t>"
    )
    with ws.engine.begin() as conn:  # the office was sent SEQUENCE 1
        conn.exec_driver_sql("UPDATE delivery SET state = 'sent' WHERE kind = 'update:1'")
    sync(
        ws.ledger(),
        ws.campaign,
        "eml:x",
        [("new", _calendar_reply("saraban.th50@agri.example", uid, "DECLINED", 1))],
    )
    sync(
        ws.ledger(),
        ws.campaign,
        "eml:x",
        [("old", _calendar_reply("saraban.th50@agri.example", uid, "ACCEPTED", 0))],
    )
    answer = attendance(ws.ledger())["TH-50-agri"]
    assert answer.status == "declined"
    assert [e.stale for e in answer.history] == [False, True]


def test_windows_874_and_undeclared_thai_bytes_are_read(invited) -> None:  # type: ignore[no-untyped-def]
    declared = _reply("saraban.th50@agri.example", "ติดภารกิจ ไม่สามารถเข้าร่วมได้", charset="cp874")
    assert b"windows-874" in declared or b"cp874" in declared
    assert classify(declared).outcome == "declined"
    body = "ยินดีเข้าร่วมครับ".encode("cp874")
    undeclared = (
        b"From: a@b.example\r\nSubject: Re\r\nContent-Type: text/plain\r\n\r\n" + body + b"\xff\r\n"
    )
    assert classify(undeclared).outcome == "accepted"


def test_auto_replies_and_counter_proposals(invited) -> None:  # type: ignore[no-untyped-def]
    ooo = EmailMessage()
    ooo["From"] = "saraban.th50@agri.example"
    ooo["Subject"] = "ตอบกลับอัตโนมัติ: ขอเชิญเข้าร่วมงานสัมมนา"
    ooo["Auto-Submitted"] = "auto-replied"
    ooo.set_content("ขณะนี้ข้าพเจ้าไม่อยู่ที่สำนักงาน")
    assert classify(ooo.as_bytes()).kind == "auto_reply"
    counter = _calendar_reply("a@b.example", "x@y", "TENTATIVE").replace(
        b"METHOD:REPLY", b"METHOD:COUNTER"
    )
    result = classify(counter)
    assert (result.kind, result.outcome) == ("calendar_reply", "needs_review")


@pytest.mark.slow
def test_our_own_invitation_parses_as_calendar_and_the_cli_flow(
    invited, tmp_path: Path, smtp_server: Mailhog
) -> None:  # type: ignore[no-untyped-def]
    ws = invited
    assert calendar_of(parse(smtp_server.messages()[0]))["METHOD"] == "REQUEST"
    ids = _our_ids(ws)
    box = _mailbox(tmp_path, [_reply("saraban.th50@agri.example", "จอดรถที่ไหน", ids["TH-50-agri"])])
    env = {
        "DATABASE_URL": ws.settings.database_url,
        "MAILER_CAMPAIGN": str(CAMPAIGN),
        "MAILER_TEMPLATES": str(TEMPLATES),
    }
    runner = CliRunner()
    result = runner.invoke(app, ["replies", "sync", "--maildir", str(box)], env=env)
    assert result.exit_code == 0, result.output
    assert "1 new of 1 message(s)" in result.output
    assert "needs_review 1" in result.output
    result = runner.invoke(app, ["replies", "review"], env=env)
    assert "TH-50-agri [human_reply]" in result.output
    assert "1 message(s) need review" in result.output
    result = runner.invoke(
        app, ["mark", "TH-50-agri", "representative", "--name", "นายสมชาย ดีใจ"], env=env
    )
    assert result.exit_code == 0
    result = runner.invoke(app, ["replies", "review"], env=env)
    assert "0 message(s) need review" in result.output
    data = json.loads(runner.invoke(app, ["status", "--json"], env=env).output)
    agri = next(i for i in data["invitees"] if i["invitee_id"] == "TH-50-agri")
    assert agri["attendance"] == "representative"
    assert agri["representative"] == {"name": "นายสมชาย ดีใจ"}
    assert data["totals"]["attendance"]["representative"] == 1
    result = runner.invoke(app, ["replies", "sync"], env=env)
    assert result.exit_code == 1
    assert "set IMAP_HOST, IMAP_USERNAME and IMAP_PASSWORD" in result.output
    result = runner.invoke(app, ["mark", "TH-50-agri", "maybe"], env=env)
    assert result.exit_code == 1
    assert "is not one of accepted, declined" in result.output


@pytest.mark.slow
def test_imap_sync_is_read_only_and_incremental(invited, dovecot) -> None:  # type: ignore[no-untyped-def]
    from imapclient import IMAPClient

    from mailer.replies.sync import highest_uid
    from mailer.settings import ImapSettings, Secret

    ws = invited
    ids = _our_ids(ws)
    client = IMAPClient("127.0.0.1", port=dovecot.port, ssl=False)
    client.login(dovecot.username, dovecot.password)
    client.append("INBOX", _reply("saraban.th50@agri.example", "ยินดีเข้าร่วมค่ะ", ids["TH-50-agri"]))
    client.append("INBOX", _dsn("saraban.th50@sso.example", ids["TH-50-sso"]))
    settings = ImapSettings(
        host="127.0.0.1", port=dovecot.port, security="none", username=dovecot.username,
        password=Secret(dovecot.password),
    )  # fmt: skip
    source = settings.source_id
    first = sync(
        ws.ledger(),
        ws.campaign,
        source,
        sources.imap(settings, lambda v: highest_uid(ws.ledger(), source, v)),
    )
    assert (first.seen, first.new) == (2, 2)
    again = sync(
        ws.ledger(),
        ws.campaign,
        source,
        sources.imap(settings, lambda v: highest_uid(ws.ledger(), source, v)),
    )
    assert (again.seen, again.new) == (0, 0)  # nothing fetched at all the second time
    client.append(
        "INBOX", _reply("saraban.th50@prov.example", "ติดภารกิจ ไม่สามารถเข้าร่วมได้", ids["TH-50-prov"])
    )
    third = sync(
        ws.ledger(),
        ws.campaign,
        source,
        sources.imap(settings, lambda v: highest_uid(ws.ledger(), source, v)),
    )
    assert (third.seen, third.new) == (1, 1)
    found = attendance(ws.ledger())
    assert (found["TH-50-agri"].status, found["TH-50-sso"].status, found["TH-50-prov"].status) == (
        "accepted", "bounced", "declined",
    )  # fmt: skip
    client.select_folder("INBOX", readonly=True)
    flags = client.get_flags(client.search("ALL"))
    assert all(b"\\Seen" not in f for f in flags.values())
    assert len(flags) == 3
    client.logout()
    wrong = ImapSettings(
        host="127.0.0.1",
        port=dovecot.port,
        security="none",
        username="coordinator",
        password=Secret("nope"),
    )
    with pytest.raises(MailerError, match="refused the login of IMAP_USERNAME='coordinator'"):
        list(sources.imap(wrong, lambda v: 0))


@pytest.mark.parametrize("security", ["ssl", "starttls"])
@pytest.mark.slow
def test_imap_tls_is_verified_against_the_ca(invited, dovecot, security: str) -> None:  # type: ignore[no-untyped-def]
    from mailer.replies.sync import highest_uid
    from mailer.settings import ImapSettings, Secret

    ws = invited
    port = dovecot.ssl_port if security == "ssl" else dovecot.port
    trusted = ImapSettings(
        host="127.0.0.1", port=port, security=security, username=dovecot.username,  # type: ignore[arg-type]
        password=Secret(dovecot.password), ca_file=dovecot.ca_file,
    )  # fmt: skip
    report = sync(
        ws.ledger(),
        ws.campaign,
        trusted.source_id,
        sources.imap(trusted, lambda v: highest_uid(ws.ledger(), trusted.source_id, v)),
    )
    assert report.seen == 0  # an empty INBOX, reached over verified TLS
    untrusted = ImapSettings(
        host="127.0.0.1", port=port, security=security, username=dovecot.username,  # type: ignore[arg-type]
        password=Secret(dovecot.password),
    )  # fmt: skip
    with pytest.raises(MailerError, match=r"TLS certificate of the IMAP server .* does not verify"):
        list(sources.imap(untrusted, lambda v: 0))


@pytest.mark.parametrize(
    ("text", "outcome"),
    [
        ("ไม่เข้าร่วมค่ะ", "declined"),
        ("ขออภัย ไม่สามารถตอบรับการเข้าร่วมได้", "declined"),
        ("Sorry, we cannot accept this time.", "declined"),
        ("Can you confirm the venue?", "needs_review"),
        ("ไม่ขอตอบรับ", "needs_review"),
        ("ยินดีเข้าร่วมครับ", "accepted"),
        ("ไม่มีปัญหาครับ ยินดีเข้าร่วม", "accepted"),
    ],
)
def test_negated_or_questioning_acceptances_are_not_acceptances(text: str, outcome: str) -> None:
    assert classify(_reply("a@b.example", text)).outcome == outcome


def test_one_unreadable_message_does_not_stop_a_sync(invited) -> None:  # type: ignore[no-untyped-def]
    broken = _calendar_reply("a@b.example", "x@y", "ACCEPTED").replace(
        b"SEQUENCE:0", b"SEQUENCE:abc"
    )
    assert classify(broken).outcome == "needs_review"
    report = sync(
        invited.ledger(),
        invited.campaign,
        "eml:x",
        [
            ("1", broken),
            ("2", b"\xff\xfe garbage \x00"),
            ("3", _reply("saraban.th50@agri.example", "ยินดีเข้าร่วม")),
        ],
    )
    assert report.new == 3
    assert attendance(invited.ledger())["TH-50-agri"].status == "accepted"


def test_a_bounce_does_not_hide_an_answer(invited) -> None:  # type: ignore[no-untyped-def]
    ids = _our_ids(invited)
    sync(
        invited.ledger(),
        invited.campaign,
        "eml:x",
        [("1", _reply("saraban.th50@agri.example", "ยินดีเข้าร่วม", ids["TH-50-agri"]))],
    )
    sync(
        invited.ledger(),
        invited.campaign,
        "eml:x",
        [("2", _dsn("saraban.th50@agri.example", ids["TH-50-agri"]))],
    )
    assert attendance(invited.ledger())["TH-50-agri"].status == "accepted"


@pytest.mark.parametrize(
    ("text", "outcome"),
    [
        ("ไม่สามารถเข้าร่วมได้ และจะไม่ส่งผู้แทน", "declined"),
        ("จะเข้าร่วมด้วยตนเอง ไม่ส่งผู้แทน", "accepted"),
        ("ขอสอบถามว่าสามารถส่งผู้แทนเข้าร่วมได้หรือไม่ครับ", "needs_review"),
        ("Can we send a representative instead?", "needs_review"),
        ("ขอมอบหมายให้ นายสมชาย ดีใจ เข้าร่วมแทน หากมีข้อสงสัยสอบถามได้", "representative"),
    ],
)
def test_representatives_that_are_not(text: str, outcome: str) -> None:
    assert classify(_reply("a@b.example", text)).outcome == outcome


@pytest.mark.slow
def test_mbox_is_read_and_a_file_that_is_not_one_is_named(invited, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    box = mailbox.mbox(tmp_path / "replies.mbox")
    box.add(_reply("saraban.th50@agri.example", "ยินดีเข้าร่วม", _our_ids(invited)["TH-50-agri"]))
    box.close()
    assert (
        sync(
            invited.ledger(), invited.campaign, "mbox:x", sources.mbox(tmp_path / "replies.mbox")
        ).new
        == 1
    )
    assert attendance(invited.ledger())["TH-50-agri"].status == "accepted"
    (tmp_path / "notes.txt").write_text("hello", encoding="utf-8")
    with pytest.raises(MailerError, match=r"notes\.txt is not an mbox file"):
        list(sources.mbox(tmp_path / "notes.txt"))


@pytest.mark.parametrize(("password", "works"), [("รหัสผ่าน-ไทย", True), ("รหัสผิด", False)])
@pytest.mark.slow
def test_a_thai_imap_login_goes_by_authenticate_plain(
    invited, dovecot, password: str, works: bool
) -> None:  # type: ignore[no-untyped-def]
    """IMAP LOGIN takes ASCII only: a Thai user name or password is sent as UTF-8 by
    AUTHENTICATE PLAIN (RFC 4616), and a wrong one is a refused login, not a traceback.
    (Dovecot takes only ASCII user names by default: the password is the Thai part here.)"""
    from mailer.replies.sync import highest_uid
    from mailer.settings import ImapSettings, Secret

    settings = ImapSettings(
        host="127.0.0.1", port=dovecot.port, security="none", username="thai-password",
        password=Secret(password),
    )  # fmt: skip
    fetch = sources.imap(settings, lambda v: highest_uid(invited.ledger(), settings.source_id, v))
    if works:
        assert (
            sync(invited.ledger(), invited.campaign, settings.source_id, fetch).seen == 0
        )  # logged in: an empty INBOX
    else:
        with pytest.raises(MailerError, match="refused the login of IMAP_USERNAME='thai-password'"):
            list(fetch)
