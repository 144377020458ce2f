"""Standby schedulers, and the record each scheduler process keeps of itself (issue #14).

On PostgreSQL any number of `mailer scheduler run`, on any number of hosts, may start: the
one holding the database's advisory lock (`scheduler.SchedulerLock`) is *active* and runs
the rounds; every other one *stands by*, trying the lock again every `retry` seconds. When
the active process dies, PostgreSQL ends its session and frees the lock, and a standby
takes it at its next try and carries on. A round still fires once or is recorded missed,
never twice: that is `due_pass`'s doing (the unique keys of `round_run` and the ledger),
not the lock's. A held lock is never taken away: an active process that is stuck but still
connected stops writing its heartbeat, which standbys log and `mailer scheduler status`
shows, and someone must stop it. SQLite has one scheduler, behind a file lock, and no standby.

Each process keeps one `scheduler_state` row (campaign, host, pid): its role, a heartbeat
written every `heartbeat` seconds by a thread of its own, its last pass (`record_pass`,
from `scheduler.tick`) and its last mail sync (`record_sync`, from the mailbox watcher).
A process that becomes active inherits the last pass and sync of the one before it and
removes that one's row; one that stops cleanly keeps its row as `stopped`.
"""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Callable, Sequence
from contextlib import suppress
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

from sqlalchemy import Engine, and_, delete, or_, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import SQLAlchemyError

from mailer.clock import Clock, utcnow
from mailer.errors import MailerError
from mailer.models import SchedulerState
from mailer.signals import stop_on_signals

if TYPE_CHECKING:
    from mailer.rounds.due import PassEvent
    from mailer.workspace import Workspace

Log = Callable[[str], None]
STATE = SchedulerState.__table__  # type: ignore[attr-defined]
C = STATE.c
HEARTBEAT = timedelta(seconds=5)  # how often a process writes its heartbeat
RETRY = timedelta(seconds=3)  # how often a standby tries the lock again
STALE = timedelta(seconds=30)  # a heartbeat older than this: the process is stuck or dead
FORGET = timedelta(minutes=10)  # a standby silent this long is gone: its row is removed
NO_STANDBY = (
    "SQLite has no standby schedulers: for a second one that waits and takes over when "
    "this one dies, use PostgreSQL (DATABASE_URL=postgresql://…)"
)


_STARTED: dict[str, str] = {}  # the campaign this process's scheduler started with


class SchedulerBusy(MailerError):
    """Another scheduler holds this database's scheduler lock."""


class Lock(Protocol):
    def acquire(self) -> None: ...


def this_process() -> tuple[str, int]:
    """(host, pid): the key of this process's row, as the ledger's lease owners name it."""
    return socket.gethostname(), os.getpid()


def _write(engine: Engine, campaign_id: str, now: datetime, **values: Any) -> None:
    """Set `values` on this process's row, creating it (as active: only the active process
    passes and syncs) when it is missing."""
    host, pid = this_process()
    insert = pg_insert if engine.dialect.name == "postgresql" else sqlite_insert
    row = {"role": "active", "started_at": now, "since": now, "heartbeat_at": now, **values}
    statement = insert(STATE).values(campaign_id=campaign_id, host=host, pid=pid, **row)
    with engine.begin() as conn:
        conn.execute(
            statement.on_conflict_do_update(
                index_elements=["campaign_id", "host", "pid"], set_=values
            )
        )


def summarize(events: Sequence[PassEvent]) -> str:
    """One line for a pass: what each round did (`due_pass`'s events)."""
    parts = []
    for event in events:
        if event.stats is not None:
            s = event.stats
            parts.append(f"due messages: {s.sent} sent, {s.retry} to retry, {s.failed} failed")
        elif event.report is None:
            parts.append(f"{event.rule_id}: {event.status}")
        else:
            d = event.report.drain
            parts.append(
                f"{event.rule_id}: {event.status}, {event.report.enqueued} enqueued, "
                f"{d.sent} sent, {d.retry} to retry, {d.failed} failed"
            )
    return "; ".join(parts) or "nothing due"


