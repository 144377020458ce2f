"""SMTP sessions: TLS verified, login from settings, one session reused for many messages.

`send` sorts every outcome into three kinds the sender acts on:
- a `SmtpReply` (250: delivered to the server),
- `TemporaryFailure` (4xx, or the connection lost before the message was handed over),
- `PermanentFailure` (5xx for this message: do not retry),
- `Unknown` (the connection lost after the final dot, before the reply: maybe delivered),
and raises `TransportError` (a `MailerError`) when the server cannot be used at all
(unreachable, certificate, login): the run stops at once instead of burning the list.
"""

from __future__ import annotations

import contextlib
import re
import smtplib
import ssl
from collections.abc import Sequence
from dataclasses import dataclass, field
from types import TracebackType

from mailer.errors import TransportError
from mailer.settings import SmtpSettings


@dataclass(frozen=True)
class SmtpReply:
    code: int
    text: str

    def __str__(self) -> str:
        return f"{self.code} {self.text}".strip()

    @classmethod
    def of(cls, code: int, message: bytes | str) -> SmtpReply:
        text = message.decode("utf-8", "replace") if isinstance(message, bytes) else message
        return cls(code, " ".join(text.split()))


@dataclass(frozen=True)
class Delivered:
    reply: SmtpReply
    refused: dict[str, SmtpReply] = field(default_factory=dict)


class TemporaryFailure(Exception):
    def __init__(self, reply: SmtpReply) -> None:
        self.reply = reply
        super().__init__(str(reply))


class PermanentFailure(Exception):
    def __init__(self, reply: SmtpReply) -> None:
        self.reply = reply
        super().__init__(str(reply))


