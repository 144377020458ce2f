"""The local dev mail server: real SMTP on loopback (aiosmtpd), every message to a Maildir.

Nothing leaves the machine. Each stored message gets `Return-Path` and one
`Delivered-To` per envelope recipient on top, as a real MTA's local delivery would.
"""

from __future__ import annotations

import mailbox
import socket
from collections.abc import Callable
from email.header import decode_header, make_header
from email.parser import BytesHeaderParser
from email.policy import compat32
from pathlib import Path
from types import TracebackType
from typing import Any

from aiosmtpd.controller import Controller

from mailer.errors import TransportError
from mailer.settings import is_loopback_host

Notify = Callable[[str], None]


def decoded_subject(raw: bytes) -> str:
    headers = BytesHeaderParser(policy=compat32).parsebytes(raw)
    subject = headers.get("Subject", "")
    try:
        return str(make_header(decode_header(str(subject))))
    except (UnicodeDecodeError, LookupError, ValueError):
        return str(subject)


class MaildirHandler:
    def __init__(self, maildir: Path, notify: Notify | None = None) -> None:
        self.maildir = maildir
        self.box = mailbox.Maildir(maildir, create=True)
        self.notify = notify
        self.count = 0

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        content: bytes = envelope.original_content or envelope.content
        sender = envelope.mail_from or ""
        head = f"Return-Path: <{sender}>\r\n" + "".join(
            f"Delivered-To: {rcpt}\r\n" for rcpt in envelope.rcpt_tos
        )
        key = self.box.add(head.encode("utf-8") + content)
        self.count += 1
        if self.notify is not None:
            self.notify(
                f"{sender} → {', '.join(envelope.rcpt_tos)}: {decoded_subject(content)[:60]} "
                f"({len(content):,} bytes) → {self.maildir / 'new' / key}"
            )
        return f"250 2.0.0 Ok: queued as {key}"


class DevServer:
    """`with DevServer(...) as server:` runs the server in a thread until the block ends."""

    def __init__(self, host: str, port: int, maildir: Path, notify: Notify | None = None) -> None:
        if not is_loopback_host(host):
            raise TransportError(
                f"the dev mail server only listens on loopback, not {host}; use 127.0.0.1"
            )
        self.host = host
        self.port = port
        self.handler = MaildirHandler(maildir, notify)
        self._controller = Controller(
            self.handler,
            hostname=host,
            port=port,
            enable_SMTPUTF8=True,
            ready_timeout=10,
        )

    @property
    def maildir(self) -> Path:
        return self.handler.maildir

    def _busy(self, exc: OSError) -> TransportError:
        return TransportError(
            f"the dev mail server cannot listen on {self.host}:{self.port}: "
            f"{exc.strerror or exc}. Is another one running? Choose another --port"
        )

    def start(self) -> None:
        # aiosmtpd reports a port in use only after its ready_timeout: find out at once.
        with socket.socket(socket.AF_INET6 if ":" in self.host else socket.AF_INET) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind((self.host, self.port))
            except OSError as exc:
                self._controller.loop.close()
                raise self._busy(exc) from exc
        try:
            self._controller.start()
        except (OSError, RuntimeError, TimeoutError) as exc:
            self._controller.loop.close()
            if isinstance(exc, OSError):
                raise self._busy(exc) from exc
            raise TransportError(
                f"the dev mail server on {self.host}:{self.port} did not start: {exc}"
            ) from exc

    def stop(self) -> None:
        self._controller.stop()

    def __enter__(self) -> DevServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
