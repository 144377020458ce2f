"""The coordinator's daily digest: queued by the scheduler's pass at `[digest] time`, sent
through the ledger once per day (across restarts and a SIGKILL), its content the same as
`mailer status --json`, and invisible to every count, audience and reply match of offices.
Real SMTP (the dev server), real SQLite (and PostgreSQL), a fake clock where it can be."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from typer.testing import CliRunner

from mailer.cli import app
from mailer.invitees.importing import import_contacts
from mailer.kinds import LedgerKind, digest
from mailer.labels import ATTENDANCE_TH
from mailer.replies import sources
from mailer.replies.attendance import mark, review
from mailer.replies.sync import sync
from mailer.rounds.digest import next_digest, queue_digest
from mailer.rounds.due import due_pass
from mailer.rounds.send import send_round
from mailer.rounds.status import scheduler_status
from tests.conftest import CAMPAIGN, CONTACTS, TEMPLATES, FakeClock, Mailhog, cli_env
from tests.helpers import decoded, parse, raw_headers, text_of
from tests.test_replies import _dsn, _mailbox, _our_ids, _reply

BANGKOK = ZoneInfo("Asia/Bangkok")
COORDINATOR = "thannop.sirithamwilai@ega.or.th"
DAY_ONE = datetime(2016, 11, 10, 10, 0, tzinfo=BANGKOK)  # no round is due this week


def _campaign(tmp_path: Path, at: str = "10:00:00", to: str = "") -> Path:
    path = tmp_path / "campaign.toml"
    table = f"\n[digest]\ntime = {at}\n" + (f'to = "{to}"\n' if to else "")
    path.write_text(CAMPAIGN.read_text(encoding="utf-8") + table, encoding="utf-8")
    return path


def _digests(smtp: Mailhog) -> list[bytes]:
    """The digests received, oldest day first (by the day in their Message-ID)."""
    found = {}
    for raw in smtp.messages():
        day = re.search(rb"\.coordinator\.digest-([0-9-]+)\.", raw.split(b"\r\n\r\n")[0])
        if day:
            found.setdefault(day.group(1), []).append(raw)
    return [raw for day in sorted(found) for raw in found[day]]


def _text(raw: bytes) -> str:
    return text_of(parse(raw), "text/plain").replace("\r\n", "\n")


def _headers(raw: bytes) -> dict[str, str]:
    return dict(raw_headers(raw))


@pytest.fixture
def invited(make_ws, smtp_server: Mailhog, tmp_path: Path, clock: FakeClock):  # type: ignore[no-untyped-def]
    ws = make_ws(
        SMTP_PORT=str(smtp_server.port),
        MAILER_CAMPAIGN=str(_campaign(tmp_path)),
        MAILER_PUBLIC_URL="https://mailer.example.org/",
        MAILER_SECRET_KEY="k" * 40,
    )
    import_contacts(ws.engine, CONTACTS)
    send_round(ws, "invitation", only=["TH-50"])  # 7 offices invited
    return ws


def _at(clock: FakeClock, local: datetime) -> None:
    clock.now = local.astimezone(UTC)


def test_the_kind_is_read_once() -> None:
    kind = LedgerKind.parse("digest:2016-11-15")
    assert kind == digest(date(2016, 11, 15))
    assert kind.coordinators
    assert str(kind) == "digest:2016-11-15"
    for bad in ("digest:", "digest:2016-13-01", "digest:16-11-15", "digest:2016-11-15x"):
        with pytest.raises(ValueError, match="is not a kind of ledger row"):
            LedgerKind.parse(bad)
    assert not LedgerKind.parse("invitation").coordinators


def test_not_before_its_time_then_once_a_day(
    invited, smtp_server: Mailhog, clock: FakeClock
) -> None:  # type: ignore[no-untyped-def]
    ws = invited
    _at(clock, DAY_ONE - timedelta(minutes=1))
    assert next_digest(ws) == DAY_ONE
    due_pass(ws)
    assert _digests(smtp_server) == [], "not before [digest] time"
    _at(clock, DAY_ONE + timedelta(seconds=30))
    events = due_pass(ws)
    assert [(e.rule_id, e.status) for e in events][:1] == [("digest:2016-11-10", "queued")]
    (first,) = _digests(smtp_server)
    for _ in range(3):  # more passes, later the same day: nothing more
        clock.advance(hours=3)
        due_pass(ws)
        assert queue_digest(ws) is None
    assert len(_digests(smtp_server)) == 1
    assert next_digest(ws) == DAY_ONE + timedelta(days=1)
    _at(clock, DAY_ONE + timedelta(days=1, minutes=5))
    due_pass(ws)
    first_again, second = _digests(smtp_server)
    assert first_again == first
    assert _headers(first)["Message-ID"] != _headers(second)["Message-ID"]
    kinds = sorted(
        r["kind"]
        for r in json.loads(_cli(ws, "deliveries", "--json").stdout)
        if not r["invitee_id"]
    )
    assert kinds == ["digest:2016-11-10", "digest:2016-11-11"]


def test_the_message_is_thai_auto_generated_and_goes_to_the_coordinator(
    invited, smtp_server: Mailhog, clock: FakeClock
) -> None:  # type: ignore[no-untyped-def]
    ws = invited
    _at(clock, DAY_ONE)
    due_pass(ws)
    (raw,) = _digests(smtp_server)
    headers = _headers(raw)
    subject = decoded(headers["Subject"])
    assert "=?utf-8?b?" in headers["Subject"]  # RFC 2047 on the wire
    assert subject.startswith("สรุปประจำวันพฤหัสบดีที่ ๑๐ พฤศจิกายน ๒๕๕๙: เข้าร่วม 0 จาก 532 หน่วยงาน —")
    assert headers["Auto-Submitted"] == "auto-generated"
    assert COORDINATOR in headers["To"]
    assert "Reply-To" not in headers
    message = parse(raw)
    assert message.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in message.iter_parts()] == ["text/plain", "text/html"]
    assert message.defects == []
    html = text_of(message, "text/html")
    assert 'href="https://mailer.example.org/dashboard"' in html
    assert 'href="https://mailer.example.org/dashboard/review"' in html
    assert "text/calendar" not in raw.decode("ascii", "replace")


def test_it_goes_to_digest_to_and_without_links_when_no_web(
    make_ws, smtp_server: Mailhog, tmp_path: Path, clock: FakeClock
) -> None:  # type: ignore[no-untyped-def]
    ws = make_ws(
        SMTP_PORT=str(smtp_server.port),
        MAILER_CAMPAIGN=str(_campaign(tmp_path, "07:30:00", to="desk@ega.or.th")),
    )
    import_contacts(ws.engine, CONTACTS)
    _at(clock, DAY_ONE.replace(hour=7, minute=30))
    due_pass(ws)  # nothing was sent to any office yet: the digest still goes
    (raw,) = _digests(smtp_server)
    assert "desk@ega.or.th" in _headers(raw)["To"]
    assert _headers(raw)["Delivered-To"] == "desk@ega.or.th"
    text = _text(raw)
    assert "/dashboard" not in text
    assert "ดูภาพรวมบนเว็บ" not in text
    assert "หน่วยงานที่ต้องโทรติดตาม: 532 หน่วยงาน" in text
    assert "และอีก 482 หน่วยงาน" in text  # 50 listed; the rest in the export


def _cli(ws, *args: str):  # type: ignore[no-untyped-def]
    env = cli_env(
        Path(ws.settings.database_url.removeprefix("sqlite:///")).parent,
        MAILER_CAMPAIGN=str(ws.settings.campaign_path),
        SMTP_PORT=str(ws.settings.smtp.port),
    )
    result = CliRunner().invoke(app, list(args), env=env, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result


def _section(text: str, start: str, end: str) -> str:
    return text[text.index(start) : text.index(end, text.index(start))]


def _changed_ids(text: str) -> dict[str, set[str]]:
    """The digest's "what changed" section: Thai attendance label → invitee ids."""
    found: dict[str, set[str]] = {}
    label = ""
    for line in _section(text, "ความเปลี่ยนแปลง", "รอตรวจสอบ:").splitlines():
        if heading := re.fullmatch(r"  (\S.*) \((\d+) หน่วยงาน\)", line):
            label = heading.group(1)
            found[label] = set()
        elif item := re.match(r"    - (\S+) ", line):
            found[label].add(item.group(1))
    return found


