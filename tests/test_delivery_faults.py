"""Every way a real server says no, asserted on the ledger (docs/design.md §3)."""

from __future__ import annotations

import pytest

from mailer.errors import TransportError
from mailer.invitees.importing import import_contacts
from mailer.rounds.send import send_round
from mailer.views.report import status
from tests import scripted_smtp
from tests.conftest import CONTACTS, FakeClock
from tests.scripted_smtp import Script, ScriptedServer

A, B = "saraban.th50@agri.example", "saraban.th50@prov.example"


@pytest.fixture(autouse=True, params=[False, True], ids=["one-by-one", "pipelining"])
def pipelining(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> bool:
    """Every test runs against a server without and with PIPELINING (RFC 2920)."""
    monkeypatch.setattr(scripted_smtp, "PIPELINING", request.param)
    return bool(request.param)


def _run(make_ws, script: Script, *, only=("TH-50",), refuse_auth=False, **env):  # type: ignore[no-untyped-def]
    with ScriptedServer(script, refuse_auth=refuse_auth) as server:
        ws = make_ws(SMTP_PORT=str(server.port), **env)
        import_contacts(ws.engine, CONTACTS)
        report = send_round(ws, "invitation", only=list(only))
    rows = {
        i.email: i for i in status(ws.ledger(), ws.campaign).invitees if i.province == "เชียงใหม่"
    }
    return report, rows


@pytest.mark.parametrize("code", [421, 450, 451, 452, 454])
@pytest.mark.slow
def test_a_temporary_refusal_is_retried_and_delivered_once(
    make_ws, clock: FakeClock, code: int
) -> None:
    script = Script({A: [str(code), "250"]})
    report, rows = _run(make_ws, script)
    assert rows[A].delivery == "sent"
    assert script.received_by(A) == 1
    # retried and sent in the same run: nothing left "to retry later", as the ledger says
    assert report.drain.sent == 7
    assert report.drain.retry == 0
    assert not report.drain.problems
    assert sum(1 for _, _ in script.received) == 7
    assert clock.sleeps, "the run waited for the retry instead of dropping it"


@pytest.mark.parametrize("code", [432, 450, 451, 452, 454])
@pytest.mark.slow
def test_throttling_codes_slow_the_rest_of_the_run(make_ws, clock: FakeClock, code: int) -> None:
    script = Script({A: [str(code), "250"]})
    _run(make_ws, script)
    # a back-off pause right after the refusal, then every later message paced
    assert len([s for s in clock.sleeps if s >= 0.5]) >= 6


@pytest.mark.slow
def test_421_at_data_closes_the_session_and_retries(make_ws) -> None:
    script = Script({A: ["data:421", "250"]})
    report, rows = _run(make_ws, script)
    assert rows[A].delivery == "sent"
    assert script.received_by(A) == 1
    assert report.drain.sent == 7


@pytest.mark.slow
def test_a_permanent_refusal_fails_that_office_only(make_ws) -> None:
    script = Script({A: ["550"], B: ["data:552"]})
    report, rows = _run(make_ws, script)
    assert rows[A].delivery == "failed"
    assert "550 5.1.1 Recipient address rejected" in (rows[A].last_reply or "")
    assert rows[B].delivery == "failed"
    assert "552 5.3.4" in (rows[B].last_reply or "")
    assert report.drain.sent == 5
    assert report.drain.failed == 2
    assert script.attempts[A] == 1, "a 5xx is never retried"


@pytest.mark.slow
def test_a_connection_dropped_before_the_message_is_retried(make_ws) -> None:
    script = Script({A: ["drop-at-rcpt", "250"]})
    _report, rows = _run(make_ws, script)
    assert rows[A].delivery == "sent"
    assert script.received_by(A) == 1


@pytest.mark.slow
def test_a_connection_dropped_after_the_message_is_uncertain_not_resent(make_ws) -> None:
    script = Script({A: ["drop-after-data", "250"]})
    report, rows = _run(make_ws, script)
    assert rows[A].delivery == "uncertain"
    assert "after the message was handed over" in (rows[A].last_reply or "")
    assert script.received_by(A) == 1
    assert script.attempts[A] == 1
    assert report.drain.sent == 6
    assert report.drain.uncertain == 1


@pytest.mark.slow
def test_a_server_that_stalls_after_the_message_leaves_it_uncertain(make_ws) -> None:
    script = Script({A: ["stall-after-data"]}, stall=3.0)
    _report, rows = _run(make_ws, script, SMTP_TIMEOUT="1")
    assert rows[A].delivery == "uncertain"
    assert sum(1 for r in rows.values() if r.delivery == "sent") == 6


@pytest.mark.slow
def test_retries_grow_apart_then_stop_after_the_maximum_attempts(make_ws, clock: FakeClock) -> None:
    script = Script({A: ["451"]})
    with ScriptedServer(script) as server:
        ws = make_ws(SMTP_PORT=str(server.port))
        import_contacts(ws.engine, CONTACTS)
        send_round(ws, "invitation", only=["TH-50-agri"])
        (row,) = [i for i in status(ws.ledger(), ws.campaign).invitees if i.email == A]
        assert row.delivery == "retry_wait"  # the next try is further off than a run waits
        runs = 1
        while row.delivery == "retry_wait":
            clock.advance(hours=1)
            send_round(ws, "invitation", only=["TH-50-agri"])
            (row,) = [i for i in status(ws.ledger(), ws.campaign).invitees if i.email == A]
            runs += 1
    assert row.delivery == "failed"
    assert "gave up after 5 attempts" in (row.last_reply or "")
    assert script.attempts[A] == 5
    assert script.received_by(A) == 0
    assert runs > 1


@pytest.mark.slow
def test_a_refused_login_stops_the_run_before_anything_is_marked(make_ws) -> None:
    with pytest.raises(
        TransportError, match=r"refused the login of SMTP_USERNAME='coordinator'.*535"
    ):
        _run(
            make_ws, Script(), refuse_auth=True, SMTP_USERNAME="coordinator", SMTP_PASSWORD="wrong"
        )


@pytest.mark.slow
def test_many_failures_in_a_row_pause_the_run(make_ws) -> None:
    everyone = {
        f"saraban.th50@{a}.example": ["550"]
        for a in ("agri", "prov", "rd", "ind", "mots", "sso", "dbd")
    }
    report, rows = _run(make_ws, Script(everyone), MAILER_MAX_FAILURES="3")
    assert report.drain.failed == 3
    assert report.drain.stopped
    assert "3 failures in a row" in report.drain.stopped
    states = sorted(r.delivery for r in rows.values())
    assert states == ["failed"] * 3 + ["queued"] * 4


@pytest.mark.slow
def test_a_per_minute_limit_paces_the_run(make_ws, clock: FakeClock) -> None:
    script = Script()
    start = clock.now
    report, _rows = _run(make_ws, script, MAILER_RATE_PER_MINUTE="3")
    assert report.drain.sent == 7
    assert clock.now - start >= __import__("datetime").timedelta(minutes=2)  # 7 messages at 3/min


@pytest.mark.slow
def test_a_daily_cap_spreads_the_batch_across_days(make_ws, clock: FakeClock) -> None:
    script = Script()
    report, rows = _run(make_ws, script, MAILER_RATE_PER_DAY="5")
    assert report.drain.sent == 5
    assert report.drain.stopped
    assert "daily cap of 5 messages" in report.drain.stopped
    assert sorted(r.delivery for r in rows.values()) == ["queued"] * 2 + ["sent"] * 5
