"""A local OAuth2 identity server over HTTPS (a throw-away test CA), speaking what MSAL asks
of a Microsoft tenant for app-only sign-in: the OpenID discovery document
(`/{tenant}/v2.0/.well-known/openid-configuration`) and the token endpoint's
client-credentials grant; Google's token endpoint for a service account's signed JWT
(`/google/token`, RFC 7523, with `sub` the mailbox); and RFC 7662 introspection (`/introspect`) for Dovecot's oauth2
passdb. For a user's (delegated) sign-in: the device authorization grant (RFC 8628: the
device-code endpoint named in the discovery document, `/devicelogin` where the test's "user"
approves a code, the token endpoint's `device_code` grant answering `authorization_pending`
until then), Google's authorization endpoint (`/google/auth`, redirecting to the loopback
`redirect_uri` with a code, PKCE checked) and `authorization_code` grant, and both
providers' `refresh_token` grant. Tokens are random, live for `expires_in` seconds (real
time) and can be revoked; `live(token)` is what the test's SMTP server asks."""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import ssl
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

import jwt
import trustme
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa

TENANT = "agency.example"
CLIENT_ID = "11111111-2222-3333-4444-555555555555"
CLIENT_SECRET = "s3cret~client.value-ThatMustNeverShow"
USER_SCOPES = {  # what a delegated Microsoft sign-in asks (MSAL adds the last three)
    "https://outlook.office.com/SMTP.Send",
    "https://outlook.office.com/IMAP.AccessAsUser.All",
    "offline_access",
    "openid",
    "profile",
}
GOOGLE_CLIENT_ID = "987654321-mailer.apps.googleusercontent.com"
GOOGLE_CLIENT_SECRET = "GOCSPX-installed-app-secret"


