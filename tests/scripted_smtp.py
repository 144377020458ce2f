"""A real SMTP server on loopback that misbehaves on cue, recipient by recipient."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword

from tests.conftest import free_port

# What the server does for a recipient on its n-th attempt (the last entry repeats):
#   "250" accept; "4xx"/"5xx" answer RCPT with that code; "data:4xx"/"data:5xx" answer the
#   end of DATA with it; "drop-at-rcpt" close the connection at RCPT; "drop-after-data" store
#   the message, then close the connection instead of answering; "stall-after-data" store
#   it and say nothing for `stall` seconds.
# Odd answers, written exactly as given (no check that they are SMTP):
#   "rcpt-say:<line>" answer RCPT with <line>; "datacmd-say:<line>" answer the DATA command
#   with <line> instead of 354; "data-say:<line>" store the message, then answer its final
#   dot with <line>; "data-cut" store it, then send half a reply code ("25") and close.
# `Script.mail` does the same for the n-th MAIL FROM of the server's life (1-based):
#   "say:<line>" answer with <line>; "say-close:<line>" answer with <line> and close.
PIPELINING = False  # whether new scripts advertise PIPELINING (tests flip it)

REPLIES = {
    421: "421 4.7.0 Try again later, closing connection",
    432: "432 4.7.12 A password transition is needed",
    450: "450 4.2.1 Mailbox busy",
    451: "451 4.7.1 Please try again later (greylisted)",
    452: "452 4.5.3 Too many recipients this hour",
    454: "454 4.7.0 Temporary authentication failure",
    550: "550 5.1.1 Recipient address rejected: User unknown",
    552: "552 5.3.4 Message size exceeds fixed limit",
}


@dataclass
class Script:
    plans: dict[str, list[str]] = field(default_factory=dict)
    stall: float = 3.0
    pace: float = 0.0  # seconds before answering every DATA: a slow server
    pipelining: bool = field(default_factory=lambda: PIPELINING)
    mail: dict[int, str] = field(default_factory=dict)
    attempts: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    received: list[tuple[tuple[str, ...], bytes]] = field(default_factory=list)
    mail_commands: int = 0
    data_commands: int = 0
    logins: list[LoginPassword] = field(default_factory=list)

    def next_action(self, address: str) -> str:
        plan = self.plans.get(address, ["250"])
        index = self.attempts[address]
        self.attempts[address] += 1
        return plan[min(index, len(plan) - 1)]

    def received_by(self, address: str) -> int:
        return sum(1 for rcpts, _ in self.received if address in rcpts)


def _say_and_close(server: Any, line: str) -> str:
    server.transport.write(line.encode("utf-8") + b"\r\n")
    server.transport.close()
    return "250 never seen"


class ScriptedHandler:
    def __init__(self, script: Script) -> None:
        self.script = script

    async def handle_EHLO(
        self, server: Any, session: Any, envelope: Any, hostname: str, responses: list[str]
    ) -> list[str]:
        session.host_name = hostname
        if self.script.pipelining:  # aiosmtpd reads commands one by one, so it can pipeline
            responses.insert(-1, "250-PIPELINING")
        return responses

    async def handle_MAIL(
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        self.script.mail_commands += 1
        action = self.script.mail.get(self.script.mail_commands, "250")
        if action.startswith("say:"):
            return action[4:]
        if action.startswith("say-close:"):
            return _say_and_close(server, action[10:])
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 2.1.0 OK"

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: Any
    ) -> str:
        action = self.script.next_action(address)
        session.planned = action  # what DATA does for this message (one recipient each)
        if action == "drop-at-rcpt":
            server.transport.close()
            return "421 closing"
        if action.startswith("rcpt-say:"):
            return action[9:]
        if action.isdigit():
            code = int(action)
            if code != 250:
                return REPLIES[code]
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        action = getattr(session, "planned", "250")
        if action.startswith("data:"):
            return REPLIES[int(action[5:])]
        self.script.received.append((tuple(envelope.rcpt_tos), envelope.content))
        if action == "drop-after-data":
            server.transport.close()
            return "250 never seen"
        if action == "data-cut":
            server.transport.write(b"25")
            server.transport.close()
            return "250 never seen"
        if action.startswith("data-say:"):
            return action[9:]
        if action == "stall-after-data":
            await asyncio.sleep(self.script.stall)
        elif self.script.pace:
            await asyncio.sleep(self.script.pace)
        return "250 2.0.0 Ok: queued"


class _ScriptedSMTP(SMTP):
    def __init__(self, handler: ScriptedHandler, **kwargs: Any) -> None:
        super().__init__(handler, **kwargs)
        self.script = handler.script

    async def smtp_DATA(self, arg: str) -> None:
        """`datacmd-say:` answers the DATA command itself (aiosmtpd has no hook there)."""
        self.script.data_commands += 1
        action = getattr(self.session, "planned", "250")
        if action.startswith("datacmd-say:"):
            await self.push(action[12:])
            return
        await super().smtp_DATA(arg)


class _FailingAuth:
    def __call__(
        self, server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any
    ) -> AuthResult:
        return AuthResult(success=False, handled=False)


class _OneLogin:
    """Accepts exactly one user name and password, compared as the bytes that arrived."""

    def __init__(self, script: Script, username: str, password: str) -> None:
        self.script = script
        self.expected = LoginPassword(username.encode("utf-8"), password.encode("utf-8"))

    def __call__(
        self, server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any
    ) -> AuthResult:
        self.script.logins.append(auth_data)
        return AuthResult(success=auth_data == self.expected, handled=False)


class _Controller(Controller):
    def factory(self) -> SMTP:
        assert isinstance(self.handler, ScriptedHandler)
        return _ScriptedSMTP(self.handler, **self.SMTP_kwargs)


class ScriptedServer:
    def __init__(
        self,
        script: Script,
        *,
        refuse_auth: bool = False,
        login: tuple[str, str] | None = None,
        without_auth: Iterable[str] = (),
        handler: ScriptedHandler | None = None,
    ) -> None:
        """`login` (user name, password) is the one login accepted; `without_auth` names
        AUTH mechanisms the server does not offer (e.g. "PLAIN"); `handler`: a subclass
        with more (e.g. an `auth_XOAUTH2`), for `script`."""
        self.script = script
        self.port = free_port()
        kwargs: dict[str, Any] = {}
        if refuse_auth:
            kwargs = {"authenticator": _FailingAuth(), "auth_require_tls": False}
        if login is not None:
            kwargs = {"authenticator": _OneLogin(script, *login), "auth_require_tls": False}
        if without_auth:
            kwargs["auth_exclude_mechanism"] = list(without_auth)
        if handler is not None:
            kwargs["auth_require_tls"] = False
        self.controller = _Controller(
            handler or ScriptedHandler(script), hostname="127.0.0.1", port=self.port, **kwargs
        )

    def __enter__(self) -> ScriptedServer:
        self.controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.controller.stop()
