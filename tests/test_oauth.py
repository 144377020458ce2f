"""XOAUTH2 (#15 item 1): Microsoft 365 app-only sign-in through MSAL against a local identity
server over HTTPS (tests/identity_server.py); a real SMTP server on loopback that takes AUTH
XOAUTH2 only with a live token that server issued, and a real Dovecot whose oauth2 passdb
asks that server whether a token is live."""

from __future__ import annotations

import base64
import json
import logging
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.smtp import AuthResult
from typer.testing import CliRunner

from mailer.cli import app
from mailer.errors import SettingsError, TransportError
from mailer.oauth import token_source
from mailer.replies.sources import close, open_folder
from tests.conftest import Dovecot, cli_env, make_settings, run_dovecot
from tests.helpers import write_synthetic_contacts
from tests.identity_server import CLIENT_ID, CLIENT_SECRET, TENANT, IdentityServer, identity_server
from tests.scripted_smtp import Script, ScriptedHandler, ScriptedServer

MAILBOX = "seminar@ega.example"
MESSAGE = b"Subject: sample\r\n\r\nHello\r\n"


class XOAuth2Handler(ScriptedHandler):
    """AUTH XOAUTH2 for `MAILBOX` with a token the identity server says is live; before the
    AUTHs numbered in `revoke_at` (1-based), every token is revoked."""

    def __init__(self, script: Script, idp: IdentityServer, revoke_at: set[int]) -> None:
        super().__init__(script)
        self.idp = idp
        self.revoke_at = revoke_at
        self.auths: list[str] = []  # the code answered to each AUTH

    async def auth_XOAUTH2(self, server: Any, args: list[str]) -> AuthResult:
        if len(self.auths) + 1 in self.revoke_at:
            self.idp.revoke_all()
        raw = base64.b64decode(args[1]).decode() if len(args) == 2 else ""
        given = re.fullmatch("user=(.*)\x01auth=Bearer (.*)\x01\x01", raw)
        ok = (
            given is not None
            and given[1] == MAILBOX
            and self.idp.live(given[2])
            and self.idp.subjects.get(given[2], MAILBOX) == MAILBOX  # Google: for whom
        )
        self.auths.append("235" if ok else "535")
        return AuthResult(success=ok, handled=False)


def xoauth2_server(script: Script, idp: IdentityServer, revoke_at: set[int]) -> ScriptedServer:
    handler = XOAuth2Handler(script, idp, revoke_at)
    return ScriptedServer(script, handler=handler, without_auth=["PLAIN", "LOGIN"])


def oauth_env(idp: IdentityServer, provider: str = "microsoft") -> dict[str, str]:
    if provider == "google":
        key = idp.service_account_file(idp.ca_file.with_name("service-account.json"))
        return {
            "SMTP_AUTH": "google",
            "SMTP_USERNAME": MAILBOX,
            "OAUTH_SERVICE_ACCOUNT_FILE": str(key),
            "OAUTH_CA_FILE": str(idp.ca_file),
        }
    return {
        "SMTP_AUTH": "microsoft",
        "SMTP_USERNAME": MAILBOX,
        "OAUTH_TENANT": TENANT,
        "OAUTH_CLIENT_ID": CLIENT_ID,
        "OAUTH_CLIENT_SECRET": CLIENT_SECRET,
        "OAUTH_AUTHORITY": idp.authority,
        "OAUTH_CA_FILE": str(idp.ca_file),
    }


def send_batch(
    tmp_path: Path, server: ScriptedServer, idp: IdentityServer, provider: str = "microsoft"
) -> tuple[Any, dict[str, str]]:
    env = {"SMTP_PORT": str(server.port), "SMTP_RECONNECT_EVERY": "2", **oauth_env(idp, provider)}
    return send_batch_env(tmp_path, env)


def send_batch_env(tmp_path: Path, settings: dict[str, str]) -> tuple[Any, dict[str, str]]:
    """Six synthetic offices imported and sent their invitations with these settings."""
    contacts = tmp_path / "offices.csv"
    write_synthetic_contacts(contacts, 6)
    env = cli_env(tmp_path, **settings)
    runner = CliRunner()
    imported = runner.invoke(app, ["import", str(contacts)], env=env, catch_exceptions=False)
    assert imported.exit_code == 0, imported.output
    return runner.invoke(app, ["send", "invitations"], env=env, catch_exceptions=False), env


