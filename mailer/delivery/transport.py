"""SMTP sessions: TLS verified, login from settings (a password, or XOAUTH2 with a token from
`mailer.oauth`), one session reused for many messages.

`send` returns what the server's answers came to, as a value (`mailer.delivery.answers`:
`Delivered`, `Deferred`, `Refused`, `Uncertain`), and raises `TransportError` (a
`MailerError`) only when the server cannot be used at all (unreachable, certificate,
login): the run stops at once instead of burning the list.
"""

from __future__ import annotations

import base64
import contextlib
import re
import smtplib
import ssl
from collections.abc import Sequence
from types import TracebackType

from mailer.delivery.answers import (
    Deferred,
    Delivered,
    Refused,
    SmtpReply,
    SmtpResult,
    Uncertain,
    described,
    envelope_problem,
    exchange,
    out_of_step,
    refusal,
    strict_reply,
)
from mailer.errors import TransportError
from mailer.oauth import DELEGATION, OAuthSettings, token_source, xoauth2
from mailer.settings import SmtpSettings


def ssl_context(settings: SmtpSettings) -> ssl.SSLContext:
    """Always verifying; a private CA is trusted only through SMTP_CA_FILE."""
    cafile = str(settings.ca_file) if settings.ca_file else None
    return ssl.create_default_context(cafile=cafile)


class SmtpTransport:
    def __init__(self, settings: SmtpSettings) -> None:
        self.settings = settings
        self._smtp: smtplib.SMTP | None = None
        self._sent_on_session = 0

    @property
    def server_id(self) -> str:
        return self.settings.server_id

    def __enter__(self) -> SmtpTransport:
        self.connect()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def connect(self) -> None:
        s = self.settings
        where = f"the SMTP server {s.host}:{s.port} (SMTP_SECURITY={s.security})"
        try:
            smtp = _session(s, where)  # a TransportError of its own passes through
        except ssl.SSLCertVerificationError as exc:
            raise TransportError(
                f"the TLS certificate of {where} does not verify ({exc.verify_message}). "
                "If the server uses a private CA, set SMTP_CA_FILE to that CA's PEM file; "
                "otherwise check SMTP_HOST. Nothing was sent"
            ) from exc
        except ssl.SSLError as exc:
            raise TransportError(f"TLS with {where} failed: {exc}. Nothing was sent") from exc
        except smtplib.SMTPAuthenticationError as exc:
            raise _refused_login(s, where, exc) from exc
        except smtplib.SMTPConnectError as exc:
            raise TransportError(
                f"{where} refused the session: {SmtpReply.of(exc.smtp_code, exc.smtp_error)}. "
                "Nothing was sent"
            ) from exc
        except smtplib.SMTPException as exc:
            raise TransportError(f"{where} failed: {exc}. Nothing was sent") from exc
        except (TimeoutError, OSError) as exc:
            reason = exc.strerror or str(exc) or type(exc).__name__
            hint = (
                " Is `mailer devserver` running?"
                if s.is_loopback
                else " Check SMTP_HOST, SMTP_PORT and the network"
            )
            raise TransportError(f"cannot reach {where}: {reason}.{hint}") from exc
        self._smtp = smtp
        self._sent_on_session = 0

    def tls(self) -> tuple[str, dict[str, object]] | None:
        """The TLS version and the (verified) certificate of the open session; None
        without TLS (`check --deliverability` reports them)."""
        sock = getattr(self._smtp, "sock", None)
        if not isinstance(sock, ssl.SSLSocket):
            return None
        return sock.version() or "", dict(sock.getpeercert() or {})

    def close(self) -> None:
        smtp, self._smtp = self._smtp, None
        if smtp is None:
            return
        try:
            smtp.quit()
        except (smtplib.SMTPException, OSError):
            smtp.close()

    def _drop(self) -> None:
        smtp, self._smtp = self._smtp, None
        _abandon(smtp)

    def ready(self) -> None:
        """Make sure a session is open (reconnecting after `reconnect_every` messages or a
        dropped connection). Raises `TransportError` when the server cannot be reached:
        call it *before* marking a message as sending."""
        if self._smtp is not None and self._sent_on_session >= self.settings.reconnect_every:
            self.close()
        if self._smtp is None:
            self.connect()

    def send(self, envelope_from: str, recipients: Sequence[str], data: bytes) -> SmtpResult:
        """One SMTP transaction on the open session (see `ready`). With PIPELINING
        (RFC 2920), MAIL, RCPT and DATA go out in one write.

        Only after the final dot can the server hold the message, so from then on anything
        but a 2xx, 4xx or 5xx is `Uncertain`: retrying could deliver it twice. Before the
        dot, an answer that fits no command drops the session (the server may be out of
        step with us: its next line could be taken for the answer to the next message) and
        is `Deferred`: nothing was handed over.
        """
        smtp = self._smtp
        if smtp is None:
            return Deferred(SmtpReply(0, "no open SMTP session"))
        try:
            commands = [f"MAIL FROM:{_path(envelope_from)}"]
            commands += [f"RCPT TO:{_path(r)}" for r in recipients]
        except ValueError as bad:
            return Refused(SmtpReply(0, str(bad)))
        commands.append("DATA")
        try:
            replies = exchange(smtp, commands)
        except _LOST as exc:
            self._drop()
            return Deferred(SmtpReply(0, f"connection lost: {exc}"))
        odd = out_of_step(commands, replies)
        if odd is not None:
            self._drop()
            return Deferred(odd)
        refused, problem = envelope_problem(recipients, replies)
        if problem is None:
            return self._hand_over(smtp, data, refused)
        if replies[-1].code == 354:  # a pipelined DATA was accepted: hang up rather than
            self._drop()  # end it with a bare dot (an empty message to the others)
        return self._refused(problem)

    def _hand_over(
        self, smtp: smtplib.SMTP, data: bytes, refused: dict[str, SmtpReply]
    ) -> SmtpResult:
        """The message after DATA's 354, and the server's answer to its final dot."""
        try:
            smtp.send(_dot_stuffed(data))
        except _LOST as exc:
            self._drop()
            return Deferred(SmtpReply(0, f"connection lost: {exc}"))
        try:
            reply = SmtpReply.of(*strict_reply(smtp))
        except _LOST as exc:
            self._drop()
            return Uncertain(
                SmtpReply(0, f"connection lost after the message was handed over: {exc}")
            )
        if reply.negative:
            return self._refused(reply)
        if not reply.positive:
            self._drop()  # out of step, or not an SMTP server: never read it again
            return Uncertain(
                SmtpReply(
                    0,
                    f"unclear answer after the message was handed over: {described(reply)} "
                    "(neither 2xx, 4xx nor 5xx); the server may hold the message",
                )
            )
        self._sent_on_session += 1
        return Delivered(reply, refused)

    def _refused(self, reply: SmtpReply) -> Deferred | Refused:
        """Classify a refusal and leave the session usable (RSET) or closed (421)."""
        if reply.code == 421:
            self._drop()
        else:
            try:
                if self._smtp is not None:
                    self._smtp.rset()
            except (smtplib.SMTPException, OSError):
                self._drop()
        return refusal(reply)


