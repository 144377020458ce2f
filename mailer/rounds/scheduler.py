"""`mailer scheduler run`: APScheduler 3.x in the foreground, one active per database (on
PostgreSQL others stand by and take over when it dies: mailer/rounds/standby.py).

Every job only calls `tick`, which runs `rounds.due_pass` — the idempotent "send what is
due, record what was missed" pass (docs/design.md §7). APScheduler decides *when*: a date job at
each rule's due time (re-synced on every tick, so moving the event moves them) and a sweep
every minute that also catches up after a restart. Jobs are kept in the same database
(`apscheduler_jobs`), but nothing depends on a job surviving: the ledger and `round_run`
are the record.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from sqlalchemy import text
from sqlalchemy.engine import Connection, make_url

from mailer.compose.digest import TEMPLATE as DIGEST_TEMPLATE
from mailer.errors import MailerError, cut
from mailer.redact import hide_secrets
from mailer.rounds.due import due_pass
from mailer.rounds.mailbox import Gate, replies_gate, start_watcher
from mailer.rounds.standby import NO_STANDBY, Presence, SchedulerBusy, record_pass  # standby (#14)
from mailer.signals import stop_on_signals
from mailer.workspace import Workspace

Log = Callable[[str], None]
_ADVISORY_KEY = 0x6D61696C  # "mail": the one scheduler of this database
_ACTIVE: tuple[Workspace, Log, Gate | None, SchedulerLock] | None = None
_PASS = threading.Lock()
_LOST = threading.Event()  # set when the lock was lost: `run_scheduler` then raises
_MINE = text(  # this session's own hold of the scheduler's advisory lock
    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted "
    "AND pid = pg_backend_pid() AND classid = 0 AND objid = :key AND objsubid = 1"
)


class SchedulerLock:
    """Held for the scheduler's whole life; released by the OS if the process dies."""

    def __init__(self, ws: Workspace) -> None:
        self.ws = ws
        self._fd: int | None = None
        self._conn: Connection | None = None
        self._guard = threading.Lock()  # the lock's connection, asked from two threads

    def acquire(self) -> None:
        url = make_url(self.ws.settings.database_url)
        if url.get_backend_name() == "sqlite":
            path = Path(url.database or "mailer.db")
            lock = path.with_name(path.name + ".scheduler-lock")
            fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.read(fd, 64).decode("ascii", "replace").strip() or "another process"
                os.close(fd)
                raise self._busy(f"pid {holder}", NO_STANDBY) from None  # standby (#14)
            os.ftruncate(fd, 0)
            os.write(fd, str(os.getpid()).encode("ascii"))
            self._fd = fd
            return
        conn = self.ws.engine.connect()
        got = conn.execute(text("SELECT pg_try_advisory_lock(:key)"), {"key": _ADVISORY_KEY})
        if not got.scalar():
            conn.close()
            raise self._busy("a process holding its advisory lock")
        conn.commit()
        self._conn = conn  # the session-level lock lives as long as this connection

    def _busy(self, holder: str, hint: str = "") -> MailerError:
        return SchedulerBusy(  # standby (#14): Presence waits on this one (PostgreSQL)
            f"another scheduler is already running on this database ({holder}); only one may "
            "run per database. Stop it first, or leave it running: it sends every round"
            + (f". {hint}" if hint else "")
        )

    def held(self) -> bool:
        """Whether this process still holds the lock. On PostgreSQL the lock lives as long as
        its connection: a dropped connection (a network blip, a failover, an idle timeout)
        lets it go, and a standby takes over — this process must then stop passing."""
        if self._conn is None:
            return self._fd is not None
        with self._guard:
            try:
                found = self._conn.execute(_MINE, {"key": _ADVISORY_KEY}).scalar()
                self._conn.commit()
            except Exception:  # the connection is gone: so is the lock
                return False
        return bool(found)

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None
        if self._conn is not None:
            # The connection goes back to a pool: the session-level lock must be let go (a
            # connection already gone let it go with it).
            with contextlib.suppress(Exception):
                unlock = text("SELECT pg_advisory_unlock(:key)")
                self._conn.execute(unlock, {"key": _ADVISORY_KEY})
                self._conn.commit()
            with contextlib.suppress(Exception):
                self._conn.close()
            self._conn = None


