"""OAuth2 sign-in for SMTP and IMAP (XOAUTH2): the settings and the token source.

`SMTP_AUTH` / `IMAP_AUTH` = `password` (the default), `microsoft`: Microsoft 365 app-only
client credentials through MSAL (a client secret or a certificate; scope
`https://outlook.office365.com/.default`), or `google`: a Google Workspace service account
with domain-wide delegation acting for the mailbox (google-auth; scope
`https://mail.google.com/`). Without those app credentials (no client secret or certificate;
no service account key) the sign-in is delegated: the user signed in once with `mailer auth
login microsoft|google`, and the refresh token kept in MAILER_TOKEN_FILE gives the access
tokens (`mailer.oauth_signin`). `token_source(settings).token()` gives an access token, kept in
memory and handed out again until shortly before it expires (MSAL: five minutes;
google-auth: under four), then fetched anew, so a long batch or the IMAP watcher, which log
in again on each new session, never use a stale one. `token(fresh=True)` fetches a new one
whatever the cache holds (a server answered 535 to the cached one).

The client secret, the certificate's key and the tokens never reach a message: every
failure is an `OAuthError` (a `TransportError`) that names the setting to check, raised
without the library's exception chained to it. MSAL is imported only when a token is asked for.
"""

from __future__ import annotations

import functools
import hashlib
import json
import threading
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

from mailer.errors import TransportError, cut
from mailer.values import Secret, Values

AuthKind = Literal["password", "microsoft", "google"]
AUTH_KINDS: tuple[AuthKind, ...] = ("password", "microsoft", "google")
MICROSOFT_SCOPE = "https://outlook.office365.com/.default"
MICROSOFT_AUTHORITY = "https://login.microsoftonline.com"
DEFAULT_TOKEN_FILE = "var/oauth-tokens.json"
GOOGLE_SCOPE = "https://mail.google.com/"
DELEGATION = (
    "the Workspace admin console allows the service account's client ID the scope "
    f"{GOOGLE_SCOPE} (Security, API controls, Domain-wide delegation)"
)


class OAuthError(TransportError):
    """No token: the identity server cannot be reached or refused the application."""


@dataclass(frozen=True)
class OAuthSettings:
    """Who signs in (the application) and where (the tenant at the authority)."""

    provider: Literal["microsoft", "google"]
    tenant: str
    client_id: str
    client_secret: Secret
    certificate_file: Path | None = None  # PEM: the private key and its certificate
    authority: str = MICROSOFT_AUTHORITY
    ca_file: Path | None = None  # the identity server's private CA (tests, proxies)
    service_account_file: Path | None = None  # google: the service account's JSON key
    subject: str = ""  # google: the mailbox the service account acts for
    token_file: Path = Path(DEFAULT_TOKEN_FILE)  # delegated: the refresh token (0600)
    client_secrets_file: Path | None = None  # google, delegated: the installed app's JSON

    @property
    def authority_url(self) -> str:
        return f"{self.authority}/{self.tenant}"

    @property
    def delegated(self) -> bool:
        """A user's sign-in (`mailer auth login`), not the application's own credentials."""
        if self.provider == "google":
            return self.service_account_file is None
        return not self.client_secret and self.certificate_file is None

    def where(self) -> str:
        if self.delegated:
            name = "Google's" if self.provider == "google" else f"{self.authority_url}'s"
            return f"{name} sign-in kept in MAILER_TOKEN_FILE={str(self.token_file)!r}"
        if self.provider == "google":
            return (
                f"Google's token endpoint for {self.subject!r} "
                f"(OAUTH_SERVICE_ACCOUNT_FILE={str(self.service_account_file)!r})"
            )
        return f"the identity server {self.authority_url} (OAUTH_TENANT, OAUTH_AUTHORITY)"


def auth_setting(v: Values, name: str, user_setting: str) -> OAuthSettings | None:
    """The setting `name` (SMTP_AUTH or IMAP_AUTH): None for a password login, else the
    OAUTH_ settings it needs. Each wrong value is added to `v.problems` (once, though
    SMTP and IMAP both read the OAUTH_ settings)."""
    kind = v.text(name, "password").lower()
    if kind not in AUTH_KINDS:
        v.problems.append(
            f"{name}={cut(kind)!r} must be one of {', '.join(AUTH_KINDS)}; e.g. {name}=microsoft"
        )
        return None
    if kind == "password":
        return None
    if not v.text(user_setting, ""):
        v.problems.append(
            f"{name}={kind} signs in as the mailbox {user_setting}, which is empty; "
            f"e.g. {user_setting}=seminar@agency.go.th"
        )
    return _google(v, v.text(user_setting, "")) if kind == "google" else _microsoft(v)


