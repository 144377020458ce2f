"""Hardening: mail never goes out at the wrong time, twice, or not at all.

Each test here reproduced a fault on the earlier code: a running send composing from the
campaign it read at start (#1), an office's deferred address never retried (#3), one
office that cannot be composed blocking every office after it (#4), SIGTERM ignored while
waiting for a retry.
"""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select, text, update

from mailer.delivery.reads import D
from mailer.delivery.stats import Outcome
from mailer.errors import MailerError
from mailer.invitees.importing import import_contacts
from mailer.models import Invitee
from mailer.rounds.announce import announce
from mailer.rounds.audience import audience_ids
from mailer.rounds.send import send_round
from tests.conftest import CAMPAIGN, FakeClock, Mailhog
from tests.helpers import calendar_of, parse, text_of, write_synthetic_contacts
from tests.scripted_smtp import Script, ScriptedServer
from tests.test_changes import MOVED, _moved

BANGKOK = ZoneInfo("Asia/Bangkok")


def _rows(ws) -> dict[str, dict[str, object]]:  # type: ignore[no-untyped-def]
    with ws.engine.connect() as conn:
        found = conn.execute(
            select(
                D.invitee_id, D.kind, D.state, D.recipients, D.delivered_to, D.refused, D.last_reply
            )
        ).all()
    return {f"{r.invitee_id} {r.kind}": dict(r._mapping) for r in found}


@pytest.mark.slow
def test_an_update_during_a_running_send_reaches_every_calendar_at_the_new_time(
    make_ws, smtp_server: Mailhog, tmp_path: Path, database_url: str
) -> None:
    """#1: `send update` lands while `send invitations` is sending (its batch claimed, its
    campaign file read at start). Every message must tell the version its row names."""
    contacts = tmp_path / "offices.csv"
    write_synthetic_contacts(contacts, 30)
    running = make_ws(SMTP_PORT=str(smtp_server.port), DATABASE_URL=database_url)
    import_contacts(running.engine, contacts)
    mover = make_ws(
        SMTP_PORT=str(smtp_server.port),
        DATABASE_URL=database_url,
        MAILER_CAMPAIGN=str(_moved(tmp_path)),
    )
    announced: list[int] = []

    def update_after_five(outcome: Outcome) -> None:
        if len(announced) == 0 and sum(1 for _ in smtp_server.messages()) >= 5:
            result = announce(mover.ledger(), mover.campaign, cancel=False, dry_run=False)
            announced.append(result.enqueued)

    report = send_round(running, "invitation", progress=update_after_five)
    assert announced
    assert 5 <= announced[0] <= 6
    assert report.drain.sent == 30 + announced[0]
    by_office: dict[str, list[tuple[int, str]]] = {}
    for raw in smtp_server.messages():
        message = parse(raw)
        (event,) = calendar_of(message).walk("VEVENT")
        sequence = int(event["SEQUENCE"])
        start = event.decoded("DTSTART").astimezone(BANGKOK)
        letter = text_of(message, "text/plain")
        kind = "update" if "แจ้งเปลี่ยนแปลงรายละเอียด" in letter else "invitation"
        told = {"๑๓.๐๐": "๑๓.๐๐ – ๑๖.๓๐" in letter, "๑๕.๐๐": "๑๕.๐๐ – ๑๘.๓๐" in letter}
        if sequence == 0:  # went out before the update: the old time, everywhere
            assert (kind, start.hour, told) == ("invitation", 13, {"๑๓.๐๐": True, "๑๕.๐๐": False})
        elif kind == "invitation":  # rebased by the update: the new time, everywhere
            assert (start.hour, told) == (15, {"๑๓.๐๐": False, "๑๕.๐๐": True})
        else:  # the update: its calendar and its letter ("เดิม … เปลี่ยนเป็น …") agree
            assert start.hour == 15
            assert "๑๓.๐๐ – ๑๖.๓๐ น. เปลี่ยนเป็น" in letter
        by_office.setdefault(str(message["To"]), []).append((sequence, kind))
    assert len(by_office) == 30
    for got in by_office.values():
        # the old invitation and its update, or the invitation at the new time alone
        assert sorted(got) in ([(0, "invitation"), (1, "update")], [(1, "invitation")]), got
    assert sum(1 for got in by_office.values() if len(got) == 2) == announced[0]