def tick() -> None:
    """The job behind every schedule entry (importable, so the job store can keep it)."""
    if _ACTIVE is None:
        return
    ws, log, gate, lock = _ACTIVE
    if not lock.held():
        _lost(ws, log)
        return
    try:
        with _PASS:  # the sweep and a date job may fire together: one pass at a time
            ws.reload()
            events = due_pass(ws, gate)
    except MailerError as exc:
        log(f"Error: {exc} — the round stays due; the next sweep tries again")
        record_pass(ws, error=str(exc))  # status (#14)
        return
    except Exception as exc:  # e.g. the database went away mid-pass: shown, and tried again
        said = hide_secrets(f"{type(exc).__name__}: {exc}", ws.settings.database_url)
        log(f"Error: the pass failed ({cut(said, 300, flat=True)}); the next sweep tries again")
        record_pass(ws, error=cut(said, 300, flat=True))
        return
    record_pass(ws, events)  # status (#14)
    for event in events:
        local = event.due_at.astimezone(ws.campaign.timezone)
        if event.stats is not None:
            s = event.stats
            log(f"due messages: {s.sent} sent, {s.retry} to retry, {s.failed} failed")
        elif event.status == "waiting":  # the replies could not be read (#14)
            log(f"round {event.rule_id} (due {local:%Y-%m-%d %H:%M}) {event.note}")
        elif event.status == "queued":  # the coordinator's digest of today
            log(f"{event.rule_id}: queued for the coordinator")
        elif event.report is None:
            log(f"round {event.rule_id} (due {local:%Y-%m-%d %H:%M}): {event.status}, recorded")
        else:
            d = event.report.drain
            log(
                f"round {event.rule_id} (due {local:%Y-%m-%d %H:%M}): {event.report.enqueued} "
                f"enqueued, {d.sent} sent, {d.retry} to retry, {d.failed} failed"
            )


LOCK_CHECK = 5.0  # seconds between checks that this process still holds the lock


def _lost(ws: Workspace, log: Log) -> None:
    """The lock went with its database connection: another scheduler may be active now, so
    this one stops passing and exits (systemd restarts it, and it stands by)."""
    if not ws.stopping.is_set():
        log(
            "Error: this scheduler lost its lock on the database (its connection dropped); "
            "it stops so that only one scheduler sends rounds — restarted, it stands by"
        )
    ws.stopping.set()
    _LOST.set()


def _sync_jobs(scheduler: BackgroundScheduler, ws: Workspace) -> None:
    campaign = ws.campaign
    now = ws.clock()
    for rule in campaign.rules:
        due = rule.due_at(campaign.event, campaign.timezone)
        job_id = f"{campaign.id}:{rule.id}"
        if due is None or due + rule.catch_up < now:
            if scheduler.get_job(job_id):
                scheduler.remove_job(job_id)
            continue
        scheduler.add_job(
            tick,
            "date",
            run_date=max(due, now),
            id=job_id,
            name=f"round {rule.id}",
            replace_existing=True,
            misfire_grace_time=int(rule.catch_up.total_seconds()),
            coalesce=True,
        )


def run_scheduler(ws: Workspace, log: Log, sweep: timedelta = timedelta(minutes=1)) -> None:
    """Run until SIGINT/SIGTERM. Refuses to start on a broken campaign or template, or
    (SQLite) when another scheduler holds this database; on PostgreSQL it stands by."""
    global _ACTIVE
    for rule in ws.campaign.rules:  # a missing or broken template stops here
        ws.composer.renderer(rule.template)
    if ws.campaign.digest is not None:  # … and the coordinator's digest's (#14)
        ws.composer.renderer(DIGEST_TEMPLATE)
    lock = SchedulerLock(ws)
    presence = Presence(ws, log)  # standby (#14): on PostgreSQL, wait here for the lock
    if not presence.acquire(lock):
        return  # stopped while standing by
    stop = ws.stopping  # SIGINT/SIGTERM: the message in hand is finished, then it stops
    with stop_on_signals(stop, log, "finishing the message in hand, then stopping"):
        scheduler = BackgroundScheduler(
            timezone=ws.campaign.timezone,
            jobstores={"default": SQLAlchemyJobStore(engine=ws.engine)},
            job_defaults={"coalesce": True, "max_instances": 1},
        )
        watcher = start_watcher(ws, log)  # the replies, read by itself (#14)
        _ACTIVE = (ws, log, replies_gate(ws, watcher, log) if watcher else None, lock)
        try:
            scheduler.start()
            log(f"scheduler for campaign {ws.campaign.id} started (pid {os.getpid()})")
            tick()  # catch up at once on what came due while nothing was running
            scheduler.add_job(
                tick, "interval", seconds=sweep.total_seconds(), id=f"{ws.campaign.id}:sweep",
                replace_existing=True, misfire_grace_time=None,
            )  # fmt: skip
            synced = float("-inf")
            while not stop.is_set():
                if not lock.held():
                    _lost(ws, log)
                    break
                if time.monotonic() - synced >= sweep.total_seconds():
                    _sync_jobs(scheduler, ws)
                    synced = time.monotonic()
                stop.wait(min(sweep.total_seconds(), LOCK_CHECK))
        finally:
            scheduler.shutdown(wait=True)
            _ACTIVE = None
            if watcher is not None:
                watcher.stop()
            presence.stop()  # standby (#14)
            lock.release()
    if _LOST.is_set():
        _LOST.clear()
        raise MailerError(
            "the scheduler lost its database lock and stopped; start it again (as a service "
            "it is restarted) and it stands by while another is active"
        )
    log("scheduler stopped")
