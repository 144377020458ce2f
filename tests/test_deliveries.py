"""The coordinator's commands over the ledger, and parallel workers, through the CLI."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mailer.cli import app
from mailer.db import open_database
from mailer.delivery.ledger import Ledger
from mailer.settings import load_settings
from tests.conftest import CAMPAIGN, CONTACTS, TEMPLATES, Mailhog
from tests.helpers import raw_headers
from tests.scripted_smtp import Script, ScriptedServer

A = "saraban.th50@agri.example"


def _env(tmp_path: Path, port: int, **extra: str) -> dict[str, str]:
    return {
        "DATABASE_URL": f"sqlite:///{tmp_path / 'mailer.db'}",
        "MAILER_CAMPAIGN": str(CAMPAIGN),
        "MAILER_TEMPLATES": str(TEMPLATES),
        "SMTP_PORT": str(port),
        **extra,
    }


def run(env: dict[str, str], *args: str):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(app, list(args), env=env, catch_exceptions=False)


def _rows(env: dict[str, str], *args: str) -> list[dict[str, object]]:
    result = run(env, "deliveries", "--json", *args)
    assert result.exit_code == 0, result.output
    return json.loads(result.output)  # type: ignore[no-any-return]


@pytest.mark.slow
def test_list_retry_and_resolve(tmp_path: Path) -> None:
    script = Script({A: ["550", "250"], "saraban.th50@prov.example": ["drop-after-data", "250"]})
    with ScriptedServer(script) as server:
        env = _env(tmp_path, server.port)
        run(env, "import", str(CONTACTS))
        result = run(env, "send", "invitations", "--only", "TH-50")
        assert result.exit_code == 0, result.output
        assert "TH-50-agri: failed: 550 5.1.1" in result.output

        failed = _rows(env, "--state", "failed")
        assert [(r["invitee_id"], r["state"]) for r in failed] == [("TH-50-agri", "failed")]
        uncertain = _rows(env, "--state", "uncertain")
        assert [r["invitee_id"] for r in uncertain] == ["TH-50-prov"]

        result = run(env, "deliveries", "retry", "TH-50-agri", "TH-50-ind")
        assert result.exit_code == 0
        assert "Queued 1 delivery(ies) again" in result.output
        assert "is sent; only failed or uncertain deliveries can be re-queued" in result.output
        assert run(env, "send", "invitations", "--only", "TH-50").exit_code == 0
        assert script.received_by(A) == 1

        result = run(env, "deliveries", "resolve", str(uncertain[0]["id"]))
        assert result.exit_code == 1
        assert "say --sent" in result.output
        result = run(env, "deliveries", "resolve", str(uncertain[0]["id"]), "--sent")
        assert result.exit_code == 0
        assert "is now sent" in result.output
        result = run(env, "deliveries", "resolve", str(uncertain[0]["id"]), "--not-sent")
        assert result.exit_code == 1
        assert "is sent, not uncertain" in result.output
        assert {r["state"] for r in _rows(env)} == {"sent"}
        assert script.received_by("saraban.th50@prov.example") == 1

        result = run(env, "deliveries")
        assert result.exit_code == 0
        assert "7 deliveries" in result.output


@pytest.mark.slow
def test_not_sent_queues_it_again(tmp_path: Path) -> None:
    script = Script({A: ["drop-at-rcpt"]})
    with ScriptedServer(script) as server:
        env = _env(tmp_path, server.port)
        run(env, "import", str(CONTACTS))
        script.plans[A] = ["drop-after-data", "250"]
        run(env, "send", "invitations", "--only", "TH-50-agri")
        (row,) = _rows(env, "--state", "uncertain")
        assert run(env, "deliveries", "resolve", str(row["id"]), "--not-sent").exit_code == 0
        assert run(env, "send", "invitations", "--only", "TH-50-agri").exit_code == 0
        assert [r["state"] for r in _rows(env)] == ["sent"]
        assert script.received_by(A) == 2  # the coordinator decided it had not arrived


@pytest.mark.slow
def test_two_workers_send_every_office_exactly_once(
    tmp_path: Path, smtp_server: Mailhog, database_url: str
) -> None:
    """On SQLite, and on PostgreSQL (SKIP LOCKED): the multi-host shape of docs/design.md §3."""
    env = {**_env(tmp_path, smtp_server.port), "DATABASE_URL": database_url}
    assert run(env, "import", str(CONTACTS)).exit_code == 0
    result = run(env, "send", "invitations", "--workers", "2")
    assert result.exit_code == 0, result.output
    assert "This run: 532 sent" in result.output
    delivered = Counter(
        v for raw in smtp_server.messages() for k, v in raw_headers(raw) if k == "Delivered-To"
    )
    assert len(delivered) == 532
    assert set(delivered.values()) == {1}
    rows = _rows(env)
    assert {r["state"] for r in rows} == {"sent"}
    assert len({r["server"] for r in rows}) == 1


@pytest.mark.slow
def test_workers_started_for_a_round_that_cannot_be_queued_send_nothing(
    tmp_path: Path, smtp_server: Mailhog
) -> None:
    """The helpers start before the round is queued; when the round stops first (here a
    broken template), they go home without sending, and the command says why."""
    import shutil

    templates = tmp_path / "templates"
    shutil.copytree(TEMPLATES, templates)
    (templates / "invitation" / "body.html").write_text("{{ no_such_name }}", encoding="utf-8")
    env = {**_env(tmp_path, smtp_server.port), "MAILER_TEMPLATES": str(templates)}
    assert run(env, "import", str(CONTACTS)).exit_code == 0
    # Rows already due from an earlier round: a helper that started would send them.
    settings = load_settings(env)
    ledger = Ledger(open_database(settings.database_url), "egov-seminar-2559")
    kind = "reminder:followup-no-reply"
    ledger.enqueue([("TH-50-agri", A)], kind, 0, lambda i: f"<{i}.test@ega.example>")
    result = run(env, "send", "invitations", "--workers", "2")
    assert result.exit_code == 1
    assert "invitation/body.html" in result.output
    assert "no_such_name" in result.output
    assert smtp_server.messages() == []
    assert [(r["kind"], r["state"]) for r in _rows(env)] == [(kind, "queued")]
    ledger.engine.dispose()


def test_more_workers_than_the_provider_allows_is_refused(tmp_path: Path) -> None:
    env = _env(tmp_path, 1, MAILER_RATE_PRESET="microsoft365")
    run(env, "import", str(CONTACTS))
    result = run(env, "send", "invitations", "--workers", "4")
    assert result.exit_code == 1
    assert "--workers 4 would open more SMTP sessions than the 3 allowed" in result.output


@pytest.mark.slow
def test_a_long_running_worker_sends_what_becomes_due_and_stops_cleanly(
    tmp_path: Path, smtp_server: Mailhog
) -> None:
    import os
    import signal
    import subprocess
    import sys
    import time

    env = {**os.environ, **_env(tmp_path, smtp_server.port)}
    mailer = [sys.executable, "-m", "mailer"]
    subprocess.run([*mailer, "import", str(CONTACTS)], env=env, check=True, capture_output=True)
    worker = subprocess.Popen(
        [*mailer, "worker", "--forever", "--poll", "1"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        time.sleep(1.5)
        assert worker.poll() is None
        assert smtp_server.messages() == []
        # another host enqueues a round; the waiting worker picks it up on its next pass
        from mailer.identity import new_message_id
        from mailer.settings import load_settings
        from mailer.workspace import Workspace

        ws = Workspace(load_settings(env, dotenv_path=None))
        ws.ledger().enqueue(
            [(f"TH-50-{a}", f"saraban.th50@{a}.example") for a in ("agri", "prov")], "invitation", 0,
            lambda i: new_message_id(ws.campaign, i, "invitation"),
        )  # fmt: skip
        ws.close()
        deadline = time.monotonic() + 30
        while len(smtp_server.messages()) < 2:
            assert worker.poll() is None
            assert time.monotonic() < deadline
            time.sleep(0.1)
    finally:
        worker.send_signal(signal.SIGTERM)
        out, err = worker.communicate(timeout=30)
    assert worker.returncode == 0, err.decode()
    assert "2 sent" in out.decode()


@pytest.mark.slow
def test_a_helper_that_cannot_start_is_reported_with_the_work_done(
    tmp_path: Path, smtp_server: Mailhog
) -> None:
    """This process sends everything itself; the report counts it and then names the
    helper that failed and why, instead of losing the report in the error."""
    import os

    from mailer.invitees.importing import import_contacts
    from mailer.rounds.send import send_round
    from mailer.workspace import Workspace

    env = _env(tmp_path, smtp_server.port)
    ws = Workspace(load_settings(env, dotenv_path=None))
    import_contacts(ws.engine, CONTACTS)
    broken = tmp_path / "notes.db"
    broken.write_text("not a database", encoding="utf-8")
    helper_env = {**os.environ, **env, "DATABASE_URL": f"sqlite:///{broken}"}
    try:
        report = send_round(ws, "invitation", only=["TH-50"], workers=2, worker_env=helper_env)
    finally:
        ws.close()
    assert report.drain.sent == 7
    assert report.drain.stopped is not None
    assert report.drain.stopped.startswith("helper 1 stopped: ")
    assert "notes.db is not a SQLite database" in report.drain.stopped


@pytest.mark.slow
def test_failures_are_listed_whichever_process_met_them(tmp_path: Path) -> None:
    """With --workers, every office refused is named in the report, not only those this
    process sent (the helpers report theirs). A slow server gives the helper its share."""
    refused = {f"TH-{n}-agri": f"saraban.th{n}@agri.example" for n in range(10, 96)}
    script = Script({address: ["550"] for address in refused.values()}, pace=0.01)
    with ScriptedServer(script) as server:
        env = _env(tmp_path, server.port, MAILER_MAX_FAILURES="1000")
        run(env, "import", str(CONTACTS))
        result = run(env, "send", "invitations", "--workers", "2")
        rows = _rows(env, "--state", "failed")
    assert result.exit_code == 0, result.output
    failed = {str(r["invitee_id"]) for r in rows}
    assert failed
    assert failed <= set(refused)
    named = {
        line.split(":")[0].split()[-1]
        for line in result.output.splitlines()
        if ": failed: 550" in line
    }
    assert named == failed
    assert f"{len(failed)} failed" in result.output


def test_sending_imports_neither_reply_tracking_nor_the_rounds_nor_the_workspace() -> None:
    """#12: every module of mailer/delivery loads without the flows above it; what a drain
    needs from them (is this office still wanted?) is handed in (DeliveryContext)."""
    import subprocess
    import sys

    code = (
        "import importlib, pkgutil, sys, mailer.delivery as d\n"
        "for m in pkgutil.iter_modules(d.__path__): importlib.import_module(f'{d.__name__}.{m.name}')\n"
        "print(' '.join(sorted(sys.modules)))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = done.stdout.split()
    assert "mailer.delivery.drain" in loaded
    above = ("mailer.replies", "mailer.rounds", "mailer.views", "mailer.workspace", "mailer.cli")
    assert [m for m in loaded if m.startswith(above)] == []
