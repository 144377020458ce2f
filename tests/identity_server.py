"""A local OAuth2 identity server over HTTPS (a throw-away test CA), speaking what MSAL asks
of a Microsoft tenant for app-only sign-in: the OpenID discovery document
(`/{tenant}/v2.0/.well-known/openid-configuration`) and the token endpoint's
client-credentials grant; Google's token endpoint for a service account's signed JWT
(`/google/token`, RFC 7523, with `sub` the mailbox); and RFC 7662 introspection (`/introspect`) for Dovecot's oauth2
passdb. Tokens are random, live for `expires_in` seconds (real time) and
can be revoked; `live(token)` is what the test's SMTP server asks."""

from __future__ import annotations

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
from urllib.parse import parse_qs

import jwt
import trustme
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa

TENANT = "agency.example"
CLIENT_ID = "11111111-2222-3333-4444-555555555555"
CLIENT_SECRET = "s3cret~client.value-ThatMustNeverShow"


@dataclass
class IdentityServer:
    port: int = 0
    ca_file: Path = Path()
    expires_in: int = 3600
    mailbox: str = "coordinator"  # whom `/introspect` says a live token is for (Dovecot)
    tokens: dict[str, float] = field(default_factory=dict)  # token -> when it dies
    issued: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)  # "GET /path", "POST /path"
    lock: threading.Lock = field(default_factory=threading.Lock)
    subjects: dict[str, str] = field(default_factory=dict)  # Google: token -> the mailbox
    certificate_key: rsa.RSAPublicKey | None = None  # the app's certificate (`client_proven`)
    google_key: rsa.RSAPrivateKey = field(
        default_factory=lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048)
    )

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
            server.requests.append(f"GET {self.path}")
            base = f"{server.authority}/{TENANT}"
            if self.path.split("?")[0] == f"/{TENANT}/v2.0/.well-known/openid-configuration":
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
            if self.path == "/introspect":  # RFC 7662, as Dovecot's oauth2 passdb asks it
                live = server.live(form.get("token", ""))
                self._answer(200, {"active": live, "username": server.mailbox})
            elif self.path == "/google/token":
                self._answer(*server.google_grant(form))
            elif self.path != f"/{TENANT}/oauth2/v2.0/token":
                self._answer(404, {"error": "not_found"})
            elif form.get("grant_type") != "client_credentials":
                self._answer(400, {"error": "unsupported_grant_type"})
            elif form.get("client_id") != CLIENT_ID or not server.client_proven(form):
                self._answer(
                    401,
                    {
                        "error": "invalid_client",
                        "error_description": "AADSTS7000215: Invalid client secret provided.",
                    },
                )
            elif form.get("scope") != "https://outlook.office365.com/.default":
                self._answer(400, {"error": "invalid_scope"})
            else:
                self._answer(200, server.issue())

    return Handler


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
