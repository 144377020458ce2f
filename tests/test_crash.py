"""A real sender process killed with SIGKILL mid-run, then restarted: nothing lost, nothing
sent twice silently (docs/design.md §3)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from mailer.db import open_database
from mailer.delivery.ledger import Ledger
from tests.conftest import CAMPAIGN, TEMPLATES, Mailhog
from tests.helpers import raw_headers, write_synthetic_contacts

COUNT = 2000


def _mailer(env: dict[str, str], *args: str, **kw: object) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "mailer", *args], env=env, **kw)  # type: ignore[call-overload, no-any-return]


def _imported(tmp_path: Path, smtp_server: Mailhog) -> dict[str, str]:
    """The environment of a real `mailer` process, with COUNT synthetic offices imported."""
    contacts = tmp_path / "contacts.csv"
    write_synthetic_contacts(contacts, COUNT)
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'mailer.db'}",
        "MAILER_CAMPAIGN": str(CAMPAIGN),
        "MAILER_TEMPLATES": str(TEMPLATES),
        "SMTP_PORT": str(smtp_server.port),
    }
    assert _mailer(env, "import", str(contacts), stdout=subprocess.DEVNULL).wait(60) == 0
    return env


@pytest.mark.parametrize("workers", [1, 2])
@pytest.mark.slow
def test_sigkill_mid_run_then_restart(tmp_path: Path, smtp_server: Mailhog, workers: int) -> None:
    env = _imported(tmp_path, smtp_server)
    database = env["DATABASE_URL"]

    run = _mailer(
        env, "send", "invitations", "--workers", str(workers),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    deadline = time.monotonic() + 120
    while len(list((smtp_server.maildir / "new").glob("*"))) < COUNT // 4:
        assert run.poll() is None, "the run ended before it could be killed"
        assert time.monotonic() < deadline, "the run is too slow to reach a quarter"
        time.sleep(0.05)
    os.killpg(run.pid, signal.SIGKILL)  # the sender and its workers, mid-message
    run.wait(10)
    killed_at = len(smtp_server.messages())
    assert killed_at < COUNT

    again = _mailer(env, "send", "invitations", stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, errors = again.communicate(timeout=300)
    assert again.returncode == 0, errors.decode()

    received = Counter()
    for raw in smtp_server.messages():
        (to,) = [v for k, v in raw_headers(raw) if k == "Delivered-To"]
        received[to] += 1
    engine = open_database(database)
    try:
        counts = Ledger(engine, "egov-seminar-2559").counts()
        with engine.connect() as conn:
            states = dict(conn.exec_driver_sql("SELECT recipients, state FROM delivery").all())
    finally:
        engine.dispose()
    uncertain = [address for address, state in states.items() if state == "uncertain"]
    assert len(states) == COUNT
    assert counts["sent"] + counts["uncertain"] == COUNT, (counts, out, errors)
    assert len(uncertain) <= workers, "at most one message in flight per session"
    assert max(received.values()) == 1, "no office received two invitations"
    for address, state in states.items():
        if state == "sent":
            assert received[address] == 1, address
        else:
            assert received[address] <= 1, address
    if uncertain:
        assert b"uncertain" in errors or b"uncertain" in out


@pytest.mark.slow
def test_helpers_stop_after_the_message_in_hand_when_the_command_fails(
    tmp_path: Path, smtp_server: Mailhog
) -> None:
    """`send --workers 2` fails in this process while its helper is sending: the helper is
    asked to stop, finishes and records the message in hand, and nothing is left
    `sending`, uncertain or sent twice. The next run sends the rest."""
    from mailer.delivery.stats import Outcome
    from mailer.rounds.send import send_round
    from mailer.workspace import Workspace
    from tests.conftest import make_settings

    env = _imported(tmp_path, smtp_server)
    ws = Workspace(make_settings(tmp_path, SMTP_PORT=str(smtp_server.port)))  # real clock

    class Failed(Exception):
        pass

    own = 0

    def progress(outcome: Outcome) -> None:
        nonlocal own
        own += outcome.invitee_id != "(workers)"
        if own % 10 == 0 and ws.ledger().counts()["sent"] >= own + 50:
            raise Failed  # the helper is well into its share

    try:
        with pytest.raises(Failed):
            send_round(ws, "invitation", workers=2, worker_env=env, progress=progress)
        counts = ws.ledger().counts()
        assert counts["sending"] == counts["uncertain"] == 0, counts
        assert counts["queued"] > 0, "the helper went on sending after the command failed"
        assert counts["sent"] + counts["queued"] == COUNT
        assert len(smtp_server.messages()) == counts["sent"]

        assert send_round(ws, "invitation").drain.sent == COUNT - counts["sent"]
        received = Counter(
            v for raw in smtp_server.messages() for k, v in raw_headers(raw) if k == "Delivered-To"
        )
        assert len(received) == COUNT
        assert set(received.values()) == {1}
    finally:
        ws.close()


@pytest.mark.slow
def test_sigterm_stops_the_command_and_its_helpers_between_messages(
    tmp_path: Path, smtp_server: Mailhog
) -> None:
    """SIGTERM to `send --workers 2` alone (as a service manager sends it): this process and
    its helper finish the message in hand, record it, and stop; nothing is left uncertain."""
    env = _imported(tmp_path, smtp_server)
    database = env["DATABASE_URL"]
    run = _mailer(
        env, "send", "invitations", "--workers", "2",
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    deadline = time.monotonic() + 120
    while len(list((smtp_server.maildir / "new").glob("*"))) < COUNT // 4:
        assert run.poll() is None, "the run ended before it could be stopped"
        assert time.monotonic() < deadline
        time.sleep(0.05)
    run.send_signal(signal.SIGTERM)
    out, errors = run.communicate(timeout=60)
    assert run.returncode == 1
    assert b"stopped on request" in out + errors
    engine = open_database(database)
    try:
        counts = Ledger(engine, "egov-seminar-2559").counts()
    finally:
        engine.dispose()
    assert counts["sending"] == counts["uncertain"] == 0, counts
    assert counts["queued"] > 0
    assert counts["sent"] + counts["queued"] == COUNT
    received = Counter(
        v for raw in smtp_server.messages() for k, v in raw_headers(raw) if k == "Delivered-To"
    )
    assert sum(received.values()) == counts["sent"]
    assert set(received.values()) == {1}
