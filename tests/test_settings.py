"""Settings: read once, every problem reported at once, secrets never shown."""

from __future__ import annotations

from pathlib import Path

import pytest

from mailer.errors import SettingsError
from mailer.settings import load_settings
from tests.conftest import CAMPAIGN, TEMPLATES, make_settings


def test_defaults_point_at_the_local_dev_server(tmp_path: Path) -> None:
    settings = load_settings(
        {"MAILER_CAMPAIGN": str(CAMPAIGN), "MAILER_TEMPLATES": str(TEMPLATES)}, None
    )
    assert settings.database_url == "sqlite:///var/mailer.db"
    assert (settings.smtp.host, settings.smtp.port, settings.smtp.security) == (
        "127.0.0.1",
        8025,
        "none",
    )
    assert settings.smtp.is_loopback


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    with pytest.raises(SettingsError) as caught:
        make_settings(
            tmp_path,
            SMTP_PORT="eighty",
            SMTP_SECURITY="tls",
            SMTP_USERNAME="coordinator",
            DATABASE_URL="mysql://x",
            MAILER_CAMPAIGN=str(tmp_path / "missing.toml"),
            SMTP_CA_FILE=str(tmp_path / "nope.pem"),
        )
    problems = caught.value.problems
    assert any(
        p.startswith("SMTP_PORT='eighty' is not a whole number; for example SMTP_PORT=587")
        for p in problems
    )
    assert any("SMTP_SECURITY='tls' must be one of none, starttls, ssl" in p for p in problems)
    assert any("SMTP_USERNAME is set but SMTP_PASSWORD is empty" in p for p in problems)
    assert any("DATABASE_URL='mysql://x' is not supported" in p for p in problems)
    assert any("missing.toml" in p and "no such file" in p for p in problems)
    assert any("SMTP_CA_FILE" in p for p in problems)
    assert str(caught.value).startswith("the settings have 6 problem(s):")


def test_a_password_is_never_sent_in_clear_to_a_remote_host(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match=r"unencrypted to smtp\.example\.org"):
        make_settings(tmp_path, SMTP_HOST="smtp.example.org", SMTP_USERNAME="u", SMTP_PASSWORD="p")


def test_the_password_never_shows_itself(tmp_path: Path) -> None:
    settings = make_settings(
        tmp_path, SMTP_SECURITY="starttls", SMTP_USERNAME="u", SMTP_PASSWORD="hunter2-secret"
    )
    assert settings.smtp.password.value == "hunter2-secret"
    assert "hunter2" not in repr(settings)
    assert "hunter2" not in str(settings.smtp)


def test_dotenv_is_read_and_the_environment_wins(tmp_path: Path) -> None:
    dotenv = tmp_path / ".env"
    dotenv.write_text("SMTP_PORT=2525\nSMTP_HOST=mail.example.org\n", encoding="utf-8")
    settings = load_settings(
        {"SMTP_PORT": "2626", "MAILER_CAMPAIGN": str(CAMPAIGN), "MAILER_TEMPLATES": str(TEMPLATES)},
        dotenv,
    )
    assert (settings.smtp.host, settings.smtp.port) == ("mail.example.org", 2626)


def test_postgresql_urls_use_psycopg(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, DATABASE_URL="postgresql://u@127.0.0.1/mailer")
    assert settings.database_url == "postgresql+psycopg://u@127.0.0.1/mailer"


def test_env_example_documents_every_setting() -> None:
    import re

    mailer = Path(__file__).resolve().parent.parent / "mailer"
    readers = [
        "settings.py",
        "delivery/dkim.py",
        "oauth.py",
        "web/settings.py",
    ]  # beside what they set
    source = "".join((mailer / name).read_text(encoding="utf-8") for name in readers)
    names = set(re.findall(r'"((?:SMTP|IMAP|MAILER|DATABASE|DKIM|OAUTH)_[A-Z_]+)"', source))
    assert {"DKIM_SELECTOR", "DKIM_PRIVATE_KEY_FILE", "DKIM_DOMAIN", "DKIM_ALGORITHM"} <= names
    assert {"MAILER_SECRET_KEY", "MAILER_DASHBOARD_PASSWORD_HASH", "OAUTH_CLIENT_ID"} <= names
    example = (Path(__file__).resolve().parent.parent / ".env.example").read_text(encoding="utf-8")
    documented = set(re.findall(r"^#?\s*([A-Z_]+)=", example, flags=re.M))
    assert names
    assert names <= documented, names - documented
