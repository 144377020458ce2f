"""Typed settings, read once from the environment and `.env` at the edge (the CLI).

Library code never reads `os.environ`: it receives a `Settings`. Every bad or missing
value is reported at once, each with an example of a good one.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from dotenv import dotenv_values

from mailer.errors import SettingsError
from mailer.pacing import PRESETS, RateLimits

Security = Literal["none", "starttls", "ssl"]
_SECURITIES: tuple[Security, ...] = ("none", "starttls", "ssl")

DEFAULT_DATABASE_URL = "sqlite:///var/mailer.db"
DEFAULT_CAMPAIGN = "schedules/egov-seminar-2559.toml"


@dataclass(frozen=True)
class Secret:
    """A value that never shows itself in logs, reprs or tracebacks."""

    value: str = field(repr=False)

    def __repr__(self) -> str:
        return "Secret('********')" if self.value else "Secret('')"

    __str__ = __repr__

    def __bool__(self) -> bool:
        return bool(self.value)


@dataclass(frozen=True)
class SmtpSettings:
    host: str = "127.0.0.1"
    port: int = 8025
    security: Security = "none"
    username: str = ""
    password: Secret = Secret("")
    timeout: float = 30.0
    ca_file: Path | None = None
    reconnect_every: int = 100

    @property
    def server_id(self) -> str:
        """How the ledger names this server (see the server guard in `outbox`)."""
        return f"{self.host}:{self.port}"

    @property
    def is_loopback(self) -> bool:
        return is_loopback_host(self.host)


@dataclass(frozen=True)
class ImapSettings:
    """The coordinator's mailbox; only needed by `mailer replies sync` without a path."""

    host: str = ""
    port: int = 993
    security: Security = "ssl"
    username: str = ""
    password: Secret = Secret("")
    folder: str = "INBOX"
    ca_file: Path | None = None

    @property
    def source_id(self) -> str:
        return f"imap:{self.username}@{self.host}:{self.port}/{self.folder}"


@dataclass(frozen=True)
class Settings:
    database_url: str = DEFAULT_DATABASE_URL
    campaign_path: Path = Path(DEFAULT_CAMPAIGN)
    templates_dir: Path = Path("templates")
    maildir: Path = Path("var/maildir")
    smtp: SmtpSettings = field(default_factory=SmtpSettings)
    max_consecutive_failures: int = 10
    limits: RateLimits = field(default_factory=RateLimits)
    rate_preset: str = "none"
    imap: ImapSettings = field(default_factory=ImapSettings)


