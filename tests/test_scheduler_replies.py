"""The scheduler reads the coordinator's mailbox by itself (issue #14): before a reminder
round chooses its audience it reads the mailbox, so an office that has just answered is not
chased; when the mailbox cannot be read the round waits (or, if the campaign says so, goes);
and `mailer scheduler run` keeps `status --json` current with a real Dovecot, IDLE or not."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from mailer.invitees.importing import import_contacts
from mailer.models import RoundRun
from mailer.rounds.due import due_pass
from mailer.rounds.mailbox import replies_gate, start_watcher
from mailer.rounds.send import send_round
from tests.conftest import (
    CAMPAIGN,
    CONTACTS,
    TEMPLATES,
    Dovecot,
    FakeClock,
    Mailhog,
    free_port,
    run_dovecot,
)
from tests.helpers import campaign_due_now
from tests.test_replies import _our_ids, _reply
from tests.test_rounds import BANGKOK_FOLLOWUP, _reminders
from tests.test_watch import WITHOUT_IDLE, _append, _status_of, _until

ACCEPT = "ยินดีเข้าร่วมค่ะ"


def _imap(server: Dovecot | None, port: int | None = None) -> dict[str, str]:
    return {
        "IMAP_HOST": "127.0.0.1",
        "IMAP_PORT": str(server.port if server else port),
        "IMAP_SECURITY": "none",
        "IMAP_USERNAME": server.username if server else "coordinator",
        "IMAP_PASSWORD": server.password if server else "s3cret-imap",
    }


def _invited(make_ws, smtp_server: Mailhog, imap: dict[str, str], **env: str):  # type: ignore[no-untyped-def]
    ws = make_ws(SMTP_PORT=str(smtp_server.port), **imap, **env)
    import_contacts(ws.engine, CONTACTS)
    send_round(ws, "invitation", only=["TH-50"])
    return ws


def _recorded(ws) -> list[tuple[str, str]]:  # type: ignore[no-untyped-def]
    runs = RoundRun.__table__  # type: ignore[attr-defined]
    with ws.engine.connect() as conn:
        return [(r.rule_id, r.status) for r in conn.execute(select(runs.c.rule_id, runs.c.status))]


@pytest.mark.slow
def test_a_no_reply_round_right_after_an_answer_by_mail_skips_that_office(
    make_ws, smtp_server: Mailhog, dovecot: Dovecot, clock: FakeClock
) -> None:
    """No `replies sync` by hand: the office's answer is read before the round's audience."""
    ws = _invited(make_ws, smtp_server, _imap(dovecot))
    ids = _our_ids(ws)
    clock.now = BANGKOK_FOLLOWUP + timedelta(seconds=30)
    _append(dovecot, _reply("saraban.th50@agri.example", ACCEPT, ids["TH-50-agri"]))
    lines: list[str] = []
    watcher = start_watcher(ws, lines.append)
    assert watcher is not None
    try:
        (event,) = due_pass(ws, replies_gate(ws, watcher, lines.append))
    finally:
        watcher.stop()
    assert (event.rule_id, event.status) == ("followup-no-reply", "done")
    assert event.report is not None
    assert event.report.drain.sent == 6
    assert _status_of(ws, "TH-50-agri") == "accepted"
    chased = b"".join(_reminders(smtp_server))
    assert b"saraban.th50@agri.example" not in chased
    assert b"saraban.th50@prov.example" in chased


@pytest.mark.slow
def test_a_round_waits_while_the_mailbox_cannot_be_read_or_goes_if_the_campaign_says_so(
    make_ws, smtp_server: Mailhog, clock: FakeClock, tmp_path: Path
) -> None:
    nobody = _imap(None, free_port())  # nothing listens there
    ws = _invited(make_ws, smtp_server, nobody)
    clock.now = BANGKOK_FOLLOWUP + timedelta(seconds=30)
    lines: list[str] = []
    watcher = start_watcher(ws, lines.append)
    assert watcher is not None
    try:
        (event,) = due_pass(ws, replies_gate(ws, watcher, lines.append))
        assert event.status == "waiting"
        assert "the replies were last read never" in event.note
        assert "cannot reach the IMAP server 127.0.0.1" in event.note
        assert _recorded(ws) == []  # still due: the next pass asks again
        assert _reminders(smtp_server) == []
    finally:
        watcher.stop()
    sending = tmp_path / "send-anyway.toml"
    sending.write_text(
        CAMPAIGN.read_text(encoding="utf-8") + '\n[replies]\nwhen_stale = "send"\n',
        encoding="utf-8",
    )
    ws = make_ws(SMTP_PORT=str(smtp_server.port), MAILER_CAMPAIGN=str(sending), **nobody)
    watcher = start_watcher(ws, lines.append)
    assert watcher is not None
    try:
        (event,) = due_pass(ws, replies_gate(ws, watcher, lines.append))
    finally:
        watcher.stop()
    assert event.status == "done"
    assert len(_reminders(smtp_server)) == 7
    assert any("sent although the replies were last read never" in line for line in lines)


def _scheduler_env(
    tmp_path: Path, smtp_server: Mailhog, server: Dovecot, extra: str
) -> dict[str, str]:
    campaign = campaign_due_now(CAMPAIGN, tmp_path / "campaign.toml")
    campaign.write_text(campaign.read_text(encoding="utf-8") + extra, encoding="utf-8")
    return {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'mailer.db'}",
        "MAILER_CAMPAIGN": str(campaign),
        "MAILER_TEMPLATES": str(TEMPLATES),
        "SMTP_PORT": str(smtp_server.port),
        **_imap(server),
    }


def _json(env: dict[str, str], *command: str) -> dict:  # type: ignore[type-arg]
    done = subprocess.run(
        [sys.executable, "-m", "mailer", *command, "--json"],
        env=env, capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    return json.loads(done.stdout)  # type: ignore[no-any-return]


def _office(env: dict[str, str], office: str) -> str | None:
    for row in _json(env, "status")["invitees"]:
        if row["invitee_id"] == office:
            return row["attendance"]  # type: ignore[no-any-return]
    return None


def _watch_scheduler(
    tmp_path: Path, smtp_server: Mailhog, server: Dovecot, extra: str, seconds: float
) -> None:
    """A `mailer scheduler run` reading `server`; an answer appended while it runs shows in
    `status --json` within `seconds`, with no `replies sync`."""
    env = _scheduler_env(tmp_path, smtp_server, server, extra)
    mailer = [sys.executable, "-m", "mailer"]
    subprocess.run([*mailer, "import", str(CONTACTS)], env=env, check=True, capture_output=True)
    subprocess.run(
        [*mailer, "send", "invitations", "--only", "TH-50"],
        env=env,
        check=True,
        capture_output=True,
    )
    ids = {row["invitee_id"]: row["message_id"] for row in _json(env, "status")["invitees"]}
    log = tmp_path / "scheduler.log"
    with log.open("w") as out:
        scheduler = subprocess.Popen([*mailer, "scheduler", "run"], env=env, stdout=out, stderr=out)
    try:
        _until(lambda: _json(env, "scheduler", "status")["sync"]["last_ok_at"] is not None, 30)
        started = time.monotonic()
        _append(server, _reply("saraban.th50@agri.example", ACCEPT, ids["TH-50-agri"]))
        _until(lambda: _office(env, "TH-50-agri") == "accepted", seconds)
        assert time.monotonic() - started < seconds
        assert scheduler.poll() is None, log.read_text()
    finally:
        scheduler.send_signal(signal.SIGTERM)
        scheduler.wait(timeout=60)
    shown = log.read_text()
    assert "Traceback" not in shown
    assert server.password not in shown


@pytest.mark.slow
def test_the_running_scheduler_reads_an_answer_within_seconds_under_idle(
    tmp_path: Path, smtp_server: Mailhog, dovecot: Dovecot
) -> None:
    _watch_scheduler(tmp_path, smtp_server, dovecot, "", seconds=15)


@pytest.fixture
def dovecot_without_idle():  # type: ignore[no-untyped-def]
    yield from run_dovecot(WITHOUT_IDLE)


@pytest.mark.slow
def test_the_running_scheduler_polls_a_server_without_idle(
    tmp_path: Path, smtp_server: Mailhog, dovecot_without_idle: Dovecot
) -> None:
    """One poll interval (here 0.05 min = 3 s, from the campaign's [replies]) and the time
    `status --json` takes: well within 20 s."""
    extra = "\n[replies]\npoll_minutes = 0.05\n"
    _watch_scheduler(tmp_path, smtp_server, dovecot_without_idle, extra, seconds=20)
