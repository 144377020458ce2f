"""Typed settings, read once from the environment and `.env` at the edge (the CLI).

Library code never reads `os.environ`: it receives a `Settings`. Every bad or missing
value is reported at once, each with an example of a good one. What a good host is lives
in `mailer.hosts`; how a URL is shown without its password, in `mailer.redact`. The DKIM
settings are read by `mailer.delivery.dkim`, SMTP_AUTH / IMAP_AUTH and the OAUTH_ settings
by `mailer.oauth` and MAILER_DNS_SERVER by `mailer.deliverability.resolver`, next to what
uses them.
"""

from __future__ import annotations

import io
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from dotenv import dotenv_values
from dotenv.parser import parse_stream

from mailer.deliverability.resolver import dns_servers
from mailer.delivery.dkim import DkimSettings, dkim_settings
from mailer.delivery.pacing import PRESETS, RateLimits
from mailer.errors import SettingsError
from mailer.errors import cut as cut
from mailer.hosts import host_problem
from mailer.hosts import is_loopback_host as is_loopback_host  # also reached from here
from mailer.oauth import OAuthSettings, SignIn, auth_setting, signin_setting
from mailer.redact import hide_secrets as hide_secrets
from mailer.redact import shown_url as shown_url
from mailer.values import Secret as Secret  # also reached from here
from mailer.web.settings import WebSettings as WebSettings
from mailer.web.settings import web_settings

Security = Literal["none", "starttls", "ssl"]
_SECURITIES: tuple[Security, ...] = ("none", "starttls", "ssl")

DEFAULT_DATABASE_URL = "sqlite:///var/mailer.db"
DEFAULT_CAMPAIGN = "schedules/egov-seminar-2559.toml"


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
    oauth: OAuthSettings | None = None  # SMTP_AUTH=microsoft: XOAUTH2 instead of the password

    @property
    def server_id(self) -> str:
        """How the ledger names this server (see `Ledger.guard_server`)."""
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
    oauth: OAuthSettings | None = None  # IMAP_AUTH=microsoft: XOAUTH2 instead of the password

    @property
    def source_id(self) -> str:
        return f"imap:{self.username}@{self.host}:{self.port}/{self.folder}"


@dataclass(frozen=True)
class Settings:
    database_url: str = field(default=DEFAULT_DATABASE_URL, repr=False)  # may hold a password
    campaign_path: Path = Path(DEFAULT_CAMPAIGN)
    templates_dir: Path = Path("templates")
    maildir: Path = Path("var/maildir")
    smtp: SmtpSettings = field(default_factory=SmtpSettings)
    max_consecutive_failures: int = 10
    limits: RateLimits = field(default_factory=RateLimits)
    rate_preset: str = "none"
    imap: ImapSettings = field(default_factory=ImapSettings)
    web: WebSettings = field(default_factory=WebSettings)
    warnings: tuple[str, ...] = ()  # worth saying, not worth refusing to run (see `_dotenv`)
    dkim: DkimSettings | None = None  # None: messages go out unsigned
    # The DNS servers `check --deliverability` asks, (address, port); empty: the system's.
    dns_servers: tuple[tuple[str, int], ...] = ()
    signin: SignIn | None = None  # `mailer auth`: a user's sign-in, whatever SMTP_AUTH says


_DATABASE_EXAMPLE = (
    "e.g. DATABASE_URL=sqlite:///var/mailer.db or postgresql://user:password@127.0.0.1:5432/mailer"
)