@dataclass
class IdentityServer:
    port: int = 0
    ca_file: Path = Path()
    expires_in: int = 3600
    mailbox: str = "coordinator"  # whom `/introspect` says a live token is for (Dovecot)
    tokens: dict[str, float] = field(default_factory=dict)  # token -> when it dies
    issued: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)  # "GET /path", "POST /path"
    grants: list[str] = field(default_factory=list)  # each token request's grant_type
    lock: threading.Lock = field(default_factory=threading.Lock)
    subjects: dict[str, str] = field(default_factory=dict)  # Google: token -> the mailbox
    certificate_key: rsa.RSAPublicKey | None = None  # the app's certificate (`client_proven`)
    google_key: rsa.RSAPrivateKey = field(
        default_factory=lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048)
    )
    browser_user: str = "seminar@ega.example"  # who is signed in to the "browser" (Google)
    devices: dict[str, dict[str, str]] = field(default_factory=dict)  # device_code -> its state
    codes: dict[str, dict[str, str]] = field(default_factory=dict)  # authorization codes
    refresh_tokens: dict[str, str] = field(default_factory=dict)  # refresh token -> the user

    def client_secrets_file(self, path: Path) -> Path:
        """A Google installed app's client_secrets.json whose endpoints are this server."""
        installed = {
            "client_id": GOOGLE_CLIENT_ID,
            "client_secret": GOOGLE_CLIENT_SECRET,
            "auth_uri": f"{self.authority}/google/auth",
            "token_uri": f"{self.authority}/google/token",
            "redirect_uris": ["http://localhost"],
        }
        path.write_text(json.dumps({"installed": installed}), encoding="utf-8")
        return path

    def device_authorization(self, form: dict[str, str]) -> tuple[int, dict[str, object]]:
        """RFC 8628 3.1-3.2, with the `message` Microsoft adds (MSAL shows it)."""
        if form.get("client_id") != CLIENT_ID:
            return 400, {"error": "unauthorized_client"}
        if set(form.get("scope", "").split()) != USER_SCOPES:
            return 400, {"error": "invalid_scope", "error_description": form.get("scope", "")}
        device_code, user_code = secrets.token_urlsafe(24), secrets.token_hex(4).upper()
        with self.lock:
            self.devices[device_code] = {"user_code": user_code, "user": "", "scope": form["scope"]}
        where = f"{self.authority}/devicelogin"
        return 200, {
            "device_code": device_code,
            "user_code": user_code,
            "verification_uri": where,
            "expires_in": 900,
            "interval": 1,
            "message": f"To sign in, use a web browser to open the page {where} and enter "
            f"the code {user_code} to authenticate.",
        }

    def approve(self, user_code: str, user: str) -> bool:
        """What the user does at the verification page: sign in and enter the code."""
        with self.lock:
            for device in self.devices.values():
                if device["user_code"] == user_code and not device["user"]:
                    device["user"] = user
                    return True
        return False

    def user_grant(self, form: dict[str, str]) -> tuple[int, dict[str, object]]:
        """The token endpoint for a public client: `device_code` and `refresh_token`."""
        if form.get("client_id") != CLIENT_ID:
            return 401, {"error": "invalid_client"}
        if form["grant_type"] == "refresh_token":
            user = self.refresh_tokens.get(form.get("refresh_token", ""))
            if user is None:
                return 400, {"error": "invalid_grant", "error_description": "AADSTS70008"}
            return 200, self.user_tokens(user, form.get("scope", ""))
        with self.lock:
            device = self.devices.get(form.get("device_code", ""))
            if device is not None and device["user"]:
                del self.devices[form["device_code"]]  # a device code is redeemed once
        if device is None:
            return 400, {"error": "expired_token"}
        if not device["user"]:
            return 400, {"error": "authorization_pending", "error_description": "AADSTS70016"}
        return 200, self.user_tokens(device["user"], device["scope"])  # what was asked for

    def user_tokens(self, user: str, scope: str) -> dict[str, object]:
        """An access token, a new refresh token (the old one stays valid, as Entra's do),
        and who signed in: an ID token and Entra's `client_info` (MSAL's account)."""
        answer = self.issue()
        refresh = secrets.token_urlsafe(32)
        with self.lock:
            self.refresh_tokens[refresh] = user
            self.subjects[str(answer["access_token"])] = user
        uid = hashlib.sha256(user.encode()).hexdigest()[:16]
        now = int(time.time())
        claims = {"iss": f"{self.authority}/{TENANT}/v2.0", "aud": CLIENT_ID, "sub": uid,
                  "oid": uid, "tid": TENANT, "preferred_username": user, "name": user,
                  "iat": now, "exp": now + 3600}  # fmt: skip
        info = base64.urlsafe_b64encode(json.dumps({"uid": uid, "utid": TENANT}).encode())
        return {
            **answer,
            "scope": " ".join(sorted(set(scope.split()) - {"openid", "profile"})),
            "refresh_token": refresh,
            "id_token": jwt.encode(claims, secrets.token_bytes(32), algorithm="HS256"),
            "client_info": info.decode().rstrip("="),
        }

    def google_authorize(self, query: dict[str, str]) -> str:
        """Google's consent page, the user (`browser_user`) already signed in: where to send
        the browser next (the app's loopback `redirect_uri`, with a code or an error)."""
        redirect = query.get("redirect_uri", "")
        if urlsplit(redirect).hostname not in ("127.0.0.1", "localhost", "::1"):
            raise ValueError("redirect_uri is not a loopback address")
        ok = (
            query.get("client_id") == GOOGLE_CLIENT_ID
            and query.get("response_type") == "code"
            and query.get("scope") == "https://mail.google.com/"
            and query.get("code_challenge_method") == "S256"
        )
        answer = {"state": query.get("state", "")}
        if ok:
            code = secrets.token_urlsafe(16)
            with self.lock:
                self.codes[code] = {"redirect_uri": redirect, "user": self.browser_user,
                                    "challenge": query.get("code_challenge", "")}  # fmt: skip
            answer.update(code=code, scope="https://mail.google.com/")
        else:
            answer["error"] = "invalid_request"
        return f"{redirect}?{urlencode(answer)}"

    def google_user_grant(self, form: dict[str, str], basic: str) -> tuple[int, dict[str, object]]:
        """`authorization_code` (PKCE) and `refresh_token` for the installed app."""
        client = base64.b64decode(basic).decode() if basic else ""
        given = client or f"{form.get('client_id')}:{form.get('client_secret')}"
        if given != f"{GOOGLE_CLIENT_ID}:{GOOGLE_CLIENT_SECRET}":
            return 401, {"error": "invalid_client"}
        if form["grant_type"] == "refresh_token":
            user = self.refresh_tokens.get(form.get("refresh_token", ""))
            if user is None:
                return 400, {
                    "error": "invalid_grant",
                    "error_description": "Token has been expired or revoked.",
                }
            answer = self.issue()
            self.subjects[str(answer["access_token"])] = user
            return 200, {**answer, "scope": "https://mail.google.com/"}
        with self.lock:
            code = self.codes.pop(form.get("code", ""), None)
        verifier = form.get("code_verifier", "").encode()
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier).digest()).rstrip(b"=")
        if (
            code is None
            or code["redirect_uri"] != form.get("redirect_uri")
            or (challenge.decode() != code["challenge"])
        ):
            return 400, {"error": "invalid_grant"}
        answer = self.issue()
        refresh = secrets.token_urlsafe(32)
        with self.lock:
            self.refresh_tokens[refresh] = code["user"]
            self.subjects[str(answer["access_token"])] = code["user"]
        return 200, {**answer, "refresh_token": refresh, "scope": "https://mail.google.com/"}

    def service_account_file(self, path: Path) -> Path:
        """A Google service account's JSON key whose token_uri is this server."""
        pem = self.google_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode()
        info = {
            "type": "service_account",
            "project_id": "mailer-test",
            "private_key_id": "key-1",
            "private_key": pem,
            "client_email": "mailer@mailer-test.iam.gserviceaccount.com",
            "client_id": "1234567890",
            "token_uri": f"{self.authority}/google/token",
        }
        path.write_text(json.dumps(info), encoding="utf-8")
        return path

    def client_certificate_file(self, path: Path) -> Path:
        """A PEM file with a private key and its self-signed certificate (what an app
        registration has uploaded); its key is what `client_proven` accepts from now on."""
        from cryptography import x509
        from cryptography.x509.oid import NameOID

        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mailer")])
        now = datetime.now(UTC)
        certificate = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(days=1))
            .not_valid_after(now + timedelta(days=30))
            .sign(key, hashes.SHA256())
        )
        self.certificate_key = key.public_key()
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ) + certificate.public_bytes(serialization.Encoding.PEM)
        path.write_bytes(pem)
        return path

    def client_proven(self, form: dict[str, str]) -> bool:
        """The client secret, or a client assertion (RFC 7523) signed with the uploaded
        certificate's key, for this token endpoint."""
        if "client_assertion" not in form:
            return form.get("client_secret") == CLIENT_SECRET
        if self.certificate_key is None:
            return False
        try:
            claims = jwt.decode(
                form["client_assertion"],
                self.certificate_key,
                algorithms=["RS256", "PS256"],
                audience=f"{self.authority}/{TENANT}/oauth2/v2.0/token",
            )
        except jwt.InvalidTokenError:
            return False
        return bool(claims.get("iss") == claims.get("sub") == CLIENT_ID)

    def google_grant(self, form: dict[str, str]) -> tuple[int, dict[str, object]]:
        """RFC 7523: a JWT signed with the service account's key, for `sub` (delegation)."""
        if form.get("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer":
            return 400, {"error": "unsupported_grant_type"}
        try:
            claims = jwt.decode(
                form.get("assertion", ""),
                self.google_key.public_key(),
                algorithms=["RS256"],
                audience="https://oauth2.googleapis.com/token",  # google-auth's, whatever the URI
            )
        except jwt.InvalidTokenError as exc:
            return 400, {"error": "invalid_grant", "error_description": str(exc)}
        if claims.get("scope") != "https://mail.google.com/" or not claims.get("sub"):
            return 400, {"error": "unauthorized_client", "error_description": "scope or sub"}
        answer = self.issue()
        self.subjects[str(answer["access_token"])] = str(claims["sub"])
        return 200, answer

    @property
    def authority(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def issue(self) -> dict[str, object]:
        token = secrets.token_urlsafe(32)
        with self.lock:
            self.tokens[token] = time.monotonic() + self.expires_in
            self.issued.append(token)
        return {"token_type": "Bearer", "expires_in": self.expires_in, "access_token": token}

    def live(self, token: str) -> bool:
        with self.lock:
            return self.tokens.get(token, 0) > time.monotonic()

    def revoke_all(self) -> None:
        with self.lock:
            self.tokens.clear()


def _handler(server: IdentityServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

        def _answer(self, status: int, body: dict[str, object]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            server.requests.append(f"GET {self.path.split('?')[0]}")
            base = f"{server.authority}/{TENANT}"
            path, _, query = self.path.partition("?")
            if path == "/google/auth":
                form = {k: v[0] for k, v in parse_qs(query).items()}
                try:
                    location = server.google_authorize(form)
                except ValueError as exc:
                    self._answer(400, {"error": "invalid_request", "error_description": str(exc)})
                    return
                self.send_response(302)
                self.send_header("Location", location)
                self.send_header("Content-Length", "0")
                self.end_headers()
            elif path == f"/{TENANT}/v2.0/.well-known/openid-configuration":
                self._answer(
                    200,
                    {
                        "issuer": f"{base}/v2.0",
                        "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
                        "token_endpoint": f"{base}/oauth2/v2.0/token",
                        "device_authorization_endpoint": f"{base}/oauth2/v2.0/devicecode",
                    },
                )
            else:
                self._answer(404, {"error": "not_found"})

        def do_POST(self) -> None:
            server.requests.append(f"POST {self.path}")
            length = int(self.headers.get("Content-Length", "0"))
            form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
            basic = self.headers.get("Authorization", "").removeprefix("Basic ")
            self._answer(*_post(server, self.path, form, basic))

    return Handler


def _post(
    server: IdentityServer, path: str, form: dict[str, str], basic: str
) -> tuple[int, dict[str, object]]:
    """The answer to a POST to `path` (a form; `basic`: an Authorization: Basic value)."""
    grant = form.get("grant_type", "")
    if grant:
        server.grants.append(grant)
    if path == "/introspect":  # RFC 7662, as Dovecot's oauth2 passdb asks it
        return 200, {"active": server.live(form.get("token", "")), "username": server.mailbox}
    if path == "/google/token" and grant in ("authorization_code", "refresh_token"):
        return server.google_user_grant(form, basic)
    if path == "/google/token":
        return server.google_grant(form)
    if path == f"/{TENANT}/oauth2/v2.0/devicecode":
        return server.device_authorization(form)
    if path == "/devicelogin":  # the verification page's form, submitted
        approved = server.approve(form.get("user_code", ""), form.get("username", ""))
        return 200 if approved else 400, {"approved": approved}
    if path != f"/{TENANT}/oauth2/v2.0/token":
        return 404, {"error": "not_found"}
    if grant in ("urn:ietf:params:oauth:grant-type:device_code", "refresh_token"):
        return server.user_grant(form)
    if grant != "client_credentials":
        return 400, {"error": "unsupported_grant_type"}
    if form.get("client_id") != CLIENT_ID or not server.client_proven(form):
        refused = "AADSTS7000215: Invalid client secret provided."
        return 401, {"error": "invalid_client", "error_description": refused}
    if form.get("scope") != "https://outlook.office365.com/.default":
        return 400, {"error": "invalid_scope"}
    return 200, server.issue()


@contextmanager
def identity_server(tmp_path: Path, expires_in: int = 3600) -> Iterator[IdentityServer]:
    ca = trustme.CA()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    ca_file = tmp_path / "identity-ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    server = IdentityServer(ca_file=ca_file, expires_in=expires_in)
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(server))
    httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    server.port = httpd.server_address[1]
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        httpd.shutdown()
        httpd.server_close()
