"""Drain the ledger: claim → compose → mark sending → SMTP → record, one message at a time.

One commit per message: the transaction that marks message *k* `sending` also records how
message *k-1* ended. So at any moment a worker has at most one row in `sending` — the one
it is handing to the server — and a crash leaves at most that one `uncertain`. Before any
pause (rate limit, back-off) and on the way out, the last result is recorded at once.
What one message goes through is `mailer.delivery.attempt`; this module is the loop, its
pacing, and when a run stops.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import timedelta

from sqlalchemy import Engine, select
from sqlmodel import col

from mailer.db import reader
from mailer.delivery.attempt import Run
from mailer.delivery.context import DeliveryContext, connected
from mailer.delivery.ledger import Claim
from mailer.delivery.pacing import SLOW_DOWN_CODES, DailyCapReached
from mailer.delivery.stats import SKIPPED, STOPPED, DrainStats, Outcome, Progress
from mailer.delivery.transport import SmtpTransport
from mailer.invitees.importing import RECORD_COLUMNS, InviteeRecord
from mailer.models import DeliveryState, Invitee

S = DeliveryState
RETRY_HORIZON = timedelta(minutes=2)  # a run waits for retries due this soon
CLAIM_BATCH = 100


def invitee_records(engine: Engine, ids: Sequence[str]) -> dict[str, InviteeRecord]:
    """The claimed offices, read as plain rows (no ORM objects on the hot path)."""
    query = select(*RECORD_COLUMNS).where(col(Invitee.invitee_id).in_(ids))
    with reader(engine).connect() as conn:
        rows = conn.execute(query).all()
    return {row.invitee_id: InviteeRecord.from_row(row) for row in rows}


def drain(
    ctx: DeliveryContext, transport: SmtpTransport, progress: Progress | None = None
) -> DrainStats:
    """Send every due row of the campaign through `transport`, paced by the rate limits.

    Waits for retries that fall due within `RETRY_HORIZON`; stops cleanly (claims released,
    the last result recorded) on a fatal transport error, a daily cap, `ctx.stopping`, or
    `ctx.max_failures` in a row.
    """
    run = Run(ctx, transport)
    run.stats.recovered_uncertain = ctx.ledger.recover()
    with ctx.ledger.stepping():
        try:
            run.stats.stopped = _drain(run, progress)
        finally:
            run.flush()
            ctx.ledger.release(run.owner)
    return run.stats


def _drain(run: Run, progress: Progress | None) -> str | None:
    """Claim batch after batch until nothing is due; why the run stopped early, if it did."""
    while True:
        run.flush()
        if run.ctx.stopping.is_set():  # e.g. SIGTERM while waiting for a retry
            return STOPPED
        claims = run.ledger.claim(run.owner, CLAIM_BATCH, run.lease)
        if not claims:
            if not _wait_for_retries(run):
                return None
            continue
        stopped = _batch(run, claims, progress)
        if stopped is not None:
            return stopped


def _batch(run: Run, claims: list[Claim], progress: Progress | None) -> str | None:
    records = invitee_records(run.ledger.engine, [c.invitee_id for c in claims if c.invitee_id])
    run.new_batch()
    for claim in claims:
        if run.ctx.stopping.is_set():
            return STOPPED
        stopped = _pace(run)
        if stopped is not None:
            return stopped
        office = records[claim.invitee_id] if claim.invitee_id is not None else None
        outcome = run.send(claim, office)
        if outcome is None:
            continue
        run.stats.count(outcome)
        if progress is not None:
            progress(outcome)
        stopped = _after(run, outcome)
        if stopped is not None:
            return stopped
    return None


def _pace(run: Run) -> str | None:
    """Wait as the rate limits say before the next message; why not to send it, if so."""
    if not run.ctx.limits.windows():
        run.pause(run.pacer.min_interval)
        return None
    run.flush()  # the limits count what the ledger says was sent
    try:
        run.pause(run.pacer.wait_before_next(run.ctx.clock()))
    except DailyCapReached as cap:
        resume = cap.resume_at.astimezone(run.ctx.composer.campaign.timezone)
        return (
            f"the daily cap of {cap.limit} messages through {run.transport.server_id} is "
            f"reached; the rest stay queued. Run the command again after {resume:%Y-%m-%d %H:%M} "
            "(or leave it to the scheduler)"
        )
    return None


def _after(run: Run, outcome: Outcome) -> str | None:
    """Count failures in a row, slow down when the server asks; why to stop, if so."""
    if outcome.state in (S.sent, SKIPPED):
        run.failures = 0 if outcome.state == S.sent else run.failures
        return None
    run.failures += 1
    if outcome.code in SLOW_DOWN_CODES:
        run.pause(run.pacer.slow_down())
    if run.failures < run.ctx.max_failures:
        return None
    return (
        f"paused after {run.failures} failures in a row "
        f"(last: {outcome.invitee_id}: {outcome.reply}). The rest stay queued; "
        "fix the cause and run the command again"
    )


def _wait_for_retries(run: Run) -> bool:
    """Sleep until the next retry if it is due soon; False when there is nothing to wait for."""
    due = run.ledger.next_retry_at()
    if due is None:
        return False
    wait = due - run.ctx.clock()
    if wait > RETRY_HORIZON:
        return False
    run.pause(wait)
    return True


def drain_due(
    ctx: DeliveryContext, *, allow_new: bool = False, progress: Progress | None = None
) -> DrainStats:
    """Open the SMTP session (the server guarded, see `connected`) and drain."""
    with connected(ctx, allow_new=allow_new) as transport:
        return drain(ctx, transport, progress)


def work_forever(ctx: DeliveryContext, poll: float, log: Callable[[str], None]) -> DrainStats:
    """`mailer worker --forever`: drain, wait `poll` seconds, again — until `ctx.stopping`
    is set (see `mailer.delivery.workers.stop_on_signals`)."""
    total = DrainStats()
    while not ctx.stopping.is_set():
        stats = drain_due(ctx)
        total.add(stats)
        if stats.sent or stats.failed or stats.retry:
            log(f"{stats.sent} sent, {stats.retry} to retry later, {stats.failed} failed")
        if stats.stopped and not ctx.stopping.is_set():
            log(f"paused: {stats.stopped}")
        ctx.stopping.wait(poll)
    return total
