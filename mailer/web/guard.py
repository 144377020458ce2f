"""What guards a POST: the form's CSRF token, its origin, and the rate limits.

CSRF (double submit, signed): showing a page sets a random nonce in a cookie (HttpOnly,
SameSite=Strict, on the page's path) and puts in the form the nonce signed with
`MAILER_SECRET_KEY` together with a digest of the page's link token and the time. A POST
counts only with the cookie and a field that match, for that same link, younger than
`FORM_AGE`: another site's form carries no cookie, and a form copied from one office's page
does not fit another's link.

Rate limits: a sliding window of POSTs per key, held in the process (one `mailer web` per
ledger; behind several, each counts its own)."""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

if TYPE_CHECKING:
    from starlette.requests import Request

FORM_AGE = 12 * 3600  # seconds a form shown stays good to post
COOKIE = "rsvp_form"


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("ascii", "replace")).hexdigest()[:24]


class Forms:
    def __init__(self, secret: str) -> None:
        self._serializer = URLSafeTimedSerializer(
            secret, salt="mailer-rsvp-form", signer_kwargs={"digest_method": hashlib.sha256}
        )

    def issue(self, token: str, nonce: str | None = None) -> tuple[str, str]:
        """(the cookie's nonce, the form field) for a page of link `token`: the browser's
        nonce when it has one (two tabs of a page both post), else a new one."""
        nonce = nonce or secrets.token_urlsafe(18)
        return nonce, str(self._serializer.dumps([nonce, _digest(token)]))

    def check(self, token: str, cookie: str | None, field: str | None) -> bool:
        if not cookie or not field or len(field) > 400:
            return False
        try:
            nonce, digest = self._serializer.loads(field, max_age=FORM_AGE)
        except (BadSignature, SignatureExpired, ValueError, TypeError):
            return False
        return secrets.compare_digest(str(nonce), cookie) and digest == _digest(token)


class RateLimit:
    """At most `limit` events per key in any `window` seconds."""

    def __init__(
        self, limit: int, window: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.limit, self.window, self.clock = limit, window, clock
        self._seen: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def allow(self, key: str) -> bool:
        now = self.clock()
        with self._lock:
            seen = self._seen.setdefault(key, deque())
            while seen and seen[0] <= now - self.window:
                seen.popleft()
            if len(seen) >= self.limit:
                return False
            seen.append(now)
            if len(self._seen) > 100_000:  # forget idle keys rather than grow for ever
                self._seen = {
                    k: v for k, v in self._seen.items() if v and v[-1] > now - self.window
                }
            return True


def same_origin(request: Request, public_origin: str | None) -> bool:
    """A browser's POST from our own page: no cross-site fetch, an Origin (if sent) of this
    server or of MAILER_PUBLIC_URL (`public_origin`)."""
    if request.headers.get("sec-fetch-site", "same-origin") not in ("same-origin", "none"):
        return False
    origin = request.headers.get("origin")
    if origin is None:
        return True
    own = f"{request.url.scheme}://{request.url.netloc}"
    return origin in (own, public_origin)
