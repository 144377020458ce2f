"""`mailer scheduler status`: who runs the rounds, what they last did, what comes next.

Read from the scheduler processes' own rows (`scheduler_state`, written by
mailer/rounds/standby.py), the database's lock (PostgreSQL: `pg_locks`), the plan of the
rounds (`due.plan`) and the next digest (`digest.next_digest`), computed now. `problems`
lists, in words, what monitoring should alert on: no scheduler, a stale heartbeat (stuck
or dead), a lost lock, a failing mail sync.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import select, text

from mailer.delivery.owners import owner_is_dead
from mailer.rounds.standby import STALE, STATE, C

if TYPE_CHECKING:
    from mailer.rounds.due import RoundPlan
    from mailer.workspace import Workspace

_LOCK_HELD = text(  # scheduler.SchedulerLock's key, as pg_locks shows a one-bigint key
    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted "
    "AND classid = 0 AND objid = :key AND objsubid = 1 "
    "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
)


@dataclass(frozen=True)
class Process:
    host: str
    pid: int
    role: str  # active | standby | stopped
    started_at: datetime
    since: datetime
    heartbeat_at: datetime
    heartbeat_age: float  # seconds
    stale: bool  # no heartbeat for longer than STALE (a stopped process is never stale)
    alive: bool | None  # its pid on this host: exists or not; None on another host

    def to_json(self) -> dict[str, object]:
        return {
            "host": self.host,
            "pid": self.pid,
            "role": self.role,
            "started_at": self.started_at.isoformat(),
            "since": self.since.isoformat(),
            "heartbeat_at": self.heartbeat_at.isoformat(),
            "heartbeat_age_seconds": round(self.heartbeat_age, 1),
            "stale": self.stale,
            "alive": self.alive,
        }


@dataclass(frozen=True)
class SchedulerStatus:
    campaign_id: str
    database: str  # sqlite | postgresql
    checked_at: datetime
    state: str  # running | stale | dead | stopped | none
    active: Process | None
    standbys: list[Process]
    stopped: Process | None  # the last scheduler that stopped cleanly, if none runs
    lock_held: bool | None  # PostgreSQL: whether any process holds the scheduler lock
    last_pass_at: datetime | None
    last_pass: str
    sync_ok_at: datetime | None
    sync_error: str
    sync_error_at: datetime | None
    next_rounds: list[RoundPlan]
    problems: list[str]
    next_digest: datetime | None = None  # None: no [digest], or none to come

    def to_json(self, zone: object) -> dict[str, object]:
        def when(value: datetime | None) -> str | None:
            return value.isoformat() if value is not None else None

        return {
            "campaign": self.campaign_id,
            "database": self.database,
            "checked_at": self.checked_at.isoformat(),
            "state": self.state,
            "active": self.active.to_json() if self.active else None,
            "standbys": [p.to_json() for p in self.standbys],
            "stopped": self.stopped.to_json() if self.stopped else None,
            "lock_held": self.lock_held,
            "last_pass": {"at": when(self.last_pass_at), "summary": self.last_pass or None},
            "sync": {
                "last_ok_at": when(self.sync_ok_at),
                "last_error": self.sync_error or None,
                "last_error_at": when(self.sync_error_at),
                "failing": self.sync_failing,
            },
            "next_rounds": [p.to_json(zone) for p in self.next_rounds],
            "next_digest": when(self.next_digest),
            "problems": self.problems,
        }

    def lines(self, zone: Any) -> list[str]:
        """For a person: who runs the rounds, who stands by, the last pass and sync (times
        in the campaign's zone; the problems and the next rounds are shown apart)."""

        def when(value: datetime | None) -> str:
            return f"{value.astimezone(zone):%Y-%m-%d %H:%M:%S}" if value else "never"

        def who(p: Process) -> str:
            return (
                f"{p.host} pid {p.pid}, since {when(p.since)} "
                f"(heartbeat {p.heartbeat_age:.0f} s ago{', STALE' if p.stale else ''})"
            )

        db = "PostgreSQL" if self.database == "postgresql" else "SQLite: one scheduler, no standby"
        lines = [f"Scheduler of campaign {self.campaign_id} ({db}): {self.state}"]
        if self.active is not None:
            lines.append(f"Active (ผู้ส่งหลัก): {who(self.active)}")
        elif self.stopped is not None:
            lines.append(
                f"No scheduler is running; the last one, {self.stopped.host} pid "
                f"{self.stopped.pid}, stopped at {when(self.stopped.since)}."
            )
        else:
            lines.append("No scheduler is running (none has run on this database yet).")
        lines += [f"Standing by (สำรอง): {who(p)}" for p in self.standbys]
        if self.last_pass_at is not None:
            lines.append(f"Last pass: {when(self.last_pass_at)}: {self.last_pass}")
        lines.append(f"Last good mail sync: {when(self.sync_ok_at)}")
        if self.sync_error:
            lines.append(f"Last sync error: {when(self.sync_error_at)}: {self.sync_error}")
        if self.next_digest is not None:
            lines.append(f"Next digest (สรุปประจำวัน): {when(self.next_digest)}")
        return lines

    @property
    def sync_failing(self) -> bool:
        if self.sync_error_at is None:
            return False
        return self.sync_ok_at is None or self.sync_error_at > self.sync_ok_at


def _plan(ws: Workspace) -> list[RoundPlan]:
    """The rounds still to come (adapter: `due.coming`'s signature may move to a ledger)."""
    from mailer.rounds.due import coming

    return coming(ws)


def _next_digest(ws: Workspace) -> datetime | None:
    from mailer.rounds.digest import next_digest

    return next_digest(ws)


def _process(row: Any, now: datetime) -> Process:
    age = (now - row.heartbeat_at).total_seconds()
    alive = None
    if row.role != "stopped":
        dead = owner_is_dead(f"{row.host}:{row.pid}")
        alive = False if dead else (True if _this_host(row.host) else None)
    return Process(
        row.host, row.pid, row.role, row.started_at, row.since, row.heartbeat_at, age,
        row.role != "stopped" and age > STALE.total_seconds(), alive,
    )  # fmt: skip


def _this_host(host: str) -> bool:
    import socket

    return host == socket.gethostname()


def _lock_held(ws: Workspace) -> bool | None:
    if ws.engine.dialect.name != "postgresql":
        return None
    from mailer.rounds.scheduler import _ADVISORY_KEY

    with ws.engine.connect() as conn:
        return bool(conn.execute(_LOCK_HELD, {"key": _ADVISORY_KEY}).scalar())


def scheduler_status(ws: Workspace) -> SchedulerStatus:
    now = ws.clock()
    campaign_id = ws.campaign.id
    with ws.engine.connect() as conn:
        rows = conn.execute(select(STATE).where(C.campaign_id == campaign_id)).all()
    processes = [_process(r, now) for r in rows]
    active = next((p for p in processes if p.role == "active"), None)
    standbys = sorted((p for p in processes if p.role == "standby"), key=lambda p: p.started_at)
    stopped = max(
        (p for p in processes if p.role == "stopped"), key=lambda p: p.since, default=None
    )
    # The row that carries the last pass and sync: the active one's, else the stopped one's.
    record = next((r for r in rows if r.role == "active"), None) or next(
        (r for r in rows if r.role == "stopped"), None
    )
    lock_held = _lock_held(ws)
    if active is None:
        state = "stopped" if stopped is not None else "none"
    elif active.alive is False or (active.stale and lock_held is False):
        state = "dead"
    else:
        state = "stale" if active.stale else "running"
    status = SchedulerStatus(
        campaign_id, ws.engine.dialect.name, now, state, active, standbys,
        stopped if active is None else None, lock_held,
        getattr(record, "last_pass_at", None), getattr(record, "last_pass", "") or "",
        getattr(record, "last_sync_ok_at", None), getattr(record, "last_sync_error", "") or "",
        getattr(record, "last_sync_error_at", None), _plan(ws), [], _next_digest(ws),
    )  # fmt: skip
    status.problems.extend(_problems(status))
    return status


def _problems(s: SchedulerStatus) -> list[str]:
    problems = []
    a = s.active
    if a is None:
        problems.append(f"no scheduler is running for campaign {s.campaign_id}")
    elif s.state == "dead":
        problems.append(
            f"the active scheduler {a.host} pid {a.pid} is gone (no process, or no lock); "
            "a standby takes over within seconds: if none does, start `mailer scheduler run`"
        )
    elif a.stale:
        problems.append(
            f"the active scheduler {a.host} pid {a.pid} has written no heartbeat for "
            f"{a.heartbeat_age:.0f} s: it is stuck or dead. While it holds the lock no "
            "standby takes over: stop or kill it"
        )
    elif s.lock_held is False:
        problems.append(
            f"the active scheduler {a.host} pid {a.pid} does not hold the database's "
            "scheduler lock (its connection was lost?): restart it"
        )
    if s.sync_failing:
        problems.append(f"the mail sync is failing: {s.sync_error}")
    return problems