def test_its_content_matches_status_json(  # type: ignore[no-untyped-def]
    invited, smtp_server: Mailhog, clock: FakeClock, tmp_path: Path
) -> None:
    ws = invited
    ids = _our_ids(ws)
    _at(clock, DAY_ONE - timedelta(hours=2))
    mark(ws.ledger(), "TH-50-mots", "accepted", representative={}, note="by phone")
    _at(clock, DAY_ONE)
    due_pass(ws)  # the first digest: everything so far
    _at(clock, DAY_ONE + timedelta(hours=3))
    mark(ws.ledger(), "TH-50-agri", "accepted", representative={}, note="")
    mark(ws.ledger(), "TH-50-prov", "declined", representative={}, note="")
    mark(ws.ledger(), "TH-50-ind", "representative", representative={"name": "นายสมชาย ดีใจ"},
         note="")  # fmt: skip
    box = _mailbox(tmp_path, [
        _dsn("saraban.th50@sso.example", ids["TH-50-sso"]),  # a bounce
        _reply("saraban.th50@rd.example", "จอดรถได้ที่ไหนครับ", ids["TH-50-rd"]),  # needs review
        _reply("stranger@else.example", "ยินดีเข้าร่วม"),  # matched to no office: review
    ])  # fmt: skip
    sync(ws.ledger(), ws.campaign, "maildir:test", sources.maildir(box))
    _at(clock, DAY_ONE + timedelta(days=1))
    due_pass(ws)
    first, second = (_text(raw) for raw in _digests(smtp_server))
    assert _changed_ids(first) == {"เข้าร่วม": {"TH-50-mots"}}
    assert "ความเปลี่ยนแปลงตั้งแต่เริ่ม (สรุปฉบับแรก) ถึง" in first

    report = json.loads(_cli(ws, "status", "--json").stdout)
    totals = report["totals"]
    overview = _section(second, "ภาพรวม", "ความเปลี่ยนแปลง")
    assert f"ภาพรวม ({totals['invitees']} หน่วยงาน)" in overview
    for status_, count in totals["attendance"].items():
        assert f"    {ATTENDANCE_TH[status_]}: {count}\n" in overview  # type: ignore[index]
    assert f"    ส่งแล้ว: {totals['sent']}\n" in overview
    # What changed since yesterday's digest: exactly the offices whose attendance in
    # status --json was decided after it, each under its new attendance.
    since = DAY_ONE.astimezone(UTC)
    expected: dict[str, set[str]] = {}
    for office in report["invitees"]:
        at = office["attendance_at"]
        if at and datetime.fromisoformat(at) >= since:
            expected.setdefault(ATTENDANCE_TH[office["attendance"]], set()).add(
                office["invitee_id"]
            )  # type: ignore[index]
    assert _changed_ids(second) == expected == {
        "เข้าร่วม": {"TH-50-agri"}, "ส่งผู้แทน": {"TH-50-ind"}, "ไม่เข้าร่วม": {"TH-50-prov"},
        "อีเมลตีกลับ": {"TH-50-sso"}, "รอตรวจสอบ": {"TH-50-rd"},
    }  # fmt: skip
    assert "ผู้แทน: นายสมชาย ดีใจ" in second
    assert "ตั้งแต่สรุปครั้งก่อน (วันพฤหัสบดีที่ ๑๐ พฤศจิกายน ๒๕๕๙ เวลา ๑๐.๐๐ น.)" in second
    queue = list(review(ws.ledger()))  # what `mailer replies review` lists
    assert len(queue) == 2
    assert "รอตรวจสอบ: 2 ข้อความ (https://mailer.example.org/dashboard/review)" in second
    calls = [
        r for r in report["invitees"] if r["attendance"] in ("no_reply", "bounced", "needs_review")
    ]
    assert f"หน่วยงานที่ต้องโทรติดตาม: {len(calls)} หน่วยงาน" in second
    assert "followup-no-reply: วันอังคารที่ ๑๕ พฤศจิกายน ๒๕๕๙ เวลา ๐๙.๐๐ น." in second