def _database_problem(url: str) -> str | None:
    from sqlalchemy.engine import make_url  # here: `mailer --help` need not load SQLAlchemy
    from sqlalchemy.exc import ArgumentError

    shown = shown_url(url)
    if not url.startswith(("sqlite:", "postgresql:", "postgresql+psycopg:")):
        return f"DATABASE_URL={shown!r} is not supported; {_DATABASE_EXAMPLE}"
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):  # no traceback: its text may quote the password
        escape = " (write an @, :, / or % in the password as %40, %3A, %2F, %25)"
        return (
            f"DATABASE_URL={shown!r} is not a database URL; {_DATABASE_EXAMPLE}"
            f"{escape if '@' in url else ''}"
        )
    if url.partition("?")[0].count("@") > 1:  # else a piece of the password is the host
        return f"DATABASE_URL={shown!r} has more than one @; write an @ in the password as %40"
    if "@" in url.partition("?")[2] or "@" in url.partition("#")[2]:  # a ? or # in the password
        return (
            f"DATABASE_URL={shown!r} has an @ after a ? or #; write a ? in the password as %3F "
            "and a # as %23"
        )
    if parsed.get_backend_name() != "sqlite":
        return None
    if not parsed.database or parsed.database == ":memory:":
        return f"DATABASE_URL={shown!r} names no file; e.g. DATABASE_URL=sqlite:///var/mailer.db"
    if Path(parsed.database).is_dir():
        return (
            f"DATABASE_URL={shown!r} names a folder, not a database file; "
            "e.g. DATABASE_URL=sqlite:///var/mailer.db"
        )
    return None


_SECRETS = (
    "SMTP_PASSWORD",
    "IMAP_PASSWORD",
    "DATABASE_URL",
    "MAILER_SECRET_KEY",
    "OAUTH_CLIENT_SECRET",
    "MAILER_DASHBOARD_PASSWORD_HASH",
    "MAILER_DASHBOARD_READONLY_HASH",
)