# What a lost or broken session raises inside smtplib (a reply too long is one too).
_LOST = (smtplib.SMTPServerDisconnected, smtplib.SMTPResponseException, OSError)


def _abandon(smtp: smtplib.SMTP | None) -> None:
    if smtp is not None:
        with contextlib.suppress(OSError):
            smtp.close()


def _session(s: SmtpSettings, where: str) -> smtplib.SMTP:
    """A session as the settings ask for it: TLS, EHLO, the login. Closed again if any step
    fails (the caller says why)."""
    smtp: smtplib.SMTP
    if s.security == "ssl":
        smtp = smtplib.SMTP_SSL(s.host, s.port, timeout=s.timeout, context=ssl_context(s))
    else:
        smtp = smtplib.SMTP(s.host, s.port, timeout=s.timeout)
    try:
        smtp.ehlo()
        if s.security == "starttls":
            if not smtp.has_extn("starttls"):
                raise TransportError(
                    f"{where} does not offer STARTTLS; use SMTP_SECURITY=ssl with its TLS "
                    "port, or ask the provider for the submission port (587)"
                )
            smtp.starttls(context=ssl_context(s))
            smtp.ehlo()
        if s.oauth is not None:
            _xoauth2_login(smtp, s.username, s.oauth)
        elif s.username:
            _login(smtp, s.username, s.password.value, where)
    except BaseException:
        _abandon(smtp)
        raise
    return smtp


