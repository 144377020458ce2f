"""The coordinator's login to the dashboard: the password checked against its argon2 hash
(`MAILER_DASHBOARD_PASSWORD_HASH`, made by `hash_password`; or the read-only one,
`MAILER_DASHBOARD_READONLY_HASH`), and a session held in a signed cookie (itsdangerous,
`MAILER_SECRET_KEY`): its role and a random session id, nothing else, good for
`SESSION_AGE` seconds, or until the coordinator logs out (the id is then refused by this
process). The dashboard's forms are signed for the session's id (`mailer.web.guard.Forms`)."""

from __future__ import annotations

import hashlib
import secrets
import threading

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

SESSION_AGE = 8 * 3600  # seconds a login lasts
SESSION_COOKIE = "mailer_dashboard"
LOGIN_COOKIE = "dashboard_form"  # the login form's nonce, before there is a session
COORDINATOR = "coordinator"  # sees and marks
VIEWER = "viewer"  # the read-only role: sees, never marks


def role_of(session: str) -> str:
    """The role a session was started with (its id's signed prefix)."""
    return COORDINATOR if session.startswith(f"{COORDINATOR}.") else VIEWER


def hash_password(password: str) -> str:
    """The argon2id hash of `password` (argon2-cffi's recommended parameters)."""
    from argon2 import PasswordHasher

    return PasswordHasher().hash(password)


def password_ok(password_hash: str, password: str) -> bool:
    """Whether `password` is the one `password_hash` was made from (a malformed hash: no)."""
    from argon2 import PasswordHasher
    from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

    if not password_hash or not password or len(password) > 1024:
        return False
    try:
        return PasswordHasher().verify(password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


class Sessions:
    """Signed session cookies: `start` makes one, `read` gives its id (or None), `end` makes
    the id stop working in this process."""

    def __init__(self, secret: str, password_hash: str) -> None:
        # A new password hash ends every session signed before it.
        salt = "mailer-dashboard-session-" + hashlib.sha256(password_hash.encode()).hexdigest()[:16]
        self._serializer = URLSafeTimedSerializer(
            secret, salt=salt, signer_kwargs={"digest_method": hashlib.sha256}
        )
        self._ended: set[str] = set()
        self._lock = threading.Lock()

    def start(self, role: str = COORDINATOR) -> tuple[str, str]:
        """(the session's id, the cookie's value); the id starts with its role."""
        session = f"{role}.{secrets.token_urlsafe(18)}"
        return session, str(self._serializer.dumps(session))

    def read(self, cookie: str | None) -> str | None:
        if not cookie or len(cookie) > 400:
            return None
        try:
            session = self._serializer.loads(cookie, max_age=SESSION_AGE)
        except (BadSignature, SignatureExpired, ValueError, TypeError):
            return None
        with self._lock:
            return None if not isinstance(session, str) or session in self._ended else session

    def end(self, session: str) -> None:
        with self._lock:
            self._ended.add(session)
