"""The offices' answer page (mailer/web): signed links in every message, a page served by a
real uvicorn on a free loopback port and spoken to over real HTTP (httpx), the answers
through the attendance rules, the confirmation e-mails through the ledger to a real SMTP
dev server. Nothing is mocked."""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from sqlalchemy import func, select
from typer.testing import CliRunner

from mailer.campaign import load_campaign
from mailer.campaign.reading import parse_campaign
from mailer.cli import app
from mailer.compose import Composer, OutgoingMail
from mailer.delivery.drain import drain_due
from mailer.errors import CampaignError, SettingsError
from mailer.invitees.importing import import_contacts
from mailer.invitees.records import InviteeRecord
from mailer.kinds import LedgerKind, confirm
from mailer.models import Delivery, RsvpVisit, WebAnswer
from mailer.replies.attendance import attendance, mark
from mailer.replies.statuses import Attendance
from mailer.rounds.context import delivery_context
from mailer.rounds.send import select_invitees, send_round
from mailer.views.report import status
from mailer.web.app import create_app
from mailer.web.guard import RateLimit
from mailer.web.links import google_calendar, outlook_web
from mailer.web.pages import Site
from mailer.web.tokens import TokenProblem, Tokens
from mailer.workspace import Workspace
from tests.conftest import (
    CAMPAIGN,
    CONTACTS,
    TEMPLATES,
    FakeClock,
    Mailhog,
    free_port,
    make_settings,
)
from tests.helpers import parse, text_of, tree

KEY = "a-test-key-that-is-long-enough-0123456789"
PHONE = "๐๘ ๑๘๔๕ ๑๔๕๙"  # the coordinator's, as the pages show it
LINK = re.compile(r"http://127\.0\.0\.1:\d+/r/[A-Za-z0-9_.-]+")


# --- fast: the parts on their own ----------------------------------------------------------


def test_a_token_names_campaign_office_and_version_and_refuses_tampering() -> None:
    tokens = Tokens(KEY, "egov-seminar-2559")
    token = tokens.make("TH-50-agri", 3)
    claim = tokens.read(token)
    assert (claim.invitee_id, claim.version) == ("TH-50-agri", 3)
    body, _, signature = token.rpartition(".")
    flipped = signature[:-1] + ("A" if signature[-1] != "A" else "B")
    for bad, why in [
        (f"{body}.{flipped}", "forged"),
        (
            Tokens("another-key-that-is-also-long-enough-000", "egov-seminar-2559").make(
                "TH-50-agri", 3
            ),
            "forged",
        ),
        (Tokens(KEY, "another-campaign").make("TH-50-agri", 3), "forged"),
        ("short", "malformed"),
        ("no-dot-in-this-token-at-all", "malformed"),
        (token + "<script>", "malformed"),
    ]:
        with pytest.raises(TokenProblem) as raised:
            tokens.read(bad)
        assert raised.value.problem == why, bad


def test_the_key_is_required_with_links_and_must_be_long(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="MAILER_SECRET_KEY is empty"):
        make_settings(tmp_path, MAILER_PUBLIC_URL="https://rsvp.example.go.th")
    with pytest.raises(SettingsError, match="at least 32"):
        make_settings(
            tmp_path, MAILER_PUBLIC_URL="https://rsvp.example.go.th", MAILER_SECRET_KEY="short"
        )
    with pytest.raises(SettingsError, match="MAILER_PUBLIC_URL"):
        make_settings(tmp_path, MAILER_PUBLIC_URL="ftp://x?y", MAILER_SECRET_KEY=KEY)
    settings = make_settings(
        tmp_path, MAILER_PUBLIC_URL="https://rsvp.example.go.th/", MAILER_SECRET_KEY=KEY
    )
    assert settings.web.public_url == "https://rsvp.example.go.th"
    assert KEY not in repr(settings)


def test_mailer_check_refuses_a_short_key(tmp_path: Path) -> None:
    env = {
        "DATABASE_URL": f"sqlite:///{tmp_path / 'm.db'}", "MAILER_CAMPAIGN": str(CAMPAIGN),
        "MAILER_TEMPLATES": str(TEMPLATES), "MAILER_PUBLIC_URL": "https://rsvp.example.go.th",
        "MAILER_SECRET_KEY": "x" * 31,
    }  # fmt: skip
    result = CliRunner().invoke(app, ["check"], env=env)
    assert result.exit_code == 1
    assert "MAILER_SECRET_KEY is 31 characters long" in result.output