def delivered(tmp_path: Path, env: dict[str, str]) -> list[str]:
    listed = CliRunner().invoke(app, ["deliveries", "--json"], env=env, catch_exceptions=False)
    return sorted(str(row["state"]) for row in json.loads(listed.output))


PROVIDERS = pytest.mark.parametrize("provider", ["microsoft", "google"])


@PROVIDERS
def test_a_batch_signs_in_with_one_cached_token(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, provider: str
) -> None:
    caplog.set_level(logging.DEBUG)
    script = Script()
    with identity_server(tmp_path) as idp, xoauth2_server(script, idp, set()) as server:
        result, env = send_batch(tmp_path, server, idp, provider)
    assert result.exit_code == 0, result.output
    assert sorted(script.received_by(f"o{n:05d}@synthetic.example") for n in range(6)) == [1] * 6
    assert server.controller.handler.auths == ["235", "235", "235"]  # type: ignore[attr-defined]
    assert len(idp.issued) == 1  # three sessions, one token: MSAL's cache
    assert idp.requests == (
        ["POST /google/token"]
        if provider == "google"
        else [
            f"GET /{TENANT}/v2.0/.well-known/openid-configuration",
            f"POST /{TENANT}/oauth2/v2.0/token",
        ]
    )
    assert delivered(tmp_path, env) == ["sent"] * 6
    for shown in (result.output, caplog.text):
        assert CLIENT_SECRET not in shown
        assert idp.issued[0] not in shown


@PROVIDERS
def test_a_token_near_its_expiry_is_fetched_again_mid_batch(tmp_path: Path, provider: str) -> None:
    script = Script(pace=0.6)  # six messages: longer than a token lives
    with identity_server(tmp_path, expires_in=2) as idp, xoauth2_server(script, idp, set()) as s:
        result, env = send_batch(tmp_path, s, idp, provider)
        first_died = not idp.live(idp.issued[0])
    assert result.exit_code == 0, result.output
    assert s.controller.handler.auths == ["235", "235", "235"]  # type: ignore[attr-defined]
    assert len(idp.issued) == 3  # a token with minutes left is not used again
    assert first_died  # so the first session's token would have been refused by the third
    assert delivered(tmp_path, env) == ["sent"] * 6


@PROVIDERS
def test_a_535_mid_run_signs_in_again_once_and_nothing_is_uncertain(
    tmp_path: Path, provider: str
) -> None:
    script = Script()
    with identity_server(tmp_path) as idp, xoauth2_server(script, idp, {2}) as server:
        result, env = send_batch(tmp_path, server, idp, provider)
    assert result.exit_code == 0, result.output
    assert server.controller.handler.auths == ["235", "535", "235", "235"]  # type: ignore[attr-defined]
    assert len(idp.issued) == 2
    assert sorted(script.received_by(f"o{n:05d}@synthetic.example") for n in range(6)) == [1] * 6
    assert delivered(tmp_path, env) == ["sent"] * 6


def test_a_second_535_stops_the_run_before_the_message_and_names_the_tenant_setup(
    tmp_path: Path,
) -> None:
    script = Script()
    with identity_server(tmp_path) as idp, xoauth2_server(script, idp, {1, 2}) as server:
        settings = make_settings(tmp_path, SMTP_PORT=str(server.port), **oauth_env(idp))
        from mailer.delivery.transport import SmtpTransport

        with pytest.raises(TransportError) as caught:
            SmtpTransport(settings.smtp).connect()
    message = str(caught.value)
    assert f"refused the login of SMTP_USERNAME={MAILBOX!r}: 535" in message
    assert "New-ServicePrincipal" in message
    assert "Nothing was sent" in message
    assert CLIENT_SECRET not in message
    assert script.mail_commands == 0