def test_offices_counts_are_unchanged_by_a_sent_digest(  # type: ignore[no-untyped-def]
    invited, smtp_server: Mailhog, clock: FakeClock, tmp_path: Path
) -> None:
    ws = invited
    before = {args: _cli(ws, *args).stdout for args in (("status", "--json"), ("status",))}
    listed = json.loads(_cli(ws, "deliveries", "--json").stdout)
    _at(clock, DAY_ONE)
    due_pass(ws)
    assert len(_digests(smtp_server)) == 1
    after = {args: _cli(ws, *args).stdout for args in (("status", "--json"), ("status",))}
    assert after == before
    table = _cli(ws, "deliveries").stdout
    assert "7 deliveries, and 1 to the coordinator (the daily digest)" in table
    assert "(coordinator)" in table
    now_listed = json.loads(_cli(ws, "deliveries", "--json").stdout)
    assert now_listed[:-1] == listed
    assert (now_listed[-1]["invitee_id"], now_listed[-1]["state"]) == (None, "sent")
    assert ws.ledger().counts() == {**ws.ledger().counts("invitation")}
    # A bounce of the digest names no office: nothing changes for any of them.
    digest_id = now_listed[-1]["message_id"]
    box = _mailbox(tmp_path, [_dsn(COORDINATOR, digest_id)])
    report = sync(ws.ledger(), ws.campaign, "maildir:test", sources.maildir(box))
    assert report.unmatched == 1
    assert _cli(ws, "status", "--json").stdout == before[("status", "--json")]
    plan = {
        p["rule"]: p["reach"] for p in json.loads(_cli(ws, "scheduler", "plan", "--json").stdout)
    }
    assert plan["followup-no-reply"] == 7


