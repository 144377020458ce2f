"""A real SMTP server on loopback with a certificate from a throw-away test CA (trustme),
for the tests of verified TLS (sending, `check --deliverability`)."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import trustme
from aiosmtpd.controller import Controller

from mailer.delivery.devserver import MaildirHandler
from tests.conftest import Mailhog, free_port


def tls_smtp_server(
    tmp_path: Path, implicit: bool, not_after: datetime | None = None
) -> Iterator[tuple[int, Path, Mailhog]]:
    """A real SMTP server with a certificate from a throw-away test CA: STARTTLS required,
    or TLS from the first byte (implicit); `not_after`: when the certificate expires."""
    ca = trustme.CA()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost", not_after=not_after).configure_cert(context)
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    port = free_port()
    tls = (
        {"ssl_context": context} if implicit else {"require_starttls": True, "tls_context": context}
    )
    controller = Controller(
        MaildirHandler(tmp_path / "tls-mail"), hostname="127.0.0.1", port=port, **tls
    )
    controller.start()
    try:
        yield port, ca_file, Mailhog(None, port, tmp_path / "tls-mail")  # type: ignore[arg-type]
    finally:
        controller.stop()