def test_a_wrong_client_secret_is_an_error_without_the_secret(tmp_path: Path) -> None:
    wrong = "wrong~secret-value-9876"
    with identity_server(tmp_path) as idp, xoauth2_server(Script(), idp, set()) as server:
        _, env = send_batch(tmp_path, server, idp)
        env["OAUTH_CLIENT_SECRET"] = wrong
        result = CliRunner().invoke(app, ["send", "invitations"], env=env)
    assert result.exit_code == 1
    assert "refused OAUTH_CLIENT_ID=" in result.output
    assert "invalid_client" in result.output
    assert wrong not in result.output
    assert "Traceback" not in result.output


def test_the_identity_servers_certificate_is_verified(tmp_path: Path) -> None:
    with identity_server(tmp_path) as idp:
        env = oauth_env(idp)
        del env["OAUTH_CA_FILE"]
        settings = make_settings(tmp_path, **env)
        assert settings.smtp.oauth is not None
        with pytest.raises(TransportError, match="CERTIFICATE_VERIFY_FAILED") as caught:
            token_source(settings.smtp.oauth).token()
    assert "OAUTH_CA_FILE" in str(caught.value)
    assert CLIENT_SECRET not in str(caught.value)


class _BasicAuthOff:
    def __call__(self, *args: Any) -> AuthResult:
        return AuthResult(
            success=False,
            handled=False,
            message="550 5.7.30 Basic authentication is not supported for Client Submission",
        )


def test_basic_auth_switched_off_says_to_use_smtp_auth_microsoft(tmp_path: Path) -> None:
    server = ScriptedServer(Script())
    server.controller.SMTP_kwargs.update(authenticator=_BasicAuthOff(), auth_require_tls=False)
    with server:
        settings = make_settings(
            tmp_path, SMTP_PORT=str(server.port), SMTP_USERNAME=MAILBOX, SMTP_PASSWORD="pw-123"
        )
        from mailer.delivery.transport import SmtpTransport

        with pytest.raises(TransportError) as caught:
            SmtpTransport(settings.smtp).connect()
    message = str(caught.value)
    assert "550 5.7.30 Basic authentication is not supported" in message
    assert "set SMTP_AUTH=microsoft" in message
    assert "Authenticated SMTP" in message
    assert "SmtpClientAuthenticationDisabled" in message
    assert "pw-123" not in message


def test_every_bad_auth_setting_is_listed_with_the_others(tmp_path: Path) -> None:
    with pytest.raises(SettingsError) as caught:
        make_settings(
            tmp_path,
            SMTP_AUTH="oauth",
            IMAP_AUTH="microsoft",
            OAUTH_CLIENT_SECRET=CLIENT_SECRET,
            OAUTH_CERTIFICATE_FILE=str(tmp_path / "missing.pem"),
            OAUTH_AUTHORITY="http://login.example",
            SMTP_PORT="x",
        )
    problems = caught.value.problems
    assert any(
        "SMTP_AUTH='oauth' must be one of password, microsoft, google" in p for p in problems
    )
    assert any("IMAP_AUTH=microsoft signs in as the mailbox IMAP_USERNAME" in p for p in problems)
    assert any(p.startswith("OAUTH_TENANT is empty") for p in problems)
    assert any(p.startswith("OAUTH_CLIENT_ID is empty") for p in problems)
    assert any("OAUTH_CERTIFICATE_FILE=" in p and "does not exist" in p for p in problems)
    assert any(p.startswith("set one of OAUTH_CLIENT_SECRET") for p in problems)
    assert any("OAUTH_AUTHORITY='http://login.example' must be an https" in p for p in problems)
    assert any("SMTP_PORT='x'" in p for p in problems)
    assert len(problems) == len(set(problems)) == 8
    assert CLIENT_SECRET not in str(caught.value)


def test_password_stays_the_default_and_needs_no_oauth_settings(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, SMTP_USERNAME="u", SMTP_PASSWORD="p")
    assert settings.smtp.oauth is None
    assert settings.imap.oauth is None
    with_oauth = make_settings(
        tmp_path,
        SMTP_AUTH="Microsoft",
        SMTP_USERNAME=MAILBOX,
        OAUTH_TENANT=TENANT,
        OAUTH_CLIENT_ID=CLIENT_ID,
        OAUTH_CLIENT_SECRET=CLIENT_SECRET,
    )
    assert with_oauth.smtp.oauth is not None
    assert with_oauth.smtp.oauth.authority_url == f"https://login.microsoftonline.com/{TENANT}"
    assert CLIENT_SECRET not in repr(with_oauth)