def test_scheduler_status_names_the_next_digest(invited, clock: FakeClock) -> None:  # type: ignore[no-untyped-def]
    ws = invited
    _at(clock, DAY_ONE - timedelta(hours=1))
    status = scheduler_status(ws)
    assert status.next_digest == DAY_ONE
    assert status.to_json(BANGKOK)["next_digest"] == DAY_ONE.astimezone(UTC).isoformat()
    assert any(
        line.startswith("Next digest (สรุปประจำวัน): 2016-11-10 10:00")
        for line in status.lines(BANGKOK)
    )
    _at(clock, datetime(2016, 11, 23, 9, 0, tzinfo=BANGKOK))
    assert next_digest(ws) is None, "none after the event's day"


def test_a_cancelled_event_has_no_more_digests(
    invited, smtp_server: Mailhog, clock: FakeClock
) -> None:  # type: ignore[no-untyped-def]
    from mailer.rounds.send import send_announcement

    ws = invited
    _at(clock, DAY_ONE - timedelta(hours=1))
    send_announcement(ws, cancel=True)
    _at(clock, DAY_ONE)
    due_pass(ws)
    assert _digests(smtp_server) == []
    assert next_digest(ws) is None


def _local_time_a_minute_ago() -> str:
    now = datetime.now(BANGKOK)
    earlier = max(now - timedelta(minutes=1), now.replace(hour=0, minute=0, second=0))
    return f"{earlier:%H:%M:%S}"


def _wait_for(what: str, check, proc: subprocess.Popen[bytes], seconds: float = 90) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + seconds
    while not check():
        assert proc.poll() is None, f"the scheduler stopped: {proc.communicate()}"
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def _real_time_env(tmp_path: Path, port: int) -> dict[str, str]:
    """A campaign in 2030 whose digest was due a minute ago (Bangkok, real clock), the
    offices imported: the environment `mailer` subprocesses run in."""
    campaign = tmp_path / "campaign.toml"
    campaign.write_text(
        CAMPAIGN.read_text(encoding="utf-8")
        .replace("2016-11-22T13:00:00", "2030-11-22T13:00:00")
        .replace("2016-11-22T16:30:00", "2030-11-22T16:30:00")
        + f"\n[digest]\ntime = {_local_time_a_minute_ago()}\n",
        encoding="utf-8",
    )
    env = {
        **os.environ, "DATABASE_URL": f"sqlite:///{tmp_path / 'mailer.db'}",
        "MAILER_CAMPAIGN": str(campaign), "MAILER_TEMPLATES": str(TEMPLATES),
        "SMTP_PORT": str(port),
    }  # fmt: skip
    subprocess.run([*MAILER, "import", str(CONTACTS)], env=env, check=True, capture_output=True)
    return env


