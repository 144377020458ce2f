"""Templates run in Jinja2's sandbox, and every error in one names the file and the line.

A template file is code the coordinator (or whoever can write the folder) hands us: it
must not reach Python's internals, and its mistakes are `Error: …` lines, not tracebacks.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mailer.campaign import load_campaign
from mailer.cli import app
from mailer.compose import Composer
from mailer.errors import TemplateProblem
from tests.conftest import CAMPAIGN, CONTACTS, TEMPLATES, free_port
from tests.test_compose import CHIANG_MAI_AGRI

ESCAPE = "{{ self.__init__.__globals__.__builtins__.__import__('os').system('touch %s') }}"


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    copy = tmp_path / "templates"
    shutil.copytree(TEMPLATES, copy)
    return copy


def _edit(folder: Path, name: str, old: str, new: str, mark: str = "") -> str:
    """Replace `old` by `new` in one template; "path, line N" of the first line that holds
    `mark` (by default the first line of `new` that differs from `old`)."""
    path = folder / name
    text = path.read_text(encoding="utf-8")
    assert old in text
    edited = text.replace(old, new, 1)
    path.write_text(edited, encoding="utf-8")
    lines = edited.splitlines()
    mark = mark or next(line for line in new.splitlines() if line not in old.splitlines())
    return f"{path}, line {next(n for n, line in enumerate(lines, 1) if mark in line)}"


def _problem(folder: Path, kind: str = "invitation") -> str:
    composer = Composer(load_campaign(CAMPAIGN), folder)
    with pytest.raises(TemplateProblem) as caught:
        composer.letter(CHIANG_MAI_AGRI, kind, {"changes": []})
    return str(caught.value)


def test_mailer_check_cannot_run_a_shell_command_from_a_template(
    folder: Path, tmp_path: Path
) -> None:
    marker = tmp_path / "escaped"
    where = _edit(
        folder, "invitation/body.html", "{% block body %}\n", "{% block body %}\n" + ESCAPE % marker
    )
    env = {
        "DATABASE_URL": f"sqlite:///{tmp_path / 'mailer.db'}",
        "MAILER_CAMPAIGN": str(CAMPAIGN),
        "MAILER_TEMPLATES": str(folder),
        "SMTP_PORT": str(free_port()),
    }
    contacts = tmp_path / "contacts.csv"
    lines = CONTACTS.read_text(encoding="utf-8").splitlines()
    contacts.write_text("\n".join(lines[:3]) + "\n", encoding="utf-8")
    args = ["check", "--contacts", str(contacts)]
    result = CliRunner().invoke(app, args, env=env, catch_exceptions=False)
    output = " ".join(result.output.split())
    assert not marker.exists(), "the template ran a shell command"
    assert result.exit_code == 1, result.output
    assert f"{where}: not allowed in a template:" in output
    assert "access to attribute '__init__' of 'TemplateReference' object is unsafe" in output
    assert "Error: check found" in output


def test_preview_of_a_hostile_template_is_an_error_line(folder: Path, tmp_path: Path) -> None:
    marker = tmp_path / "escaped"
    where = _edit(folder, "_layout.html", "<body ", ESCAPE % marker + "<body ", mark="<body ")
    assert "_layout.html, line " in where
    assert f"{where}: not allowed in a template" in _problem(folder)
    assert not marker.exists()


def test_a_division_by_zero_names_the_template_and_line(folder: Path) -> None:
    where = _edit(
        folder, "invitation/body.txt", "{% block body %}\n", "{% block body %}\n{{ 1/0 }}"
    )
    assert _problem(folder) == (
        f"{where}: ZeroDivisionError: division by zero (rendering for TH-50-agri)"
    )


def test_a_filter_on_the_wrong_type_names_the_template_and_line(folder: Path) -> None:
    where = _edit(
        folder, "followup/subject.txt", "{{ thai.short_date }}", "{{ event.title|thai_date }}"
    )
    assert _problem(folder, "followup") == (
        f"{where}: AttributeError: 'str' object has no attribute 'tzinfo' "
        "(rendering for TH-50-agri)"
    )


def test_an_error_in_the_layout_names_the_layout(folder: Path) -> None:
    where = _edit(
        folder,
        "_layout.txt",
        "{{ invitee.salutation }}",
        "{{ invitee.salutation|int(1, 2, 3, 4) }}",
    )
    message = _problem(folder)
    assert message.startswith(f"{where}: TypeError: ")
    assert message.endswith("(rendering for TH-50-agri)")


def test_an_undefined_name_names_the_line(folder: Path) -> None:
    where = _edit(
        folder, "update/body.html", "{{ change.label }}", "{{ change.lable }}", mark="lable"
    )
    composer = Composer(load_campaign(CAMPAIGN), folder)
    from mailer.versions import Change

    with pytest.raises(TemplateProblem) as caught:
        composer.letter(CHIANG_MAI_AGRI, "update", {"changes": [Change("when", "ก", "ข", "ค")]})
    assert str(caught.value) == (
        f"{where}: 'mailer.versions.Change object' has no attribute 'lable' "
        "(rendering for TH-50-agri); check the name against the template guide in README.md"
    )


def test_a_template_extending_itself_is_an_error_not_a_recursion(folder: Path) -> None:
    where = _edit(
        folder,
        "cancel/body.html",
        '{% extends "_layout.html" %}',
        '{% extends "cancel/body.html" %}',
    )
    assert _problem(folder, "cancel") == (
        f"{where}: the templates extend or include one another in a loop "
        "(rendering for TH-50-agri); a letter extends _layout.html or _layout.txt"
    )


def test_a_huge_repetition_is_refused_at_once(folder: Path) -> None:
    where = _edit(
        folder, "reminder/subject.txt", "{{ thai.short_date }}", "{{ 'x' * 10**10 }}", mark="10**10"
    )
    started = time.monotonic()
    message = _problem(folder, "reminder")
    assert time.monotonic() - started < 5
    assert message.startswith(f"{where}: not allowed in a template: ")
    assert "too long" in message


def test_a_long_error_text_is_cut(folder: Path) -> None:
    _edit(
        folder,
        "invitation/body.txt",
        "{% block body %}\n",
        "{% block body %}\n{{ invitee[invitee.organisation * 20] }}",
    )
    message = _problem(folder)
    assert "… (" in message
    assert "characters)" in message
    assert len(message) < 400


def test_the_attendance_sheet_template_is_sandboxed_too(
    folder: Path, tmp_path: Path, make_ws
) -> None:
    """#8: `mailer sheet` compiles templates/sheet/attendance.html in the same sandbox."""
    from mailer.invitees.importing import import_contacts
    from mailer.views.report import status
    from mailer.views.sheet import write_sheet

    marker = tmp_path / "escaped"
    where = _edit(folder, "sheet/attendance.html", "<h1>", ESCAPE % marker + "\n<h1>")
    ws = make_ws(MAILER_TEMPLATES=str(folder))
    import_contacts(ws.engine, CONTACTS)
    with pytest.raises(TemplateProblem) as caught:
        write_sheet(
            status(ws.ledger(), ws.campaign),
            ws.campaign,
            ws.settings.templates_dir,
            tmp_path / "sheet.html",
        )
    assert str(caught.value).startswith(f"{where}: not allowed in a template")
    assert not marker.exists()
    assert not (tmp_path / "sheet.html").exists()