# --- IMAP: a real Dovecot whose oauth2 passdb introspects tokens at the identity server ---


@pytest.fixture
def idp(tmp_path: Path) -> Iterator[IdentityServer]:
    with identity_server(tmp_path) as server:
        yield server


@pytest.fixture
def oauth_dovecot(tmp_path: Path, idp: IdentityServer) -> Iterator[Dovecot]:
    """Dovecot taking AUTHENTICATE XOAUTH2 for `coordinator` with a live token (its auth
    process asks the identity server's `/introspect` over HTTPS, trusting the test CA)."""
    folder = Path(tempfile.mkdtemp(prefix="mailer-oauth2-"))  # readable by Dovecot's auth
    folder.chmod(0o755)
    ca = folder / "identity-ca.pem"
    ca.write_bytes(idp.ca_file.read_bytes())
    ca.chmod(0o644)
    conf = folder / "oauth2.conf.ext"
    conf.write_text(
        "introspection_mode = post\n"
        f"introspection_url = {idp.authority}/introspect\n"
        "username_attribute = username\nactive_attribute = active\nactive_value = true\n"
        f"tls_ca_cert_file = {ca}\n",
        encoding="utf-8",
    )
    conf.chmod(0o644)
    extra = (
        "auth_mechanisms = plain login xoauth2\n"
        f"passdb {{\n  driver = oauth2\n  mechanisms = xoauth2\n  args = {conf}\n}}\n"
    )
    try:
        yield from run_dovecot(extra)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def imap_env(idp: IdentityServer, dovecot: Dovecot) -> dict[str, str]:
    return {
        "IMAP_AUTH": "microsoft",
        "IMAP_HOST": "127.0.0.1",
        "IMAP_PORT": str(dovecot.ssl_port),
        "IMAP_USERNAME": dovecot.username,
        "IMAP_CA_FILE": str(dovecot.ca_file),
        **{k: v for k, v in oauth_env(idp).items() if k.startswith("OAUTH_")},
    }


def test_imap_signs_in_with_xoauth2_and_a_refused_token_is_fetched_again(
    tmp_path: Path, idp: IdentityServer, oauth_dovecot: Dovecot
) -> None:
    settings = make_settings(tmp_path, **imap_env(idp, oauth_dovecot))
    client, _ = open_folder(settings.imap)
    close(client)
    client, _ = open_folder(settings.imap)  # the cached token again
    close(client)
    assert len(idp.issued) == 1
    idp.revoke_all()  # Dovecot now refuses the cached token: fetched again, once
    client, _ = open_folder(settings.imap)
    close(client)
    assert len(idp.issued) == 2
    log = (oauth_dovecot.root / "dovecot.log").read_text(encoding="utf-8")
    assert log.count("method=XOAUTH2") == 3
    assert CLIENT_SECRET not in log


