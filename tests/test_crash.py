"""A real sender process killed with SIGKILL mid-run, then restarted: nothing lost, nothing
sent twice silently (DESIGN.md §5)."""

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
from mailer.outbox import Ledger
from tests.conftest import CAMPAIGN, TEMPLATES, Mailhog
from tests.helpers import raw_headers, write_synthetic_contacts

COUNT = 2000


def _mailer(env: dict[str, str], *args: str, **kw: object) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "mailer", *args], env=env, **kw)  # type: ignore[call-overload, no-any-return]


@pytest.mark.parametrize("workers", [1, 2])
def test_sigkill_mid_run_then_restart(tmp_path: Path, smtp_server: Mailhog, workers: int) -> None:
    contacts = tmp_path / "contacts.csv"
    write_synthetic_contacts(contacts, COUNT)
    database = f"sqlite:///{tmp_path / 'mailer.db'}"
    env = {
        **os.environ,
        "DATABASE_URL": database,
        "MAILER_CAMPAIGN": str(CAMPAIGN),
        "MAILER_TEMPLATES": str(TEMPLATES),
        "SMTP_PORT": str(smtp_server.port),
    }
    assert _mailer(env, "import", str(contacts), stdout=subprocess.DEVNULL).wait(60) == 0

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
