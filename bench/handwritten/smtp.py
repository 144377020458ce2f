"""smtplib's sendmail, and a sink SMTP server behind a proxy that delays every packet."""

from __future__ import annotations

import asyncio
import contextlib
import smtplib
import socket
import time
from collections.abc import Iterator, Sequence
from typing import Any

from aiosmtpd.controller import Controller

from mailer.delivery.transport import SmtpTransport
from mailer.settings import SmtpSettings

# --- 4. SMTP PIPELINING by hand ----------------------------------------------------------


def smtplib_send(
    smtp: smtplib.SMTP, envelope_from: str, recipients: Sequence[str], data: bytes
) -> dict[str, int]:
    """`smtplib.SMTP.sendmail` on an open session: the refused recipients and their codes
    (it raises when all are refused or the message is)."""
    refused = smtp.sendmail(envelope_from, list(recipients), data)
    return {address: code for address, (code, _) in refused.items()}


class _Sink:
    """An SMTP server's handler (aiosmtpd) that accepts every message and keeps none.
    aiosmtpd reads commands one at a time, so it can take them pipelined: with
    `pipelining` it says so in its EHLO answer."""

    def __init__(self, *, pipelining: bool) -> None:
        self.pipelining = pipelining
        self.messages = 0

    async def handle_EHLO(
        self, server: Any, session: Any, envelope: Any, hostname: str, responses: list[str]
    ) -> list[str]:
        session.host_name = hostname
        if self.pipelining:
            responses.insert(-1, "250-PIPELINING")
        return responses

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages += 1
        return "250 2.0.0 Ok"


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay: float) -> None:
    """Forward what `reader` receives to `writer`, each piece `delay` seconds later."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

    async def pump() -> None:
        while True:
            when, chunk = await queue.get()
            await asyncio.sleep(max(0.0, when - loop.time()))
            if not chunk:
                writer.close()
                return
            writer.write(chunk)
            await writer.drain()

    task = asyncio.ensure_future(pump())
    try:
        while chunk := await reader.read(65536):
            queue.put_nowait((loop.time() + delay, chunk))
    except OSError:
        pass
    queue.put_nowait((loop.time() + delay, b""))
    await task


@contextlib.contextmanager
def delayed_server(*, pipelining: bool, delay: float) -> Iterator[int]:
    """A sink SMTP server on loopback behind a proxy that holds every packet `delay`
    seconds each way (a round trip of 2 × `delay`); yields the port to connect to."""
    from tests.conftest import free_port

    port = free_port()
    controller = Controller(_Sink(pipelining=pipelining), hostname="127.0.0.1", port=port)
    controller.start()
    if not delay:
        try:
            yield port
        finally:
            controller.stop()
        return

    sessions: set[asyncio.Task[Any]] = set()

    async def connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        sessions.add(task)
        task.add_done_callback(sessions.discard)
        server_reader, server_writer = await asyncio.open_connection("127.0.0.1", port)
        for w in (writer, server_writer):
            w.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        await asyncio.gather(
            _pipe(reader, server_writer, delay), _pipe(server_reader, writer, delay)
        )

    proxy_port = free_port()
    proxy = asyncio.run_coroutine_threadsafe(
        asyncio.start_server(connect, "127.0.0.1", proxy_port), controller.loop
    ).result(10)

    async def close() -> None:
        proxy.close()
        if sessions:  # the client has quit: let the last packets through
            await asyncio.wait(set(sessions), timeout=2 + 4 * delay)

    try:
        yield proxy_port
    finally:
        asyncio.run_coroutine_threadsafe(close(), controller.loop).result(10)
        controller.stop()


def send_messages(port: int, count: int, data: bytes, *, ours: bool) -> float:
    """Seconds to send `count` copies of `data` on one session, by mailer's transport or by
    smtplib's sendmail."""
    recipients = ("office@bench.example",)
    if ours:
        settings = SmtpSettings(port=port, reconnect_every=count + 1)
        with SmtpTransport(settings) as transport:
            start = time.perf_counter()
            for _ in range(count):
                transport.send("bench@ega.example", recipients, data)
            return time.perf_counter() - start
    with smtplib.SMTP("127.0.0.1", port) as smtp:
        start = time.perf_counter()
        for _ in range(count):
            smtplib_send(smtp, "bench@ega.example", recipients, data)
        return time.perf_counter() - start