def test_replies_sync_reads_the_mailbox_with_xoauth2(
    tmp_path: Path, idp: IdentityServer, oauth_dovecot: Dovecot
) -> None:
    env = cli_env(tmp_path, **imap_env(idp, oauth_dovecot))
    result = CliRunner().invoke(app, ["replies", "sync"], env=env, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert CLIENT_SECRET not in result.output
    assert "method=XOAUTH2" in (oauth_dovecot.root / "dovecot.log").read_text(encoding="utf-8")


def test_check_auth_signs_in_to_smtp_and_imap_and_says_what_failed(
    tmp_path: Path, idp: IdentityServer, oauth_dovecot: Dovecot
) -> None:
    with xoauth2_server(Script(), idp, set()) as server:
        both = {**oauth_env(idp), **imap_env(idp, oauth_dovecot)}
        env = cli_env(tmp_path, SMTP_PORT=str(server.port), **both)
        good = CliRunner().invoke(app, ["check", "--auth"], env=env, catch_exceptions=False)
        bad = CliRunner().invoke(
            app, ["check", "--auth"], env={**env, "OAUTH_CLIENT_SECRET": "nope-123456"}
        )
        assert server.controller.handler.auths == ["235"]  # type: ignore[attr-defined]
    assert good.exit_code == 0, good.output
    assert "✓ token: the identity server" in good.output
    assert f"✓ SMTP 127.0.0.1:{server.port}: signed in as {MAILBOX!r} with XOAUTH2" in good.output
    assert f"✓ IMAP 127.0.0.1:{oauth_dovecot.ssl_port}: signed in as 'coordinator'" in good.output
    assert "Sign-in checks passed." in good.output
    assert bad.exit_code == 1
    assert "✗ token: the identity server" in bad.output
    assert "invalid_client" in bad.output
    assert f"✗ SMTP 127.0.0.1:{server.port}: not tried (no token, see above)" in bad.output
    assert f"✗ IMAP 127.0.0.1:{oauth_dovecot.ssl_port}: not tried" in bad.output
    assert "Error: check --auth: 3 of 3 step(s) failed" in bad.output
    for shown in (good.output, bad.output):
        assert CLIENT_SECRET not in shown
        assert "nope-123456" not in shown
        assert not any(token in shown for token in idp.issued)


def test_imap_signs_in_as_the_mailbox_through_a_google_service_account(
    tmp_path: Path, idp: IdentityServer, oauth_dovecot: Dovecot
) -> None:
    env = {**imap_env(idp, oauth_dovecot), "IMAP_AUTH": "google"}
    env["OAUTH_SERVICE_ACCOUNT_FILE"] = str(idp.service_account_file(tmp_path / "sa.json"))
    settings = make_settings(tmp_path, **env)
    assert settings.imap.oauth is not None
    assert settings.imap.oauth.subject == "coordinator"
    client, _ = open_folder(settings.imap)
    close(client)
    assert list(idp.subjects.values()) == ["coordinator"]
    assert "method=XOAUTH2" in (oauth_dovecot.root / "dovecot.log").read_text(encoding="utf-8")


def test_google_without_a_service_account_key_is_a_users_sign_in(tmp_path: Path) -> None:
    (tmp_path / "not-a-key.json").write_text('{"type": "authorized_user"}', encoding="utf-8")
    with pytest.raises(SettingsError) as caught:
        make_settings(tmp_path, SMTP_AUTH="google", SMTP_USERNAME=MAILBOX, IMAP_AUTH="google")
    assert caught.value.problems == [  # no key: `mailer auth login google` (tests/test_signin.py)
        "IMAP_AUTH=google signs in as the mailbox IMAP_USERNAME, which is empty; e.g. "
        "IMAP_USERNAME=seminar@agency.go.th",
    ]
    with pytest.raises(SettingsError, match="is not the JSON key of a service account"):
        make_settings(
            tmp_path,
            SMTP_AUTH="google",
            SMTP_USERNAME=MAILBOX,
            OAUTH_SERVICE_ACCOUNT_FILE=str(tmp_path / "not-a-key.json"),
        )


def test_microsoft_with_a_certificate_instead_of_a_secret(tmp_path: Path) -> None:
    script = Script()
    with identity_server(tmp_path) as idp, xoauth2_server(script, idp, set()) as server:
        env = oauth_env(idp)
        del env["OAUTH_CLIENT_SECRET"]
        env["OAUTH_CERTIFICATE_FILE"] = str(idp.client_certificate_file(tmp_path / "app.pem"))
        settings = make_settings(tmp_path, SMTP_PORT=str(server.port), **env)
        from mailer.delivery.transport import SmtpTransport

        with SmtpTransport(settings.smtp) as transport:
            sent = transport.send(MAILBOX, ["o1@synthetic.example"], MESSAGE)
        idp.certificate_key = None  # the certificate was removed from the app registration
        assert settings.smtp.oauth is not None
        with pytest.raises(TransportError, match="invalid_client"):
            token_source(settings.smtp.oauth).token(fresh=True)
    assert sent.reply.code == 250
    assert server.controller.handler.auths == ["235"]  # type: ignore[attr-defined]