def test_the_rsvp_table_is_read_with_its_problems() -> None:
    import tomllib

    data = tomllib.loads(CAMPAIGN.read_text(encoding="utf-8"))
    data["rsvp"] = {"reply_deadline": datetime(2016, 11, 18, 16, 30), "grace_days": 3}
    campaign = parse_campaign(data, CAMPAIGN)
    assert campaign.rsvp.grace_days == 3
    assert campaign.rsvp.reply_deadline == datetime(2016, 11, 18, 9, 30, tzinfo=UTC)
    data["rsvp"] = {"reply_deadline": datetime(2016, 12, 1), "grace_days": 999, "x": 1}
    with pytest.raises(CampaignError) as raised:
        parse_campaign(data, CAMPAIGN)
    text = str(raised.value)
    assert "rsvp.reply_deadline" in text
    assert "grace_days = 999" in text
    assert "rsvp.x" in text


def test_a_confirmation_is_a_ledger_kind() -> None:
    assert str(confirm(2)) == "confirm:2"
    assert LedgerKind.parse("confirm:2") == confirm(2)
    kind = load_campaign(CAMPAIGN).message_kind("confirm:2")
    assert (kind.template, kind.method, kind.automatic) == ("confirm", "", True)


def test_every_invitation_reminder_and_update_carries_the_link_and_a_cancel_does_not() -> None:
    campaign = load_campaign(CAMPAIGN)
    link = "https://rsvp.example.go.th/r/TOKEN.SIG"
    with_links = Composer(campaign, TEMPLATES, links=lambda invitee_id: f"{link}-{invitee_id}")
    without = Composer(campaign, TEMPLATES)
    office = InviteeRecord(
        "TH-50-agri", "สำนักงานเกษตรจังหวัดเชียงใหม่", "เรียน เกษตรจังหวัดเชียงใหม่", ("agri@example.go.th",)
    )
    now = datetime(2016, 11, 10, 2, 0, tzinfo=UTC)
    for template, method in [("invitation", "REQUEST"), ("followup", "REQUEST"),
                             ("reminder", "REQUEST"), ("update", "REQUEST"), ("cancel", "CANCEL")]:  # fmt: skip
        mail = OutgoingMail(office, template, "<m@x.example>", 1, method, extra={"changes": []})
        message = parse(with_links.compose(mail, now).data)
        for part in ("text/plain", "text/html"):
            carries = f"{link}-TH-50-agri" in text_of(message, part)
            assert carries == (template != "cancel"), (template, part)
        plain = parse(without.compose(mail, now).data)
        assert "ตอบรับทางเว็บ" not in text_of(plain, "text/plain") + text_of(plain, "text/html")
        sample = OutgoingMail(
            office, template, "<m@x.example>", 1, method, test=True, extra={"changes": []}
        )
        assert link not in text_of(parse(with_links.compose(sample, now).data), "text/plain")


def test_calendar_links_are_in_utc_with_z() -> None:
    event = load_campaign(CAMPAIGN).event
    assert "dates=20161122T060000Z%2F20161122T093000Z" in google_calendar(event, "d")
    outlook = outlook_web(event, "d")
    assert "startdt=2016-11-22T06%3A00%3A00Z" in outlook
    assert "enddt=2016-11-22T09%3A30%3A00Z" in outlook


def test_a_rate_limit_is_a_sliding_window() -> None:
    now = [0.0]
    limit = RateLimit(2, 10, clock=lambda: now[0])
    assert limit.allow("a")
    assert limit.allow("a")
    assert not limit.allow("a")
    assert limit.allow("b")
    now[0] = 10.5
    assert limit.allow("a")


# --- the served app ------------------------------------------------------------------------


class Served:
    """The app on a real uvicorn, in a thread, on a free loopback port."""

    def __init__(self, application: Any, port: int) -> None:
        config = uvicorn.Config(application, host="127.0.0.1", port=port, log_level="warning",
                                lifespan="off")  # fmt: skip
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> Served:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            assert time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)


