"""Reminder rounds with a controlled clock and a real SMTP server; the scheduler process
and its one-per-database lock for real."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from mailer.errors import MailerError
from mailer.invitees.importing import import_contacts
from mailer.rounds.due import due_pass, plan, run_now
from mailer.rounds.scheduler import SchedulerLock
from mailer.rounds.send import send_announcement, send_round
from tests.conftest import CAMPAIGN, CONTACTS, TEMPLATES, FakeClock, Mailhog
from tests.helpers import (
    calendar_of,
    campaign_due_now,
    decoded,
    parse,
    raw_headers,
    write_synthetic_contacts,
)

BANGKOK_FOLLOWUP = datetime(2016, 11, 15, 2, 0, tzinfo=UTC)  # 09:00 in Bangkok


def _invited(make_ws, smtp_server: Mailhog):  # type: ignore[no-untyped-def]
    ws = make_ws(SMTP_PORT=str(smtp_server.port))
    import_contacts(ws.engine, CONTACTS)
    send_round(ws, "invitation", only=["TH-50"])  # 7 offices invited, 525 not
    return ws


def _reminders(smtp_server: Mailhog) -> list[bytes]:
    return [raw for raw in smtp_server.messages() if dict(raw_headers(raw)).get("Auto-Submitted")]


@pytest.mark.slow
def test_the_plan_shows_every_rule(make_ws, smtp_server: Mailhog) -> None:
    ws = _invited(make_ws, smtp_server)
    by_rule = {p.rule_id: p for p in plan(ws)}
    assert by_rule["invitation"].status == "by-command"
    followup = by_rule["followup-no-reply"]
    assert followup.due_at == BANGKOK_FOLLOWUP
    assert followup.status == "waiting"
    assert followup.reach == 7
    assert followup.audience == "no_reply"
    assert followup.due_thai(ws.campaign.timezone) == "วันอังคารที่ ๑๕ พฤศจิกายน ๒๕๕๙ เวลา ๐๙.๐๐ น."
    assert by_rule["reminder-day-before"].due_at == datetime(2016, 11, 21, 2, 0, tzinfo=UTC)


@pytest.mark.slow
def test_a_round_fires_at_its_time_to_exactly_its_audience_once(
    make_ws, smtp_server: Mailhog, clock: FakeClock
) -> None:
    ws = _invited(make_ws, smtp_server)
    assert due_pass(ws) == []  # not due yet
    clock.now = BANGKOK_FOLLOWUP + timedelta(seconds=30)
    (event,) = due_pass(ws)
    assert (event.rule_id, event.status, event.report.drain.sent) == (
        "followup-no-reply",
        "done",
        7,
    )  # type: ignore[union-attr]
    reminders = _reminders(smtp_server)
    assert sorted(
        v for raw in reminders for k, v in raw_headers(raw) if k == "Delivered-To"
    ) == sorted(
        f"saraban.th50@{a}.example" for a in ("agri", "dbd", "ind", "mots", "prov", "rd", "sso")
    )
    message = parse(reminders[0])
    assert decoded(dict(raw_headers(reminders[0]))["Subject"]).startswith("ขอความกรุณาตอบรับ")
    (vevent,) = calendar_of(message).walk("VEVENT")
    assert str(vevent["UID"]).startswith("egov-seminar-2559-TH-50-")  # the same invitation
    assert due_pass(ws) == []  # a second pass (or a restart) sends nothing
    clock.advance(hours=3)
    assert due_pass(ws) == []
    assert len(_reminders(smtp_server)) == 7
    assert {p.rule_id: p.status for p in plan(ws)}["followup-no-reply"] == "done"


@pytest.mark.slow
def test_a_restart_inside_the_window_catches_up_once(
    make_ws, smtp_server: Mailhog, clock: FakeClock
) -> None:
    ws = _invited(make_ws, smtp_server)
    clock.now = BANGKOK_FOLLOWUP + timedelta(hours=20)  # down at 09:00, back at 05:00 next day
    (event,) = due_pass(ws)
    assert event.status == "done"
    assert len(_reminders(smtp_server)) == 7
    assert due_pass(ws) == []


def test_a_restart_after_the_window_records_it_as_missed(
    make_ws, smtp_server: Mailhog, clock: FakeClock
) -> None:
    ws = _invited(make_ws, smtp_server)
    clock.now = BANGKOK_FOLLOWUP + timedelta(hours=25)  # the window is 24 hours
    (event,) = due_pass(ws)
    assert event.status == "missed"
    assert _reminders(smtp_server) == []
    followup = {p.rule_id: p for p in plan(ws)}["followup-no-reply"]
    assert followup.status == "missed"
    assert "catch-up window" in followup.note
    assert due_pass(ws) == []


def test_moving_the_event_moves_the_relative_rounds(
    make_ws, smtp_server: Mailhog, tmp_path: Path
) -> None:
    _invited(make_ws, smtp_server)
    moved = tmp_path / "moved.toml"
    moved.write_text(
        CAMPAIGN.read_text(encoding="utf-8").replace("2016-11-22T", "2016-11-29T"), encoding="utf-8"
    )
    ws = make_ws(SMTP_PORT=str(smtp_server.port), MAILER_CAMPAIGN=str(moved))
    followup = {p.rule_id: p for p in plan(ws)}["followup-no-reply"]
    assert followup.due_at == BANGKOK_FOLLOWUP + timedelta(days=7)


@pytest.mark.slow
def test_after_a_cancellation_rounds_stop(make_ws, smtp_server: Mailhog, clock: FakeClock) -> None:
    ws = _invited(make_ws, smtp_server)
    send_announcement(ws, cancel=True)
    clock.now = BANGKOK_FOLLOWUP + timedelta(minutes=1)
    (event,) = due_pass(ws)
    assert event.status == "cancelled"
    assert _reminders(smtp_server) == []


@pytest.mark.slow
def test_run_now_by_hand_and_an_unknown_rule(make_ws, smtp_server: Mailhog) -> None:
    ws = _invited(make_ws, smtp_server)
    assert run_now(ws, "reminder-day-before", dry_run=True).enqueued == 7
    assert _reminders(smtp_server) == []
    assert run_now(ws, "reminder-day-before").drain.sent == 7
    assert run_now(ws, "reminder-day-before").drain.sent == 0
    with pytest.raises(MailerError, match="there is no rule 'nope'; the rules are: invitation, "):
        run_now(ws, "nope")


@pytest.mark.slow
def test_two_schedulers_never_hold_one_database(make_ws, database_url: str) -> None:
    first = SchedulerLock(make_ws(DATABASE_URL=database_url))
    second = SchedulerLock(make_ws(DATABASE_URL=database_url))
    first.acquire()
    try:
        with pytest.raises(
            MailerError, match="another scheduler is already running on this database"
        ):
            second.acquire()
    finally:
        first.release()
    second.acquire()
    second.release()


@pytest.mark.slow
def test_the_scheduler_process_runs_a_due_round_and_stops_cleanly(
    tmp_path: Path, smtp_server: Mailhog
) -> None:
    """Real time, real processes: an event in 2030 with a round due a minute ago."""
    campaign = campaign_due_now(CAMPAIGN, tmp_path / "campaign.toml")
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'mailer.db'}",
        "MAILER_CAMPAIGN": str(campaign),
        "MAILER_TEMPLATES": str(TEMPLATES),
        "SMTP_PORT": str(smtp_server.port),
    }
    mailer = [sys.executable, "-m", "mailer"]
    subprocess.run([*mailer, "import", str(CONTACTS)], env=env, check=True, capture_output=True)
    subprocess.run(
        [*mailer, "send", "invitations", "--only", "TH-50"],
        env=env,
        check=True,
        capture_output=True,
    )
    scheduler = subprocess.Popen(
        [*mailer, "scheduler", "run"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        deadline = time.monotonic() + 60
        while len(_reminders(smtp_server)) < 7:
            assert scheduler.poll() is None, scheduler.communicate()
            assert time.monotonic() < deadline, "the due round was not sent"
            time.sleep(0.2)
        second = subprocess.run(
            [*mailer, "scheduler", "run"], env=env, capture_output=True, text=True, timeout=60
        )
        assert second.returncode == 1
        assert "another scheduler is already running on this database" in second.stderr
    finally:
        scheduler.send_signal(signal.SIGTERM)
        out, err = scheduler.communicate(timeout=60)
    assert scheduler.returncode == 0, err.decode()
    lines = out.decode()
    assert "round followup-no-reply" in lines
    assert "7 enqueued, 7 sent" in lines
    assert "scheduler stopped" in lines
    assert len(_reminders(smtp_server)) == 7
    again = subprocess.run(
        [*mailer, "scheduler", "plan", "--json"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert '"status": "done"' in again.stdout


def test_the_scheduler_refuses_to_start_on_a_missing_template(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from mailer.cli import app

    campaign = tmp_path / "campaign.toml"
    campaign.write_text(
        CAMPAIGN.read_text(encoding="utf-8").replace('template = "followup"', 'template = "gone"'),
        encoding="utf-8",
    )
    env = {
        "DATABASE_URL": f"sqlite:///{tmp_path / 'm.db'}",
        "MAILER_CAMPAIGN": str(campaign),
        "MAILER_TEMPLATES": str(TEMPLATES),
    }
    result = CliRunner().invoke(app, ["scheduler", "run"], env=env)
    assert result.exit_code == 1
    assert "gone: no such template folder" in result.output


def test_audiences_follow_the_answers(make_ws, smtp_server: Mailhog) -> None:
    from mailer.replies.attendance import mark
    from mailer.rounds.audience import audience_ids

    ws = _invited(make_ws, smtp_server)
    mark(ws.ledger(), "TH-50-agri", "accepted", representative={}, note="")
    mark(ws.ledger(), "TH-50-prov", "declined", representative={}, note="")
    mark(
        ws.ledger(), "TH-50-ind", "representative", representative={"name": "นายสมชาย ดีใจ"}, note=""
    )
    everyone = {f"TH-50-{a}" for a in ("agri", "dbd", "ind", "mots", "prov", "rd", "sso")}
    assert audience_ids(ws.ledger(), "all") == everyone
    assert audience_ids(ws.ledger(), "no_reply") == everyone - {
        "TH-50-agri",
        "TH-50-prov",
        "TH-50-ind",
    }
    assert audience_ids(ws.ledger(), "not_declined") == everyone - {"TH-50-prov"}
    assert audience_ids(ws.ledger(), "accepted") == {"TH-50-agri"}
    assert audience_ids(ws.ledger(), "representative") == {"TH-50-ind"}
    assert audience_ids(ws.ledger(), "tentative") == set()


@pytest.mark.slow
def test_killing_the_scheduler_mid_round_then_restarting_sends_no_duplicates(
    tmp_path: Path, smtp_server: Mailhog
) -> None:
    from collections import Counter

    count = 600
    contacts = tmp_path / "contacts.csv"
    write_synthetic_contacts(contacts, count)
    campaign = campaign_due_now(CAMPAIGN, tmp_path / "campaign.toml")
    env = {
        **os.environ, "DATABASE_URL": f"sqlite:///{tmp_path / 'mailer.db'}",
        "MAILER_CAMPAIGN": str(campaign), "MAILER_TEMPLATES": str(TEMPLATES),
        "SMTP_PORT": str(smtp_server.port),
    }  # fmt: skip
    mailer = [sys.executable, "-m", "mailer"]
    subprocess.run([*mailer, "import", str(contacts)], env=env, check=True, capture_output=True)
    subprocess.run([*mailer, "send", "invitations"], env=env, check=True, capture_output=True)

    first = subprocess.Popen(
        [*mailer, "scheduler", "run"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 60
    while len(_reminders(smtp_server)) < count // 4:
        assert first.poll() is None
        assert time.monotonic() < deadline
        time.sleep(0.05)
    first.kill()  # SIGKILL, mid-round
    first.wait(10)
    second = subprocess.Popen(
        [*mailer, "scheduler", "run"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            plan = subprocess.run(
                [*mailer, "scheduler", "plan", "--json"],
                env=env,
                capture_output=True,
                text=True,
                check=True,
            )
            if '"status": "done"' in plan.stdout:
                break
            assert second.poll() is None, second.communicate()
            assert time.monotonic() < deadline, "the round was not finished after the restart"
            time.sleep(0.5)
    finally:
        second.send_signal(signal.SIGTERM)
        second.communicate(timeout=60)
    received = Counter(
        v for raw in _reminders(smtp_server) for k, v in raw_headers(raw) if k == "Delivered-To"
    )
    assert max(received.values()) == 1, "no office got the reminder twice"
    missing = count - len(received)
    assert missing <= 1, "at most the one message in flight is left uncertain, not lost silently"
    deliveries = subprocess.run(
        [*mailer, "deliveries", "--json", "--state", "uncertain"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert deliveries.stdout.count('"state": "uncertain"') <= 1


def test_the_due_pass_also_sends_what_is_left_due(make_ws, smtp_server: Mailhog) -> None:
    from mailer.identity import new_message_id

    ws = _invited(make_ws, smtp_server)
    ws.ledger().enqueue(  # e.g. a retry now due, or the rest of a round stopped by a daily cap
        [("TH-51-agri", "saraban.th51@agri.example")], "invitation", 0,
        lambda i: new_message_id(ws.campaign, i, "invitation"),
    )  # fmt: skip
    (event,) = due_pass(ws)
    assert event.status == "drained"
    assert event.stats is not None
    assert event.stats.sent == 1
    assert due_pass(ws) == []


def test_a_queued_reminder_is_not_sent_to_an_office_that_answered_meanwhile(
    make_ws, smtp_server: Mailhog
) -> None:
    from mailer.delivery.drain import drain_due
    from mailer.replies.attendance import mark
    from mailer.rounds.context import delivery_context

    ws = _invited(make_ws, smtp_server)
    report = send_round(ws, "reminder:followup-no-reply", dry_run=True)
    assert report.enqueued == 7
    ledger = ws.ledger()
    from mailer.identity import new_message_id

    ledger.enqueue(
        [(f"TH-50-{a}", f"saraban.th50@{a}.example") for a in ("agri", "prov")], "reminder:followup-no-reply", 0,
        lambda i: new_message_id(ws.campaign, i, "reminder:followup-no-reply"),
    )  # fmt: skip
    mark(ws.ledger(), "TH-50-agri", "declined", representative={}, note="")  # answers first
    stats = drain_due(delivery_context(ws))
    assert stats.sent == 1
    assert stats.failed == 0
    assert [(o.invitee_id, o.state) for o in stats.problems] == [("TH-50-agri", "skipped")]
    reminders = _reminders(smtp_server)
    assert [v for raw in reminders for k, v in raw_headers(raw) if k == "Delivered-To"] == [
        "saraban.th50@prov.example"
    ]
