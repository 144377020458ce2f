"""A user's (delegated) sign-in: `mailer auth login microsoft|google`, and the access tokens
it gives later runs.

Microsoft: MSAL's device-code flow (a public client; the user opens the address MSAL's
message names and types the code, on any device), scopes SMTP.Send and IMAP.AccessAsUser.All
of `https://outlook.office.com` (MSAL adds offline_access: the refresh token). Google:
google-auth-oauthlib's installed-app flow (the browser comes back to a loopback address this
process listens on), scope `https://mail.google.com/`. Either way what is kept is the
library's own record (MSAL's serialized token cache; google-auth's authorized-user JSON),
one section per provider in MAILER_TOKEN_FILE (`mailer.token_file`: how it is kept and who
may use it). Each token asked for reads the file again (the scheduler and a send run may
both refresh), under its lock held through a refresh, and writes it back when the library
changed it (a new refresh token). A section the libraries cannot read is an `OAuthError`
saying to sign in again, never a traceback. Tokens never reach a message.
"""

from __future__ import annotations

import json
import stat
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mailer.errors import cut
from mailer.oauth import (
    GOOGLE_SCOPE,
    MICROSOFT_AUTHORITY,
    OAuthError,
    OAuthSettings,
    SignIn,
    http_client,
)
from mailer.token_file import locked, not_ours, read, read_with_mode, shown, write

MICROSOFT_USER_SCOPES = [
    "https://outlook.office.com/SMTP.Send",
    "https://outlook.office.com/IMAP.AccessAsUser.All",
]
GOOGLE_AUTH_URI = "https://accounts.google.com/o/oauth2/auth"
GOOGLE_TOKEN_URI = "https://oauth2.googleapis.com/token"
NAMES = {"microsoft": "Microsoft", "google": "Google"}
Show = Callable[[str], None]


def _not_signed_in(s: OAuthSettings) -> OAuthError:
    provider = s.provider
    app = (
        "OAUTH_SERVICE_ACCOUNT_FILE"
        if provider == "google"
        else "OAUTH_CLIENT_SECRET or OAUTH_CERTIFICATE_FILE"
    )
    return OAuthError(
        f"no {NAMES[provider]} sign-in in {shown(s.token_file)}: run `mailer auth login "
        f"{provider}` once, as the user mailer runs as ({provider} without {app} signs in "
        "as a user). Nothing was sent"
    )


def _refused(s: OAuthSettings, result: dict[str, Any]) -> OAuthError:
    error = cut(str(result.get("error", "no token in the answer")), 80)
    description = cut(str(result.get("error_description", "")).split("\n")[0], 200)
    return OAuthError(
        f"{s.where()} was refused: {error}{': ' + description if description else ''}. Sign "
        f"in again with `mailer auth login {s.provider}`. Nothing was sent"
    )


def _failed(s: OAuthSettings, exc: BaseException) -> OAuthError:
    check = "OAUTH_AUTHORITY, OAUTH_TENANT" if s.provider == "microsoft" else "the token_uri"
    return OAuthError(
        f"cannot get a token for {s.where()}: {cut(str(exc) or type(exc).__name__, 300)}. "
        f"Check {check}, the network, and OAUTH_CA_FILE if it uses a private CA. Nothing was sent"
    )


# --- tokens for a run --------------------------------------------------------------------


def user_token(s: OAuthSettings, *, fresh: bool) -> tuple[str, bool]:
    """A live access token from the user's sign-in (`fresh`: never the one the file holds),
    and whether it was fetched from the identity server just now."""
    with locked(s.token_file):
        sections = read(s.token_file)
        if s.provider == "google":
            return _google_token(s, sections, fresh=fresh)
        return _microsoft_token(s, sections, fresh=fresh)


def _microsoft_token(
    s: OAuthSettings, sections: dict[str, Any], *, fresh: bool
) -> tuple[str, bool]:
    if "microsoft" not in sections:
        raise _not_signed_in(s)
    _msal_cache(s.token_file, sections["microsoft"])
    app = _public_app(s)
    try:
        app.token_cache.deserialize(sections["microsoft"])
        accounts = app.get_accounts()
    except (ValueError, TypeError, AttributeError, KeyError):
        raise not_ours(s.token_file, _NOT_MSAL, "microsoft") from None
    if not accounts:
        raise _not_signed_in(s)
    try:
        result = app.acquire_token_silent_with_error(
            MICROSOFT_USER_SCOPES, account=accounts[0], force_refresh=fresh
        )
    except Exception as exc:  # requests' and MSAL's errors alike
        raise _failed(s, exc) from None
    if app.token_cache.has_state_changed:
        write(s.token_file, {**sections, "microsoft": app.token_cache.serialize()})
    if not result or "access_token" not in result:
        raise _refused(s, result or {"error": "the cache holds no refresh token"})
    return str(result["access_token"]), result.get("token_source") == "identity_provider"