@dataclass
class Web:
    ws: Workspace
    base: str
    smtp: Mailhog
    clock: FakeClock
    links: dict[str, str]  # invitee id → its link, read from the delivered messages

    def count(self, model: Any) -> int:
        with self.ws.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(model)).scalar_one())

    def client(self) -> httpx.Client:
        return httpx.Client(headers={"User-Agent": "pytest-phone/1.0"}, timeout=30)


def _links_of(messages: list[bytes]) -> dict[str, str]:
    found = {}
    for raw in messages:
        message = parse(raw)
        text, html = text_of(message, "text/plain"), text_of(message, "text/html")
        (link,) = set(LINK.findall(text))
        assert link in html
        office = re.search(
            r"egov-seminar-2559\.([A-Za-z0-9-]+)\.invitation", str(message["Message-ID"])
        )
        assert office is not None
        found[office.group(1)] = link
    return found


def _serve(make_ws, smtp: Mailhog, clock: FakeClock, only: list[str], **site: Any) -> Iterator[Web]:  # type: ignore[no-untyped-def]
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    ws = make_ws(SMTP_PORT=str(smtp.port), MAILER_PUBLIC_URL=base, MAILER_SECRET_KEY=KEY)
    assert import_contacts(ws.engine, CONTACTS).written
    send_round(ws, "invitation", only=only)
    links = _links_of(smtp.messages())
    application = create_app(
        Site(ws.ledger(), ws.campaign, ws.settings.templates_dir, KEY, **site), base
    )
    with Served(application, port):
        yield Web(ws, base, smtp, clock, links)


@pytest.fixture
def web(make_ws, smtp_server: Mailhog, clock: FakeClock) -> Iterator[Web]:  # type: ignore[no-untyped-def]
    yield from _serve(make_ws, smtp_server, clock, ["TH-50"], posts_per_link=6)


def _form(client: httpx.Client, link: str) -> str:
    page = client.get(link)
    assert page.status_code == 200, page.text
    found = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert found is not None
    return found.group(1)


def _answer(client: httpx.Client, link: str, **fields: str) -> httpx.Response:
    return client.post(link, data={"csrf": _form(client, link), **fields})


REPRESENTATIVE = {"choice": "representative", "name": "นางสาวสมหญิง ใจดี", "position": "นักวิชาการคอมพิวเตอร์ชำนาญการ",
                  "phone": "๐๘ ๑๒๓๔ ๕๖๗๘", "email": ""}  # fmt: skip


@pytest.mark.slow
def test_the_page_shows_the_event_and_a_get_or_head_is_only_link_opened(web: Web) -> None:
    link = web.links["TH-50-agri"]
    with web.client() as client:
        page = client.get(link)
        head = client.head(link)
        ics = client.get(f"{link}/invite.ics")
    assert page.status_code == 200
    assert head.status_code == 200
    assert head.content == b""
    text = page.text
    for shown in ["สำนักงานเกษตรจังหวัดเชียงใหม่", "วันอังคารที่ ๒๒ พฤศจิกายน ๒๕๕๙", "๑๓.๐๐ – ๑๖.๓๐ น.",
                  "ห้องออดิทอเรียม", "ยังไม่ตอบ", "เข้าร่วม", "ไม่เข้าร่วม", "ส่งผู้แทน", "invite.ics",
                  "20161122T060000Z%2F20161122T093000Z", "startdt=2016-11-22T06%3A00%3A00Z", "เฉพาะรายการที่เพิ่มจากไฟล์ .ics"]:  # fmt: skip
        assert shown in text, shown
    assert page.headers["referrer-policy"] == "same-origin"
    assert "https://" not in re.sub(
        r'href="https://(calendar\.google|outlook\.office)\.com[^"]*"', "", text
    )
    assert ics.headers["content-type"].startswith("text/calendar")
    assert b"UID:egov-seminar-2559-TH-50-agri@ega.or.th" in ics.content
    assert b"SEQUENCE:0" in ics.content
    with web.ws.engine.connect() as conn:
        seen = conn.execute(select(RsvpVisit.method, RsvpVisit.what, RsvpVisit.user_agent)).all()  # type: ignore[call-overload]
    assert sorted(tuple(r) for r in seen) == [("GET", "ics", "pytest-phone/1.0"), ("GET", "page", "pytest-phone/1.0"),
                                             ("HEAD", "page", "pytest-phone/1.0")]  # fmt: skip
    assert web.count(WebAnswer) == 0
    assert attendance(web.ws.ledger()) == {}