def is_loopback_host(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def load_settings(environ: Mapping[str, str], dotenv_path: Path | None = Path(".env")) -> Settings:
    """Read settings from `.env` (if present) overlaid by `environ`.

    Raises `SettingsError` listing every problem at once.
    """
    values: dict[str, str] = {}
    if dotenv_path is not None and dotenv_path.is_file():
        values.update({k: v for k, v in dotenv_values(dotenv_path).items() if v is not None})
    values.update({k: v for k, v in environ.items()})
    problems: list[str] = []

    def text(name: str, default: str) -> str:
        raw = values.get(name, "")
        return raw.strip() if raw.strip() else default

    def integer(name: str, default: int, low: int, high: int, example: str) -> int:
        raw = values.get(name, "").strip()
        if not raw:
            return default
        try:
            number = int(raw)
        except ValueError:
            problems.append(f"{name}={raw!r} is not a whole number; for example {name}={example}")
            return default
        if not low <= number <= high:
            problems.append(
                f"{name}={number} must be between {low} and {high}; e.g. {name}={example}"
            )
            return default
        return number

    def number(name: str, default: float, example: str) -> float:
        raw = values.get(name, "").strip()
        if not raw:
            return default
        try:
            result = float(raw)
        except ValueError:
            problems.append(f"{name}={raw!r} is not a number of seconds; e.g. {name}={example}")
            return default
        if result <= 0:
            problems.append(f"{name}={raw!r} must be greater than 0; e.g. {name}={example}")
            return default
        return result

    database_url = text("DATABASE_URL", DEFAULT_DATABASE_URL)
    if not database_url.startswith(("sqlite:", "postgresql:", "postgresql+psycopg:")):
        problems.append(
            f"DATABASE_URL={database_url!r} is not supported; use sqlite:///var/mailer.db "
            "or postgresql+psycopg://user@127.0.0.1:5432/mailer"
        )
    database_url = database_url.replace("postgresql://", "postgresql+psycopg://", 1)

    host = text("SMTP_HOST", "127.0.0.1")
    if any(c in host for c in " /\r\n"):
        problems.append(f"SMTP_HOST={host!r} is not a host name; e.g. SMTP_HOST=smtp.example.org")
    port = integer("SMTP_PORT", 8025, 1, 65535, "587")
    security_raw = text("SMTP_SECURITY", "none").lower()
    security: Security = "none"
    if security_raw in _SECURITIES:
        security = security_raw
    else:
        problems.append(
            f"SMTP_SECURITY={security_raw!r} must be one of none, starttls, ssl; "
            "e.g. SMTP_SECURITY=starttls"
        )
    username = text("SMTP_USERNAME", "")
    password = values.get("SMTP_PASSWORD", "")
    if username and not password:
        problems.append("SMTP_USERNAME is set but SMTP_PASSWORD is empty; set both or neither")
    if password and not username:
        problems.append("SMTP_PASSWORD is set but SMTP_USERNAME is empty; set both or neither")
    if username and security == "none" and not is_loopback_host(host):
        problems.append(
            f"SMTP_SECURITY=none would send the SMTP password unencrypted to {host}; "
            "use SMTP_SECURITY=starttls (port 587) or ssl (port 465)"
        )
    ca_raw = text("SMTP_CA_FILE", "")
    ca_file = Path(ca_raw) if ca_raw else None
    if ca_file is not None and not ca_file.is_file():
        problems.append(
            f"SMTP_CA_FILE={ca_raw!r} does not exist; give the PEM file of the CA that signed "
            "the server's certificate, or leave it empty to use the system's CAs"
        )
    smtp = SmtpSettings(
        host=host,
        port=port,
        security=security,
        username=username,
        password=Secret(password),
        timeout=number("SMTP_TIMEOUT", 30.0, "30"),
        ca_file=ca_file,
        reconnect_every=integer("SMTP_RECONNECT_EVERY", 100, 1, 100_000, "100"),
    )
    campaign_path = Path(text("MAILER_CAMPAIGN", DEFAULT_CAMPAIGN))
    if not campaign_path.is_file():
        problems.append(
            f"MAILER_CAMPAIGN={str(campaign_path)!r}: no such file; "
            f"e.g. MAILER_CAMPAIGN={DEFAULT_CAMPAIGN}"
        )
    templates_dir = Path(text("MAILER_TEMPLATES", "templates"))
    if not templates_dir.is_dir():
        problems.append(
            f"MAILER_TEMPLATES={str(templates_dir)!r}: no such folder; "
            "e.g. MAILER_TEMPLATES=templates"
        )
    preset = text("MAILER_RATE_PRESET", "auto").lower()
    if preset == "auto":
        preset = "none" if smtp.is_loopback else "generic"
    if preset not in PRESETS:
        problems.append(
            f"MAILER_RATE_PRESET={preset!r} is not one of auto, {', '.join(PRESETS)}; "
            "e.g. MAILER_RATE_PRESET=microsoft365"
        )
        preset = "none"
    base = PRESETS[preset]

    def limit(name: str, default: int | None, example: str) -> int | None:
        value = integer(name, -1, 0, 10_000_000, example)
        return default if value == -1 else (value or None)

    limits = RateLimits(
        per_minute=limit("MAILER_RATE_PER_MINUTE", base.per_minute, "30"),
        per_hour=limit("MAILER_RATE_PER_HOUR", base.per_hour, "1000"),
        per_day=limit("MAILER_RATE_PER_DAY", base.per_day, "2000"),
        sessions=integer("MAILER_MAX_SESSIONS", base.sessions, 1, 64, "3"),
    )
    imap_security = text("IMAP_SECURITY", "ssl").lower()
    if imap_security not in _SECURITIES:
        problems.append(f"IMAP_SECURITY={imap_security!r} must be one of none, starttls, ssl")
        imap_security = "ssl"
    imap_host = text("IMAP_HOST", "")
    if imap_security == "none" and imap_host and not is_loopback_host(imap_host):
        problems.append(
            f"IMAP_SECURITY=none would send the mailbox password unencrypted to {imap_host}; "
            "use IMAP_SECURITY=ssl (port 993) or starttls (port 143)"
        )
    imap_ca = text("IMAP_CA_FILE", "")
    if imap_ca and not Path(imap_ca).is_file():
        problems.append(f"IMAP_CA_FILE={imap_ca!r} does not exist; give the CA's PEM file")
    imap = ImapSettings(
        host=imap_host,
        port=integer("IMAP_PORT", 993 if imap_security == "ssl" else 143, 1, 65535, "993"),
        security=imap_security,  # type: ignore[arg-type]
        username=text("IMAP_USERNAME", ""),
        password=Secret(values.get("IMAP_PASSWORD", "")),
        folder=text("IMAP_FOLDER", "INBOX"),
        ca_file=Path(imap_ca) if imap_ca else None,
    )
    settings = Settings(
        database_url=database_url,
        campaign_path=campaign_path,
        templates_dir=templates_dir,
        maildir=Path(text("MAILER_MAILDIR", "var/maildir")),
        smtp=smtp,
        max_consecutive_failures=integer("MAILER_MAX_FAILURES", 10, 1, 100_000, "10"),
        limits=limits,
        rate_preset=preset,
        imap=imap,
    )
    if problems:
        raise SettingsError(problems)
    return settings
