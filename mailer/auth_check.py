"""`mailer check --auth`: sign in the way a send run and `replies sync` would, and say what
failed and where: the token (SMTP_AUTH / IMAP_AUTH = microsoft or google), the SMTP login, the IMAP
login and folder. Nothing is sent, nothing in the mailbox changes; no secret or token is
shown."""

from __future__ import annotations

from dataclasses import dataclass

from mailer.delivery.transport import SmtpTransport
from mailer.errors import MailerError
from mailer.oauth import OAuthSettings, token_source
from mailer.replies.sources import close, open_folder
from mailer.settings import ImapSettings, SmtpSettings


@dataclass(frozen=True)
class AuthStep:
    ok: bool
    line: str


def check_auth(smtp: SmtpSettings, imap: ImapSettings) -> list[AuthStep]:
    """One step per thing tried, in order; a failed token stops the logins that need it."""
    steps: list[AuthStep] = []
    broken: set[OAuthSettings] = set()
    for oauth in dict.fromkeys(o for o in (smtp.oauth, imap.oauth) if o is not None):
        try:
            token_source(oauth).token(fresh=True)
        except MailerError as exc:
            broken.add(oauth)
            steps.append(AuthStep(ok=False, line=f"token: {exc}"))
        else:
            steps.append(
                AuthStep(
                    ok=True,
                    line=f"token: {oauth.where()} gave {oauth.client_id!r} a token",
                )
            )
    steps.append(_smtp(smtp, broken))
    steps.append(_imap(imap, broken))
    return steps


def _how(oauth: OAuthSettings | None, username: str) -> str:
    if oauth is not None:
        return f"signed in as {username!r} with XOAUTH2"
    return f"logged in as {username!r} with a password" if username else "connected (no login)"


def _smtp(smtp: SmtpSettings, broken: set[OAuthSettings]) -> AuthStep:
    where = f"SMTP {smtp.host}:{smtp.port}"
    if smtp.oauth in broken:
        return AuthStep(ok=False, line=f"{where}: not tried (no token, see above)")
    transport = SmtpTransport(smtp)
    try:
        transport.connect()
    except MailerError as exc:
        return AuthStep(ok=False, line=f"{where}: {exc}")
    transport.close()
    return AuthStep(ok=True, line=f"{where}: {_how(smtp.oauth, smtp.username)}, logged out")


def _imap(imap: ImapSettings, broken: set[OAuthSettings]) -> AuthStep:
    if not imap.host:
        return AuthStep(ok=True, line="IMAP: not set up (IMAP_HOST is empty), not tried")
    where = f"IMAP {imap.host}:{imap.port}"
    if imap.oauth in broken:
        return AuthStep(ok=False, line=f"{where}: not tried (no token, see above)")
    try:
        client, _ = open_folder(imap)
    except MailerError as exc:
        return AuthStep(ok=False, line=f"{where}: {exc}")
    close(client)
    return AuthStep(
        ok=True,
        line=f"{where}: {_how(imap.oauth, imap.username)}, opened {imap.folder!r}, logged out",
    )