def _two_addresses(tmp_path: Path) -> Path:
    path = tmp_path / "two.csv"
    path.write_text(
        "invitee_id,organisation,salutation,email\n"
        "TH-50-prov,สำนักงานจังหวัดเชียงใหม่,เรียน ผู้ว่าราชการจังหวัดเชียงใหม่,"
        '"a@prov.example; b@prov.example"\n'
        "TH-51-prov,สำนักงานจังหวัดลำพูน,เรียน ผู้ว่าราชการจังหวัดลำพูน,c@prov.example\n",
        encoding="utf-8",
    )
    return path


def test_an_address_deferred_with_452_is_retried_alone(
    make_ws, tmp_path: Path, clock: FakeClock
) -> None:
    """#3: a@ accepted, b@ refused with 452: b@ gets it on the retry, a@ only once."""
    script = Script({"b@prov.example": ["452", "250"]})
    with ScriptedServer(script) as server:
        ws = make_ws(SMTP_PORT=str(server.port))
        import_contacts(ws.engine, _two_addresses(tmp_path))
        report = send_round(ws, "invitation")
    assert [rcpts for rcpts, _ in script.received].count(("a@prov.example",)) == 1
    assert script.received_by("b@prov.example") == 1
    assert script.received_by("a@prov.example") == 1
    row = _rows(ws)["TH-50-prov invitation"]
    assert row["state"] == "sent"
    assert row["delivered_to"] == "a@prov.example; b@prov.example"
    assert row["refused"] == ""
    assert report.drain.retry == 0
    assert report.drain.sent == 2
    assert clock.sleeps, "the run waited for the retry"


def test_a_partly_delivered_office_counts_as_invited_while_it_waits(
    make_ws, tmp_path: Path
) -> None:
    """#3: while b@ waits for its retry the office has the invitation (at a@): it is in
    the audiences of updates and reminders, and the row says what happened to each address."""
    script = Script({"b@prov.example": ["452"]})
    with ScriptedServer(script) as server:
        ws = make_ws(SMTP_PORT=str(server.port))
        import_contacts(ws.engine, _two_addresses(tmp_path))
        ws.sleep = lambda seconds: ws.stopping.set()  # type: ignore[method-assign]
        send_round(ws, "invitation")  # stopped while it waits for the retry
    row = _rows(ws)["TH-50-prov invitation"]
    assert row["state"] == "retry_wait"
    assert row["delivered_to"] == "a@prov.example"
    assert str(row["last_reply"]).endswith("(will retry b@prov.example alone)")
    assert audience_ids(ws.ledger(), "all") == {"TH-50-prov"}  # TH-51 was not reached (the stop)


def test_an_address_refused_for_good_is_kept_on_the_row(make_ws, tmp_path: Path) -> None:
    """#3: b@ refused with 550 while a@ took it: sent, b@ and the server's words kept."""
    script = Script({"b@prov.example": ["550"]})
    with ScriptedServer(script) as server:
        ws = make_ws(SMTP_PORT=str(server.port))
        import_contacts(ws.engine, _two_addresses(tmp_path))
        send_round(ws, "invitation")
    row = _rows(ws)["TH-50-prov invitation"]
    assert row["state"] == "sent"
    assert row["delivered_to"] == "a@prov.example"
    assert str(row["refused"]).startswith("b@prov.example: 550 5.1.1")
    assert script.received_by("a@prov.example") == 1


