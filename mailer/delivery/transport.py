"""SMTP sessions: TLS verified, login from settings, one session reused for many messages.

`send` sorts every outcome into the kinds the sender acts on:
- `Delivered` (any 2xx to the final dot: the server has it; `refused` names the
  addresses it turned down, each with its reply),
- `TemporaryFailure` (a 4xx; or, before the message was handed over, any answer that is
  not a clear yes or no, or a lost connection: nothing was handed over, try again),
- `PermanentFailure` (5xx for this message: do not retry),
- `Unknown` (after the final dot, anything but a 2xx, 4xx or 5xx: garbage, an odd code,
  half a reply, silence, a lost connection. The server may hold the message),
and raises `TransportError` (a `MailerError`) when the server cannot be used at all
(unreachable, certificate, login): the run stops at once instead of burning the list.
"""

from __future__ import annotations

import base64
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
        """The server's words on one line, cut (a reply may run to thousands of lines)."""
        text = message.decode("utf-8", "replace") if isinstance(message, bytes) else message
        return cls(code, _cut(" ".join(text.split()), 200))

    @property
    def positive(self) -> bool:
        return 200 <= self.code <= 299

    @property
    def negative(self) -> bool:
        """A clear no: 4xx (for now) or 5xx (for good)."""
        return 400 <= self.code <= 599


@dataclass(frozen=True)
class Delivered:
    reply: SmtpReply
    refused: dict[str, SmtpReply] = field(default_factory=dict)

    @property
    def temporarily_refused(self) -> tuple[str, ...]:
        """The addresses refused with a 4xx: worth trying again, alone."""
        return tuple(a for a, r in self.refused.items() if r.code < 500)

    @property
    def permanently_refused(self) -> tuple[str, ...]:
        """The addresses refused with a 5xx: never try them again."""
        return tuple(a for a, r in self.refused.items() if r.code >= 500)


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
                _login(smtp, s.username, s.password.value, where)
        except TransportError:
            self._abandon(smtp)
            raise
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

        Only after the final dot can the server hold the message, so from then on anything
        but a 2xx, 4xx or 5xx raises `Unknown`: retrying could deliver it twice. Before
        the dot, an answer that fits no command drops the session (the server may be out
        of step with us: its next line could be taken for the answer to the next message)
        and raises `TemporaryFailure`: nothing was handed over.
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
            for command, reply in zip(commands, replies, strict=True):
                if not _fits(command, reply):
                    self._drop()
                    raise TemporaryFailure(
                        SmtpReply(
                            0,
                            f"the server answered {command.partition(':')[0]} with "
                            f"{_described(reply)}, which is no answer to it; nothing was "
                            "handed over",
                        )
                    )
            mail, rcpts, go = replies[0], replies[1:-1], replies[-1]
            refused = {
                r: reply for r, reply in zip(recipients, rcpts, strict=True) if not reply.positive
            }
            problem = None
            if not mail.positive:
                problem = mail
            elif any(reply.code == 421 for reply in refused.values()):
                problem = next(reply for reply in refused.values() if reply.code == 421)
            elif len(refused) == len(recipients):
                problem = min(refused.values(), key=lambda r: r.code)  # 4xx before 5xx
            elif go.code != 354:
                problem = go
            if problem is not None:
                if go.code == 354:  # a pipelined DATA was accepted: hang up rather than
                    self._drop()  # end it with a bare dot (an empty message to the others)
                raise self._refused(problem)
            smtp.send(_dot_stuffed(data))
            handed_over = True
            code, message = _strict_reply(smtp)
        except (smtplib.SMTPServerDisconnected, smtplib.SMTPResponseException, OSError) as exc:
            self._drop()
            if handed_over:
                raise Unknown(
                    SmtpReply(0, f"connection lost after the message was handed over: {exc}")
                ) from exc
            raise TemporaryFailure(SmtpReply(0, f"connection lost: {exc}")) from exc
        reply = SmtpReply.of(code, message)
        if reply.negative:
            raise self._refused(reply)
        if not reply.positive:
            self._drop()  # out of step, or not an SMTP server: never read it again
            raise Unknown(
                SmtpReply(
                    0,
                    f"unclear answer after the message was handed over: {_described(reply)} "
                    "(neither 2xx, 4xx nor 5xx); the server may hold the message",
                )
            )
        self._sent_on_session += 1
        return Delivered(reply, refused)

    @staticmethod
    def _exchange(smtp: smtplib.SMTP, commands: list[str]) -> list[SmtpReply]:
        """Send MAIL, RCPT… and DATA; return one reply per command. A command not sent
        because an earlier one failed or was answered oddly gets a 503 placeholder. After
        a 421 (the server is closing the session) nothing more is sent or read (it may
        have hung up already): the later commands get a 421 placeholder."""
        closing = SmtpReply(421, "not answered: the server closed the session")
        replies: list[SmtpReply] = []
        if smtp.has_extn("pipelining"):
            smtp.send("".join(f"{c}\r\n" for c in commands).encode("ascii"))
            for _ in commands:
                if replies and replies[-1].code == 421:
                    replies.append(closing)
                    continue
                replies.append(SmtpReply.of(*smtp.getreply()))
            return replies
        stop: SmtpReply | None = None  # the placeholder for every command still to come
        for number, command in enumerate(commands):
            if stop is not None:
                replies.append(stop)
                continue
            if number and not replies[0].positive:
                replies.append(SmtpReply(503, "not sent: MAIL FROM was refused"))
                continue
            if command == "DATA" and not any(r.positive for r in replies[1:]):
                replies.append(SmtpReply(503, "not sent: every recipient was refused"))
                continue
            smtp.putcmd(command)
            reply = SmtpReply.of(*smtp.getreply())
            replies.append(reply)
            if reply.code == 421:
                stop = closing
            elif not _fits(command, reply):
                stop = SmtpReply(503, "not sent: the answer before it was odd")
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