@pytest.mark.timeout(60)
def test_a_list_of_long_texts_repeated_is_refused(folder: Path) -> None:
    """Review: `["x" * 100000] * 100000` passed the bound (100,000 items), and joining it
    would build ten thousand million characters."""
    where = _edit(
        folder,
        "reminder/subject.txt",
        "{{ thai.short_date }}",
        "{{ (['x' * 100000] * 100000)|join|length }}",
        mark="join",
    )
    message = _problem(folder, "reminder")
    assert message.startswith(f"{where}: not allowed in a template: ")


@pytest.mark.timeout(60)
def test_a_letter_that_runs_on_and_on_is_stopped(folder: Path) -> None:
    """Review: a loop writes a letter of 10⁸ characters in pieces, each under every bound."""
    _edit(
        folder,
        "invitation/body.txt",
        "{% block body %}\n",
        "{% block body %}\n{% for i in range(100000) %}{{ 'x' * 1000 }}{% endfor %}\n",
    )
    message = _problem(folder)
    assert "renders more than 1,000,000 characters" in message


@pytest.mark.timeout(60)
def test_a_repeated_list_of_lists_of_long_texts_is_refused(folder: Path) -> None:
    """Second review: nesting hid the weight (`[[s]] * 90000` printed 8·10⁹ characters)."""
    where = _edit(
        folder,
        "reminder/subject.txt",
        "{{ thai.short_date }}",
        "{{ ([['x' * 90000]] * 90000)|string|length }}",
        mark="90000",
    )
    assert _problem(folder, "reminder").startswith(f"{where}: not allowed in a template: ")