@pytest.mark.parametrize("bad", ["SYN-00000", "SYN-00001"], ids=["first", "second"])
@pytest.mark.slow
def test_an_office_that_cannot_be_composed_fails_alone(
    make_ws, smtp_server: Mailhog, tmp_path: Path, database_url: str, bad: str
) -> None:
    """#4: an address no header can carry (put in by an older import) fails that office with
    its reason; every other office is sent, in the same run and on the next one."""
    contacts = tmp_path / "offices.csv"
    write_synthetic_contacts(contacts, 5)
    ws = make_ws(SMTP_PORT=str(smtp_server.port), DATABASE_URL=database_url)
    import_contacts(ws.engine, contacts)
    with ws.engine.begin() as conn:
        conn.execute(
            update(Invitee.__table__)  # type: ignore[attr-defined]
            .where(text(f"invitee_id = '{bad}'"))
            .values(emails="ผู้รับ@ไทย.example")
        )
    report = send_round(ws, "invitation")
    assert report.drain.sent == 4
    assert report.drain.failed == 1
    (problem,) = report.drain.problems
    assert problem.invitee_id == bad
    assert problem.reply.startswith(f"not sent: {bad}: its message")
    assert len(smtp_server.messages()) == 4
    assert _rows(ws)[f"{bad} invitation"]["state"] == "failed"
    assert send_round(ws, "invitation").drain.sent == 0
    from typer.testing import CliRunner

    from mailer.cli import app

    env = {
        "DATABASE_URL": database_url,
        "MAILER_CAMPAIGN": str(CAMPAIGN),
        "MAILER_TEMPLATES": str(ws.settings.templates_dir),
    }
    shown = CliRunner().invoke(app, ["preview", bad], env=env)
    assert shown.exit_code == 1, shown.output
    assert isinstance(shown.exception, SystemExit), shown.output
    assert f"Error: {bad}: its message cannot be built" in shown.output


@pytest.mark.timeout(30)
def test_a_stop_while_waiting_for_a_retry_ends_the_run_at_once(
    make_ws, tmp_path: Path, clock: FakeClock
) -> None:
    """SIGTERM during the wait for a retry due within two minutes: the run stops then,
    instead of running on until the retry is due."""
    script = Script({"c@prov.example": ["451", "250"]})
    with ScriptedServer(script) as server:
        ws = make_ws(SMTP_PORT=str(server.port))
        import_contacts(ws.engine, _two_addresses(tmp_path))
        waits: list[float] = []

        def interrupted(seconds: float) -> None:  # SIGTERM arrives during the pause
            waits.append(seconds)
            ws.stopping.set()

        ws.sleep = interrupted  # type: ignore[method-assign]
        report = send_round(ws, "invitation")
    assert report.drain.stopped == "stopped on request; the rest stay queued"
    assert script.received_by("c@prov.example") == 0
    assert _rows(ws)["TH-51-prov invitation"]["state"] == "retry_wait"
    assert waits
    assert max(waits) <= timedelta(minutes=2).total_seconds()


@pytest.mark.slow
def test_the_rest_of_the_invitations_wait_for_the_update_of_an_edited_event(
    make_ws, smtp_server: Mailhog, tmp_path: Path
) -> None:
    """#1: two invitations went out, then the event was moved in the campaign file. The rest
    must not go out at the old time (the stored version) nor silently at the new one."""
    contacts = tmp_path / "offices.csv"
    write_synthetic_contacts(contacts, 5)
    ws = make_ws(SMTP_PORT=str(smtp_server.port))
    import_contacts(ws.engine, contacts)
    assert send_round(ws, "invitation", limit=2).drain.sent == 2
    moved = make_ws(SMTP_PORT=str(smtp_server.port), MAILER_CAMPAIGN=str(_moved(tmp_path)))
    with pytest.raises(MailerError, match=r"Run `mailer send update` first"):
        send_round(moved, "invitation")
    assert len(smtp_server.messages()) == 2
    announce(moved.ledger(), moved.campaign, cancel=False, dry_run=False)
    assert send_round(moved, "invitation").drain.sent == 3 + 2  # the rest, and two updates
    hours = sorted(
        calendar_of(parse(raw)).walk("VEVENT")[0].decoded("DTSTART").astimezone(BANGKOK).hour
        for raw in smtp_server.messages()
    )
    assert hours == [13, 13, 15, 15, 15, 15, 15]


