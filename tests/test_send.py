"""The whole batch over real SMTP on loopback, parsed back message by message."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import select

from mailer.delivery.devserver import DevServer
from mailer.errors import LedgerError, MailerError, TemplateProblem, TransportError
from mailer.invitees.importing import import_contacts
from mailer.models import Delivery
from mailer.rounds.send import send_round, send_test
from mailer.views.report import status
from tests.conftest import CONTACTS, Mailhog, free_port
from tests.helpers import EXPECTED_TREE, calendar_of, decoded, parse, raw_headers, text_of, tree
from tests.tls_smtp import tls_smtp_server as _tls_server


def _ready(make_ws, port: int, **env: str):  # type: ignore[no-untyped-def]
    ws = make_ws(SMTP_PORT=str(port), **env)
    report = import_contacts(ws.engine, CONTACTS)
    assert report.written
    assert not report.errors
    return ws


@pytest.mark.slow
def test_the_whole_batch_arrives_once_each_and_correct(make_ws, smtp_server: Mailhog) -> None:
    ws = _ready(make_ws, smtp_server.port)
    report = send_round(ws, "invitation")
    assert (report.enqueued, report.drain.sent, report.drain.failed) == (532, 532, 0)
    received = smtp_server.messages()
    assert len(received) == 532

    invitees = {i.invitee_id: i for i in status(ws.ledger(), ws.campaign).invitees}
    seen_ids = set()
    for raw in received:
        headers = raw_headers(raw)
        delivered_to = [v for k, v in headers if k == "Delivered-To"]
        assert len(delivered_to) == 1
        message = parse(raw)
        assert tree(message) == EXPECTED_TREE
        (event,) = calendar_of(message).walk("VEVENT")
        invitee_id = str(event["UID"]).removeprefix("egov-seminar-2559-").removesuffix("@ega.or.th")
        seen_ids.add(invitee_id)
        invitee = invitees[invitee_id]
        assert delivered_to == [invitee.email]
        assert str(event["ATTENDEE"]) == f"mailto:{delivered_to[0]}"
        assert str(event["ORGANIZER"]) == "mailto:thannop.sirithamwilai@ega.or.th"
        assert datetime(2016, 11, 22, 6, 0, tzinfo=UTC) == event.DTSTART
        assert datetime(2016, 11, 22, 9, 30, tzinfo=UTC) == event.DTEND
        assert calendar_of(message)["METHOD"] == "REQUEST"
        assert decoded(dict(headers)["Subject"]).startswith("ขอเชิญเข้าร่วมงานสัมมนา รายงานผล")
        assert decoded(dict(headers)["To"]) == f"{invitee.organisation} <{invitee.email}>"
        body = text_of(message, "text/plain")
        assert invitee.organisation in body
        assert "วันอังคารที่ ๒๒ พฤศจิกายน ๒๕๕๙ เวลา ๑๓.๐๐ – ๑๖.๓๐ น." in body
        assert dict(headers)["Message-ID"] == invitee.message_id
    assert seen_ids == set(invitees)

    again = send_round(ws, "invitation")
    assert (again.enqueued, again.drain.sent) == (0, 0)
    assert len(smtp_server.messages()) == 532
    assert status(ws.ledger(), ws.campaign).totals["sent"] == 532


def test_dry_run_writes_nothing_and_sends_nothing(make_ws, smtp_server: Mailhog) -> None:
    ws = _ready(make_ws, smtp_server.port)
    report = send_round(ws, "invitation", dry_run=True)
    assert (report.enqueued, report.due) == (532, 532)
    assert smtp_server.messages() == []
    assert status(ws.ledger(), ws.campaign).totals["not_enqueued"] == 532


def test_only_and_limit_choose_who_is_enqueued(make_ws, smtp_server: Mailhog) -> None:
    ws = _ready(make_ws, smtp_server.port)
    assert send_round(ws, "invitation", only=["TH-50"]).drain.sent == 7
    assert send_round(ws, "invitation", only=["agri"], limit=3).drain.sent == 3
    assert send_round(ws, "invitation", only=["TH-50-agri"]).drain.sent == 0  # already sent
    assert len(smtp_server.messages()) == 10
    with pytest.raises(MailerError, match="no invitee matches --only TH-99"):
        send_round(ws, "invitation", only=["TH-99"])


def test_test_to_sends_a_sample_and_leaves_the_ledger_alone(make_ws, smtp_server: Mailhog) -> None:
    ws = _ready(make_ws, smtp_server.port)
    sample = send_test(ws, "coordinator.test@ega.example", only=["TH-50-agri"])
    assert sample.reply.startswith("250")
    (raw,) = smtp_server.messages()
    (event,) = calendar_of(parse(raw)).walk("VEVENT")
    assert str(event["ATTENDEE"]) == "mailto:coordinator.test@ega.example"
    assert str(event["UID"]).startswith("test-")
    with ws.engine.connect() as conn:
        assert conn.execute(select(Delivery)).all() == []


@pytest.mark.slow
def test_unreachable_server_stops_before_writing(make_ws) -> None:
    ws = _ready(make_ws, free_port())
    with pytest.raises(
        TransportError, match=r"cannot reach the SMTP server 127\.0\.0\.1:\d+.*devserver"
    ):
        send_round(ws, "invitation")
    assert status(ws.ledger(), ws.campaign).totals["not_enqueued"] == 532


def test_a_template_error_stops_before_anything_is_written(make_ws, smtp_server, tmp_path) -> None:  # type: ignore[no-untyped-def]
    templates = tmp_path / "templates"
    source = Path(__file__).resolve().parent.parent / "templates"
    for path in source.rglob("*"):
        if path.is_file():
            target = templates / path.relative_to(source)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(path.read_text(encoding="utf-8"), encoding="utf-8")
    (templates / "invitation" / "subject.txt").write_text("{{ event.titel }}", encoding="utf-8")
    ws = _ready(make_ws, smtp_server.port, MAILER_TEMPLATES=str(templates))
    with pytest.raises(TemplateProblem, match=r"invitation/subject\.txt.*titel"):
        send_round(ws, "invitation")
    assert status(ws.ledger(), ws.campaign).totals["not_enqueued"] == 532
    assert smtp_server.messages() == []


@pytest.mark.slow
def test_another_server_is_refused_until_confirmed(make_ws, smtp_server: Mailhog, tmp_path) -> None:  # type: ignore[no-untyped-def]
    ws = _ready(make_ws, smtp_server.port)
    send_round(ws, "invitation", only=["TH-50"])
    other_port = free_port()
    with DevServer("127.0.0.1", other_port, tmp_path / "other"):
        moved = make_ws(SMTP_PORT=str(other_port))
        with pytest.raises(LedgerError, match=r"--new-server"):
            send_round(moved, "invitation", only=["TH-51"])
        assert send_round(moved, "invitation", only=["TH-51"], new_server=True).drain.sent == 7


# --- servers that misbehave ---------------------------------------------------------------


class _Refuser:
    """Refuses every recipient with a permanent error."""

    async def handle_RCPT(self, server, session, envelope, address, options):  # type: ignore[no-untyped-def]
        return f"550 5.1.1 <{address}>: Recipient address rejected: User unknown"

    async def handle_DATA(self, server, session, envelope):  # type: ignore[no-untyped-def]
        return "250 OK"


@pytest.mark.slow
def test_a_refusing_server_fails_rows_then_pauses_the_run(make_ws) -> None:
    port = free_port()
    controller = Controller(_Refuser(), hostname="127.0.0.1", port=port)
    controller.start()
    try:
        ws = _ready(make_ws, port, MAILER_MAX_FAILURES="5")
        report = send_round(ws, "invitation")
    finally:
        controller.stop()
    assert report.drain.failed == 5
    assert report.drain.stopped is not None
    assert "5 failures in a row" in report.drain.stopped
    totals = status(ws.ledger(), ws.campaign).totals
    assert (totals["failed"], totals["queued"], totals["sending"]) == (5, 527, 0)
    failed = [i for i in status(ws.ledger(), ws.campaign).invitees if i.delivery == "failed"]
    assert all("550 5.1.1" in (i.last_reply or "") for i in failed)


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[tuple[int, Path, Mailhog]]:
    yield from _tls_server(tmp_path, implicit=False)


@pytest.mark.slow
def test_starttls_is_verified_against_the_ca(make_ws, tls_server) -> None:  # type: ignore[no-untyped-def]
    port, ca_file, box = tls_server
    ws = _ready(make_ws, port, SMTP_SECURITY="starttls", SMTP_CA_FILE=str(ca_file))
    assert send_round(ws, "invitation", only=["TH-50"]).drain.sent == 7
    assert len(box.messages()) == 7


def test_a_certificate_that_does_not_verify_stops_the_run(make_ws, tls_server) -> None:  # type: ignore[no-untyped-def]
    port, _ca_file, box = tls_server
    ws = _ready(make_ws, port, SMTP_SECURITY="starttls")
    with pytest.raises(TransportError, match=r"does not verify.*SMTP_CA_FILE.*Nothing was sent"):
        send_round(ws, "invitation")
    assert box.messages() == []
    assert status(ws.ledger(), ws.campaign).totals["not_enqueued"] == 532


@pytest.fixture
def implicit_tls_server(tmp_path: Path) -> Iterator[tuple[int, Path, Mailhog]]:
    yield from _tls_server(tmp_path, implicit=True)


@pytest.mark.slow
def test_implicit_tls_is_verified_against_the_ca(make_ws, implicit_tls_server) -> None:  # type: ignore[no-untyped-def]
    port, ca_file, box = implicit_tls_server
    ws = _ready(make_ws, port, SMTP_SECURITY="ssl", SMTP_CA_FILE=str(ca_file))
    assert send_round(ws, "invitation", only=["TH-50"]).drain.sent == 7
    assert len(box.messages()) == 7
    untrusted = make_ws(SMTP_PORT=str(port), SMTP_SECURITY="ssl")
    with pytest.raises(TransportError, match=r"does not verify"):
        send_round(untrusted, "invitation", only=["TH-51"])
    assert len(box.messages()) == 7


def test_lines_that_start_with_a_dot_arrive_intact(make_ws, smtp_server: Mailhog) -> None:
    """SMTP ends a message at a line holding only "."; the transport doubles every leading
    dot (RFC 5321 §4.5.2) and the server takes them off again."""
    body = b".first line\r\nmiddle\r\n..two dots\r\n.\r\nlast . line\r\n"
    data = b"Subject: dots\r\nMessage-ID: <dots@test>\r\n\r\n" + body
    with make_ws(SMTP_PORT=str(smtp_server.port)).transport() as transport:
        transport.send("coordinator@ega.example", ["a@x.example"], data)
    (received,) = smtp_server.messages()
    assert received.replace(b"\r\n", b"\n").endswith(body.replace(b"\r\n", b"\n"))


@pytest.mark.postgres
@pytest.mark.slow
def test_a_lost_database_connection_mid_run_is_replaced(
    make_ws, smtp_server: Mailhog, postgres_url: str
) -> None:
    """The sending loop keeps one connection for its commits; PostgreSQL dropping it (a
    restart, an idle timeout) costs a reconnect, not the run."""
    import psycopg

    ws = make_ws(SMTP_PORT=str(smtp_server.port), DATABASE_URL=postgres_url)
    import_contacts(ws.engine, CONTACTS)
    name = postgres_url.rsplit("/", 1)[1]
    admin = postgres_url.replace("postgresql+psycopg://", "postgresql://").rsplit("/", 1)[0]
    seen = 0

    def progress(outcome: object) -> None:
        nonlocal seen
        seen += 1
        if seen in (2, 5):  # cut every connection of this database, twice
            with psycopg.connect(f"{admin}/postgres", autocommit=True) as conn:
                conn.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = %s AND pid <> pg_backend_pid()",
                    (name,),
                )

    report = send_round(ws, "invitation", only=["TH-50"], progress=progress)
    assert report.drain.sent == 7
    assert seen == 7
    assert ws.ledger().counts()["sent"] == 7
    assert len(smtp_server.messages()) == 7
