"""The coordinator's commands refuse what names nothing: an unknown state, delivery, invitee,
province, agency or attendance is `Error: …` naming the valid values, exit 1; a preview file
that cannot be written is an error, not a traceback."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mailer.cli import app
from tests.conftest import CAMPAIGN, CONTACTS, TEMPLATES
from tests.scripted_smtp import Script, ScriptedServer

A = "saraban.th50@agri.example"


def run(env: dict[str, str], *args: str):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(app, list(args), env=env, catch_exceptions=False)


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """532 offices imported; TH-50-agri's invitation failed (550), the rest of TH-50 sent."""
    with ScriptedServer(Script({A: ["550"]})) as server:
        env = {
            "DATABASE_URL": f"sqlite:///{tmp_path / 'mailer.db'}",
            "MAILER_CAMPAIGN": str(CAMPAIGN),
            "MAILER_TEMPLATES": str(TEMPLATES),
            "SMTP_PORT": str(server.port),
        }
        assert run(env, "import", str(CONTACTS)).exit_code == 0
        assert run(env, "send", "invitations", "--only", "TH-50").exit_code == 0
    return env


def _states(env: dict[str, str]) -> list[str]:
    result = run(env, "deliveries", "--json")
    return [row["state"] for row in json.loads(result.output)]


def _refused(result, *fragments: str) -> None:  # type: ignore[no-untyped-def]
    assert result.exit_code == 1, result.output
    assert result.output.startswith("Error: "), result.output
    for fragment in fragments:
        assert fragment in result.output, result.output


@pytest.mark.slow
def test_an_unknown_state_is_an_error(env: dict[str, str]) -> None:
    _refused(
        run(env, "deliveries", "--state", "bogus"),
        "Error: --state 'bogus' is not a delivery state; use one of queued, sending, sent, "
        "retry_wait, failed, uncertain",
    )
    _refused(
        run(env, "deliveries", "retry", "--state", "sent"),
        "Error: --state 'sent': only failed or uncertain deliveries are queued again; "
        "use --state failed or --state uncertain",
    )
    assert sorted(_states(env)) == ["failed", *["sent"] * 6]


@pytest.mark.slow
def test_retrying_a_delivery_or_invitee_that_is_not_in_the_ledger_is_an_error(
    env: dict[str, str],
) -> None:
    _refused(
        run(env, "deliveries", "retry", "99999"),
        "Error: nothing was queued: there is no delivery 99999 in the ledger; "
        "`mailer deliveries` lists the delivery ids and invitee ids",
    )
    # One unknown name among good ones: nothing is queued, so the command can be re-run.
    _refused(
        run(env, "deliveries", "retry", "TH-50-agri", "TH-99-agri", "²"),
        "there is no invitee 'TH-99-agri', invitee '²' in the ledger",
    )
    assert sorted(_states(env)) == ["failed", *["sent"] * 6]
    result = run(env, "deliveries", "retry", "TH-50-agri")
    assert result.exit_code == 0
    assert "Queued 1 delivery(ies) again" in result.output


@pytest.mark.slow
def test_an_unknown_province_agency_or_attendance_is_an_error(env: dict[str, str]) -> None:
    _refused(
        run(env, "status", "--province", "TH-99"),
        "Error: --province 'TH-99' is not a province of the imported offices; give its code "
        "or Thai name, e.g. TH-11 (สมุทรปราการ), TH-12 (นนทบุรี), TH-13 (ปทุมธานี) "
        "(76 province(s): `mailer status` shows them all)",
    )
    _refused(
        run(env, "status", "--agency", "bogus"),
        "Error: --agency 'bogus' is not an agency of the imported offices; "
        "use one of agri, dbd, ind, mots, prov, rd, sso",
    )
    _refused(
        run(env, "status", "--attendance", "bogus"),
        "Error: --attendance 'bogus' is not one of no_reply, ",
    )
    result = run(env, "status", "--json", "--province", "เชียงใหม่", "--agency", "agri")
    assert result.exit_code == 0, result.output
    assert [i["invitee_id"] for i in json.loads(result.output)["invitees"]] == ["TH-50-agri"]


def test_a_filter_before_anything_is_imported_says_to_import(tmp_path: Path) -> None:
    env = {
        "DATABASE_URL": f"sqlite:///{tmp_path / 'mailer.db'}",
        "MAILER_CAMPAIGN": str(CAMPAIGN),
        "MAILER_TEMPLATES": str(TEMPLATES),
    }
    _refused(
        run(env, "status", "--province", "TH-50"),
        "Error: no offices have been imported yet; run `mailer import contacts.csv`",
    )


@pytest.mark.slow
def test_a_preview_file_that_cannot_be_written_is_an_error(
    env: dict[str, str], tmp_path: Path
) -> None:
    result = run(env, "preview", "TH-50-agri", "--eml", "/nonexistent/dir/p.eml")
    assert result.exit_code == 1
    assert (
        "Error: cannot write /nonexistent/dir/p.eml (No such file or directory); give a file "
        "in a folder that exists and that you may write"
    ) in result.output
    result = run(env, "preview", "TH-50-agri", "--html", str(tmp_path))
    assert result.exit_code == 1
    assert f"Error: cannot write {tmp_path} (Is a directory)" in (result.output)


@pytest.mark.slow
def test_an_unknown_invitee_to_preview_is_cut_in_the_message(env: dict[str, str]) -> None:
    _refused(
        run(env, "preview", "X" * 200),
        f"Error: no invitee '{'X' * 60}… (200 characters)'; see `mailer status` for the ids",
    )
