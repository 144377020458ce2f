"""A user's one-time sign-in (#15 item 1, delegated): `mailer auth login microsoft` (MSAL's
device-code flow) and `mailer auth login google` (google-auth-oauthlib's installed-app flow)
run as real processes against the local identity server (tests/identity_server.py), the test
acting as the user; then sending over SMTP XOAUTH2 and reading with a real Dovecot whose
oauth2 passdb introspects the tokens, refreshed from the kept refresh token."""

from __future__ import annotations

import json
import os
import re
import ssl
import subprocess
import sys
import urllib.request
from datetime import timedelta
from pathlib import Path
from typing import IO

import pytest
from typer.testing import CliRunner

from mailer.cli import app
from mailer.errors import SettingsError, TransportError
from mailer.replies.watch import Mailbox, MailboxWatcher, Timing
from tests import test_oauth, test_replies
from tests.conftest import Dovecot, cli_env, make_settings
from tests.identity_server import CLIENT_ID, TENANT, IdentityServer, identity_server
from tests.scripted_smtp import Script
from tests.test_oauth import MAILBOX, delivered, xoauth2_server
from tests.test_replies import _our_ids, _reply
from tests.test_watch import ACCEPT, DECLINE, _deliver, _status_of, _until

ROOT = Path(__file__).resolve().parent.parent
idp = test_oauth.idp  # the fixtures: the identity server, and Dovecot introspecting at it
oauth_dovecot = test_oauth.oauth_dovecot
invited = test_replies.invited


def microsoft_env(idp: IdentityServer, token_file: Path) -> dict[str, str]:
    """Delegated: the tenant and the app registration, no client secret or certificate."""
    return {
        "OAUTH_TENANT": TENANT,
        "OAUTH_CLIENT_ID": CLIENT_ID,
        "OAUTH_AUTHORITY": idp.authority,
        "OAUTH_CA_FILE": str(idp.ca_file),
        "MAILER_TOKEN_FILE": str(token_file),
    }


def google_env(idp: IdentityServer, token_file: Path) -> dict[str, str]:
    secrets_file = idp.client_secrets_file(token_file.with_name("client_secret_desktop.json"))
    return {
        "OAUTH_CLIENT_SECRETS_FILE": str(secrets_file),
        "OAUTH_CA_FILE": str(idp.ca_file),
        "MAILER_TOKEN_FILE": str(token_file),
    }


