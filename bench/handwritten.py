"""What is written by hand for speed, and what it buys: `python -m bench.handwritten`.

Each piece of mailer written by hand instead of with the library it stands for is timed
beside that library, in the same run, and the ratio printed (absolute figures move ×2–3
between machines here: read the ratios). The library baselines are here, once, and
tests/test_handwritten.py checks that each hand-written piece gives the same result as its
baseline:
  1. the MIME writer (`mailer.compose.mime`) against `email.message.EmailMessage`;
  2. SQLite's writers serialised by a file lock (`mailer.db._WriterLock`) against
     `BEGIN IMMEDIATE` and SQLite's busy handler alone;
  3. the ledger's two hot statements compiled once and run on the driver's cursor
     (`mailer.db.Prepared`) against the same statements in SQLAlchemy Core;
  4. SMTP PIPELINING by hand (`SmtpTransport.send`) against `smtplib.SMTP.sendmail`,
     through a loopback proxy that delays every packet (a network's round trip);
  5. `os._exit` at the end of a `--workers` helper against a normal exit.
"""

from __future__ import annotations

import asyncio
import contextlib
import smtplib
import socket
import time
from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta
from email import policy
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from sqlalchemy import Connection, Engine, bindparam, create_engine, event, func, insert, update

from mailer.clock import Clock, utcnow
from mailer.compose import Composer, OutgoingMail
from mailer.compose.composer import AUTO_RESPONSE_SUPPRESS
from mailer.db import _on_sqlite_connect, open_database
from mailer.delivery.ledger import Ledger, Sending, Settled
from mailer.delivery.reads import DELIVERIES, D
from mailer.identity import event_uid
from mailer.models import Invitee, UTCDateTime

# --- 1. MIME ---------------------------------------------------------------------------


def stdlib_message(composer: Composer, mail: OutgoingMail, now: datetime) -> bytes:
    """The message `composer.compose(mail, now)` writes, built with `EmailMessage` from the
    same letter and calendar: the same headers, tree, charsets and attachment."""
    campaign = composer.campaign
    invitee = mail.invitee
    event = mail.event or campaign.event
    letter = composer.letter(invitee, mail.template, mail.extra, event)
    uid = event_uid(campaign, invitee.invitee_id, test=mail.test)
    ics = composer.invites.build(
        invitee, event=event, uid=uid, method=mail.method, sequence=mail.sequence, stamp=now
    )
    msg = EmailMessage(policy=policy.SMTP)
    msg["From"] = Address(campaign.sender.name, addr_spec=campaign.sender.email)
    msg["To"] = Address(invitee.organisation, addr_spec=invitee.primary_email)
    if len(invitee.email) > 1:
        msg["Cc"] = [Address(invitee.organisation, addr_spec=a) for a in invitee.email[1:]]
    msg["Reply-To"] = Address(campaign.coordinator.name, addr_spec=campaign.coordinator.email)
    msg["Subject"] = f"[ทดสอบ] {letter.subject}" if mail.test else letter.subject
    msg["Date"] = format_datetime(now.astimezone(campaign.timezone))
    msg["Message-ID"] = mail.message_id
    msg["X-Auto-Response-Suppress"] = AUTO_RESPONSE_SUPPRESS
    if mail.automatic:
        msg["Auto-Submitted"] = "auto-generated"
    msg.set_content(letter.text, cte="base64")
    msg.add_alternative(letter.html, subtype="html", cte="base64")
    msg.add_alternative(ics, "text", "calendar", params={"charset": "utf-8", "method": mail.method})
    msg.add_attachment(
        ics, "application", "ics", filename="invite.ics", params={"name": "invite.ics"}
    )
    msg["Content-Language"] = "th"  # after the body: `set_content` moves Content-* headers
    return msg.as_bytes()


# --- 2. the SQLite writer lock ---------------------------------------------------------


def plain_sqlite_engine(url: str) -> Engine:
    """The engine `open_database` makes for SQLite (same pragmas, every write transaction
    `BEGIN IMMEDIATE`) without the file lock: SQLite's busy handler alone makes writers
    wait. The schema must exist (`open_database` once first)."""
    engine = create_engine(url, connect_args={"timeout": 30})
    event.listen(engine, "connect", _on_sqlite_connect)
    event.listen(engine, "begin", lambda conn: conn.exec_driver_sql("BEGIN IMMEDIATE"))
    return engine


CAMPAIGN = "bench-handwritten"
LEASE = timedelta(minutes=5)


def fill_ledger(
    engine: Engine, count: int, campaigns: tuple[str, ...] = (CAMPAIGN,), clock: Clock = utcnow
) -> None:
    """`count` offices and, for each campaign, one queued invitation to each."""
    now = clock()
    ids = [f"B-{n:06d}" for n in range(count)]
    offices = [
        {"invitee_id": i, "organisation": f"สำนักงาน {i}", "salutation": "เรียน",
         "emails": f"{i}@bench.example", "created_at": now, "updated_at": now}
        for i in ids
    ]  # fmt: skip
    with engine.begin() as conn:
        conn.execute(insert(Invitee.__table__), offices)  # type: ignore[attr-defined]
    for campaign in campaigns:
        Ledger(engine, campaign, clock).enqueue(
            ((i, f"{i}@bench.example") for i in ids),
            "invitation",
            0,
            lambda i, c=campaign: f"<{c}.{i}@bench.example>",  # type: ignore[misc]
        )