@dataclass(frozen=True)
class SignIn:
    """What `mailer auth login|logout|status` use, read whatever SMTP_AUTH and IMAP_AUTH
    say (a sign-in comes before switching them); `problems`: what `login` refuses with."""

    token_file: Path
    microsoft: OAuthSettings
    google: OAuthSettings
    problems: dict[str, tuple[str, ...]]  # provider -> its missing or wrong settings

    def settings(self, provider: str) -> OAuthSettings:
        """The delegated settings of `provider` (microsoft or google); an `OAuthError` if
        they are not usable."""
        if self.problems[provider]:
            raise OAuthError("; ".join(self.problems[provider]))
        return self.microsoft if provider == "microsoft" else self.google


class _Scratch:
    """The settings' values, with problems of their own (not the run's)."""

    def __init__(self, v: Values) -> None:
        self.v, self.problems = v, list[str]()

    def raw(self, name: str) -> str:
        return self.v.raw(name)

    def text(self, name: str, default: str) -> str:
        return self.v.text(name, default)


def signin_setting(v: Values) -> SignIn:
    """The delegated sign-in settings for `mailer auth` (MAILER_TOKEN_FILE, OAUTH_TENANT,
    OAUTH_CLIENT_ID, OAUTH_AUTHORITY, OAUTH_CLIENT_SECRETS_FILE, OAUTH_CA_FILE)."""
    found: dict[str, tuple[str, ...]] = {}
    microsoft_values, google_values = _Scratch(v), _Scratch(v)
    microsoft = replace(
        _microsoft(microsoft_values), client_secret=Secret(""), certificate_file=None
    )
    found["microsoft"] = tuple(p for p in microsoft_values.problems if "set one of" not in p)
    google = replace(_google(google_values, ""), service_account_file=None)
    found["google"] = tuple(p for p in google_values.problems if "SERVICE_ACCOUNT" not in p)
    if not (google.client_secrets_file or (google.client_id and google.client_secret)):
        found["google"] += (
            "Google sign-in needs the installed app's OAuth client: set "
            "OAUTH_CLIENT_SECRETS_FILE (its client_secret_….json from the Google Cloud "
            "console) or OAUTH_CLIENT_ID and OAUTH_CLIENT_SECRET",
        )
    return SignIn(microsoft.token_file, microsoft, google, found)


def _token_file(v: Values) -> Path:
    raw = v.text("MAILER_TOKEN_FILE", DEFAULT_TOKEN_FILE)
    if Path(raw).is_dir():
        _once(
            v, f"MAILER_TOKEN_FILE={cut(raw)!r} is a folder; name a file, e.g. {DEFAULT_TOKEN_FILE}"
        )
    return Path(raw)


def _once(v: Values, problem: str) -> None:
    if problem not in v.problems:
        v.problems.append(problem)


def _file(v: Values, name: str, what: str) -> Path | None:
    raw = v.text(name, "")
    if raw and not Path(raw).is_file():
        _once(v, f"{name}={cut(raw)!r} does not exist; give {what}")
    return Path(raw) if raw else None


def _microsoft(v: Values) -> OAuthSettings:

    tenant, client_id = v.text("OAUTH_TENANT", ""), v.text("OAUTH_CLIENT_ID", "")
    for name, value, example in (
        ("OAUTH_TENANT", tenant, "agency.onmicrosoft.com (or the tenant's ID)"),
        ("OAUTH_CLIENT_ID", client_id, "the application (client) ID of the app registration"),
    ):
        if not value:
            _once(v, f"{name} is empty; Microsoft 365 sign-in needs it, e.g. {name}={example}")
    if tenant and not all(c.isalnum() or c in ".-" for c in tenant):
        _once(v, f"OAUTH_TENANT={cut(tenant)!r} is not a tenant name or ID")
    secret = v.raw("OAUTH_CLIENT_SECRET").strip()
    certificate = _file(v, "OAUTH_CERTIFICATE_FILE", "a PEM file with the key and certificate")
    if secret and v.text("OAUTH_CERTIFICATE_FILE", ""):
        _once(
            v,
            "set one of OAUTH_CLIENT_SECRET (the app registration's client secret) and "
            "OAUTH_CERTIFICATE_FILE (a PEM file with its certificate's private key), not "
            "both; or neither, for a user's sign-in with `mailer auth login microsoft`",
        )
    authority = v.text("OAUTH_AUTHORITY", MICROSOFT_AUTHORITY).rstrip("/")
    if not authority.startswith("https://") or any(c in authority for c in "?# "):
        _once(v, f"OAUTH_AUTHORITY={cut(authority)!r} must be an https address without ? or #")
    return OAuthSettings(
        provider="microsoft",
        tenant=tenant,
        client_id=client_id,
        client_secret=Secret(secret),
        certificate_file=certificate,
        authority=authority,
        ca_file=_file(v, "OAUTH_CA_FILE", "the PEM file of the identity server's CA"),
        token_file=_token_file(v),
    )