@pytest.mark.slow
def test_an_answer_needs_the_form_token_and_its_own_origin(web: Web) -> None:
    link = web.links["TH-50-agri"]
    with web.client() as client:
        assert (
            client.post(link, data={"choice": "accepted"}).status_code == 403
        )  # no token, no cookie
        csrf = _form(client, link)
        assert client.post(link, data={"csrf": csrf + "x", "choice": "accepted"}).status_code == 403
        cross = client.post(
            link,
            data={"csrf": csrf, "choice": "accepted"},
            headers={"Origin": "https://evil.example"},
        )
        assert cross.status_code == 403
        sites = client.post(
            link,
            data={"csrf": csrf, "choice": "accepted"},
            headers={"Sec-Fetch-Site": "cross-site"},
        )
        assert sites.status_code == 403
        other = web.links["TH-50-prov"]  # a form of one office's page does not fit another's link
        assert client.post(other, data={"csrf": csrf, "choice": "accepted"}).status_code == 403
    with web.client() as stranger:  # the form without the browser's cookie
        assert stranger.post(link, data={"csrf": csrf, "choice": "accepted"}).status_code == 403
    assert "แบบฟอร์มหมดอายุ" in cross.text
    assert PHONE in cross.text
    assert web.count(WebAnswer) == 0
    assert attendance(web.ws.ledger()) == {}


@pytest.mark.slow
def test_an_answer_counts_once_per_change_and_its_confirmation_goes_out_once(web: Web) -> None:
    link = web.links["TH-50-agri"]
    with web.client() as client:
        first = _answer(client, link, choice="accepted")
        again = _answer(client, link, choice="accepted")
        bad = _answer(client, link, choice="representative", name="", position="", phone="12")
        second = _answer(client, link, **REPRESENTATIVE)
        page = client.get(link).text
    assert first.status_code == 200
    assert "บันทึกคำตอบแล้ว" in first.text
    assert again.status_code == 200
    assert "ไม่มีการเปลี่ยนแปลง" in again.text
    assert bad.status_code == 422
    assert "โปรดกรอกชื่อผู้แทน" in bad.text
    assert "โปรดกรอกหมายเลขโทรศัพท์" in bad.text
    assert second.status_code == 200
    assert "นางสาวสมหญิง ใจดี" in second.text
    assert "ส่งผู้แทน" in page
    assert "นางสาวสมหญิง ใจดี" in page
    assert web.count(WebAnswer) == 2

    found = attendance(web.ws.ledger())["TH-50-agri"]
    assert found.status == Attendance.representative
    assert found.source.startswith("web ")
    assert found.representative == {
        "name": "นางสาวสมหญิง ใจดี",
        "position": "นักวิชาการคอมพิวเตอร์ชำนาญการ",
        "phone": "๐๘ ๑๒๓๔ ๕๖๗๘",
    }
    assert "127.0.0.1" in found.evidence
    assert "pytest-phone/1.0" in found.evidence
    assert "SEQUENCE 0" in found.evidence

    result = CliRunner().invoke(app, ["status", "--json", "--province", "TH-50"], env=_env(web))
    assert result.exit_code == 0, result.output
    row = next(i for i in json.loads(result.output)["invitees"] if i["invitee_id"] == "TH-50-agri")
    assert row["attendance"] == "representative"
    assert row["attendance_evidence"].startswith("web ")
    assert row["representative"]["name"] == "นางสาวสมหญิง ใจดี"

    before = set(web.smtp.messages())  # the Maildir's order is its file names', not arrival
    ctx = delivery_context(web.ws)
    assert drain_due(ctx).sent == 2
    assert drain_due(ctx).sent == 0  # once per change, never again
    confirmations = [parse(raw) for raw in web.smtp.messages() if raw not in before]
    assert len(confirmations) == 2
    for message in confirmations:
        assert [t for _, t, _, _ in tree(message)] == [
            "multipart/mixed",
            "multipart/alternative",
            "text/plain",
            "text/html",
        ]
        assert message["Auto-Submitted"] == "auto-generated"
        assert "ได้รับคำตอบ" in str(message["Subject"])
    bodies = sorted(text_of(m, "text/plain") for m in confirmations)
    assert any("คำตอบ:      เข้าร่วม" in b for b in bodies)
    assert any("นางสาวสมหญิง ใจดี" in b and "ส่งผู้แทน" in b for b in bodies)
    with web.ws.engine.connect() as conn:
        kinds = (
            conn.execute(select(Delivery.kind).where(Delivery.kind.startswith("confirm:")))
            .scalars()
            .all()
        )  # type: ignore[attr-defined]
    assert sorted(kinds) == ["confirm:1", "confirm:2"]


