"""Typed settings, read once from the environment and `.env` at the edge (the CLI).

Library code never reads `os.environ`: it receives a `Settings`. Every bad or missing
value is reported at once, each with an example of a good one.
"""

from __future__ import annotations

import io
import ipaddress
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import idna
from dotenv import dotenv_values
from dotenv.parser import parse_stream

from mailer.delivery.pacing import PRESETS, RateLimits
from mailer.errors import SettingsError

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
    database_url: str = field(default=DEFAULT_DATABASE_URL, repr=False)  # may hold a password
    campaign_path: Path = Path(DEFAULT_CAMPAIGN)
    templates_dir: Path = Path("templates")
    maildir: Path = Path("var/maildir")
    smtp: SmtpSettings = field(default_factory=SmtpSettings)
    max_consecutive_failures: int = 10
    limits: RateLimits = field(default_factory=RateLimits)
    rate_preset: str = "none"
    imap: ImapSettings = field(default_factory=ImapSettings)
    warnings: tuple[str, ...] = ()  # worth saying, not worth refusing to run (see `_dotenv`)


def is_loopback_host(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def cut(value: str, limit: int = 60) -> str:
    """A value from outside, short enough to quote in a message."""
    return value if len(value) <= limit else f"{value[:limit]}… ({len(value)} characters)"


def _userinfo(url: str) -> tuple[str, str, str] | None:
    """(scheme://user, password, what follows it) of a URL that may carry a password, read
    without parsing it: a URL too broken for SQLAlchemy must still be shown without its
    password. Everything up to the last "@" counts as the login, so a password with an
    unescaped "@" or "/" is hidden whole; with no "@", in `scheme://user:x`, a non-numeric
    x (no port, so perhaps a password) is hidden too."""
    scheme, colon, rest = url.partition(":")
    after = rest.lstrip("/")
    head = f"{scheme}{colon}{rest[: len(rest) - len(after)]}"
    login, at, host = after.rpartition("@")
    if at:
        user, sep, password = login.partition(":")
        return (head + user, password, at + host) if sep else None
    authority = re.split(r"[/?#]", after, maxsplit=1)[0]
    user, _, password = authority.partition(":")
    if not colon or not password or authority.startswith("[") or password.isdigit():
        return None
    return head + user, password, after[len(authority) :]


_QUERY_PASSWORD = re.compile(  # password=, and libpq's sslpassword= (a key's passphrase) …
    r"(?i)([?&](?:ssl)?(?:password|passphrase|passfile|key|secret|token)[a-z_]*=)([^&]*)"
)


def shown_url(url: str) -> str:
    """`url` fit for a message: its password (also a `?password=` one) as ***, and cut."""
    parts = _userinfo(url)
    shown = f"{parts[0]}:***{parts[2]}" if parts else url
    return cut(_QUERY_PASSWORD.sub(r"\1***", shown), 120)


def hide_secrets(message: str, url: str) -> str:
    """`message` (e.g. a database driver's words) with any password of `url` in it masked."""
    parts = _userinfo(url)
    secrets = [parts[1]] if parts else []
    secrets += [m.group(2) for m in _QUERY_PASSWORD.finditer(url)]
    for secret in sorted({s for s in secrets if len(s) >= 3}, key=len, reverse=True):
        message = message.replace(secret, "***")
    return message


_LABEL = re.compile(r"[A-Za-z0-9-]{1,63}")


def _host_problem(name: str, host: str, example: str) -> tuple[str, str | None]:
    """(the host as it will be used, what is wrong with it or None). A host is an IPv4 or
    IPv6 address, or a name of letters, digits and hyphens in labels of 1–63 characters, 253
    at most in all. A name in Thai (or any other script) is turned into its ASCII form
    (xn--…) with IDNA 2008, which is what the DNS holds."""
    try:
        ipaddress.ip_address(host)
        return host, None
    except ValueError:
        pass
    wrong = f"{name}={cut(host)!r} is not a host name or IP address"
    ascii_host = host
    if not host.isascii():
        try:
            ascii_host = idna.encode(host, uts46=True).decode("ascii")
        except idna.IDNAError as exc:
            return host, f"{wrong} ({exc}); e.g. {name}={example}"
    labels = ascii_host.removesuffix(".").split(".")
    why = ""
    if host.startswith("[") and host.endswith("]"):
        why = "write an IPv6 address without the brackets"
    elif len(ascii_host.removesuffix(".")) > 253:
        why = f"it is {len(ascii_host)} characters long, at most 253 are allowed"
    elif any(not label for label in labels):
        why = "it has an empty label (two dots in a row, or a dot at the start)"
    elif long := next((label for label in labels if len(label) > 63), None):
        why = f"the label {cut(long, 20)!r} is {len(long)} characters long, at most 63 are allowed"
    elif bad := next((label for label in labels if not _LABEL.fullmatch(label)), None):
        why = f"the label {cut(bad, 20)!r} has a character other than a letter, digit or hyphen"
    elif any(label.startswith("-") or label.endswith("-") for label in labels):
        why = "a label starts or ends with a hyphen"
    elif labels[-1].isdigit():
        why = "it looks like an IP address but is not one"
    return ascii_host, (f"{wrong}: {why}; e.g. {name}={example}" if why else None)


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


_SECRETS = ("SMTP_PASSWORD", "IMAP_PASSWORD", "DATABASE_URL")


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


def load_settings(environ: Mapping[str, str], dotenv_path: Path | None = Path(".env")) -> Settings:
    """Read settings from `.env` (if present) overlaid by `environ`.

    Raises `SettingsError` listing every problem at once.
    """
    values: dict[str, str] = {}
    problems: list[str] = []
    warnings: dict[str, str] = {}
    if dotenv_path is not None and dotenv_path.is_file():
        values, warnings = _dotenv(dotenv_path, problems)
    values.update({k: v for k, v in environ.items()})
    warnings = {k: w for k, w in warnings.items() if k not in environ}  # the environment won

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
            problems.append(
                f"{name}={cut(raw)!r} is not a whole number; for example {name}={example}"
            )
            return default
        if not low <= number <= high:
            problems.append(
                f"{name}={number} must be between {low} and {high}; e.g. {name}={example}"
            )
            return default
        return number

    def seconds(name: str, default: float, high: float, example: str) -> float:
        raw = values.get(name, "").strip()
        if not raw:
            return default
        try:
            result = float(raw)
        except ValueError:
            result = math.nan
        if not 0 < result <= high:  # also refuses nan and inf
            problems.append(
                f"{name}={cut(raw)!r} is not a number of seconds greater than 0 and at most "
                f"{high:g}; e.g. {name}={example}"
            )
            return default
        return result

    database_url = text("DATABASE_URL", DEFAULT_DATABASE_URL)
    if problem := _database_problem(database_url):
        problems.append(problem)
    database_url = database_url.replace("postgresql://", "postgresql+psycopg://", 1)

    host, problem = _host_problem("SMTP_HOST", text("SMTP_HOST", "127.0.0.1"), "smtp.example.org")
    if problem:
        problems.append(problem)
    port = integer("SMTP_PORT", 8025, 1, 65535, "587")
    security_raw = text("SMTP_SECURITY", "none").lower()
    security: Security = "none"
    if security_raw in _SECURITIES:
        security = security_raw
    else:
        problems.append(
            f"SMTP_SECURITY={cut(security_raw)!r} must be one of none, starttls, ssl; "
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
        timeout=seconds("SMTP_TIMEOUT", 30.0, 3600, "30"),
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
            f"MAILER_RATE_PRESET={cut(preset)!r} is not one of auto, {', '.join(PRESETS)}; "
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
        problems.append(f"IMAP_SECURITY={cut(imap_security)!r} must be one of none, starttls, ssl")
        imap_security = "ssl"
    imap_host = text("IMAP_HOST", "")
    if imap_host:
        imap_host, problem = _host_problem("IMAP_HOST", imap_host, "imap.example.org")
        if problem:
            problems.append(problem)
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
        warnings=tuple(warnings.values()),
    )
    if problems:
        raise SettingsError(problems)
    return settings