def _google_token(s: OAuthSettings, sections: dict[str, Any], *, fresh: bool) -> tuple[str, bool]:
    from google.auth.exceptions import GoogleAuthError, RefreshError
    from google.auth.transport.requests import Request
    from google.oauth2.credentials import Credentials

    if "google" not in sections:
        raise _not_signed_in(s)
    info = _google_record(s.token_file, sections["google"])
    try:
        credentials = Credentials.from_authorized_user_info(info, scopes=[GOOGLE_SCOPE])  # type: ignore[no-untyped-call]
    except (ValueError, TypeError, AttributeError, KeyError):
        raise not_ours(s.token_file, _NOT_GOOGLE, "google") from None
    try:
        # google-auth refreshes at Google's endpoint whatever the file says; another one
        # (a test server) comes from the settings' OAUTH_CLIENT_SECRETS_FILE, never the file
        token_uri = _client_config(s)["installed"]["token_uri"]
        if s.client_secrets_file is not None and token_uri != credentials.token_uri:
            expiry, credentials = credentials.expiry, credentials.with_token_uri(token_uri)
            credentials.expiry = expiry  # (the copy has none: it would never expire)
        if not fresh and credentials.valid:  # valid: more than 3¾ minutes left
            return str(credentials.token), False
        credentials.refresh(Request(http_client(s.ca_file)))
    except RefreshError as exc:
        raise _refused(s, {"error": cut(str(exc), 200)}) from None
    except (GoogleAuthError, OSError, ValueError) as exc:
        raise _failed(s, exc) from None
    write(s.token_file, {**sections, "google": json.loads(credentials.to_json())})
    return str(credentials.token), True


_NOT_MSAL = "its microsoft section is not MSAL's token cache"
_NOT_GOOGLE = "its google section is not google-auth's authorized-user record"


def _msal_cache(path: Path, serialized: object) -> dict[str, dict[str, dict[str, Any]]]:
    """MSAL's serialized cache as mailer wrote it: a JSON object of credential kinds, each
    an object of entries (objects). Anything else is refused before MSAL reads it."""
    try:
        cache = json.loads(serialized) if isinstance(serialized, str) else None
    except ValueError:
        cache = None
    if not isinstance(cache, dict) or not all(
        isinstance(kind, dict) and all(isinstance(entry, dict) for entry in kind.values())
        for kind in cache.values()
    ):
        raise not_ours(path, _NOT_MSAL, "microsoft")
    return cache


def _google_record(path: Path, info: object) -> dict[str, Any]:
    """google-auth's authorized-user record: its refresh token and client (strings), and
    the expiry (a string) if given."""
    needed = ("refresh_token", "client_id", "client_secret")
    if (
        not isinstance(info, dict)
        or not all(isinstance(info.get(k), str) for k in needed)
        or not isinstance(info.get("expiry") or "", str)
    ):
        raise not_ours(path, _NOT_GOOGLE, "google")
    return info


_APPS: dict[OAuthSettings, Any] = {}
_APPS_LOCK = threading.Lock()


def _public_app(s: OAuthSettings) -> Any:
    """MSAL's public client for these settings, made once per process (it reads the
    tenant's discovery document when made), with a token cache of its own."""
    with _APPS_LOCK:
        if s not in _APPS:
            import msal

            try:
                _APPS[s] = msal.PublicClientApplication(
                    s.client_id,
                    authority=s.authority_url,
                    validate_authority=s.authority == MICROSOFT_AUTHORITY,
                    instance_discovery=s.authority == MICROSOFT_AUTHORITY,
                    http_client=http_client(s.ca_file),
                    token_cache=msal.SerializableTokenCache(),
                )
            except Exception as exc:  # discovery happens here
                raise _failed(s, exc) from None
        return _APPS[s]


# --- mailer auth login / logout / status -------------------------------------------------


def login_microsoft(s: OAuthSettings, show: Show) -> str:
    """The device-code flow: `show` the code and address, wait for the user, keep the
    cache. Returns who signed in."""
    with locked(s.token_file):
        read(s.token_file)  # a file others can read is refused before anyone signs in
    app = _public_app(s)
    app.token_cache.deserialize("{}")
    try:
        flow = app.initiate_device_flow(scopes=MICROSOFT_USER_SCOPES)
        if "user_code" not in flow:
            raise _refused(s, flow)
        show(
            str(flow.get("message") or "")
            or f"Open {flow['verification_uri']} and enter the code {flow['user_code']}"
        )
        result = app.acquire_token_by_device_flow(flow)
    except OAuthError:
        raise
    except Exception as exc:  # requests' and MSAL's errors alike
        raise _failed(s, exc) from None
    if "access_token" not in result:
        raise _refused(s, result)
    with locked(s.token_file):
        write(s.token_file, {**read(s.token_file), "microsoft": app.token_cache.serialize()})
    claims = result.get("id_token_claims") or {}
    return str(claims.get("preferred_username") or claims.get("upn") or "")