def _mailer(tmp_path: Path, env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    """`mailer *args` as a process (args beginning "-c": that Python code instead)."""
    environ = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("OAUTH_", "SMTP_", "IMAP_"))},
        **cli_env(tmp_path, **env),
        "PYTHONPATH": str(ROOT),
    }
    return subprocess.Popen(
        [sys.executable, *(args if args[0] == "-c" else ("-m", "mailer", *args))],
        cwd=tmp_path, env=environ, text=True,
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip


def _line(stream: IO[str], pattern: str, seen: list[str]) -> re.Match[str]:
    """Read lines (kept in `seen`) until one matches `pattern`."""
    for line in stream:
        seen.append(line)
        if found := re.search(pattern, line):
            return found
    raise AssertionError(f"no line matched {pattern!r} in {seen!r}")


def _https(idp: IdentityServer) -> urllib.request.OpenerDirector:
    context = ssl.create_default_context(cafile=str(idp.ca_file))
    return urllib.request.build_opener(urllib.request.HTTPSHandler(context=context))


def sign_in_microsoft(tmp_path: Path, idp: IdentityServer, env: dict[str, str]) -> str:
    """`mailer auth login microsoft` as a process; the test, as the user, opens the address
    it shows and enters the code. Returns everything it printed."""
    process = _mailer(tmp_path, env, "auth", "login", "microsoft")
    assert process.stdout is not None
    seen: list[str] = []
    found = _line(process.stdout, r"open the page (\S+) and enter the code (\w+)", seen)
    assert found[1] == f"{idp.authority}/devicelogin"
    form = f"user_code={found[2]}&username={MAILBOX}".encode()
    with _https(idp).open(found[1], data=form, timeout=10) as answer:
        assert json.load(answer) == {"approved": True}
    out, errors = process.communicate(timeout=60)
    assert process.returncode == 0, "".join(seen) + out + errors
    return "".join(seen) + out + errors


def sign_in_google(tmp_path: Path, idp: IdentityServer, env: dict[str, str]) -> str:
    """`mailer auth login google --no-browser`; the test's "browser" opens the printed
    address, which sends it on to the flow's loopback server with the code."""
    process = _mailer(tmp_path, env, "auth", "login", "google", "--no-browser")
    assert process.stdout is not None
    seen: list[str] = []
    url = _line(process.stdout, r"^(https://127\.0\.0\.1:\d+/google/auth\?\S+)$", seen)[1]
    assert "code_challenge=" in url
    assert "redirect_uri=http%3A%2F%2F127.0.0.1%3A" in url
    with _https(idp).open(url, timeout=10) as page:  # 302 to http://127.0.0.1:<port>/?code=…
        assert page.url.startswith("http://127.0.0.1:")
        assert "mailer is signed in" in page.read().decode()
    out, errors = process.communicate(timeout=60)
    assert process.returncode == 0, "".join(seen) + out + errors
    return "".join(seen) + out + errors


def _secrets(idp: IdentityServer) -> list[str]:
    return [*idp.issued, *idp.refresh_tokens]


def test_microsoft_device_code_sign_in_then_a_batch_across_token_expiry(tmp_path: Path) -> None:
    token_file = tmp_path / "var" / "oauth-tokens.json"
    script = Script(pace=0.6)  # six messages: longer than a token lives
    with identity_server(tmp_path, expires_in=2) as idp, xoauth2_server(script, idp, set()) as s:
        env = microsoft_env(idp, token_file)
        shown = sign_in_microsoft(tmp_path, idp, env)
        assert f"Signed in to Microsoft 365 as {MAILBOX}" in shown
        assert token_file.stat().st_mode & 0o777 == 0o600
        assert (token_file.parent.stat().st_mode & 0o777) == 0o700  # made by mailer
        signed_in = json.loads(token_file.read_text())["microsoft"]
        assert next(iter(idp.refresh_tokens)) in signed_in  # MSAL's cache, refresh token kept
        grants_before = len(idp.issued)

        send = {**env, "SMTP_PORT": str(s.port), "SMTP_RECONNECT_EVERY": "2"}
        send.update(SMTP_AUTH="microsoft", SMTP_USERNAME=MAILBOX)
        result, ws_env = test_oauth.send_batch_env(tmp_path, send)
        first_died = not idp.live(idp.issued[grants_before])
        status = CliRunner().invoke(app, ["auth", "status"], env=ws_env)
    assert result.exit_code == 0, result.output
    assert s.controller.handler.auths == ["235", "235", "235"]  # type: ignore[attr-defined]
    assert sorted(script.received_by(f"o{n:05d}@synthetic.example") for n in range(6)) == [1] * 6
    assert delivered(tmp_path, ws_env) == ["sent"] * 6
    assert len(idp.issued) == grants_before + 3  # each session: a token refreshed for it
    assert first_died  # the first session's token would have been refused by the third
    assert list(idp.refresh_tokens)[-1] in token_file.read_text()  # the cache written back
    assert token_file.stat().st_mode & 0o777 == 0o600
    assert f"microsoft: signed in as {MAILBOX}; access token" in status.output
    for output in (shown, result.output, status.output):
        assert not any(secret in output for secret in _secrets(idp))


def test_replies_sync_with_the_delegated_microsoft_token(
    tmp_path: Path, idp: IdentityServer, oauth_dovecot: Dovecot
) -> None:
    token_file = tmp_path / "tokens.json"
    env = microsoft_env(idp, token_file)
    sign_in_microsoft(tmp_path, idp, env)
    imap = {
        **env, "IMAP_AUTH": "microsoft", "IMAP_HOST": "127.0.0.1",
        "IMAP_PORT": str(oauth_dovecot.ssl_port), "IMAP_USERNAME": oauth_dovecot.username,
        "IMAP_CA_FILE": str(oauth_dovecot.ca_file),
    }  # fmt: skip
    idp.revoke_all()  # the access token from the sign-in died early: refused, refreshed
    result = CliRunner().invoke(app, ["replies", "sync"], env=cli_env(tmp_path, **imap))
    assert result.exit_code == 0, result.output
    log = (oauth_dovecot.root / "dovecot.log").read_text(encoding="utf-8")
    assert "method=XOAUTH2" in log
    assert "refresh_token" in idp.grants
    assert not any(secret in result.output for secret in _secrets(idp))


def test_google_installed_app_sign_in_then_smtp(tmp_path: Path) -> None:
    token_file = tmp_path / "google-tokens.json"
    script = Script()
    with identity_server(tmp_path, expires_in=2) as idp, xoauth2_server(script, idp, set()) as s:
        env = google_env(idp, token_file)
        shown = sign_in_google(tmp_path, idp, env)
        assert "Signed in to Google." in shown
        assert token_file.stat().st_mode & 0o777 == 0o600
        kept = json.loads(token_file.read_text())["google"]
        assert kept["refresh_token"] in idp.refresh_tokens
        assert kept["token_uri"] == f"{idp.authority}/google/token"
        send = {**env, "SMTP_PORT": str(s.port), "SMTP_RECONNECT_EVERY": "2"}
        send.update(SMTP_AUTH="google", SMTP_USERNAME=MAILBOX)
        result, ws_env = test_oauth.send_batch_env(tmp_path, send)
    assert result.exit_code == 0, result.output
    assert s.controller.handler.auths == ["235", "235", "235"]  # type: ignore[attr-defined]
    assert delivered(tmp_path, ws_env) == ["sent"] * 6
    assert idp.grants.count("refresh_token") == 3  # a 2 s token: refreshed for each session
    assert set(idp.subjects.values()) == {MAILBOX}
    for output in (shown, result.output):
        assert not any(secret in output for secret in _secrets(idp))


def test_a_refused_refreshed_token_names_the_signed_in_user(tmp_path: Path) -> None:
    from mailer.delivery.transport import SmtpTransport

    script = Script()
    with identity_server(tmp_path) as idp, xoauth2_server(script, idp, {1, 2}) as server:
        env = microsoft_env(idp, tmp_path / "tokens.json")
        sign_in_microsoft(tmp_path, idp, env)
        settings = make_settings(
            tmp_path, SMTP_PORT=str(server.port), SMTP_AUTH="microsoft", SMTP_USERNAME=MAILBOX,
            **env,
        )  # fmt: skip
        with pytest.raises(TransportError) as caught:
            SmtpTransport(settings.smtp).connect()
    assert server.controller.handler.auths == ["535", "535"]  # type: ignore[attr-defined]
    assert idp.grants.count("refresh_token") == 1  # the second try: a refreshed token
    assert "SMTP_USERNAME is the user who signed in (`mailer auth status`)" in str(caught.value)
    assert "New-ServicePrincipal" not in str(caught.value)  # that is app-only's setup
    assert script.mail_commands == 0


def test_no_sign_in_yet_says_to_run_auth_login(tmp_path: Path) -> None:
    with identity_server(tmp_path) as idp:
        env = cli_env(tmp_path, **microsoft_env(idp, tmp_path / "none.json"))
        env.update(SMTP_AUTH="microsoft", SMTP_USERNAME=MAILBOX, SMTP_PORT="1")
        result = CliRunner().invoke(app, ["check", "--auth"], env=env)
    assert result.exit_code == 1
    assert "no Microsoft sign-in in MAILER_TOKEN_FILE=" in result.output
    assert "run `mailer auth login microsoft` once" in result.output
    assert "Traceback" not in result.output


def test_a_token_file_others_can_read_is_refused_with_the_chmod(tmp_path: Path) -> None:
    token_file = tmp_path / "tokens.json"
    with identity_server(tmp_path) as idp:
        env = microsoft_env(idp, token_file)
        sign_in_microsoft(tmp_path, idp, env)
        token_file.chmod(0o640)
        runner = CliRunner()
        status = runner.invoke(app, ["auth", "status"], env=cli_env(tmp_path, **env))
        login = runner.invoke(app, ["auth", "login", "microsoft"], env=cli_env(tmp_path, **env))
        devices = len(idp.devices)
        token_file.chmod(0o600)
        logout = runner.invoke(app, ["auth", "logout", "microsoft"], env=cli_env(tmp_path, **env))
    for refused in (status, login):
        assert refused.exit_code == 1
        assert "can be read or changed by other users (mode -rw-r-----)" in refused.output
        assert f"Run `chmod 600 {token_file}`" in refused.output
    assert devices == 0  # refused before anyone was asked to sign in
    assert logout.exit_code == 0, logout.output
    assert not token_file.exists()  # the last sign-in gone: the file with it


def test_delegated_is_chosen_by_leaving_the_app_credentials_out(tmp_path: Path) -> None:
    with identity_server(tmp_path) as idp:
        base = {**microsoft_env(idp, tmp_path / "t.json"), "SMTP_USERNAME": MAILBOX}
        user = make_settings(tmp_path, SMTP_AUTH="microsoft", **base)
        app_only = make_settings(tmp_path, SMTP_AUTH="microsoft", OAUTH_CLIENT_SECRET="x", **base)
        google = make_settings(tmp_path, SMTP_AUTH="google", **base)
    assert user.smtp.oauth is not None
    assert user.smtp.oauth.delegated
    assert app_only.smtp.oauth is not None
    assert not app_only.smtp.oauth.delegated
    assert google.smtp.oauth is not None
    assert google.smtp.oauth.delegated
    assert user.signin is not None
    assert user.signin.problems["google"]  # no installed app's OAuth client given
    with pytest.raises(SettingsError, match=r"MAILER_TOKEN_FILE=.* is a folder"):
        make_settings(tmp_path, SMTP_AUTH="microsoft", **{**base, "MAILER_TOKEN_FILE": "."})


def _broken(provider: str) -> list[object]:
    """Sections the libraries cannot read, each with a secret that must not be shown."""
    if provider == "google":
        record = {"refresh_token": "rt-SECRET", "client_id": "c", "client_secret": "cs-SECRET"}
        return ["garbage", {**record, "refresh_token": 7}, {**record, "expiry": 5}, ["rt-SECRET"]]
    account = {"environment": "127.0.0.1", "home_account_id": "h", "secret": "rt-SECRET"}
    typed = {**account, "authority_type": "MSSTS", "home_account_id": []}
    return [
        "garbage rt-SECRET",
        json.dumps({"Account": [1], "RefreshToken": {"r": {"secret": "rt-SECRET"}}}),
        "null",
        7,
        json.dumps({"Account": {"a": account}}),  # MSAL's get_accounts: KeyError
        json.dumps({"Account": {"a": typed}}),  # and TypeError (a list as a dict key)
    ]


@pytest.mark.parametrize("provider", ["microsoft", "google"])
def test_a_corrupt_token_file_says_to_sign_in_again(tmp_path: Path, provider: str) -> None:
    token_file = tmp_path / "tokens.json"
    runner = CliRunner()
    files = [json.dumps({provider: section}) for section in _broken(provider)]
    seen: list[tuple[str, str, object]] = []
    script = Script()
    with identity_server(tmp_path) as idp, xoauth2_server(script, idp, set()) as server:
        env = (microsoft_env if provider == "microsoft" else google_env)(idp, token_file)
        env.update(SMTP_AUTH=provider, SMTP_USERNAME=MAILBOX, SMTP_PORT=str(server.port))
        env = cli_env(tmp_path, **env)
        for text in [*files, "[1]", "{garbage"]:
            token_file.write_text(text)
            token_file.chmod(0o600)
            for command in (["auth", "status"], ["check", "--auth"]):
                result = runner.invoke(app, command, env=env)
                seen.append((text, result.output, result.exception))
        token_file.write_text(files[0])
        sent, _ = test_oauth.send_batch_env(tmp_path, env)  # (a traceback would raise here)
        seen.append((files[0], sent.output, sent.exception))
    assert script.mail_commands == 0
    for text, output, exception in seen:
        assert isinstance(exception, SystemExit), (text, output, exception)
        assert f"MAILER_TOKEN_FILE={str(token_file)!r} is not mailer's sign-in file (" in output
        assert "Error: " in output  # (check --auth: "✗ token: …", then its summary)
        if text in ("[1]", "{garbage"):  # the whole file: `auth login` would refuse it too
            assert "; remove it and sign in again with `mailer auth login" in output
        else:
            assert f"its {provider} section is not " in output, (text, output)
            assert f"run `mailer auth login {provider}` to sign in again" in output
        assert "SECRET" not in output
        assert "Traceback" not in output


REFRESHER = """
import os, sys
from mailer.oauth_signin import user_token
from mailer.settings import load_settings

settings = load_settings(os.environ, dotenv_path=None).signin.settings(sys.argv[1])
user_token(settings, fresh=False)  # MSAL's app made (the discovery asked) before the race
print("ready", flush=True)
sys.stdin.readline()
for _ in range(int(sys.argv[2])):
    user_token(settings, fresh=True)
"""


def test_processes_refreshing_at_once_share_the_token_file(tmp_path: Path) -> None:
    """Two processes refreshing Microsoft's token and one Google's, started together: each
    refresh holds the file's lock from reading it to writing it back, so none presents a
    refresh token another one already used, and nobody's section is written back stale."""
    token_file = tmp_path / "tokens.json"
    presented: list[str] = []  # the refresh tokens Microsoft's grants were given
    google: list[str] = []  # the access tokens Google's refreshes answered
    with identity_server(tmp_path) as idp:
        env = {**microsoft_env(idp, token_file), **google_env(idp, token_file)}
        sign_in_microsoft(tmp_path, idp, env)
        sign_in_google(tmp_path, idp, env)
        microsoft_grant, google_grant = idp.user_grant, idp.google_user_grant

        def user_grant(form: dict[str, str]) -> tuple[int, dict[str, object]]:
            if form["grant_type"] == "refresh_token":
                presented.append(form["refresh_token"])
            return microsoft_grant(form)

        def google_user_grant(form: dict[str, str], basic: str) -> tuple[int, dict[str, object]]:
            answer = google_grant(form, basic)
            google.append(str(answer[1].get("access_token")))
            return answer

        idp.user_grant, idp.google_user_grant = user_grant, google_user_grant  # type: ignore[method-assign]
        runs = [
            _mailer(tmp_path, env, "-c", REFRESHER, provider, "10")
            for provider in ("microsoft", "microsoft", "google")
        ]
        for run in runs:
            assert run.stdout is not None
            _line(run.stdout, "^ready$", [])
        for run in runs:  # go
            assert run.stdin is not None
            run.stdin.write("\n")
            run.stdin.flush()
        ended = [run.communicate(timeout=120) for run in runs]
        assert [run.returncode for run in runs] == [0, 0, 0], ended
        kept = json.loads(token_file.read_text(encoding="utf-8"))
        newest_refresh_token = list(idp.refresh_tokens)[-1]
    distinct = len(set(presented))
    assert len(presented) == 20
    assert distinct == 20  # each refresh from the refresh token the one before it was given
    assert newest_refresh_token in kept["microsoft"]
    assert len(google) == 10
    assert kept["google"]["token"] == google[-1]
    assert token_file.stat().st_mode & 0o777 == 0o600
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".tokens")) == []