def _refused_login(
    s: SmtpSettings, where: str, exc: smtplib.SMTPAuthenticationError
) -> TransportError:
    reply = SmtpReply.of(exc.smtp_code, exc.smtp_error)
    login = f"{where} refused the login of SMTP_USERNAME={s.username!r}: {reply}."
    if s.oauth is not None and s.oauth.delegated:
        return TransportError(
            f"{login} (After a 535 the token is fetched again and tried once more.) Check "
            "that SMTP_USERNAME is the user who signed in (`mailer auth status`) and may "
            "send by SMTP AUTH. Nothing was sent"
        )
    if s.oauth is not None and s.oauth.provider == "google":
        return TransportError(
            f"{login} (After a 535 the token is fetched again and tried once more.) Check "
            f"that SMTP_USERNAME is a mailbox of the Workspace domain and that {DELEGATION}. "
            "Nothing was sent"
        )
    if s.oauth is not None:
        return TransportError(
            f"{login} (After a 535 the token is fetched again and tried once more.) Check "
            "that the app registration's service principal is registered in Exchange Online "
            "(New-ServicePrincipal) with FullAccess or SendAs on this mailbox, and that SMTP "
            "AUTH is enabled for the mailbox. Nothing was sent"
        )
    if basic_auth_disabled(reply):
        return TransportError(
            f"{login} The server no longer takes passwords (Basic authentication) for SMTP "
            "AUTH: set SMTP_AUTH=microsoft with OAUTH_TENANT, OAUTH_CLIENT_ID and "
            "OAUTH_CLIENT_SECRET (see README, OAuth2). If a password must keep working, a "
            "tenant admin checks, in the Microsoft 365 admin centre, the mailbox's Mail apps "
            "setting 'Authenticated SMTP' (SMTP AUTH for the mailbox: Set-CASMailbox "
            "-SmtpClientAuthenticationDisabled $false) and the tenant's "
            "SmtpClientAuthenticationDisabled / Security defaults. Nothing was sent"
        )
    return TransportError(f"{login} Check SMTP_USERNAME and SMTP_PASSWORD. Nothing was sent")


def basic_auth_disabled(reply: SmtpReply) -> bool:
    """Whether a refused password login says passwords are off (Exchange Online's
    `550 5.7.30 Basic authentication is not supported for Client Submission`, `535 5.7.139
    ... basic authentication is disabled`, and the like)."""
    text = reply.text.lower()
    return "5.7.30" in text or ("basic auth" in text and ("disabled" in text or "not" in text))


def _xoauth2_login(smtp: smtplib.SMTP, username: str, oauth: OAuthSettings) -> None:
    """AUTH XOAUTH2 with the token source's token; a 535 (the token was revoked, or
    expired early) gets one more try with a token fetched again."""
    source = token_source(oauth)
    for fresh in (False, True):
        response = xoauth2(username, source.token(fresh=fresh))
        try:  # an error challenge (334) is answered with an empty line, as XOAUTH2 asks
            smtp.auth("XOAUTH2", lambda challenge=None, r=response: "" if challenge else r)
        except smtplib.SMTPAuthenticationError as exc:
            if exc.smtp_code != 535 or fresh:
                raise
        else:
            return


def _login(smtp: smtplib.SMTP, username: str, password: str, where: str) -> None:
    """smtplib's login, except that a user name or password beyond ASCII (smtplib sends
    only ASCII) goes by AUTH PLAIN as UTF-8 (RFC 4616), the one mechanism that says how."""
    if username.isascii() and password.isascii():
        smtp.login(username, password)
        return
    offered = smtp.esmtp_features.get("auth", "").upper().split()
    if "PLAIN" not in offered:
        raise TransportError(
            f"SMTP_USERNAME or SMTP_PASSWORD has characters beyond ASCII (Thai, say), which "
            f"only AUTH PLAIN can carry, and {where} offers "
            f"{'only AUTH ' + ' '.join(offered) if offered else 'no AUTH at all'}. "
            "Use a password of ASCII letters, digits and signs. Nothing was sent"
        )
    token = b"\0" + username.encode("utf-8") + b"\0" + password.encode("utf-8")
    code, message = smtp.docmd("AUTH", "PLAIN " + base64.b64encode(token).decode("ascii"))
    if code not in (235, 503):  # 503: already logged in, as smtplib counts it
        raise smtplib.SMTPAuthenticationError(code, message)


def _path(address: str) -> str:
    """`<address>` for MAIL/RCPT; an address that could smuggle an SMTP command is refused
    (`ValueError`)."""
    if not address.isascii() or any(c in address for c in " <>\r\n\0") or "@" not in address:
        raise ValueError(f"{address!r} cannot be used as an SMTP address")
    return f"<{address}>"


def _starts_a_line_with_dot(data: bytes) -> bool:
    """Whether any line begins with ".". Looks only at the dots (one `find` each, and a
    composed message has a few dozen, all in its headers: base64 has none) instead of
    searching the whole message for "\\n." (~25 µs for an invitation)."""
    at = data.find(b".")
    while at != -1:
        if at == 0 or data[at - 1] == 0x0A:
            return True
        at = data.find(b".", at + 1)
    return False


def _dot_stuffed(data: bytes) -> bytes:
    """The DATA payload: CRLF line ends, leading dots doubled, ended by CRLF.CRLF."""
    body = re.sub(rb"(?m)^\.", b"..", data) if _starts_a_line_with_dot(data) else data
    if not body.endswith(b"\r\n"):
        body += b"\r\n"
    return body + b".\r\n"
