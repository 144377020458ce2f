"""Settings at the edge: every bad value is `Error: …` and exit 1, never a traceback, and no
secret from any setting reaches the output, a message or a traceback."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import traceback
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.engine import make_url
from typer.testing import CliRunner

from mailer.cli import app
from mailer.db import open_database
from mailer.errors import DatabaseError, SettingsError
from mailer.settings import hide_secrets, shown_url
from tests.conftest import CAMPAIGN, TEMPLATES, cli_env, make_settings

PASSWORD = "S3cr3tDbPw"


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    return cli_env(tmp_path, SMTP_PORT="1", **extra)


def _process(folder: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """A real `mailer` process: what the coordinator's terminal shows, tracebacks included.
    It runs in `folder`, so only a `.env` the test wrote there is read."""
    return subprocess.run(
        [sys.executable, "-m", "mailer", *args],
        env={**os.environ, **env},
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=60,
    )


def _refused(result: subprocess.CompletedProcess[str], *fragments: str) -> str:
    shown = result.stdout + result.stderr
    assert result.returncode == 1, shown
    assert result.stderr.startswith("Error: "), shown
    assert "Traceback" not in shown, shown
    for fragment in fragments:
        assert fragment in shown, shown
    return shown


def run(env: dict[str, str], *args: str):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(app, list(args), env=env, catch_exceptions=False)


# --- no secret in the output ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "fragment"),
    [
        (f"mysql://bob:{PASSWORD}@db.example.org/mailer", "is not supported"),
        (f"postgresql://bob:{PASSWORD}@[::1", "is not a database URL"),
        (f"postgresql://bob:{PASSWORD}@127.0.0.1:notaport/mailer", "is not a database URL"),
        (f"postgresql://bob:{PASSWORD}@127.0.0.1:1/mailer", "cannot open the database"),
        # An unescaped @ and / in the password: everything before the last @ is hidden.
        ("postgresql://bob:S3cr3t@Db/Pw@127.0.0.1:1/mailer", "has more than one @; write an @"),
        (f"postgresql://bob@127.0.0.1:1/mailer?password={PASSWORD}", "cannot open the database"),
        # libpq's other secrets in the query (review): the TLS key's passphrase
        (f"postgresql://bob@127.0.0.1:1/mailer?sslpassword={PASSWORD}", "cannot open the database"),
    ],
)
@pytest.mark.slow
def test_a_database_password_is_never_shown(tmp_path: Path, url: str, fragment: str) -> None:
    shown = _refused(_process(tmp_path, _env(tmp_path, DATABASE_URL=url), "deliveries"), fragment)
    for secret in (PASSWORD, "S3cr3t", "Db/Pw"):
        assert secret not in shown
    assert "***" in shown  # the URL is shown, with the password masked


@pytest.fixture
def database_without_rights(postgres_url: str) -> Iterator[str]:
    """A fresh PostgreSQL database and a role that may log in but not create tables (as a
    DBA might hand out), in a URL with a password."""
    role = f"mailer_norights_{uuid.uuid4().hex[:8]}"
    admin_url = make_url(postgres_url).set(drivername="postgresql")
    admin = admin_url.render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f"CREATE ROLE {role} LOGIN PASSWORD '{PASSWORD}'")
    try:
        yield admin_url.set(username=role, password=PASSWORD).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f"DROP ROLE IF EXISTS {role}")


@pytest.mark.postgres
@pytest.mark.slow
def test_a_database_that_cannot_be_used_does_not_show_the_password(
    tmp_path: Path, database_without_rights: str
) -> None:
    result = _process(tmp_path, _env(tmp_path, DATABASE_URL=database_without_rights), "deliveries")
    shown = _refused(result, "cannot be used: permission denied for schema public", ":***@")
    assert PASSWORD not in shown


@pytest.mark.postgres
def test_the_drivers_exception_is_not_chained_into_the_traceback(
    database_without_rights: str,
) -> None:
    """A `DatabaseError` logged with its traceback (the scheduler's log, say) shows no more
    than its message: the driver's exception, which may carry the password, is left out."""
    with pytest.raises(DatabaseError) as caught:
        open_database(database_without_rights.replace("postgresql:", "postgresql+psycopg:"))
    assert caught.value.__cause__ is None
    assert caught.value.__suppress_context__
    assert PASSWORD not in "".join(traceback.format_exception(caught.value))


_MARK = "Zq9"  # starts every generated password: found nowhere else in a message


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    password=st.text(alphabet=st.characters(exclude_characters="\x00"), max_size=20),
    shape=st.sampled_from(
        [
            "mysql://bob:{}@db.example.org/mailer",
            "postgresql://bob:{}@[::1",
            "postgresql://bob:{}@127.0.0.1:port/mailer",
            "postgresql:/bob:{}@127.0.0.1/mailer",
            "postgresql://bob:{}",
        ]
    ),
)
def test_no_password_shape_shows_the_password(tmp_path: Path, password: str, shape: str) -> None:
    secret = _MARK + password
    if shape.endswith(":{}"):  # no @ (else a valid URL): the password ends at a / ? or #
        secret = _MARK + re.split(r"[/?#@]", password)[0]
    url = shape.format(secret)
    with pytest.raises(SettingsError) as caught:
        make_settings(tmp_path, DATABASE_URL=url)
    assert _MARK not in str(caught.value)
    assert _MARK not in shown_url(url)
    assert _MARK not in hide_secrets(f"said {secret}", url)


