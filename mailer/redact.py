"""Values from outside made fit for a message: cut short (`cut`), passwords masked
(`shown_url`, `hide_secrets`). A database URL is shown this way even when it is too broken
to parse, so no message or log line quotes a password back.
"""

from __future__ import annotations

import re

from mailer.errors import cut

# Not "printable" to Python, but part of the text: a zero-width space (Thai word breaks),
# the zero-width non-joiner and joiner (emoji sequences such as 👩‍💻), the word joiner.
_ZERO_WIDTH = frozenset("\u200b\u200c\u200d\u2060")


def printable(char: str) -> bool:
    """Whether a character may stay in one line of shown text: printable, or zero-width
    text (above). Controls, line and paragraph separators and bidi overrides may not."""
    return char.isprintable() or char in _ZERO_WIDTH


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
