"""Hardening: what the server answered decides the ledger state, never a guess (docs/design.md §3).

After the final dot only a clear 4xx/5xx is a failure; any other answer (or none) means the
server may hold the message: `uncertain`, never retried by itself. Before the dot nothing
was handed over, so an odd answer there is only a reason to try again later.
"""

from __future__ import annotations

import pytest

from mailer.delivery.answers import Deferred, Delivered, SmtpReply
from mailer.delivery.stats import Outcome
from mailer.invitees.importing import import_contacts
from mailer.rounds.send import send_round
from mailer.views.report import status
from tests import scripted_smtp
from tests.conftest import CONTACTS
from tests.scripted_smtp import Script, ScriptedServer

A = "saraban.th50@agri.example"


@pytest.fixture(autouse=True, params=[False, True], ids=["one-by-one", "pipelining"])
def pipelining(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> bool:
    monkeypatch.setattr(scripted_smtp, "PIPELINING", request.param)
    return bool(request.param)


def _run(make_ws, script: Script, **env):  # type: ignore[no-untyped-def]
    """Send the round to the 7 offices of TH-50: every outcome but `sent`, in order, and
    the offices' rows as the ledger has them at the end."""
    outcomes: list[Outcome] = []
    with ScriptedServer(script) as server:
        ws = make_ws(SMTP_PORT=str(server.port), **env)
        import_contacts(ws.engine, CONTACTS)
        send_round(ws, "invitation", only=["TH-50"], progress=outcomes.append)
    rows = {
        i.email: i for i in status(ws.ledger(), ws.campaign).invitees if i.province == "เชียงใหม่"
    }
    return [o for o in outcomes if o.state != "sent"], rows


@pytest.mark.parametrize(
    "answer",
    ["251 2.1.5 will forward", "252 2.0.0 accepted", "299 ok", "250"],
)
@pytest.mark.slow
def test_any_2xx_after_the_dot_is_sent(make_ws, answer: str) -> None:
    script = Script({A: [f"data-say:{answer}", "250"]})
    problems, rows = _run(make_ws, script)
    assert rows[A].delivery == "sent"
    assert rows[A].last_reply == " ".join(answer.split())
    assert script.attempts[A] == 1
    assert script.received_by(A) == 1
    assert problems == []
    assert all(r.delivery == "sent" for r in rows.values())


@pytest.mark.parametrize(
    ("plan", "env"),
    [
        ("data-say:hello", {}),  # smtplib: code -1
        ("data-say:199 2.0.0 maybe", {}),
        ("data-say:399 odd", {}),
        ("data-say:354 go on", {}),  # a 3xx
        ("data-say:600 odd", {}),
        ("data-say:25", {}),  # a two-digit code
        ("data-say:250-first line of two", {}),  # then silence: a cut multi-line reply
        ("data-say:550-5.7.1 rejected\r\n250 2.0.0 queued", {}),  # two codes in one reply
        ("data-say:250-2.0.0 queued\r\n550 5.7.1 rejected", {}),
        ("data-say:2500 weird", {}),  # smtplib reads it as 250
        ("data-cut", {}),  # "25", then the connection closes
        ("data-say:250 " + "x" * 9000, {}),  # smtplib: SMTPResponseException(500, "Line too long")
        ("drop-after-data", {}),
        ("stall-after-data", {"SMTP_TIMEOUT": "1"}),
    ],
    ids=lambda value: value[:30] if isinstance(value, str) else "",
)
@pytest.mark.slow
def test_an_unclear_answer_after_the_dot_is_uncertain_and_not_resent(
    make_ws, plan: str, env: dict[str, str]
) -> None:
    script = Script({A: [plan, "250"]}, stall=3.0)
    problems, rows = _run(make_ws, script, **{"SMTP_TIMEOUT": "2", **env})
    assert rows[A].delivery == "uncertain", rows[A].last_reply
    assert "after the message was handed over" in (rows[A].last_reply or "")
    assert script.attempts[A] == 1
    assert script.received_by(A) == 1
    assert [p.state for p in problems] == ["uncertain"]
    others = [r.delivery for a, r in rows.items() if a != A]
    assert others == ["sent"] * 6  # the session is dropped, the next message reconnects


@pytest.mark.slow
def test_a_clear_4xx_after_the_dot_is_retried(make_ws) -> None:
    script = Script({A: ["data:451", "250"]})
    problems, rows = _run(make_ws, script)
    assert [(p.state, p.code) for p in problems] == [("retry_wait", 451)]
    assert rows[A].delivery == "sent"
    assert script.received_by(A) == 1


@pytest.mark.slow
def test_a_clear_5xx_after_the_dot_fails(make_ws) -> None:
    script = Script({A: ["data:552", "250"]})
    _problems, rows = _run(make_ws, script)
    assert rows[A].delivery == "failed"
    assert script.attempts[A] == 1


@pytest.mark.parametrize(
    "plan",
    [
        "rcpt-say:hello",
        "rcpt-say:199 odd",
        "rcpt-say:354 odd",
        "rcpt-say:600 odd",
        "rcpt-say:999 odd",
        "datacmd-say:250 ok",
        "datacmd-say:hello",
        "datacmd-say:600 odd",
    ],
)
@pytest.mark.slow
def test_an_odd_answer_before_the_dot_is_only_tried_again(make_ws, plan: str) -> None:
    script = Script({A: [plan, "250"]})
    problems, rows = _run(make_ws, script)
    assert [p.state for p in problems] == ["retry_wait"]
    assert "nothing was handed over" in problems[0].reply
    assert rows[A].delivery == "sent"
    assert script.received_by(A) == 1
    assert len(script.received) == 7


@pytest.mark.parametrize("answer", ["hello", "199 odd", "600 odd", "354 odd"])
@pytest.mark.slow
def test_an_odd_answer_to_mail_from_is_only_tried_again(make_ws, answer: str) -> None:
    script = Script(mail={2: f"say:{answer}"})
    problems, rows = _run(make_ws, script)
    assert [p.state for p in problems] == ["retry_wait"]
    assert all(r.delivery == "sent" for r in rows.values())
    assert sorted(rcpts for rcpts, _ in script.received) == sorted((a,) for a in rows)


@pytest.mark.slow
def test_a_421_to_mail_from_is_retried_in_seconds_as_a_421(make_ws, clock) -> None:  # type: ignore[no-untyped-def]
    script = Script(mail={2: "say-close:421 4.7.0 Too many sessions, closing"})
    start = clock.now
    problems, rows = _run(make_ws, script)
    (problem,) = problems
    assert (problem.state, problem.code) == ("retry_wait", 421)
    assert problem.reply == "421 4.7.0 Too many sessions, closing"
    assert all(r.delivery == "sent" for r in rows.values())
    assert len(script.received) == 7
    assert (clock.now - start).total_seconds() < 30, "waited like for a lost connection"


BUSY, GONE, OK = "busy@agri.example", "gone@agri.example", "ok@agri.example"
MESSAGE = b"Subject: sample\r\n\r\nHello\r\n"


@pytest.mark.parametrize(
    ("plans", "temporarily", "permanently"),
    [
        ({BUSY: ["452"], OK: ["250"]}, (BUSY,), ()),
        ({BUSY: ["452"], GONE: ["550"], OK: ["250"]}, (BUSY,), (GONE,)),
        ({GONE: ["550"], BUSY: ["450"], OK: ["250"]}, (BUSY,), (GONE,)),
    ],
    ids=["452+250", "452+550+250", "550+450+250"],
)
def test_every_refused_address_is_kept_with_its_reply_and_kind(
    make_ws, plans: dict[str, list[str]], temporarily: tuple[str, ...], permanently: tuple[str, ...]
) -> None:
    script = Script(plans)
    with ScriptedServer(script) as server, make_ws(SMTP_PORT=str(server.port)).transport() as t:
        delivered = t.send("coordinator@ega.example", list(plans), MESSAGE)
    assert isinstance(delivered, Delivered)
    assert delivered.reply.code == 250
    assert delivered.refused == {
        a: SmtpReply.of(int(p[0]), scripted_smtp.REPLIES[int(p[0])][4:])
        for a, p in plans.items()
        if p != ["250"]
    }
    assert delivered.temporarily_refused == temporarily
    assert delivered.permanently_refused == permanently
    assert [rcpts for rcpts, _ in script.received] == [(OK,)]


def test_an_odd_answer_to_one_address_sends_nothing_more(make_ws, pipelining: bool) -> None:
    script = Script({BUSY: ["rcpt-say:hello"], OK: ["250"]})
    with ScriptedServer(script) as server, make_ws(SMTP_PORT=str(server.port)).transport() as t:
        deferred = t.send("coordinator@ega.example", [BUSY, OK], MESSAGE)
        assert isinstance(deferred, Deferred)
        assert "nothing was handed over" in str(deferred.reply)
        assert t._smtp is None, "a session out of step is not used again"
    assert deferred.reply.text.startswith("the server answered RCPT TO with a line without")
    assert script.received == []
    assert script.data_commands == (1 if pipelining else 0)  # one by one, DATA is never sent


def test_a_421_to_one_address_hangs_up_instead_of_an_empty_message(make_ws) -> None:
    script = Script({BUSY: ["421"], OK: ["250"]})
    with ScriptedServer(script) as server, make_ws(SMTP_PORT=str(server.port)).transport() as t:
        deferred = t.send("coordinator@ega.example", [BUSY, OK], MESSAGE)
    assert isinstance(deferred, Deferred)
    assert str(deferred.reply) == scripted_smtp.REPLIES[421]
    assert script.received == [], "the other address got an empty message"


@pytest.mark.slow
def test_a_long_odd_answer_is_cut_in_the_ledger(make_ws) -> None:
    script = Script({A: ["data-say:299-" + "x" * 900 + "\r\n199 " + "y" * 900]})
    _problems, rows = _run(make_ws, script)
    reply = rows[A].last_reply or ""
    assert rows[A].delivery == "uncertain"
    assert "… (1,801 characters)" in reply, reply
    assert len(reply) < 400, reply