def test_the_settings_never_show_a_database_password(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, DATABASE_URL=f"postgresql://bob:{PASSWORD}@db/mailer")
    assert PASSWORD in settings.database_url  # it is there to be used …
    assert PASSWORD not in repr(settings)
    assert PASSWORD not in str(settings)


# --- every bad value is an error -----------------------------------------------------------


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "1e300", "0", "-5", "thirty", "3601"])
def test_a_timeout_must_be_a_sensible_number_of_seconds(tmp_path: Path, value: str) -> None:
    result = run(_env(tmp_path, SMTP_TIMEOUT=value), "deliveries")
    assert result.exit_code == 1, result.output
    assert (
        f"Error: the settings have 1 problem(s):\n  - SMTP_TIMEOUT='{value}' is not a number "
        "of seconds greater than 0 and at most 3600; e.g. SMTP_TIMEOUT=30"
    ) in result.output


def test_a_timeout_in_range_is_taken(tmp_path: Path) -> None:
    assert make_settings(tmp_path, SMTP_TIMEOUT="0.5").smtp.timeout == 0.5
    assert make_settings(tmp_path, SMTP_TIMEOUT="3600").smtp.timeout == 3600


@pytest.mark.parametrize(
    ("host", "why"),
    [
        ("a..b", "it has an empty label (two dots in a row, or a dot at the start)"),
        (".example.org", "it has an empty label"),
        ("a" * 64 + ".example.org", "is 64 characters long, at most 63 are allowed"),
        (".".join(["abcdefghi"] * 26), "it is 259 characters long, at most 253 are allowed"),
        ("smtp_1.example.org", "the label 'smtp_1' has a character other than a letter"),
        ("smtp.example.org/587", "has a character other than a letter, digit or hyphen"),
        ("-smtp.example.org", "a label starts or ends with a hyphen"),
        ("1.2.3.999", "it looks like an IP address but is not one"),
        ("[::1]", "write an IPv6 address without the brackets"),
    ],
)
@pytest.mark.parametrize("setting", ["SMTP_HOST", "IMAP_HOST"])
@pytest.mark.slow
def test_a_host_must_be_a_host_name_or_an_ip_address(
    tmp_path: Path, setting: str, host: str, why: str
) -> None:
    result = run(_env(tmp_path, **{setting: host}), "deliveries")
    assert result.exit_code == 1, result.output
    assert "is not a host name or IP address: " in result.output
    assert why in result.output
    assert f"e.g. {setting}={setting[:4].lower()}.example.org" in result.output


def test_a_long_host_is_cut_in_the_message(tmp_path: Path) -> None:
    result = run(_env(tmp_path, SMTP_HOST="a" * 300), "deliveries")
    assert result.exit_code == 1
    assert f"SMTP_HOST='{'a' * 60}… (300 characters)'" in result.output
    assert "a" * 61 not in result.output