def record_pass(ws: Workspace, events: Sequence[PassEvent] = (), error: str | None = None) -> None:
    """After each of the scheduler's passes: when, and what it did (or the error that
    stopped it). Never raises: the rounds matter more than their record."""
    summary = f"error: {error}" if error is not None else summarize(events)
    now = ws.clock()
    try:
        campaign_id = ws.campaign.id
    except MailerError:  # the campaign file broke since the start: the error is its own
        campaign_id = _STARTED.get("campaign_id", "")
    with suppress(SQLAlchemyError):  # the heartbeat thread logs an unreachable database
        _write(ws.engine, campaign_id, now, last_pass_at=now, last_pass=summary)


def record_sync(
    engine: Engine,
    campaign_id: str,
    *,
    ok_at: datetime | None = None,
    error: str | None = None,
    error_at: datetime | None = None,
) -> None:
    """For the mailbox watcher, in the scheduler's process: a good sync (`ok_at`), or a
    failed one (`error`, its reason, at `error_at`, now by default). The last error stays
    shown with its time; `status` calls the sync failing while it is newer than `ok_at`."""
    values: dict[str, Any] = {}
    if ok_at is not None:
        values["last_sync_ok_at"] = ok_at
    if error is not None:
        values["last_sync_error"] = error
        values["last_sync_error_at"] = error_at or utcnow()
    if values:
        _write(engine, campaign_id, utcnow(), **values)


def _who(row: Any, now: datetime) -> str:
    age = int((now - row.heartbeat_at).total_seconds())
    return f"{row.host} pid {row.pid} (campaign {row.campaign_id}, heartbeat {age} s ago)"