def send_all(ledger: Ledger, owner: str, batch: int = 1) -> list[int]:
    """What a worker does to the ledger, without SMTP: claim, mark sending, settle as sent,
    until nothing is due. Returns the ids it claimed."""
    claimed: list[int] = []
    with ledger.stepping():
        while claims := ledger.claim(owner, batch, LEASE):
            for claim in claims:
                claimed.append(claim.id)
                if ledger.step(owner, None, Sending(claim, ("x@bench.example",), "s:25"), LEASE):
                    sent = Settled(claim, "sent", "250 ok", ledger.clock())
                    ledger.step(owner, sent, None, LEASE)
    return claimed


def claiming_process(
    url: str, owner: str, meet: Path, *, plain: bool, threads: int = 1
) -> tuple[list[int], float]:
    """One worker process (run through multiprocessing): `threads` workers, each with its
    own ledger and owner name, on one engine. Once ready it leaves a file in `meet` and
    waits for a file named "go" there, so that all start together. Returns the ids
    claimed and the seconds it took."""
    import threading

    engine = plain_sqlite_engine(url) if plain else open_database(url)
    (meet / f"ready-{owner}").touch()
    while not (meet / "go").exists():
        time.sleep(0.005)
    start = time.perf_counter()
    results: list[list[int]] = [[] for _ in range(threads)]
    problems: list[BaseException] = []

    def run(n: int) -> None:
        try:
            results[n] = send_all(Ledger(engine, CAMPAIGN), f"{owner}-{n}")
        except BaseException as exc:
            problems.append(exc)

    workers = [threading.Thread(target=run, args=(n,)) for n in range(threads)]
    for t in workers:
        t.start()
    for t in workers:
        t.join()
    took = time.perf_counter() - start
    engine.dispose()
    if problems:
        raise problems[0]
    return [i for ids in results for i in ids], took


def claim_concurrently(
    url: str, processes: int, *, plain: bool, threads: int = 1
) -> list[tuple[list[int], float]]:
    """`processes` claiming processes started together on the ledger at `url`."""
    import multiprocessing
    import tempfile

    with (
        tempfile.TemporaryDirectory() as folder,
        multiprocessing.get_context("spawn").Pool(processes) as pool,
    ):
        meet = Path(folder)
        runs = [
            pool.apply_async(
                claiming_process, (url, f"w{n}", meet), {"plain": plain, "threads": threads}
            )
            for n in range(processes)
        ]
        deadline = time.monotonic() + 60
        while len(list(meet.glob("ready-*"))) < processes and time.monotonic() < deadline:
            time.sleep(0.005)
        (meet / "go").touch()
        return [run.get(timeout=120) for run in runs]  # a worker's error is raised here


# --- 3. prepared statements on the raw cursor ------------------------------------------


class _Core:
    """A statement in SQLAlchemy Core, called as `Prepared` is: (conn, params) → rowcount.
    Its bound parameters are the raw statement's names with a `p_` in front (Core keeps a
    column's own name for its SET clause)."""

    def __init__(self, statement: Any) -> None:
        self.statement = statement

    def __call__(self, conn: Connection, params: dict[str, Any]) -> int:
        return int(conn.execute(self.statement, {f"p_{k}": v for k, v in params.items()}).rowcount)


def _p(name: str, *, typed: bool = False) -> Any:
    return bindparam(f"p_{name}", type_=UTCDateTime() if typed else None)


CORE_SETTLE = _Core(
    update(DELIVERIES)
    .where(D.id == _p("id"), D.lease_owner == _p("owner"))
    .values(
        state=_p("state"),
        last_reply=_p("reply"),
        sent_at=func.coalesce(_p("sent_at", typed=True), D.sent_at),
        delivered_to=func.coalesce(_p("delivered_to"), D.delivered_to),
        refused=func.coalesce(_p("refused"), D.refused),
        next_attempt_at=func.coalesce(_p("next_at", typed=True), D.next_attempt_at),
        lease_owner=None,
        lease_until=None,
        updated_at=_p("now"),
    )
)
CORE_SENDING = _Core(
    update(DELIVERIES)
    .where(
        D.id == _p("id"),
        D.lease_owner == _p("owner"),
        D.state.in_(["queued", "retry_wait"]),
        D.sequence == _p("sequence"),
    )
    .values(
        state="sending",
        attempts=_p("attempts"),
        recipients=_p("recipients"),
        server=_p("server"),
        lease_until=_p("lease_until"),
        updated_at=_p("now"),
    )
)


class CoreLedger(Ledger):
    """The ledger with its two hot statements run through SQLAlchemy Core instead of
    `Prepared` on the driver's cursor; everything else is the ledger's own code."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._settle = CORE_SETTLE  # type: ignore[assignment]
        self._sending = CORE_SENDING  # type: ignore[assignment]


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

    async def connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
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
    try:
        yield proxy_port
    finally:
        controller.loop.call_soon_threadsafe(proxy.close)
        controller.stop()