def _env(web: Web) -> dict[str, str]:
    settings = web.ws.settings
    return {
        "DATABASE_URL": settings.database_url, "MAILER_CAMPAIGN": str(settings.campaign_path),
        "MAILER_TEMPLATES": str(settings.templates_dir), "SMTP_PORT": str(web.smtp.port),
        "MAILER_PUBLIC_URL": web.base, "MAILER_SECRET_KEY": KEY,
    }  # fmt: skip


@pytest.mark.slow
def test_a_coordinators_mark_still_wins(web: Web) -> None:
    ledger = web.ws.ledger()
    mark(ledger, "TH-50-agri", Attendance.declined, representative={}, note="by phone")
    with web.client() as client:
        done = _answer(client, web.links["TH-50-agri"], choice="accepted")
        again = _answer(client, web.links["TH-50-agri"], choice="accepted")
    assert done.status_code == 200
    assert "บันทึกโดยผู้ประสานงาน" in done.text
    assert "ไม่มีการเปลี่ยนแปลง" in again.text
    assert attendance(ledger)["TH-50-agri"].status == Attendance.declined
    assert web.count(WebAnswer) == 1


@pytest.mark.slow
def test_bad_links_get_a_thai_page_with_the_phone_and_change_nothing(web: Web) -> None:
    link = web.links["TH-50-agri"]
    body, _, signature = link.rpartition(".")
    forged = f"{body}.{'A' * len(signature)}"
    unknown = f"{web.base}/r/{Tokens(KEY, 'egov-seminar-2559').make('TH-99-none', 1)}"
    with web.client() as client:
        for url, code, words in [(forged, 403, "ลิงก์ไม่ถูกต้อง"), (link[:-20], 403, "ลิงก์ไม่ถูกต้อง"),
                                 (f"{web.base}/r/abc", 400, "ลิงก์ไม่สมบูรณ์"), (unknown, 404, "ไม่พบหน่วยงาน")]:  # fmt: skip
            for method in ("GET", "HEAD", "POST"):
                response = client.request(
                    method, url, data={"choice": "accepted"} if method == "POST" else None
                )
                assert response.status_code == code, (url, method)
            got = client.get(url)
            assert words in got.text
            assert PHONE in got.text
        result = CliRunner().invoke(app, ["rsvp", "revoke", "TH-50-agri"], env=_env(web))
        assert result.exit_code == 0, result.output
        assert "no longer open" in result.output
        assert "To resend it now" in result.output
        (new_link,) = LINK.findall(result.output)
        revoked = client.get(link)
        assert revoked.status_code == 403
        assert "ถูกยกเลิกแล้ว" in revoked.text
        assert PHONE in revoked.text
        assert client.post(link, data={"choice": "accepted"}).status_code == 403
        assert client.get(new_link).status_code == 200
        web.clock.now = datetime(2016, 11, 29, 9, 31, tzinfo=UTC)  # 7 days after the event ended
        expired = client.get(new_link)
        assert expired.status_code == 410
        assert "หมดอายุ" in expired.text
        assert PHONE in expired.text
    assert web.count(WebAnswer) == 0
    assert web.count(RsvpVisit) == 1  # the new link's one good GET, nothing for the bad ones


@pytest.mark.slow
def test_after_the_deadline_the_page_says_whom_to_call_and_takes_nothing(web: Web) -> None:
    link = web.links["TH-50-agri"]
    with web.client() as client:
        csrf = _form(client, link)
        web.clock.now = datetime(2016, 11, 22, 6, 0, tzinfo=UTC)  # the event starts
        page = client.get(link)
        late = client.post(link, data={"csrf": csrf, "choice": "accepted"})
    assert page.status_code == 200
    assert "ปิดรับคำตอบทางเว็บแล้ว" in page.text
    assert PHONE in page.text
    assert 'name="choice"' not in page.text
    assert late.status_code == 403
    assert "ปิดรับคำตอบทางเว็บแล้ว" in late.text
    assert web.count(WebAnswer) == 0