class Unknown(Exception):
    """The server may or may not have accepted the message (see `SmtpTransport.send`)."""

    def __init__(self, reply: SmtpReply) -> None:
        self.reply = reply
        super().__init__(str(reply))


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
        smtp: smtplib.SMTP | None = None
        try:
            if s.security == "ssl":
                smtp = smtplib.SMTP_SSL(s.host, s.port, timeout=s.timeout, context=ssl_context(s))
            else:
                smtp = smtplib.SMTP(s.host, s.port, timeout=s.timeout)
            smtp.ehlo()
            if s.security == "starttls":
                if not smtp.has_extn("starttls"):
                    raise TransportError(
                        f"{where} does not offer STARTTLS; use SMTP_SECURITY=ssl with its TLS "
                        "port, or ask the provider for the submission port (587)"
                    )
                smtp.starttls(context=ssl_context(s))
                smtp.ehlo()
            if s.username:
                smtp.login(s.username, s.password.value)
        except ssl.SSLCertVerificationError as exc:
            self._abandon(smtp)
            raise TransportError(
                f"the TLS certificate of {where} does not verify ({exc.verify_message}). "
                "If the server uses a private CA, set SMTP_CA_FILE to that CA's PEM file; "
                "otherwise check SMTP_HOST. Nothing was sent"
            ) from exc
        except ssl.SSLError as exc:
            self._abandon(smtp)
            raise TransportError(f"TLS with {where} failed: {exc}. Nothing was sent") from exc
        except smtplib.SMTPAuthenticationError as exc:
            self._abandon(smtp)
            raise TransportError(
                f"{where} refused the login of SMTP_USERNAME={s.username!r}: "
                f"{SmtpReply.of(exc.smtp_code, exc.smtp_error)}. Check SMTP_USERNAME and "
                "SMTP_PASSWORD. Nothing was sent"
            ) from exc
        except smtplib.SMTPConnectError as exc:
            self._abandon(smtp)
            raise TransportError(
                f"{where} refused the session: {SmtpReply.of(exc.smtp_code, exc.smtp_error)}. "
                "Nothing was sent"
            ) from exc
        except smtplib.SMTPException as exc:
            self._abandon(smtp)
            raise TransportError(f"{where} failed: {exc}. Nothing was sent") from exc
        except (TimeoutError, OSError) as exc:
            self._abandon(smtp)
            reason = exc.strerror or str(exc) or type(exc).__name__
            hint = (
                " Is `mailer devserver` running?"
                if s.is_loopback
                else " Check SMTP_HOST, SMTP_PORT and the network"
            )
            raise TransportError(f"cannot reach {where}: {reason}.{hint}") from exc
        self._smtp = smtp
        self._sent_on_session = 0

    @staticmethod
    def _abandon(smtp: smtplib.SMTP | None) -> None:
        if smtp is not None:
            with contextlib.suppress(OSError):
                smtp.close()

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
        self._abandon(smtp)

    def ready(self) -> None:
        """Make sure a session is open (reconnecting after `reconnect_every` messages or a
        dropped connection). Raises `TransportError` when the server cannot be reached:
        call it *before* marking a message as sending."""
        if self._smtp is not None and self._sent_on_session >= self.settings.reconnect_every:
            self.close()
        if self._smtp is None:
            self.connect()

    def send(self, envelope_from: str, recipients: Sequence[str], data: bytes) -> Delivered:
        """One SMTP transaction on the open session (see `ready`). With PIPELINING
        (RFC 2920), MAIL, RCPT and DATA go out in one write.

        A connection lost *after* the message's final dot was sent raises `Unknown`: the
        server may have queued it, so retrying could deliver it twice.
        """
        smtp = self._smtp
        if smtp is None:
            raise TemporaryFailure(SmtpReply(0, "no open SMTP session"))
        commands = [f"MAIL FROM:{_path(envelope_from)}"]
        commands += [f"RCPT TO:{_path(r)}" for r in recipients]
        commands.append("DATA")
        handed_over = False
        try:
            replies = self._exchange(smtp, commands)
            mail, rcpts, go = replies[0], replies[1:-1], replies[-1]
            refused = {
                r: reply
                for r, reply in zip(recipients, rcpts, strict=False)
                if reply.code not in (250, 251)
            }
            problem = None
            if mail.code != 250:
                problem = mail
            elif any(reply.code == 421 for reply in refused.values()):
                problem = next(reply for reply in refused.values() if reply.code == 421)
            elif len(refused) == len(recipients):
                problem = min(refused.values(), key=lambda r: r.code)  # 4xx before 5xx
            elif go.code != 354:
                problem = go
            if problem is not None:
                if go.code == 354:
                    smtp.send(b".\r\n")  # a pipelined DATA was accepted: end it empty
                    smtp.getreply()
                raise self._refused(problem)
            smtp.send(_dot_stuffed(data))
            handed_over = True
            code, message = smtp.getreply()
        except (smtplib.SMTPServerDisconnected, smtplib.SMTPResponseException, OSError) as exc:
            self._drop()
            if handed_over:
                raise Unknown(
                    SmtpReply(0, f"connection lost after the message was handed over: {exc}")
                ) from exc
            raise TemporaryFailure(SmtpReply(0, f"connection lost: {exc}")) from exc
        reply = SmtpReply.of(code, message)
        if code != 250:
            raise self._refused(reply)
        self._sent_on_session += 1
        return Delivered(reply, refused)

    @staticmethod
    def _exchange(smtp: smtplib.SMTP, commands: list[str]) -> list[SmtpReply]:
        """Send MAIL, RCPT… and DATA; return one reply per command (a command not sent
        because an earlier one failed gets a 503 placeholder)."""
        if smtp.has_extn("pipelining"):
            smtp.send("".join(f"{c}\r\n" for c in commands).encode("ascii"))
            return [SmtpReply.of(*smtp.getreply()) for _ in commands]
        replies: list[SmtpReply] = []
        for number, command in enumerate(commands):
            if number and replies[0].code != 250:
                replies.append(SmtpReply(503, "not sent: MAIL FROM was refused"))
                continue
            if command == "DATA" and all(r.code not in (250, 251) for r in replies[1:]):
                replies.append(SmtpReply(503, "not sent: every recipient was refused"))
                continue
            smtp.putcmd(command)
            replies.append(SmtpReply.of(*smtp.getreply()))
        return replies

    def _refused(self, reply: SmtpReply) -> Exception:
        """Classify a refusal and leave the session usable (RSET) or closed (421)."""
        if reply.code == 421:
            self._drop()
        else:
            try:
                if self._smtp is not None:
                    self._smtp.rset()
            except (smtplib.SMTPException, OSError):
                self._drop()
        return PermanentFailure(reply) if reply.code >= 500 else TemporaryFailure(reply)


def _path(address: str) -> str:
    """`<address>` for MAIL/RCPT; an address that could smuggle an SMTP command is refused."""
    if not address.isascii() or any(c in address for c in " <>\r\n\0") or "@" not in address:
        raise PermanentFailure(SmtpReply(0, f"{address!r} cannot be used as an SMTP address"))
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