def _client_config(s: OAuthSettings) -> dict[str, Any]:
    """The installed app's OAuth client: OAUTH_CLIENT_SECRETS_FILE, else the ID and secret."""
    if s.client_secrets_file is None:
        installed = {"client_id": s.client_id, "client_secret": s.client_secret.value,
                     "auth_uri": GOOGLE_AUTH_URI, "token_uri": GOOGLE_TOKEN_URI}  # fmt: skip
        return {"installed": installed}
    try:
        installed = json.loads(s.client_secrets_file.read_text(encoding="utf-8"))["installed"]
        for key in ("client_id", "client_secret", "auth_uri", "token_uri"):
            if not isinstance(installed[key], str):
                raise KeyError(key)
    except (OSError, ValueError, KeyError, TypeError):
        raise OAuthError(
            f"OAUTH_CLIENT_SECRETS_FILE={str(s.client_secrets_file)!r} is not a desktop app's "
            "client secrets (Google Cloud console: APIs & Services, Credentials, OAuth client "
            "ID of type Desktop app, Download JSON)"
        ) from None
    return {"installed": installed}


def login_google(s: OAuthSettings, *, open_browser: bool, port: int) -> None:
    """The installed-app flow: the sign-in address is printed (and opened in a browser if
    `open_browser`); the answer comes to http://127.0.0.1:`port`/ (0: any free port)."""
    from google_auth_oauthlib.flow import InstalledAppFlow, WSGITimeoutError

    with locked(s.token_file):
        read(s.token_file)
    flow = InstalledAppFlow.from_client_config(_client_config(s), scopes=[GOOGLE_SCOPE])
    _verified(flow.oauth2session, s.ca_file)
    prompt = "Open this address in a browser and sign in as the mailbox:\n{url}"
    try:
        credentials = flow.run_local_server(
            host="127.0.0.1", port=port, open_browser=open_browser, timeout_seconds=900,
            authorization_prompt_message=prompt, access_type="offline", prompt="consent",
            success_message="mailer is signed in. You may close this window.",
        )  # fmt: skip
    except WSGITimeoutError:
        raise OAuthError("no answer from the browser within 15 minutes; try again") from None
    except OSError as exc:
        raise OAuthError(
            f"cannot listen on 127.0.0.1:{port} for the browser's answer: {exc.strerror}; "
            "give another --port"
        ) from None
    except Exception as exc:  # oauthlib's and requests' errors alike
        raise _failed(s, exc) from None
    if not credentials.refresh_token:
        raise OAuthError("Google gave no refresh token; sign in again (consent is asked again)")
    with locked(s.token_file):
        write(s.token_file, {**read(s.token_file), "google": json.loads(credentials.to_json())})


def _verified(session: Any, ca_file: Path | None) -> None:
    """requests-oauthlib's session: OAUTH_CA_FILE and a timeout on every request
    (`fetch_token` passes verify=None, which REQUESTS_CA_BUNDLE would then decide)."""
    original = session.request

    def request(*args: Any, **kwargs: Any) -> Any:
        if ca_file is not None:
            kwargs["verify"] = str(ca_file)
        kwargs["timeout"] = kwargs.get("timeout") or 30
        return original(*args, **kwargs)

    session.request = request


def logout(path: Path, provider: str) -> bool:
    """Forget `provider`'s sign-in (the file goes with the last one); False: there was none."""
    with locked(path):
        sections = read(path)
        if provider not in sections:
            return False
        del sections[provider]
        write(path, sections)
    return True


def status(signin: SignIn) -> list[str]:
    """Who is signed in and until when the access token lasts; never a token."""
    path = signin.token_file
    with locked(path):
        sections, mode = read_with_mode(path)
    if not mode:
        return [f"nobody is signed in ({shown(path)} does not exist)"]
    lines = [f"{shown(path)} (mode {stat.filemode(mode)})"]
    if "microsoft" in sections:
        lines.append(_microsoft_status(path, sections["microsoft"]))
    if "google" in sections:
        info = _google_record(path, sections["google"])
        until = _when(str(info.get("expiry") or ""))
        lines.append(
            f"google: signed in with the OAuth client {info['client_id']!r}; access "
            f"token {until}; refreshed with the refresh token when needed"
        )
    if len(lines) == 1:
        lines.append("nobody is signed in (the file holds no sign-in)")
    return lines


def _microsoft_status(path: Path, serialized: object) -> str:
    cache = _msal_cache(path, serialized)
    try:
        users = [str(a["username"]) for a in cache.get("Account", {}).values()]
        ends = [int(t.get("expires_on", 0)) for t in cache.get("AccessToken", {}).values()]
        last = datetime.fromtimestamp(max(ends), UTC).isoformat() if ends else ""
    except (ValueError, TypeError, AttributeError, KeyError, OverflowError, OSError):
        raise not_ours(path, _NOT_MSAL, "microsoft") from None
    until = _when(last) if last else "none kept"
    return (
        f"microsoft: signed in as {', '.join(users) or 'nobody'}; access token {until}; "
        "refreshed with the refresh token when needed"
    )


def _when(iso: str) -> str:
    try:
        then = datetime.fromisoformat(iso.replace("Z", "+00:00"))
    except ValueError:
        return "of unknown expiry"
    then = then if then.tzinfo else then.replace(tzinfo=UTC)
    verb = "expired" if then <= datetime.now(UTC) else "valid until"
    return f"{verb} {then.astimezone(UTC):%Y-%m-%d %H:%M} UTC"