def _google(v: Values, subject: str) -> OAuthSettings:

    what = "the JSON key of a service account with domain-wide delegation"
    key = _file(v, "OAUTH_SERVICE_ACCOUNT_FILE", what)
    client_id, client_secret = v.text("OAUTH_CLIENT_ID", ""), v.raw("OAUTH_CLIENT_SECRET").strip()
    if key is not None and key.is_file():
        try:
            info = json.loads(key.read_text(encoding="utf-8"))
            client_id = str(info["client_email"])
            if info.get("type") != "service_account" or not info.get("private_key"):
                raise KeyError("type")
        except (OSError, ValueError, KeyError, TypeError):
            _once(v, f"OAUTH_SERVICE_ACCOUNT_FILE={str(key)!r} is not {what} (JSON)")
    return OAuthSettings(
        provider="google",
        tenant="",
        client_id=client_id,
        client_secret=Secret("" if key else client_secret),
        ca_file=_file(v, "OAUTH_CA_FILE", "the PEM file of the identity server's CA"),
        service_account_file=key,
        subject=subject,
        token_file=_token_file(v),
        client_secrets_file=_file(
            v, "OAUTH_CLIENT_SECRETS_FILE", "the installed app's client_secret_….json"
        ),
    )


def xoauth2(user: str, token: str) -> str:
    """The XOAUTH2 initial response, before base64 (Google's and Microsoft's SASL XOAUTH2)."""
    return f"user={user}\x01auth=Bearer {token}\x01\x01"