_REPLY_LINE = re.compile(rb"([0-9]{3})(?:([ -])(.*))?", re.DOTALL)  # "250" alone is whole
_MAX_LINE = 8192  # as smtplib's own limit
_MAX_LINES = 100


def _strict_reply(smtp: smtplib.SMTP) -> tuple[int, bytes]:
    """The answer to the final dot, read as RFC 5321 §4.2 writes it: every line "NNN-text"
    and the last "NNN text", all with one code. smtplib's `getreply` keeps the last line's
    code and reads "2500 …" as 250, so "550-… / 250 …" would count as delivered; here any
    such reply is code -1 (unclear: the delivery becomes uncertain)."""
    if smtp.file is None:
        if smtp.sock is None:
            raise smtplib.SMTPServerDisconnected("not connected")
        smtp.file = smtp.sock.makefile("rb")
    lines: list[bytes] = []
    codes: set[bytes] = set()
    while len(lines) < _MAX_LINES:
        try:
            line = smtp.file.readline(_MAX_LINE + 1)
        except OSError as exc:
            smtp.close()
            raise smtplib.SMTPServerDisconnected(f"Connection unexpectedly closed: {exc}") from exc
        if not line:
            smtp.close()
            raise smtplib.SMTPServerDisconnected("Connection unexpectedly closed")
        if len(line) > _MAX_LINE:
            smtp.close()
            raise smtplib.SMTPResponseException(500, b"Line too long.")
        found = _REPLY_LINE.fullmatch(line.rstrip(b"\r\n"))
        if found is None:  # not a reply line
            return -1, b"\n".join([*lines, line.strip()])
        codes.add(found.group(1))
        lines.append((found.group(3) or b"").strip())
        if found.group(2) != b"-":  # "NNN text" or a bare "NNN": the last line
            text = b"\n".join(lines)
            return (int(codes.pop()), text) if len(codes) == 1 else (-1, text)
    return -1, b"\n".join(lines)  # a reply that does not end


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


def _fits(command: str, reply: SmtpReply) -> bool:
    """Whether `reply` is an answer to `command`: a clear no, or the yes it asks for."""
    if command == "DATA":
        return reply.code == 354 or reply.negative
    return reply.positive or reply.negative


def _described(reply: SmtpReply) -> str:
    """An odd answer as a message may show it (`SmtpReply.of` has cut it already)."""
    if reply.code < 0:
        shown = f": {reply.text!r}" if reply.text else ""
        return f"a line without a reply code, or lines with two codes{shown}"
    return repr(str(reply))


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else f"{text[:limit]}… ({len(text)} characters)"


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
