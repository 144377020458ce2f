"""The ledger's library baseline: the two hot statements in SQLAlchemy Core; and what a
worker does to the ledger, in processes (the concurrency test's workers)."""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, bindparam, func, insert, update

from mailer.clock import Clock, utcnow
from mailer.db import open_database
from mailer.delivery.drain import CLAIM_BATCH
from mailer.delivery.ledger import Ledger, Sending, Settled
from mailer.delivery.reads import DELIVERIES, D
from mailer.models import Invitee, UTCDateTime

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


def send_all(ledger: Ledger, owner: str, batch: int = CLAIM_BATCH) -> list[int]:
    """What a worker does to the ledger, without SMTP: claim `batch` rows (as many as the
    drain claims), mark each sending, settle it as sent, until nothing is due. Returns the
    ids it claimed."""
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
    url: str,
    owner: str,
    meet: Path,
    *,
    threads: int = 1,
    batch: int = CLAIM_BATCH,
) -> tuple[list[int], float]:
    """One worker process (run through multiprocessing): `threads` workers, each with its
    own ledger and owner name, on one engine (without SQLite's busy handler unless
    `wait`). Once ready it leaves a file in `meet` and
    waits for a file named "go" there, so that all start together. Returns the ids
    claimed and the seconds it took."""
    import threading

    engine = open_database(url)
    (meet / f"ready-{owner}").touch()
    while not (meet / "go").exists():
        time.sleep(0.005)
    start = time.perf_counter()
    results: list[list[int]] = [[] for _ in range(threads)]
    problems: list[BaseException] = []

    def run(n: int) -> None:
        try:
            results[n] = send_all(Ledger(engine, CAMPAIGN), f"{owner}-{n}", batch)
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
    url: str, processes: int, *, threads: int = 1, **options: Any
) -> list[tuple[list[int], float]]:
    """`processes` claiming processes started together on the ledger at `url` (`options`
    go to `claiming_process`)."""
    import multiprocessing
    import tempfile

    with (
        tempfile.TemporaryDirectory() as folder,
        multiprocessing.get_context("spawn").Pool(processes) as pool,
    ):
        meet = Path(folder)
        runs = [
            pool.apply_async(
                claiming_process,
                (url, f"w{n}", meet),
                {"threads": threads, **options},
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