# --- the scheduler's IMAP IDLE across a token refresh ----------------------------------


def _kick(server: Dovecot) -> None:
    """End the user's sessions, as Exchange Online does when their access token expires
    (`* BYE Session invalidated - AccessTokenExpired`)."""
    doveadm = ["doveadm", "-c", str(server.root / "dovecot.conf")]
    subprocess.run([*doveadm, "kick", server.username], check=True, capture_output=True)


@pytest.mark.slow
def test_the_watcher_keeps_reading_after_the_token_dies(
    invited, tmp_path: Path, idp: IdentityServer, oauth_dovecot: Dovecot
) -> None:  # type: ignore[no-untyped-def]
    ws = invited
    ids = _our_ids(ws)
    token_file = tmp_path / "tokens.json"
    env = microsoft_env(idp, token_file)
    sign_in_microsoft(tmp_path, idp, env)
    settings = make_settings(
        tmp_path, IMAP_AUTH="microsoft", IMAP_HOST="127.0.0.1",
        IMAP_PORT=str(oauth_dovecot.ssl_port), IMAP_USERNAME=oauth_dovecot.username,
        IMAP_CA_FILE=str(oauth_dovecot.ca_file), **env,
    )  # fmt: skip
    lines: list[str] = []
    timing = Timing(poll=timedelta(minutes=10), first_retry=timedelta(seconds=0.2))
    box = Mailbox(ws.ledger(), ws.campaign, settings.imap, ws.settings.database_url)
    with MailboxWatcher(box, lines.append, timing) as watcher:
        _until(lambda: watcher.status().mode == "idle")
        idp.revoke_all()  # dead before MSAL's cache expects: Dovecot refuses them now
        refreshed = idp.grants.count("refresh_token")
        _deliver(oauth_dovecot, _reply("saraban.th50@agri.example", ACCEPT, ids["TH-50-agri"]))
        _until(lambda: _status_of(ws, "TH-50-agri") == "accepted")  # IDLE saw it; sync: fresh
        assert idp.grants.count("refresh_token") == refreshed + 1
        idp.revoke_all()
        _kick(oauth_dovecot)  # the IDLE connection ends; its next login needs a fresh token
        _until(lambda: any("cannot wait for new mail" in line for line in lines))
        _deliver(oauth_dovecot, _reply("saraban.th50@prov.example", DECLINE, ids["TH-50-prov"]))
        _until(lambda: _status_of(ws, "TH-50-prov") == "declined")
        _until(
            lambda: watcher.status().mode == "idle" and watcher.status().consecutive_failures == 0
        )
    assert idp.grants.count("refresh_token") >= refreshed + 2
    assert sum("waiting for new mail in" in line for line in lines) == 2  # IDLE, IDLE again
    log = (oauth_dovecot.root / "dovecot.log").read_text(encoding="utf-8")
    assert not any(secret in "\n".join(lines) + log for secret in _secrets(idp))
    assert not any("refused the login" in line for line in lines)  # each refusal: fresh token