class Presence:
    """This process's part: take the lock (standing by on PostgreSQL while another holds
    it), then keep its row current until `stop`."""

    def __init__(
        self,
        ws: Workspace,
        log: Log,
        heartbeat: timedelta = HEARTBEAT,
        retry: timedelta = RETRY,
    ) -> None:
        self.ws = ws
        self.campaign_id = ws.campaign.id  # kept: the file may break while the rounds run
        _STARTED["campaign_id"] = self.campaign_id
        self.log = log
        self.heartbeat = heartbeat
        self.retry = retry
        self._done = threading.Event()
        self._beating: threading.Thread | None = None
        self._seen: tuple[str, int] | None = None  # the active process last logged
        self._stale_logged = False
        self._db_down = False

    @property
    def clock(self) -> Clock:
        return self.ws.clock

    def acquire(self, lock: Lock) -> bool:
        """Take `lock`. On PostgreSQL, while another process holds it, stand by (and log
        who is active) until it is free; False when stopped (SIGINT/SIGTERM) meanwhile.
        On SQLite a held lock is refused at once (`SchedulerBusy`, saying there is no standby)."""
        engine = self.ws.engine  # a database that cannot be opened stops here, as before
        if engine.dialect.name != "postgresql":
            lock.acquire()
        elif not self._try(lock) and not self._stand_by(lock):
            return False
        self._become_active()
        self._beating = threading.Thread(target=self._beat, name="scheduler-heartbeat", daemon=True)
        self._beating.start()
        return True

    def _try(self, lock: Lock) -> bool:
        try:
            lock.acquire()
        except SchedulerBusy:
            return False
        except SQLAlchemyError as exc:
            self._database_down(exc)
            return False
        return True

    def _stand_by(self, lock: Lock) -> bool:
        now = self.clock()
        self._guarded(lambda: _write(self.ws.engine, self.campaign_id, now, role="standby"))
        self.log(
            f"standing by (pid {os.getpid()}): another scheduler holds this database; "
            f"trying again every {self.retry.total_seconds():g} s"
        )
        with stop_on_signals(self.ws.stopping, self.log):
            while True:
                self._watch_active()
                if self.ws.stopping.wait(self.retry.total_seconds()):
                    self._guarded(self._forget)
                    self.log("scheduler stopped (it was standing by)")
                    return False
                self._guarded(self._touch)
                if self._try(lock):
                    return True

    def _watch_active(self) -> None:
        """Log the active process when it is first seen or changes, and once when its
        heartbeat goes stale (it holds the lock: a standby never takes it away)."""
        now = self.clock()
        row = self._guarded(lambda: _active_row(self.ws.engine, self.campaign_id))
        if row is None:
            return
        key = (row.host, row.pid)
        if key != self._seen:
            self._seen, self._stale_logged = key, False
            self.log(f"active scheduler: {_who(row, now)}, since {row.since:%Y-%m-%d %H:%M:%S}Z")
        stale = now - row.heartbeat_at > STALE
        if stale and not self._stale_logged:
            self.log(
                f"the active scheduler {row.host} pid {row.pid} has written no heartbeat since "
                f"{row.heartbeat_at:%H:%M:%S}Z: it may be stuck. It still holds the lock, so "
                "this standby keeps waiting; stop or kill it to hand over"
            )
        self._stale_logged = stale

    def _guarded(self, work: Callable[[], Any]) -> Any:
        """Run one write or read of the record; an unreachable database is logged once
        (until it answers again) and never stops the scheduler."""
        try:
            result = work()
        except SQLAlchemyError as exc:
            self._database_down(exc)
            return None
        if self._db_down:
            self._db_down = False
            self.log("the database answers again")
        return result

    def _database_down(self, exc: SQLAlchemyError) -> None:
        if not self._db_down:
            from mailer.settings import hide_secrets

            self._db_down = True
            reason = hide_secrets(str(getattr(exc, "orig", exc)), self.ws.settings.database_url)
            self.log(f"the database does not answer ({reason.strip()}); trying again")

    def _touch(self) -> None:
        _write(self.ws.engine, self.campaign_id, self.clock(), heartbeat_at=self.clock())

    def _forget(self) -> None:
        host, pid = this_process()
        with self.ws.engine.begin() as conn:
            conn.execute(delete(STATE).where(_mine(self.campaign_id, host, pid)))

    def _become_active(self) -> None:
        """Take over the record: inherit the last pass and sync of the rows before this one
        (a dead active's, a stopped one's), remove them, and mark this row active."""
        host, pid = this_process()
        now = self.clock()
        before = and_(
            C.campaign_id == self.campaign_id,
            C.role != "standby",
            or_(C.host != host, C.pid != pid),
        )
        with self.ws.engine.begin() as conn:
            others = conn.execute(select(STATE).where(before)).all()
            conn.execute(delete(STATE).where(before))
        for row in others:
            if row.role == "active":
                self.log(f"taking over from {_who(row, now)}")
        _write(self.ws.engine, self.campaign_id, now, role="active", since=now, heartbeat_at=now,
               **_inherited(others))  # fmt: skip
        self.log(f"active: this process (pid {pid}) runs the rounds of campaign {self.campaign_id}")

    def _beat(self) -> None:
        while not self._done.wait(self.heartbeat.total_seconds()):
            self._guarded(self._touch_and_prune)

    def _touch_and_prune(self) -> None:
        self._touch()
        with self.ws.engine.begin() as conn:
            conn.execute(
                delete(STATE).where(
                    C.campaign_id == self.campaign_id,
                    C.role == "standby",
                    C.heartbeat_at < self.clock() - FORGET,
                )
            )

    def stop(self) -> None:
        """The scheduler stops cleanly: the heartbeat ends and the row says `stopped`."""
        self._done.set()
        if self._beating is not None:
            self._beating.join()
        now = self.clock()
        self._guarded(
            lambda: _write(
                self.ws.engine, self.campaign_id, now, role="stopped", since=now, heartbeat_at=now
            )
        )


def _mine(campaign_id: str, host: str, pid: int) -> Any:
    return and_(C.campaign_id == campaign_id, C.host == host, C.pid == pid)


def _active_row(engine: Engine, campaign_id: str) -> Any:
    """The active row, this campaign's first, else another campaign's (the lock is the
    database's: one scheduler runs on it, whatever its campaign)."""
    with engine.connect() as conn:
        rows = conn.execute(select(STATE).where(C.role == "active")).all()
    rows = sorted(rows, key=lambda r: (r.campaign_id != campaign_id, r.since))
    return rows[0] if rows else None


def _inherited(rows: Sequence[Any]) -> dict[str, Any]:
    """The newest last pass, good sync and sync error among `rows`."""
    values: dict[str, Any] = {}
    for at, fields in (
        ("last_pass_at", ("last_pass_at", "last_pass")),
        ("last_sync_ok_at", ("last_sync_ok_at",)),
        ("last_sync_error_at", ("last_sync_error_at", "last_sync_error")),
    ):
        dated = [r for r in rows if getattr(r, at) is not None]
        if dated:
            newest = max(dated, key=lambda r: getattr(r, at))
            values.update({f: getattr(newest, f) for f in fields})
    return values