@pytest.mark.slow
def test_posting_is_rate_limited_per_link(web: Web) -> None:
    link = web.links["TH-50-agri"]
    with web.client() as client:
        codes = [client.post(link, data={"choice": "accepted"}).status_code for _ in range(7)]
        limited = client.post(link, data={"choice": "accepted"})
        other = client.post(web.links["TH-50-prov"], data={"choice": "accepted"})
    assert codes == [403] * 6 + [429]
    assert limited.status_code == 429
    assert "บ่อยเกินไป" in limited.text
    assert other.status_code == 403  # another link has its own count


@pytest.mark.slow
def test_posting_is_rate_limited_per_address(
    make_ws, smtp_server: Mailhog, clock: FakeClock
) -> None:  # type: ignore[no-untyped-def]
    for web in _serve(make_ws, smtp_server, clock, ["TH-50"], posts_per_address=3):
        with web.client() as client:
            codes = [
                client.post(link, data={"choice": "accepted"}).status_code
                for link in web.links.values()
            ]
        assert codes[:3] == [403, 403, 403]
        assert set(codes[3:]) == {429}


@pytest.mark.slow
def test_a_scanner_that_opens_every_link_of_every_invitation_answers_nothing(
    make_ws, smtp_server: Mailhog, clock: FakeClock
) -> None:  # type: ignore[no-untyped-def]
    for web in _serve(make_ws, smtp_server, clock, []):
        assert len(web.links) == 532
        before = status(web.ws.ledger(), web.ws.campaign).to_json()
        with httpx.Client(
            headers={"User-Agent": "Microsoft Defender SafeLinks"}, timeout=30
        ) as scanner:
            for raw in smtp_server.messages():
                message = parse(raw)
                urls = set(re.findall(r'href="(http[^"]+)"', text_of(message, "text/html")))
                urls |= set(LINK.findall(text_of(message, "text/plain")))
                for url in urls:
                    if url.startswith(web.base):
                        assert scanner.get(url).status_code == 200
                        assert scanner.head(url).status_code == 200
                        assert scanner.get(f"{url}/invite.ics").status_code == 200
        after = status(web.ws.ledger(), web.ws.campaign).to_json()
        assert after == before
        assert after["totals"]["attendance"]["no_reply"] == 532
        assert web.count(WebAnswer) == 0
        assert web.count(Delivery) == 532  # no confirmation queued
        assert web.count(RsvpVisit) == 532 * 3
        assert len(select_invitees(web.ws.engine)) == 532


@pytest.mark.slow
def test_page_answers_follow_the_attendance_rules_on_both_databases(
    make_ws, database_url: str
) -> None:  # type: ignore[no-untyped-def]
    from mailer.replies.online import Answer, Evidence, answer

    ws = make_ws(DATABASE_URL=database_url)
    assert import_contacts(ws.engine, CONTACTS).written
    ledger, evidence = ws.ledger(), Evidence("192.0.2.7", "phone", 0)
    rep = Answer(
        Attendance.representative,
        {"name": "นายสมชาย ใจดี", "position": "ผอ.", "phone": "0812345678"},
    )
    assert (
        answer(ledger, ws.campaign, "TH-50-agri", Answer(Attendance.accepted), evidence).number == 1
    )
    again = answer(ledger, ws.campaign, "TH-50-agri", Answer(Attendance.accepted), evidence)
    assert (again.changed, again.number) == (False, 1)
    assert answer(ledger, ws.campaign, "TH-50-agri", rep, evidence).number == 2
    assert attendance(ledger)["TH-50-agri"].representative["name"] == "นายสมชาย ใจดี"
    with ws.engine.connect() as conn:
        kinds = conn.execute(
            select(Delivery.kind, Delivery.recipients).order_by(Delivery.kind)
        ).all()  # type: ignore[call-overload]
    assert [k for k, _ in kinds] == ["confirm:1", "confirm:2"]
    mark(ledger, "TH-50-agri", Attendance.declined, representative={}, note="by phone")
    assert answer(ledger, ws.campaign, "TH-50-agri", Answer(Attendance.accepted), evidence).changed
    assert attendance(ledger)["TH-50-agri"].status == Attendance.declined  # the mark still wins
    assert attendance(ledger, only="TH-50-prov") == {}