@pytest.mark.slow
def test_a_deferred_address_refused_for_good_on_its_retry_leaves_the_office_sent(
    make_ws, tmp_path: Path, clock: FakeClock
) -> None:
    """#3: a@ took it, b@ was deferred, then refused for good: the office has it (sent, so it
    stays in the audiences), b@ and its 550 kept on the row, a@ sent it once."""
    script = Script({"b@prov.example": ["452", "550"]})
    with ScriptedServer(script) as server:
        ws = make_ws(SMTP_PORT=str(server.port))
        import_contacts(ws.engine, _two_addresses(tmp_path))
        send_round(ws, "invitation")
    row = _rows(ws)["TH-50-prov invitation"]
    assert (row["state"], row["delivered_to"]) == ("sent", "a@prov.example")
    assert str(row["refused"]).startswith("b@prov.example: 550 5.1.1")
    assert script.received_by("a@prov.example") == 1
    assert audience_ids(ws.ledger(), "all") == {"TH-50-prov", "TH-51-prov"}


def test_a_partly_delivered_office_is_flagged_and_its_refused_address_retried_alone(
    make_ws, tmp_path: Path
) -> None:
    """#3: `status` flags it, `deliveries retry` takes it (the refused address only), and the
    next run sends to b@ alone."""
    from typer.testing import CliRunner

    from mailer.cli import app
    from mailer.delivery.admin import requeue
    from mailer.views.report import status

    script = Script({"b@prov.example": ["550", "250"]})
    with ScriptedServer(script) as server:
        ws = make_ws(SMTP_PORT=str(server.port))
        import_contacts(ws.engine, _two_addresses(tmp_path))
        send_round(ws, "invitation")
        (item,) = [
            i for i in status(ws.ledger(), ws.campaign).invitees if i.invitee_id == "TH-50-prov"
        ]
        assert item.partly_delivered
        assert item.delivered_to == "a@prov.example"
        assert str(item.refused).startswith("b@prov.example: 550")
        env = {
            "DATABASE_URL": ws.settings.database_url,
            "MAILER_CAMPAIGN": str(CAMPAIGN),
            "MAILER_TEMPLATES": str(ws.settings.templates_dir),
            "SMTP_PORT": str(server.port),
        }
        shown = CliRunner().invoke(app, ["status"], env=env)
        assert "TH-50-prov" in shown.output
        assert "sent, partly delivered" in shown.output
        listed = CliRunner().invoke(app, ["deliveries", "--json"], env=env)
        (row,) = [r for r in json.loads(listed.output) if r["invitee_id"] == "TH-50-prov"]
        assert (row["state"], row["delivered_to"]) == ("sent", "a@prov.example")
        assert row["refused"].startswith("b@prov.example: 550")
        assert requeue(ws.ledger(), invitees=["TH-50-prov"]).requeued == [1]
        assert send_round(ws, "invitation").drain.sent == 1
    assert script.received_by("a@prov.example") == 1
    assert script.received_by("b@prov.example") == 1
    row = _rows(ws)["TH-50-prov invitation"]
    assert (row["state"], row["delivered_to"], row["refused"]) == (
        "sent",
        "a@prov.example; b@prov.example",
        "",
    )


def _second_refused(make_ws, tmp_path: Path, port: int):  # type: ignore[no-untyped-def]
    """Two offices invited; the server refuses the second (o00001) for good the first time."""
    contacts = tmp_path / "offices.csv"
    write_synthetic_contacts(contacts, 2)
    ws = make_ws(SMTP_PORT=str(port))
    import_contacts(ws.engine, contacts)
    send_round(ws, "invitation")
    return ws


def _seen(script: Script) -> list[tuple[str, str, int, str]]:
    """What the server received, in order: (recipient, METHOD, SEQUENCE, local start)."""
    found = []
    for rcpts, raw in script.received:
        calendar = calendar_of(parse(raw))
        (event,) = calendar.walk("VEVENT")
        start = event.decoded("DTSTART").astimezone(BANGKOK).strftime("%H:%M")
        found.append((rcpts[0], str(calendar["METHOD"]), int(event["SEQUENCE"]), start))
    return found