class TokenSource:
    """Access tokens for one application, cached in memory (thread-safe)."""

    def __init__(self, settings: OAuthSettings) -> None:
        self.settings = settings
        self._lock = threading.Lock()
        self._app: Any = None
        self.acquired = 0  # tokens fetched from the identity server (not from the cache)

    def token(self, *, fresh: bool = False) -> str:
        """A live access token; `fresh`: never the cached one. Raises `OAuthError`."""
        with self._lock:
            if self.settings.delegated:
                from mailer.oauth_signin import user_token

                token, acquired = user_token(self.settings, fresh=fresh)
                self.acquired += acquired
                return token
            if self.settings.provider == "google":
                return self._google_token(fresh=fresh)
            app = self._application()
            if fresh:
                app.remove_tokens_for_client()
            try:
                result = app.acquire_token_for_client(scopes=[MICROSOFT_SCOPE])
            except Exception as exc:  # requests' and MSAL's errors alike
                raise self._failed(exc) from None
            if not isinstance(result, dict) or "access_token" not in result:
                raise self._refused(result if isinstance(result, dict) else {})
            if result.get("token_source") == "identity_provider":
                self.acquired += 1
            return str(result["access_token"])

    def _google_token(self, *, fresh: bool) -> str:
        from google.auth.exceptions import GoogleAuthError, RefreshError
        from google.auth.transport.requests import Request
        from google.oauth2 import service_account

        s = self.settings
        try:
            if self._app is None:
                assert s.service_account_file is not None  # (settings checked it)
                info = json.loads(s.service_account_file.read_text(encoding="utf-8"))
                self._app = service_account.Credentials.from_service_account_info(  # type: ignore[no-untyped-call]
                    info, scopes=[GOOGLE_SCOPE], subject=s.subject
                )
            if fresh or not self._app.valid:  # valid: more than 3¾ minutes left
                self._app.refresh(Request(http_client(s.ca_file)))
                self.acquired += 1
        except RefreshError as exc:
            raise OAuthError(
                f"{s.where()} refused the service account {s.client_id!r}: "
                f"{cut(str(exc), 300)}. Check that {DELEGATION}, and that the mailbox "
                "exists. Nothing was sent"
            ) from None
        except (GoogleAuthError, OSError, ValueError) as exc:
            raise self._failed(exc) from None
        return str(self._app.token)

    def _application(self) -> Any:
        if self._app is None:
            import msal  # here: only a run that signs in loads MSAL (and requests)

            s = self.settings
            try:
                self._app = msal.ConfidentialClientApplication(
                    s.client_id,
                    client_credential=self._credential(),
                    authority=s.authority_url,
                    validate_authority=s.authority == MICROSOFT_AUTHORITY,
                    instance_discovery=s.authority == MICROSOFT_AUTHORITY,
                    http_client=http_client(s.ca_file),
                )
            except OAuthError:
                raise
            except Exception as exc:  # discovery happens here
                raise self._failed(exc) from None
        return self._app

    def _credential(self) -> str | dict[str, str]:
        s = self.settings
        if s.certificate_file is None:
            return s.client_secret.value
        return _certificate_credential(s.certificate_file)

    def _failed(self, exc: BaseException) -> OAuthError:
        reason = self._scrubbed(str(exc)) or type(exc).__name__
        check = (
            "OAUTH_SERVICE_ACCOUNT_FILE"
            if self.settings.provider == "google"
            else "OAUTH_AUTHORITY, OAUTH_TENANT"
        )
        return OAuthError(
            f"cannot get a token from {self.settings.where()}: {cut(reason, 300)}. "
            f"Check {check}, the network, and OAUTH_CA_FILE if it uses a private CA. "
            "Nothing was sent"
        )

    def _refused(self, result: dict[str, Any]) -> OAuthError:
        error = self._scrubbed(str(result.get("error", "no token in the answer")))
        description = self._scrubbed(str(result.get("error_description", ""))).rstrip(".")
        return OAuthError(
            f"{self.settings.where()} refused OAUTH_CLIENT_ID={self.settings.client_id!r}: "
            f"{cut(error, 80)}{': ' + cut(description, 300) if description else ''}. Check "
            "OAUTH_CLIENT_ID and OAUTH_CLIENT_SECRET (or OAUTH_CERTIFICATE_FILE), and that the "
            "app registration has the Office 365 Exchange Online application permissions "
            "SMTP.SendAsApp / IMAP.AccessAsApp with admin consent. Nothing was sent"
        )

    def _scrubbed(self, text: str) -> str:
        secret = self.settings.client_secret.value
        return text.replace(secret, "********") if secret else text


def http_client(ca_file: Path | None) -> Any:
    """MSAL's HTTP session: a 30 s timeout, and OAUTH_CA_FILE given with every request
    (a session-wide `verify` loses to REQUESTS_CA_BUNDLE in the environment)."""
    import requests

    session = requests.Session()
    verify = str(ca_file) if ca_file else True
    session.request = functools.partial(session.request, timeout=30, verify=verify)  # type: ignore[method-assign]
    session.mount("https://", requests.adapters.HTTPAdapter(max_retries=1))
    return session


def _certificate_credential(path: Path) -> dict[str, str]:
    """MSAL's certificate credential from one PEM file (private key + certificate)."""
    from cryptography import x509

    try:
        pem = path.read_text(encoding="ascii")
        certificate = x509.load_pem_x509_certificate(pem.encode("ascii"))
    except (OSError, ValueError):
        raise OAuthError(
            f"OAUTH_CERTIFICATE_FILE={str(path)!r} is not a readable PEM file holding the "
            "private key and its certificate"
        ) from None
    from cryptography.hazmat.primitives.serialization import Encoding

    thumbprint = hashlib.sha1(certificate.public_bytes(Encoding.DER)).hexdigest()
    return {"private_key": pem, "thumbprint": thumbprint}


_SOURCES: dict[OAuthSettings, TokenSource] = {}
_SOURCES_LOCK = threading.Lock()


def token_source(settings: OAuthSettings) -> TokenSource:
    """The one token source of these settings in this process (SMTP sessions, IMAP
    connections and reconnects share its cache)."""
    with _SOURCES_LOCK:
        return _SOURCES.setdefault(settings, TokenSource(settings))
