"""Scheduled rounds: when each rule is due, and the idempotent pass that sends what is due.

`due_pass` is the only thing the scheduler's jobs do (docs/design.md §7): for every rule with a
time, if it is due and inside its catch-up window it runs the round (enqueue its audience,
then drain: the ledger makes a second run a no-op); if the window has passed it records the
round as missed. Either way the result is written to `round_run`, so nothing is lost
without a trace and nothing runs twice. Times are recomputed from the campaign file on
every pass, so moving the event moves the relative rounds. The pass also queues the
coordinator's daily digest once its time has come (`mailer.rounds.digest`), then drains.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from mailer.campaign import Rule
from mailer.delivery.drain import drain_due
from mailer.delivery.stats import DrainStats
from mailer.models import RoundRun
from mailer.rounds.audience import audience_ids
from mailer.rounds.context import delivery_context
from mailer.rounds.digest import queue_digest
from mailer.rounds.send import SendReport, iter_invitees, send_round
from mailer.thai import thai_date, thai_time
from mailer.versions import pending_change
from mailer.workspace import Workspace

RUNS = RoundRun.__table__  # type: ignore[attr-defined]
R = RUNS.c


@dataclass(frozen=True)
class RoundPlan:
    rule_id: str
    kind: str
    template: str
    audience: str
    due_at: datetime | None
    window_ends: datetime | None
    status: str  # by-command | waiting | due | done | missed | cancelled
    reach: int  # invitees the round would reach right now
    note: str = ""

    def due_thai(self, zone: object) -> str:
        if self.due_at is None:
            return "ส่งด้วยคำสั่ง"
        local = self.due_at.astimezone(zone)  # type: ignore[arg-type]
        return f"{thai_date(local)} เวลา {thai_time(local)} น."

    def to_json(self, zone: object) -> dict[str, object]:
        return {
            "rule": self.rule_id,
            "kind": self.kind,
            "template": self.template,
            "audience": self.audience,
            "due_at": self.due_at.isoformat() if self.due_at else None,
            "due_thai": self.due_thai(zone),
            "window_ends": self.window_ends.isoformat() if self.window_ends else None,
            "status": self.status,
            "reach": self.reach,
            "note": self.note,
        }


def _recorded(ws: Workspace) -> dict[tuple[str, datetime], tuple[str, str]]:
    ledger = ws.ledger()
    with ledger.reads.connect() as conn:
        rows = conn.execute(
            select(R.rule_id, R.due_at, R.status, R.note).where(R.campaign_id == ledger.campaign_id)
        ).all()
    return {(r.rule_id, r.due_at): (r.status, r.note) for r in rows}


@dataclass(frozen=True)
class _Ran:
    """What became of one round due at one time (a `round_run` row)."""

    rule: Rule
    due: datetime
    status: str  # done | missed | cancelled
    note: str
    enqueued: int = 0


def _record(ws: Workspace, ran: _Ran) -> None:
    ledger = ws.ledger()
    insert = pg_insert if ledger.engine.dialect.name == "postgresql" else sqlite_insert
    with ledger.engine.begin() as conn:
        conn.execute(
            insert(RUNS)
            .on_conflict_do_nothing()
            .values(
                campaign_id=ledger.campaign_id,
                rule_id=ran.rule.id,
                due_at=ran.due,
                status=ran.status,
                enqueued=ran.enqueued,
                note=ran.note,
                recorded_at=ws.clock(),
            )
        )


def plan(ws: Workspace) -> list[RoundPlan]:
    campaign = ws.campaign
    now = ws.clock()
    recorded = _recorded(ws)
    plans = []
    for rule in campaign.rules:
        due = rule.due_at(campaign.event, campaign.timezone)
        reach = (
            len(audience_ids(ws.ledger(), rule.audience))
            if rule.kind != "invitation"
            else len(list(_all_ids(ws)))
        )
        if due is None:
            plans.append(
                RoundPlan(
                    rule.id,
                    rule.kind,
                    rule.template,
                    rule.audience,
                    None,
                    None,
                    "by-command",
                    reach,
                )
            )
            continue
        ends = due + rule.catch_up
        status, note = recorded.get((rule.id, due), ("", ""))
        if not status:
            status = "waiting" if now < due else ("due" if now <= ends else "missed")
        plans.append(
            RoundPlan(
                rule.id, rule.kind, rule.template, rule.audience, due, ends, status, reach, note
            )
        )
    return plans


def coming(ws: Workspace) -> list[RoundPlan]:
    """The rounds still to come (waiting or due), soonest first."""
    ahead = [p for p in plan(ws) if p.due_at is not None and p.status in {"waiting", "due"}]
    return sorted(ahead, key=lambda p: p.due_at or p.window_ends or ws.clock())


def _all_ids(ws: Workspace) -> list[str]:
    return [i.invitee_id for i in iter_invitees(ws.engine)]


@dataclass(frozen=True)
class PassEvent:
    rule_id: str
    due_at: datetime
    status: str  # done | missed | cancelled | drained | queued (today's digest) | waiting
    report: SendReport | None = None
    stats: DrainStats | None = None
    note: str = ""  # why a round waits


def due_pass(ws: Workspace, gate: Callable[[Rule], str | None] | None = None) -> list[PassEvent]:
    """Run every round that is due and inside its window; record the ones whose window
    passed. Safe to call any number of times, from any number of restarts. `gate` (the
    scheduler's: `mailer.rounds.mailbox.replies_gate`) is asked right before a round chooses
    its audience; a reason back means the round waits, unrecorded, and stays due."""
    campaign = ws.campaign
    now = ws.clock()
    recorded = _recorded(ws)
    change = pending_change(ws.ledger(), campaign.event, campaign.timezone)
    cancelled = change is not None and change.cancelled
    events = []
    for rule in campaign.rules:
        due = rule.due_at(campaign.event, campaign.timezone)
        if due is None or now < due or (rule.id, due) in recorded:
            continue
        if now > due + rule.catch_up:
            note = (
                f"missed: due {due.astimezone(campaign.timezone):%Y-%m-%d %H:%M}, the scheduler "
                f"was not running until after its {rule.catch_up} catch-up window"
            )
            _record(ws, _Ran(rule, due, "missed", note))
            events.append(PassEvent(rule.id, due, "missed"))
            continue
        if cancelled:
            _record(ws, _Ran(rule, due, "cancelled", "not sent: the event was cancelled"))
            events.append(PassEvent(rule.id, due, "cancelled"))
            continue
        if gate is not None and (waits := gate(rule)) is not None:
            events.append(PassEvent(rule.id, due, "waiting", note=waits))
            continue
        report = send_round(ws, rule.ledger_kind)
        _record(ws, _Ran(rule, due, "done", f"{report.drain.sent} sent", report.enqueued))
        events.append(PassEvent(rule.id, due, "done", report))
    if not cancelled and (day := queue_digest(ws)) is not None:
        events.append(PassEvent(str(day), now, "queued"))
    ledger = ws.ledger()
    if not cancelled and ledger.due_count():  # retries now due, the rest of a capped round
        stats = drain_due(delivery_context(ws))
        events.append(PassEvent("(due messages)", now, "drained", stats=stats))
    return events


def run_now(ws: Workspace, rule_id: str, *, dry_run: bool = False) -> SendReport:
    """`mailer scheduler run-now RULE`: one round by hand (idempotent like any other)."""
    rule = ws.campaign.rule(rule_id)
    report = send_round(ws, rule.ledger_kind, dry_run=dry_run)
    due = rule.due_at(ws.campaign.event, ws.campaign.timezone)
    if not dry_run and due is not None and (rule.id, due) not in _recorded(ws):
        note = f"run by hand: {report.drain.sent} sent"
        _record(ws, _Ran(rule, due, "done", note, report.enqueued))
    return report
