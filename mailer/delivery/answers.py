"""The SMTP server's answers: each reply read as it came, and what one transaction came to.

`SmtpTransport.send` returns one of four values for every answer a server can give:
- `Delivered` (any 2xx to the final dot: the server has it; `refused` names the
  addresses it turned down, each with its reply),
- `Deferred` (a 4xx; or, before the message was handed over, any answer that is not a
  clear yes or no, or a lost connection: nothing was handed over, try again),
- `Refused` (5xx for this message, or an address SMTP cannot carry: do not retry),
- `Uncertain` (after the final dot, anything but a 2xx, 4xx or 5xx: garbage, an odd code,
  half a reply, silence, a lost connection. The server may hold the message).
Only a server that cannot be used at all raises (`TransportError`, see `transport`).
"""

from __future__ import annotations

import re
import smtplib
from collections.abc import Sequence
from dataclasses import dataclass, field

from mailer.errors import cut


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
        return cls(code, cut(text, 200, flat=True))

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


@dataclass(frozen=True)
class Deferred:
    """Not taken, for now: nothing was handed over (or the server said 4xx)."""

    reply: SmtpReply


@dataclass(frozen=True)
class Refused:
    """Not taken, for good (5xx, or an address SMTP cannot carry)."""

    reply: SmtpReply


@dataclass(frozen=True)
class Uncertain:
    """Handed over, and no clear answer came back: the server may hold the message."""

    reply: SmtpReply


SmtpResult = Delivered | Deferred | Refused | Uncertain


def refusal(reply: SmtpReply) -> Deferred | Refused:
    """A clear no as the value the sender acts on: 5xx for good, anything else for now."""
    return Refused(reply) if reply.code >= 500 else Deferred(reply)


CLOSING = SmtpReply(421, "not answered: the server closed the session")


def exchange(smtp: smtplib.SMTP, commands: list[str]) -> list[SmtpReply]:
    """Send MAIL, RCPT… and DATA; return one reply per command. A command not sent
    because an earlier one failed or was answered oddly gets a 503 placeholder. After
    a 421 (the server is closing the session) nothing more is sent or read (it may
    have hung up already): the later commands get a 421 placeholder."""
    if smtp.has_extn("pipelining"):
        smtp.send("".join(f"{c}\r\n" for c in commands).encode("ascii"))
        replies: list[SmtpReply] = []
        for _ in commands:
            closed = replies and replies[-1].code == 421
            replies.append(CLOSING if closed else SmtpReply.of(*smtp.getreply()))
        return replies
    return _one_by_one(smtp, commands)


def _one_by_one(smtp: smtplib.SMTP, commands: list[str]) -> list[SmtpReply]:
    """`exchange` without PIPELINING: each command waits for the answer to the one before."""
    replies: list[SmtpReply] = []
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
            stop = CLOSING
        elif not fits(command, reply):
            stop = SmtpReply(503, "not sent: the answer before it was odd")
    return replies


def out_of_step(commands: list[str], replies: list[SmtpReply]) -> SmtpReply | None:
    """The first answer that fits no command, described (None when every one fits)."""
    for command, reply in zip(commands, replies, strict=True):
        if not fits(command, reply):
            return SmtpReply(
                0,
                f"the server answered {command.partition(':')[0]} with {described(reply)}, "
                "which is no answer to it; nothing was handed over",
            )
    return None


def envelope_problem(
    recipients: Sequence[str], replies: list[SmtpReply]
) -> tuple[dict[str, SmtpReply], SmtpReply | None]:
    """The refused addresses (each with its reply) and, if the message must not be sent,
    the reply that says why: MAIL refused, a 421 to an address (the server is closing),
    every address refused (the 4xx first), or DATA not accepted."""
    mail, rcpts, go = replies[0], replies[1:-1], replies[-1]
    refused = {r: reply for r, reply in zip(recipients, rcpts, strict=True) if not reply.positive}
    problem = None
    if not mail.positive:
        problem = mail
    elif any(reply.code == 421 for reply in refused.values()):
        problem = next(reply for reply in refused.values() if reply.code == 421)
    elif len(refused) == len(recipients):
        problem = min(refused.values(), key=lambda r: r.code)  # 4xx before 5xx
    elif go.code != 354:
        problem = go
    return refused, problem


_REPLY_LINE = re.compile(rb"([0-9]{3})(?:([ -])(.*))?", re.DOTALL)  # "250" alone is whole
_MAX_LINE = 8192  # as smtplib's own limit
_MAX_LINES = 100


def strict_reply(smtp: smtplib.SMTP) -> tuple[int, bytes]:
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
        line = _read_line(smtp)
        found = _REPLY_LINE.fullmatch(line.rstrip(b"\r\n"))
        if found is None:  # not a reply line
            return -1, b"\n".join([*lines, line.strip()])
        codes.add(found.group(1))
        lines.append((found.group(3) or b"").strip())
        if found.group(2) != b"-":  # "NNN text" or a bare "NNN": the last line
            text = b"\n".join(lines)
            return (int(codes.pop()), text) if len(codes) == 1 else (-1, text)
    return -1, b"\n".join(lines)  # a reply that does not end


def _read_line(smtp: smtplib.SMTP) -> bytes:
    assert smtp.file is not None
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
    return bytes(line)


def fits(command: str, reply: SmtpReply) -> bool:
    """Whether `reply` is an answer to `command`: a clear no, or the yes it asks for."""
    if command == "DATA":
        return reply.code == 354 or reply.negative
    return reply.positive or reply.negative


def described(reply: SmtpReply) -> str:
    """An odd answer as a message may show it (`SmtpReply.of` has cut it already)."""
    if reply.code < 0:
        shown = f": {reply.text!r}" if reply.text else ""
        return f"a line without a reply code, or lines with two codes{shown}"
    return repr(str(reply))