MAILER = [sys.executable, "-m", "mailer"]


@pytest.mark.slow
def test_sent_once_per_day_across_a_sigkill_and_restart(
    tmp_path: Path, smtp_server: Mailhog
) -> None:
    """Real processes, real time: the digest is due a minute ago (Bangkok); the scheduler
    sends it, is SIGKILLed, and a new one passes again and again without sending another."""
    env = _real_time_env(tmp_path, smtp_server.port)
    mailer = MAILER

    def status() -> dict[str, object]:
        shown = subprocess.run([*mailer, "scheduler", "status", "--json"], env=env,
                               capture_output=True, text=True, check=True)  # fmt: skip
        return json.loads(shown.stdout)  # type: ignore[no-any-return]

    first = subprocess.Popen([*mailer, "scheduler", "run"], env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        _wait_for("the digest", lambda: len(_digests(smtp_server)) == 1, first)
    finally:
        first.kill()  # SIGKILL
        first.wait(10)
    second = subprocess.Popen([*mailer, "scheduler", "run"], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
    try:
        started = datetime.now(UTC).isoformat()
        _wait_for(  # the new scheduler's own catch-up pass has run
            "a pass of the restarted scheduler",
            lambda: ((status()["last_pass"] or {}).get("at") or "") > started,  # type: ignore[union-attr]
            second,
        )
        time.sleep(1)
    finally:
        second.send_signal(signal.SIGTERM)
        _out, err = second.communicate(timeout=60)
    assert second.returncode == 0, err.decode()
    assert len(_digests(smtp_server)) == 1, "the restarted scheduler sent no second digest"
    today = datetime.now(BANGKOK).date()
    assert str(today) in status()["next_digest"] or status()["next_digest"].startswith(  # type: ignore[operator, union-attr]
        str(today + timedelta(days=1))
    )
    plan = subprocess.run([*mailer, "scheduler", "plan"], env=env, capture_output=True,
                          text=True, check=True)  # fmt: skip
    assert "Next digest to the coordinator (สรุปประจำวัน): " in plan.stdout
    listed = subprocess.run([*mailer, "deliveries", "--json"], env=env, capture_output=True,
                            text=True, check=True)  # fmt: skip
    rows = [r for r in json.loads(listed.stdout) if r["invitee_id"] is None]
    assert [(r["kind"], r["state"]) for r in rows] == [(f"digest:{today}", "sent")]


@pytest.mark.postgres
def test_one_digest_a_day_on_postgresql(make_ws, postgres_url: str, smtp_server: Mailhog,
                                        tmp_path: Path, clock: FakeClock) -> None:  # type: ignore[no-untyped-def]  # fmt: skip
    ws = make_ws(SMTP_PORT=str(smtp_server.port), DATABASE_URL=postgres_url,
                 MAILER_CAMPAIGN=str(_campaign(tmp_path)))  # fmt: skip
    import_contacts(ws.engine, CONTACTS)
    send_round(ws, "invitation", only=["TH-50"])
    _at(clock, DAY_ONE)
    assert queue_digest(ws) == digest(DAY_ONE.date())
    assert ws.ledger().enqueue_coordinators("digest:2016-11-10", 0, "<x@y>", COORDINATOR) is False
    due_pass(ws)
    due_pass(ws)
    assert len(_digests(smtp_server)) == 1
    assert ws.ledger().counts("invitation")["sent"] == 7 == ws.ledger().counts()["sent"]


def test_check_renders_the_digest_and_names_a_broken_template(  # type: ignore[no-untyped-def]
    make_ws, tmp_path: Path, clock: FakeClock
) -> None:
    import shutil

    from mailer.check import run_check

    templates = tmp_path / "templates"
    shutil.copytree(TEMPLATES, templates)
    ws = make_ws(MAILER_CAMPAIGN=str(_campaign(tmp_path)), MAILER_TEMPLATES=str(templates))
    import_contacts(ws.engine, CONTACTS)
    report = run_check(ws)
    assert report.ok, report.errors
    assert "template digest: the coordinator's digest rendered" in report.notes
    body = templates / "digest" / "body.txt"
    body.write_text(body.read_text(encoding="utf-8").replace("{{ as_of }}", "{{ as_off }}"),
                    encoding="utf-8")  # fmt: skip
    ws.reload()
    broken = run_check(ws)
    assert any("digest/body.txt, line" in e and "as_off" in e for e in broken.errors), broken.errors


@pytest.mark.slow
def test_killed_while_the_digest_is_in_the_servers_hands_it_is_not_sent_again(
    tmp_path: Path,
) -> None:
    """SIGKILL after the server took the digest's DATA but before it answered: the row is
    left in `sending`, becomes `uncertain` at the next drain, and is never sent twice."""
    from tests.scripted_smtp import Script, ScriptedServer

    script = Script(plans={COORDINATOR: ["stall-after-data"]}, stall=20)
    with ScriptedServer(script) as server:
        env = _real_time_env(tmp_path, server.port)
        first = subprocess.Popen([*MAILER, "scheduler", "run"], env=env,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
        try:
            _wait_for("the digest's DATA", lambda: script.received_by(COORDINATOR) == 1, first)
        finally:
            first.kill()  # SIGKILL while the server holds its answer
            first.wait(10)
        script.plans[COORDINATOR] = ["250"]
        worker = subprocess.run([*MAILER, "worker", "--json"], env=env, capture_output=True,
                                text=True, timeout=120)  # fmt: skip
        second = subprocess.Popen([*MAILER, "scheduler", "run"], env=env,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
        time.sleep(5)  # its catch-up pass, and more
        second.send_signal(signal.SIGTERM)
        _out, err = second.communicate(timeout=60)
        assert second.returncode == 0, err.decode()
        assert script.received_by(COORDINATOR) == 1, "the digest was not sent twice"
    assert json.loads(worker.stdout.strip().splitlines()[-1])["recovered_uncertain"] == 1
    listed = subprocess.run([*MAILER, "deliveries", "--json"], env=env, capture_output=True,
                            text=True, check=True)  # fmt: skip
    rows = [r for r in json.loads(listed.stdout) if r["invitee_id"] is None]
    assert [r["state"] for r in rows] == ["uncertain"]


def test_the_public_url_is_a_plain_optional_web_address(tmp_path: Path) -> None:
    from mailer.errors import SettingsError
    from tests.conftest import make_settings

    key = "k" * 40
    assert make_settings(tmp_path).web.public_url == ""
    url = make_settings(
        tmp_path, MAILER_PUBLIC_URL="https://mailer.example.org/th/", MAILER_SECRET_KEY=key
    ).web.public_url
    assert url == "https://mailer.example.org/th"
    for bad in ("mailer.example.org", "ftp://x.example", "https://", "https://x.example/?a=1"):
        with pytest.raises(
            SettingsError, match=r"MAILER_PUBLIC_URL=.* must be an http\(s\) address"
        ):
            make_settings(tmp_path, MAILER_PUBLIC_URL=bad, MAILER_SECRET_KEY=key)


@pytest.mark.slow
def test_the_digest_read_back_from_the_coordinators_mailbox_is_not_for_review(
    invited, smtp_server: Mailhog, clock: FakeClock, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    """Review: the digest goes to the coordinator, whose mailbox the scheduler reads; read
    back, it went to `replies review` as a message of no office, one more every day."""
    ws = invited
    _at(clock, DAY_ONE + timedelta(seconds=30))
    due_pass(ws)
    (raw,) = _digests(smtp_server)
    box = _mailbox(tmp_path, [raw])
    report = sync(ws.ledger(), ws.campaign, "maildir:test", sources.maildir(box))
    assert report.new == 1
    assert report.unmatched == 0
    assert list(review(ws.ledger())) == []