@pytest.mark.parametrize("cancel", [False, True], ids=["update", "cancel"])
@pytest.mark.slow
def test_a_message_deferred_while_an_announcement_lands_goes_out_at_the_new_version(
    make_ws, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cancel: bool
) -> None:
    """#1 (review): the invitation is being sent when `send update` / `send cancel` commits;
    the server defers it (451). Its retry must tell the new version — or, after a
    cancellation, not go out at all: never a REQUEST at the old time after the change."""
    from mailer.delivery.transport import SmtpTransport

    contacts = tmp_path / "offices.csv"
    write_synthetic_contacts(contacts, 2)
    late = "o00001@synthetic.example"
    script = Script({late: ["data:451", "250"]})
    with ScriptedServer(script) as server:
        ws = make_ws(SMTP_PORT=str(server.port))
        import_contacts(ws.engine, contacts)
        send_round(ws, "invitation", limit=1)  # SYN-00000 has it
        mover = make_ws(SMTP_PORT=str(server.port), MAILER_CAMPAIGN=str(_moved(tmp_path)))
        real, done = SmtpTransport.send, []

        def meanwhile(self, sender, recipients, data):  # type: ignore[no-untyped-def]
            if not done and tuple(recipients) == (late,):  # in another terminal, right now:
                done.append(announce(mover.ledger(), mover.campaign, cancel=cancel, dry_run=False))
            return real(self, sender, recipients, data)

        monkeypatch.setattr(SmtpTransport, "send", meanwhile)
        send_round(ws, "invitation")  # SYN-00001 deferred, then retried in the same run
        monkeypatch.setattr(SmtpTransport, "send", real)
        send_round(mover, "invitation") if not cancel else None  # the rest goes out
    last = [seen for seen in _seen(script) if seen[0] == late][-1]
    if cancel:
        assert last[:3] == (late, "CANCEL", 1)
        assert _rows(ws)["SYN-00001 invitation"]["state"] == "failed"
    else:
        assert last[1:] == ("REQUEST", 1, "15:00")
    assert all(seq == 1 for rcpt, _, seq, _ in _seen(script)[1:] if rcpt == late)


def test_a_failed_invitation_retried_after_an_update_tells_the_new_time(
    make_ws, tmp_path: Path
) -> None:
    """#1 (review): refused with 550, moved and announced (no update: it never arrived),
    then `deliveries retry`: the invitation it finally gets is the current one."""
    from mailer.delivery.admin import requeue

    script = Script({"o00001@synthetic.example": ["550", "250"]})
    with ScriptedServer(script) as server:
        _second_refused(make_ws, tmp_path, server.port)
        mover = make_ws(SMTP_PORT=str(server.port), MAILER_CAMPAIGN=str(_moved(tmp_path)))
        announce(mover.ledger(), mover.campaign, cancel=False, dry_run=False)
        send_round(mover, "invitation")
        requeue(mover.ledger(), invitees=["SYN-00001"])
        send_round(mover, "invitation")
    got = [seen for seen in _seen(script) if seen[0] == "o00001@synthetic.example"]
    assert got == [("o00001@synthetic.example", "REQUEST", 1, "15:00")]


def test_nothing_but_the_cancellation_goes_out_after_a_cancel(make_ws, tmp_path: Path) -> None:
    """#1 (review): after `send cancel`, re-queuing a failed invitation sends nothing."""
    from mailer.delivery.admin import requeue

    script = Script({"o00001@synthetic.example": ["550", "250"]})
    with ScriptedServer(script) as server:
        ws = _second_refused(make_ws, tmp_path, server.port)
        announce(ws.ledger(), ws.campaign, cancel=True, dry_run=False)
        from mailer.delivery.drain import drain_due
        from mailer.rounds.context import delivery_context

        drain_due(delivery_context(ws))
        requeued = requeue(ws.ledger(), invitees=["SYN-00001"])
        assert requeued.requeued == []
        assert "cancelled" in requeued.skipped[0]
        drain_due(delivery_context(ws))
    assert [m for _, m, _, _ in _seen(script)] == ["REQUEST", "CANCEL"]


