"""Shared fixtures: real SMTP on loopback, real SQLite and PostgreSQL, a controllable clock.

In CI (CI=true) a missing PostgreSQL is a failure, never a skip.
"""

from __future__ import annotations

import os
import shutil
import socket
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, NoReturn

import psycopg
import pytest

from mailer.delivery.devserver import DevServer
from mailer.settings import Settings, load_settings
from mailer.workspace import Workspace

ROOT = Path(__file__).resolve().parent.parent
CAMPAIGN = ROOT / "schedules" / "egov-seminar-2559.toml"
TEMPLATES = ROOT / "templates"
CONTACTS = ROOT / "contacts.csv"
PG_ADMIN = os.environ.get("TEST_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/test")
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def needed(message: str) -> NoReturn:
    """A service or tool a test needs is missing: a skip on a developer's machine, a failure
    in CI (`.ci/run` installs and starts everything the tests need)."""
    if IN_CI:
        pytest.fail(f"{message}; in CI this is a failure: .ci/run must provide it")
    pytest.skip(message)


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--no-first-run",
]  # fmt: skip


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Debian's Chromium driven by Playwright (no downloaded browser), one per module."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        needed("Playwright is not installed (pip install -e '.[test]')")
    if not Path(CHROMIUM).is_file():
        needed("Chromium is not installed (apt-get install chromium fonts-thai-tlwg)")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        try:
            yield launched
        finally:
            launched.close()


class FakeClock:
    """Frozen time that moves only when told to, or when the code under test sleeps."""

    def __init__(self, start: datetime) -> None:
        self.now = start
        self.sleeps: list[float] = []

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kwargs: float) -> None:
        self.now += timedelta(**kwargs)

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(datetime(2016, 11, 1, 2, 0, tzinfo=UTC))  # 09:00 in Bangkok


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Mailhog:
    """A real SMTP server on loopback (the product's own dev server) and its Maildir."""

    server: DevServer
    port: int
    maildir: Path

    def messages(self) -> list[bytes]:
        folder = self.maildir / "new"
        return [p.read_bytes() for p in sorted(folder.iterdir())] if folder.exists() else []


@pytest.fixture
def smtp_server(tmp_path: Path) -> Iterator[Mailhog]:
    port = free_port()
    maildir = tmp_path / "received"
    with DevServer("127.0.0.1", port, maildir) as server:
        yield Mailhog(server, port, maildir)


def _postgres_database() -> Iterator[str]:
    name = f"mailer_test_{uuid.uuid4().hex[:10]}"
    try:
        admin = psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        needed(f"PostgreSQL is not reachable at {PG_ADMIN}: {exc}")
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        base = PG_ADMIN.rsplit("/", 1)[0]
        yield f"{base.replace('postgresql://', 'postgresql+psycopg://', 1)}/{name}"
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'mailer.db'}"
    else:
        yield from _postgres_database()


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh PostgreSQL database, for what only PostgreSQL does (e.g. lose a connection)."""
    yield from _postgres_database()


@dataclass
class Dovecot:
    port: int  # IMAP, STARTTLS offered
    ssl_port: int  # IMAPS (implicit TLS)
    ca_file: Path  # the test CA that signed the server's certificate
    username: str
    password: str
    root: Path  # its files (dovecot.conf; the users' Maildirs under mail/<user>)
    binary: str = "dovecot"

    def start(self) -> None:
        """Start the server (the fixture does; a test may stop and start it again)."""
        import subprocess
        import time

        subprocess.run([self.binary, "-c", str(self.root / "dovecot.conf")], check=True)
        deadline = time.monotonic() + 20
        while True:
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", self.port)) == 0:
                    break
            assert time.monotonic() < deadline, (self.root / "dovecot.log").read_text()
            time.sleep(0.1)

    def stop(self) -> None:
        import subprocess

        subprocess.run([self.binary, "-c", str(self.root / "dovecot.conf"), "stop"], check=False)


DOVECOT_CONF = """
base_dir = {root}/run
state_dir = {root}/state
listen = 127.0.0.1
protocols = imap
ssl = yes
ssl_cert = <{root}/cert.pem
ssl_key = <{root}/key.pem
disable_plaintext_auth = no
auth_mechanisms = plain login
mail_location = maildir:{root}/mail/%u
log_path = {root}/dovecot.log
default_internal_user = dovecot
default_login_user = dovenull
first_valid_uid = 1
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {root}/users
}}
userdb {{
  driver = static
  args = uid=dovecot gid=dovecot home={root}/mail/%u
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {ssl_port}
  }}
}}
"""


def run_dovecot(extra_conf: str = "") -> Iterator[Dovecot]:
    """A real Dovecot IMAP server on loopback with one test user (Debian's dovecot-imapd;
    .ci/run installs it); `extra_conf` is appended to its configuration."""

    binary = shutil.which("dovecot") or "/usr/sbin/dovecot"
    if not Path(binary).exists():
        needed("Dovecot is not installed (apt-get install dovecot-imapd)")
    root = Path("/tmp") / f"mailer-dovecot-{uuid.uuid4().hex[:8]}"  # short: socket paths
    for sub in ("run", "state", "mail"):
        (root / sub).mkdir(parents=True)
    shutil.chown(root / "mail", "dovecot", "dovecot")
    (root / "users").write_text(
        "coordinator:{PLAIN}s3cret-imap\nthai-password:{PLAIN}รหัสผ่าน-ไทย\n", encoding="utf-8"
    )
    import trustme

    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    cert.private_key_pem.write_to_path(str(root / "key.pem"))
    cert.cert_chain_pems[0].write_to_path(str(root / "cert.pem"))
    ca.cert_pem.write_to_path(str(root / "ca.pem"))
    port, ssl_port = free_port(), free_port()
    conf = DOVECOT_CONF.format(root=root, port=port, ssl_port=ssl_port) + extra_conf
    (root / "dovecot.conf").write_text(conf, encoding="utf-8")
    server = Dovecot(port, ssl_port, root / "ca.pem", "coordinator", "s3cret-imap", root, binary)
    try:
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def dovecot() -> Iterator[Dovecot]:
    yield from run_dovecot()


def cli_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """The environment a command line test runs `mailer` in: its own SQLite file and
    Maildir, the shipped campaign and templates, and `extra` on top."""
    return {
        "DATABASE_URL": f"sqlite:///{tmp_path / 'mailer.db'}",
        "MAILER_CAMPAIGN": str(CAMPAIGN),
        "MAILER_TEMPLATES": str(TEMPLATES),
        "MAILER_MAILDIR": str(tmp_path / "maildir"),
        **extra,
    }


def make_settings(tmp_path: Path, **env: str) -> Settings:
    values = {
        "DATABASE_URL": f"sqlite:///{tmp_path / 'mailer.db'}",
        "MAILER_CAMPAIGN": str(CAMPAIGN),
        "MAILER_TEMPLATES": str(TEMPLATES),
        "MAILER_MAILDIR": str(tmp_path / "maildir"),
        "SMTP_PORT": "1",
    }
    values.update(env)
    return load_settings(values, dotenv_path=None)


@pytest.fixture
def make_ws(tmp_path: Path, clock: FakeClock) -> Iterator[object]:
    made: list[Workspace] = []

    def factory(**env: str) -> Workspace:
        ws = Workspace(make_settings(tmp_path, **env), clock=clock, sleep=clock.sleep)
        made.append(ws)
        return ws

    yield factory
    for ws in made:
        ws.close()