def _dotenv(path: Path, problems: list[str]) -> tuple[dict[str, str], dict[str, str]]:
    """The values of a `.env` file, taken literally (no `${…}` expansion), and for each
    secret written unquoted with " #" in it, a warning: python-dotenv reads " #" in an
    unquoted value as the start of a comment, so `SMTP_PASSWORD=abc #def` is `abc`."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        problems.append(f"{path} is not UTF-8 text; save it as UTF-8")
        return {}, {}
    except OSError as exc:
        problems.append(f"{path} cannot be read ({exc.strerror}); check its permissions")
        return {}, {}
    values = dotenv_values(stream=io.StringIO(text), interpolate=False)
    warnings: dict[str, str] = {}
    for binding in parse_stream(io.StringIO(text)):
        if binding.error or binding.key not in _SECRETS:
            continue
        written = binding.original.string.partition("=")[2].strip()
        if written[:1] not in ("'", '"') and re.search(r"\s#", written):
            warnings[binding.key] = (
                f"{path}, line {binding.original.line}: {binding.key} is not quoted, so "
                'everything from " #" on is read as a comment (and dropped). If the # belongs '
                f"to the value, write it in single quotes: {binding.key}='…'"
            )
    return {k: v for k, v in values.items() if v is not None}, warnings


class _Values:
    """The raw values (`.env` overlaid by the environment), read by name and type. A value
    that is wrong is appended to `problems` and its default used, so every problem is found
    in one reading."""

    def __init__(self, values: Mapping[str, str], problems: list[str]) -> None:
        self.values = values
        self.problems = problems

    def raw(self, name: str) -> str:
        return self.values.get(name, "")

    def text(self, name: str, default: str) -> str:
        raw = self.raw(name)
        return raw.strip() if raw.strip() else default

    def integer(self, name: str, default: int, low: int, high: int, example: str) -> int:
        raw = self.raw(name).strip()
        if not raw:
            return default
        try:
            number = int(raw)
        except ValueError:
            self.problems.append(
                f"{name}={cut(raw)!r} is not a whole number; for example {name}={example}"
            )
            return default
        if not low <= number <= high:
            self.problems.append(
                f"{name}={number} must be between {low} and {high}; e.g. {name}={example}"
            )
            return default
        return number

    def seconds(self, name: str, default: float, high: float, example: str) -> float:
        raw = self.raw(name).strip()
        if not raw:
            return default
        try:
            result = float(raw)
        except ValueError:
            result = math.nan
        if not 0 < result <= high:  # also refuses nan and inf
            self.problems.append(
                f"{name}={cut(raw)!r} is not a number of seconds greater than 0 and at most "
                f"{high:g}; e.g. {name}={example}"
            )
            return default
        return result

    def limit(self, name: str, default: int | None, example: str) -> int | None:
        """A rate limit: empty keeps `default` (the preset's), 0 means none."""
        value = self.integer(name, -1, 0, 10_000_000, example)
        return default if value == -1 else (value or None)

    def security(self, name: str, default: Security, example: str = "") -> Security:
        raw = self.text(name, default).lower()
        for security in _SECURITIES:
            if raw == security:
                return security
        self.problems.append(
            f"{name}={cut(raw)!r} must be one of none, starttls, ssl"
            + (f"; e.g. {name}={example}" if example else "")
        )
        return default

    def host(self, name: str, default: str, example: str) -> str:
        host, problem = host_problem(name, self.text(name, default), example)
        if problem:
            self.problems.append(problem)
        return host


def _database_url(v: _Values) -> str:
    url = v.text("DATABASE_URL", DEFAULT_DATABASE_URL)
    if problem := _database_problem(url):
        v.problems.append(problem)
    return url.replace("postgresql://", "postgresql+psycopg://", 1)


def _smtp(v: _Values) -> SmtpSettings:
    host = v.host("SMTP_HOST", "127.0.0.1", "smtp.example.org")
    port = v.integer("SMTP_PORT", 8025, 1, 65535, "587")
    security = v.security("SMTP_SECURITY", "none", "starttls")
    username = v.text("SMTP_USERNAME", "")
    password = v.raw("SMTP_PASSWORD")
    oauth = auth_setting(v, "SMTP_AUTH", "SMTP_USERNAME")
    if username and not password and oauth is None:
        v.problems.append("SMTP_USERNAME is set but SMTP_PASSWORD is empty; set both or neither")
    if password and not username:
        v.problems.append("SMTP_PASSWORD is set but SMTP_USERNAME is empty; set both or neither")
    if username and security == "none" and not is_loopback_host(host):
        v.problems.append(
            f"SMTP_SECURITY=none would send the SMTP password unencrypted to {host}; "
            "use SMTP_SECURITY=starttls (port 587) or ssl (port 465)"
        )
    ca_raw = v.text("SMTP_CA_FILE", "")
    ca_file = Path(ca_raw) if ca_raw else None
    if ca_file is not None and not ca_file.is_file():
        v.problems.append(
            f"SMTP_CA_FILE={ca_raw!r} does not exist; give the PEM file of the CA that signed "
            "the server's certificate, or leave it empty to use the system's CAs"
        )
    return SmtpSettings(
        host=host,
        port=port,
        security=security,
        username=username,
        password=Secret(password),
        timeout=v.seconds("SMTP_TIMEOUT", 30.0, 3600, "30"),
        ca_file=ca_file,
        reconnect_every=v.integer("SMTP_RECONNECT_EVERY", 100, 1, 100_000, "100"),
        oauth=oauth,
    )


def _paths(v: _Values) -> tuple[Path, Path]:
    """The campaign file and the templates folder, which must exist."""
    campaign_path = Path(v.text("MAILER_CAMPAIGN", DEFAULT_CAMPAIGN))
    if not campaign_path.is_file():
        v.problems.append(
            f"MAILER_CAMPAIGN={str(campaign_path)!r}: no such file; "
            f"e.g. MAILER_CAMPAIGN={DEFAULT_CAMPAIGN}"
        )
    templates_dir = Path(v.text("MAILER_TEMPLATES", "templates"))
    if not templates_dir.is_dir():
        v.problems.append(
            f"MAILER_TEMPLATES={str(templates_dir)!r}: no such folder; "
            "e.g. MAILER_TEMPLATES=templates"
        )
    return campaign_path, templates_dir


def _limits(v: _Values, smtp: SmtpSettings) -> tuple[RateLimits, str]:
    """The sending limits: a preset (by default, none on loopback, else generic), each of
    its numbers overridden by its own setting; and the preset's name."""
    preset = v.text("MAILER_RATE_PRESET", "auto").lower()
    if preset == "auto":
        preset = "none" if smtp.is_loopback else "generic"
    if preset not in PRESETS:
        v.problems.append(
            f"MAILER_RATE_PRESET={cut(preset)!r} is not one of auto, {', '.join(PRESETS)}; "
            "e.g. MAILER_RATE_PRESET=microsoft365"
        )
        preset = "none"
    base = PRESETS[preset]
    limits = RateLimits(
        per_minute=v.limit("MAILER_RATE_PER_MINUTE", base.per_minute, "30"),
        per_hour=v.limit("MAILER_RATE_PER_HOUR", base.per_hour, "1000"),
        per_day=v.limit("MAILER_RATE_PER_DAY", base.per_day, "2000"),
        sessions=v.integer("MAILER_MAX_SESSIONS", base.sessions, 1, 64, "3"),
    )
    return limits, preset


def _imap(v: _Values) -> ImapSettings:
    security = v.security("IMAP_SECURITY", "ssl")
    host = v.host("IMAP_HOST", "", "imap.example.org") if v.text("IMAP_HOST", "") else ""
    if security == "none" and host and not is_loopback_host(host):
        v.problems.append(
            f"IMAP_SECURITY=none would send the mailbox password unencrypted to {host}; "
            "use IMAP_SECURITY=ssl (port 993) or starttls (port 143)"
        )
    ca = v.text("IMAP_CA_FILE", "")
    if ca and not Path(ca).is_file():
        v.problems.append(f"IMAP_CA_FILE={ca!r} does not exist; give the CA's PEM file")
    return ImapSettings(
        host=host,
        port=v.integer("IMAP_PORT", 993 if security == "ssl" else 143, 1, 65535, "993"),
        security=security,
        username=v.text("IMAP_USERNAME", ""),
        password=Secret(v.raw("IMAP_PASSWORD")),
        folder=v.text("IMAP_FOLDER", "INBOX"),
        ca_file=Path(ca) if ca else None,
        oauth=auth_setting(v, "IMAP_AUTH", "IMAP_USERNAME"),
    )


def load_settings(environ: Mapping[str, str], dotenv_path: Path | None = Path(".env")) -> Settings:
    """Read settings from `.env` (if present) overlaid by `environ`: one group at a time
    (database, SMTP, paths, limits, IMAP, DKIM, DNS, web), each taking its values and adding
    its problems.

    Raises `SettingsError` listing every problem at once.
    """
    values: dict[str, str] = {}
    problems: list[str] = []
    warnings: dict[str, str] = {}
    if dotenv_path is not None and dotenv_path.is_file():
        values, warnings = _dotenv(dotenv_path, problems)
    values.update({k: v for k, v in environ.items()})
    warnings = {k: w for k, w in warnings.items() if k not in environ}  # the environment won
    v = _Values(values, problems)
    database_url = _database_url(v)
    smtp = _smtp(v)
    campaign_path, templates_dir = _paths(v)
    limits, preset = _limits(v, smtp)
    imap = _imap(v)
    web = web_settings(v)
    settings = Settings(
        database_url=database_url,
        campaign_path=campaign_path,
        templates_dir=templates_dir,
        maildir=Path(v.text("MAILER_MAILDIR", "var/maildir")),
        smtp=smtp,
        max_consecutive_failures=v.integer("MAILER_MAX_FAILURES", 10, 1, 100_000, "10"),
        limits=limits,
        rate_preset=preset,
        imap=imap,
        web=web,
        warnings=tuple(warnings.values()),
        dkim=dkim_settings(v),
        dns_servers=dns_servers(v.raw("MAILER_DNS_SERVER"), problems),
        signin=signin_setting(v),
    )
    if problems:
        raise SettingsError(problems)
    return settings