def test_good_hosts_are_taken_and_a_thai_name_becomes_its_ascii_form(tmp_path: Path) -> None:
    for host in ("smtp.example.org", "smtp.example.org.", "192.0.2.1", "::1", "localhost"):
        assert make_settings(tmp_path, SMTP_HOST=host).smtp.host == host
    thai = make_settings(tmp_path, SMTP_HOST="ไปรษณีย์.ไทย", IMAP_HOST="ไปรษณีย์.ไทย")
    assert thai.smtp.host == thai.imap.host == "xn--k3cpwc4a3e2e2c.xn--o3cw4h"
    with pytest.raises(SettingsError, match=r"IMAP_HOST='a\.\.ไทย' is not a host name"):
        make_settings(tmp_path, IMAP_HOST="a..ไทย")


@pytest.mark.parametrize(
    ("url", "fragment"),
    [
        ("sqlite:", "DATABASE_URL='sqlite:' is not a database URL; e.g. DATABASE_URL=sqlite:///"),
        ("sqlite://", "DATABASE_URL='sqlite://' names no file; e.g. DATABASE_URL=sqlite:///"),
        ("sqlite:////tmp", "DATABASE_URL='sqlite:////tmp' names a folder, not a database file"),
        ("postgresql://bob@[::1", "DATABASE_URL='postgresql://bob@[::1' is not a database URL"),
    ],
)
@pytest.mark.slow
def test_a_database_url_that_cannot_work_is_an_error(
    tmp_path: Path, url: str, fragment: str
) -> None:
    _refused(_process(tmp_path, _env(tmp_path, DATABASE_URL=url), "deliveries"), fragment)


def test_a_sqlite_file_under_a_file_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("not a folder", encoding="utf-8")
    url = f"sqlite:///{tmp_path / 'notes.txt' / 'mailer.db'}"
    result = run(_env(tmp_path, DATABASE_URL=url), "deliveries")
    assert result.exit_code == 1
    assert f"{tmp_path / 'notes.txt'} is a file, not a folder" in result.output


# --- .env ----------------------------------------------------------------------------------


def _dotenv(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str) -> Path:
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text(text, encoding="utf-8")
    return tmp_path / ".env"


def test_a_single_quoted_password_is_read_whole(tmp_path: Path) -> None:
    dotenv = tmp_path / ".env"
    dotenv.write_text(
        "SMTP_USERNAME=u\nSMTP_PASSWORD='abc #def'\nIMAP_PASSWORD='pa${HOME}ss \\'q\\' #x'\n",
        encoding="utf-8",
    )
    env = {"MAILER_CAMPAIGN": str(CAMPAIGN), "MAILER_TEMPLATES": str(TEMPLATES)}
    from mailer.settings import load_settings

    settings = load_settings(env, dotenv)
    assert settings.smtp.password.value == "abc #def"
    assert settings.imap.password.value == "pa${HOME}ss 'q' #x"  # taken literally
    assert settings.warnings == ()


def test_an_unquoted_password_with_a_comment_is_warned_about(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _dotenv(tmp_path, monkeypatch, "# mailer\nSMTP_USERNAME=u\nSMTP_PASSWORD=abc #def\n")
    result = run(_env(tmp_path), "deliveries")
    assert result.exit_code == 0, result.output
    assert (
        f"Warning: {Path('.env')}, line 3: SMTP_PASSWORD is not quoted, so everything from "
        '" #" on is read as a comment (and dropped). If the # belongs to the value, write it '
        "in single quotes: SMTP_PASSWORD='…'"
    ) in result.output
    assert "abc" not in result.output
    assert "def" not in result.output
    assert "3 character" not in result.output  # not even the length of what is left

    result = run(_env(tmp_path, SMTP_PASSWORD="from-the-environment"), "deliveries")
    assert result.exit_code == 0
    assert "Warning" not in result.output


@pytest.mark.slow
def test_a_dotenv_that_is_not_utf8_is_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_bytes("SMTP_PASSWORD=รหัส\n".encode("cp874"))
    _refused(
        _process(tmp_path, _env(tmp_path), "deliveries"), ".env is not UTF-8 text; save it as UTF-8"
    )
