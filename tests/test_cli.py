"""The command line as the coordinator uses it: exact messages and exit codes."""

from __future__ import annotations

import itertools
import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mailer.cli import app
from tests.conftest import CAMPAIGN, CONTACTS, Mailhog, cli_env, free_port
from tests.helpers import parse, tree

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return cli_env(tmp_path, SMTP_PORT=str(free_port()))


def run(env: dict[str, str], *args: str):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(app, list(args), env=env, catch_exceptions=False)


def test_every_command_is_in_the_readme() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    commands = []
    for command in app.registered_commands:
        commands.append(command.name or command.callback.__name__)  # type: ignore[union-attr]
    for group in app.registered_groups:
        commands.append(str(group.name))
        for command in group.typer_instance.registered_commands:  # type: ignore[union-attr]
            commands.append(f"{group.name} {command.name}")
    assert len(commands) >= 6
    for name in commands:
        assert f"mailer {name}" in readme, f"`mailer {name}` is not documented in README.md"


def test_the_readme_opens_with_the_two_commands() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    head = readme[:1500]
    assert "make run" in head
    assert "make test" in head
    assert "make test" in (ROOT / ".ci" / "run").read_text(encoding="utf-8")


@pytest.mark.slow
def test_import_send_status_end_to_end(env: dict[str, str], tmp_path: Path) -> None:
    result = run(env, "import", str(CONTACTS))
    assert result.exit_code == 0, result.output
    assert "Imported 532 invitee(s) from" in result.output
    assert "532 new" in result.output

    result = run(env, "send", "invitations", "--only", "TH-50", "--devserver")
    assert result.exit_code == 0, result.output
    assert "This run: 7 sent, 0 to retry later, 0 failed" in result.output
    assert f"all mail is in {(tmp_path / 'maildir' / 'new').resolve()}" in result.output
    received = sorted((tmp_path / "maildir" / "new").iterdir())
    assert len(received) == 7
    assert tree(parse(received[0].read_bytes()))[0][1] == "multipart/mixed"

    result = run(env, "status", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["totals"]["sent"] == 7
    assert data["totals"]["not_enqueued"] == 525
    first = next(i for i in data["invitees"] if i["invitee_id"] == "TH-50-agri")
    assert (first["email"], first["delivery"]) == ("saraban.th50@agri.example", "sent")

    result = run(env, "status")
    assert result.exit_code == 0
    assert "sent" in result.output
    assert "532" in result.output


def test_dry_run_says_what_would_happen(env: dict[str, str]) -> None:
    run(env, "import", str(CONTACTS))
    result = run(env, "send", "invitations", "--dry-run")
    assert result.exit_code == 0, result.output
    assert "would enqueue 532 new invitation(s) and send 532 message(s)" in result.output
    assert "Nothing was written or sent." in result.output


def test_a_bad_contacts_file_exits_1_with_the_line(env: dict[str, str], tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text(
        "invitee_id,organisation,salutation,email\nTH-50-agri,x,เรียน x,saraban@@nan.example\n",
        encoding="utf-8",
    )
    result = run(env, "import", str(bad))
    assert result.exit_code == 1
    assert f"{bad}, line 2: 'saraban@@nan.example' is not an email address" in result.output
    assert "Error: " in result.output
    assert "nothing was imported" in result.output


def test_unreachable_server_exits_1_and_names_the_fix(env: dict[str, str]) -> None:
    run(env, "import", str(CONTACTS))
    result = run(env, "send", "invitations")
    assert result.exit_code == 1
    assert re.search(
        r"Error: cannot reach the SMTP server 127\.0\.0\.1:\d+ .*mailer devserver", result.output
    )
    assert "Traceback" not in result.output


def test_bad_settings_are_all_listed(env: dict[str, str]) -> None:
    result = run({**env, "SMTP_PORT": "x", "SMTP_SECURITY": "tls"}, "status")
    assert result.exit_code == 1
    assert "Error: the settings have 2 problem(s):" in result.output
    assert "SMTP_PORT='x'" in result.output
    assert "SMTP_SECURITY='tls'" in result.output


def test_a_bad_flag_exits_2(env: dict[str, str]) -> None:
    result = run(env, "send", "invitations", "--limit", "0")
    assert result.exit_code == 2


def test_preview_writes_eml_and_html(env: dict[str, str], tmp_path: Path) -> None:
    run(env, "import", str(CONTACTS))
    eml, html = tmp_path / "p.eml", tmp_path / "p.html"
    result = run(env, "preview", "TH-50-agri", "--eml", str(eml), "--html", str(html))
    assert result.exit_code == 0, result.output
    assert "เรียน เกษตรจังหวัดเชียงใหม่" in result.output
    assert "To: saraban.th50@agri.example" in result.output
    assert len(tree(parse(eml.read_bytes()))) == 6
    assert html.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    result = run(env, "preview", "TH-99-x")
    assert result.exit_code == 1
    assert "Error: no invitee 'TH-99-x'" in result.output


@pytest.mark.slow
def test_check_passes_on_the_shipped_files(env: dict[str, str]) -> None:
    result = run(env, "check", "--contacts", str(CONTACTS))
    assert result.exit_code == 0, result.output
    assert "template invitation: rendered for 532 invitee(s)" in result.output
    assert "All checks passed." in result.output


@pytest.mark.slow
def test_check_catches_the_bengali_letters_of_the_seed_letter(
    env: dict[str, str], tmp_path: Path
) -> None:
    campaign = tmp_path / "campaign.toml"
    campaign.write_text(
        CAMPAIGN.read_text(encoding="utf-8").replace("ห้องออดิทอเรียม", "ห้องออডিทอเรียม"),
        encoding="utf-8",
    )
    result = run({**env, "MAILER_CAMPAIGN": str(campaign)}, "check", "--contacts", str(CONTACTS))
    assert result.exit_code == 1
    assert (
        "event.venue: character 7 is BENGALI LETTER DDA (U+09A1) inside Thai text" in result.output
    )
    assert "Error: check found 2 problem(s)" in result.output


def test_devserver_refuses_a_busy_port(env: dict[str, str], smtp_server: Mailhog) -> None:
    result = run(env, "devserver", "--port", str(smtp_server.port))
    assert result.exit_code == 1
    assert f"cannot listen on 127.0.0.1:{smtp_server.port}" in result.output


@pytest.mark.slow
def test_test_to_sends_one_sample(env: dict[str, str], smtp_server: Mailhog) -> None:
    env = {**env, "SMTP_PORT": str(smtp_server.port)}
    run(env, "import", str(CONTACTS))
    result = run(env, "send", "invitations", "--test-to", "me@ega.example")
    assert result.exit_code == 0, result.output
    assert "Sent a sample (TH-11-agri) to me@ega.example" in result.output
    assert len(smtp_server.messages()) == 1
    status = json.loads(run(env, "status", "--json").output)
    assert status["totals"]["not_enqueued"] == 532


def test_help_wraps_descriptions_as_one_paragraph(env: dict[str, str]) -> None:
    """A docstring's line breaks are not kept in `mailer --help` (the worker's description
    was broken after "or more", with the rest of the row empty)."""
    result = run({**env, "COLUMNS": "100"}, "--help")
    assert result.exit_code == 0
    rows = [line[2:].rstrip("│ ") for line in result.output.splitlines() if line.startswith("│ ")]
    described = [(row[:12].strip(), row[12:].rstrip()) for row in rows if len(row) > 12]
    continued = 0
    for (_, text), (name, following) in itertools.pairwise(described):
        if name or not following:
            continue  # the next row is another command's
        continued += 1
        first_word = following.split()[0]
        # a line was only broken there because the next word would not have fitted
        assert len(text) + 1 + len(first_word) > 100 - 4 - 12, (text, following)
    assert continued >= 3  # the long descriptions (mark, worker, status, …) were wrapped