@pytest.mark.slow
def test_an_update_superseded_before_it_went_out_is_not_sent_after_the_newer_one(
    make_ws, tmp_path: Path
) -> None:
    """#1 (review): update 1 deferred, the event moves again, update 2 goes out; the
    retry of update 1 (the old new time) must not arrive last."""
    from mailer.rounds.send import send_announcement

    contacts = tmp_path / "offices.csv"
    write_synthetic_contacts(contacts, 1)
    later = tmp_path / "later.toml"
    later.write_text(
        MOVED.replace(
            "start = 2016-11-22T15:00:00\nend = 2016-11-22T18:30:00",
            "start = 2016-11-22T17:00:00\nend = 2016-11-22T19:30:00",
        ),
        encoding="utf-8",
    )
    script = Script({"o00000@synthetic.example": ["250", "451", "250"]})
    with ScriptedServer(script) as server:
        ws = make_ws(SMTP_PORT=str(server.port))
        import_contacts(ws.engine, contacts)
        send_round(ws, "invitation")
        first = make_ws(SMTP_PORT=str(server.port), MAILER_CAMPAIGN=str(_moved(tmp_path)))
        first.sleep = lambda seconds: first.stopping.set()  # type: ignore[method-assign]
        send_announcement(first, cancel=False)  # deferred; stopped while it waits
        second = make_ws(SMTP_PORT=str(server.port), MAILER_CAMPAIGN=str(later))
        send_announcement(second, cancel=False)
    assert [(seq, start) for _, _, seq, start in _seen(script)] == [(0, "13:00"), (2, "17:00")]
    assert "superseded" in str(_rows(second)["SYN-00000 update:1"]["last_reply"])


def test_two_announcements_at_once_one_wins_the_other_says_so(
    make_ws, smtp_server: Mailhog, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Review: two `send update` that both read SEQUENCE 0 (run at the same moment) gave a
    raw IntegrityError; the second must be refused cleanly, with nothing enqueued."""
    from mailer.rounds import announce as announcing
    from mailer.versions import pending_change

    contacts = tmp_path / "offices.csv"
    write_synthetic_contacts(contacts, 3)
    ws = make_ws(SMTP_PORT=str(smtp_server.port))
    import_contacts(ws.engine, contacts)
    send_round(ws, "invitation")
    mover = make_ws(SMTP_PORT=str(smtp_server.port), MAILER_CAMPAIGN=str(_moved(tmp_path)))
    seen = pending_change(mover.ledger(), mover.campaign.event, mover.campaign.timezone)
    assert announce(mover.ledger(), mover.campaign, cancel=False, dry_run=False).enqueued == 3
    monkeypatch.setattr(announcing, "pending_change", lambda *args: seen)  # read before the first
    with pytest.raises(MailerError, match="announced a change at the same moment"):
        announce(mover.ledger(), mover.campaign, cancel=True, dry_run=False)
    kinds = sorted(key.split()[1] for key in _rows(ws))
    assert kinds == ["invitation"] * 3 + ["update:1"] * 3


def test_a_row_in_hand_is_leased_for_longer_than_its_smtp_exchange_can_take(
    make_ws, smtp_server: Mailhog, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, clock: FakeClock
) -> None:
    """Review: with SMTP_TIMEOUT up to an hour, a five-minute lease let another worker's
    recovery mark a message still in hand `uncertain` (and its real answer was then lost)."""
    from mailer.delivery.transport import SmtpTransport

    contacts = tmp_path / "offices.csv"
    write_synthetic_contacts(contacts, 1)
    ws = make_ws(SMTP_PORT=str(smtp_server.port), SMTP_TIMEOUT="600")
    import_contacts(ws.engine, contacts)
    real, leases = SmtpTransport.send, []

    def looking(self, sender, recipients, data):  # type: ignore[no-untyped-def]
        with ws.engine.connect() as conn:
            leases.append(conn.execute(select(D.lease_until)).scalar_one())
        return real(self, sender, recipients, data)

    monkeypatch.setattr(SmtpTransport, "send", looking)
    send_round(ws, "invitation")
    assert leases
    assert leases[0] - clock() >= timedelta(seconds=4 * 600)
