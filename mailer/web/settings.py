"""The `MAILER_PUBLIC_URL`, `MAILER_SECRET_KEY`, dashboard and proxy settings as a value
(`WebSettings`), read by `web_settings` from what `mailer.settings` hands over, every wrong
value added to the problems listed with the others."""

from __future__ import annotations

import re
from dataclasses import dataclass

from mailer.errors import cut
from mailer.values import Secret, Values


@dataclass(frozen=True)
class WebSettings:
    """The invitees' personal links and their page (`mailer web`, mailer/web): off while
    `public_url` is empty."""

    public_url: str = ""  # e.g. https://rsvp.example.go.th (no trailing slash)
    secret_key: Secret = Secret("")  # signs the links and the forms
    # The coordinator's dashboard (/dashboard): off while empty. An argon2 hash, printed by
    # `mailer web hash-password`.
    dashboard_password_hash: Secret = Secret("")
    dashboard_readonly_hash: Secret = Secret("")  # a second password: sees, never marks
    # The reverse proxy whose X-Forwarded-For/-Proto `mailer web` believes (addresses or
    # networks); empty: none, the headers are ignored.
    trusted_proxies: tuple[str, ...] = ()

    @property
    def links(self) -> bool:
        return bool(self.public_url)


MIN_SECRET_KEY = 32  # characters


def web_settings(v: Values) -> WebSettings:
    """The personal links: the public address of `mailer web`, and the key that signs them
    (required with the address, at least `MIN_SECRET_KEY` characters: it guards every
    office's answer)."""
    url = v.text("MAILER_PUBLIC_URL", "").rstrip("/")
    key = v.raw("MAILER_SECRET_KEY").strip()
    example = "e.g. MAILER_PUBLIC_URL=https://rsvp.example.go.th"
    if url and (
        not re.fullmatch(r"https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?(/[A-Za-z0-9._~/-]*)?", url)
    ):
        v.problems.append(
            f"MAILER_PUBLIC_URL={cut(url)!r} must be an http(s) address without ? or #; {example}"
        )
    make = 'make one with: python3 -c "import secrets; print(secrets.token_urlsafe(48))"'
    if url and not key:
        v.problems.append(f"MAILER_PUBLIC_URL is set but MAILER_SECRET_KEY is empty; {make}")
    elif key and len(key) < MIN_SECRET_KEY:
        v.problems.append(
            f"MAILER_SECRET_KEY is {len(key)} characters long; it must be at least "
            f"{MIN_SECRET_KEY} ({make})"
        )
    password_hash = _password_hash(v, "MAILER_DASHBOARD_PASSWORD_HASH")
    readonly_hash = _password_hash(v, "MAILER_DASHBOARD_READONLY_HASH")
    if readonly_hash and not password_hash:
        v.problems.append(
            "MAILER_DASHBOARD_READONLY_HASH is set but MAILER_DASHBOARD_PASSWORD_HASH is empty: "
            "the dashboard is on only with the coordinator's password"
        )
    if password_hash and not key:
        v.problems.append(
            f"MAILER_DASHBOARD_PASSWORD_HASH is set but MAILER_SECRET_KEY is empty (it signs the "
            f"dashboard's session); {make}"
        )
    return WebSettings(public_url=url, secret_key=Secret(key),
                       dashboard_password_hash=Secret(password_hash),
                       dashboard_readonly_hash=Secret(readonly_hash),
                       trusted_proxies=_proxies(v))  # fmt: skip


def _password_hash(v: Values, name: str) -> str:
    found = v.raw(name).strip()
    if found and not found.startswith("$argon2"):
        v.problems.append(
            f"{name} is not an argon2 hash (it starts with $argon2); make one with "
            "`mailer web hash-password` (never put the password itself here)"
        )
        return ""
    return found


def _proxies(v: Values) -> tuple[str, ...]:
    import ipaddress

    found = []
    for given in v.text("MAILER_TRUSTED_PROXY", "").replace(",", " ").split():
        try:
            found.append(str(ipaddress.ip_network(given, strict=False)))
        except ValueError:
            v.problems.append(
                f"MAILER_TRUSTED_PROXY: {cut(given)!r} is not an IP address or network; "
                "e.g. MAILER_TRUSTED_PROXY=127.0.0.1"
            )
    return tuple(found)
