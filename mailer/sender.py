"""Drain the ledger: claim → compose → mark sending → SMTP → record, one message at a time.

`send_round` is what `mailer send invitations` (and later the scheduler) runs: choose the
invitees, enqueue what is missing (idempotent), then drain everything that is due.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import timedelta

from sqlalchemy import Engine, or_
from sqlmodel import col, select

from mailer.compose import OutgoingMail
from mailer.compose.composer import new_message_id
from mailer.contacts import InviteeRecord
from mailer.db import session
from mailer.errors import MailerError, TransportError
from mailer.models import DeliveryState, Invitee
from mailer.outbox import Claim, Ledger, new_owner
from mailer.pacing import SLOW_DOWN_CODES, DailyCapReached, Pacer
from mailer.transport import PermanentFailure, SmtpTransport, TemporaryFailure, Unknown
from mailer.workspace import Workspace

S = DeliveryState
LEASE = timedelta(minutes=5)
RETRY_HORIZON = timedelta(minutes=2)  # a run waits for retries due this soon
CLAIM_BATCH = 20
MAX_ATTEMPTS = 5


@dataclass(frozen=True)
class Outcome:
    invitee_id: str
    state: str
    reply: str
    code: int = 0


Progress = Callable[[Outcome], None]


@dataclass
class DrainStats:
    sent: int = 0
    retry: int = 0
    failed: int = 0
    uncertain: int = 0
    recovered_uncertain: int = 0
    stopped: str | None = None
    outcomes: list[Outcome] = field(default_factory=list)

    def summary(self) -> dict[str, object]:
        keys = ("sent", "retry", "failed", "uncertain", "recovered_uncertain", "stopped")
        return {key: getattr(self, key) for key in keys}

    def count(self, outcome: Outcome) -> None:
        self.sent += outcome.state == S.sent
        self.retry += outcome.state == S.retry_wait
        self.failed += outcome.state == S.failed
        self.uncertain += outcome.state == S.uncertain


@dataclass
class SendReport:
    kind: str
    server: str
    selected: int
    enqueued: int
    already_in_ledger: int
    dry_run: bool = False
    due: int = 0
    drain: DrainStats = field(default_factory=DrainStats)
    totals: dict[str, int] = field(default_factory=dict)


def retry_delay(attempt: int) -> timedelta:
    """1, 2, 4, 8 … minutes (at most an hour), with ±20 % jitter."""
    base = min(60 * 2 ** max(attempt - 1, 0), 3600)
    return timedelta(seconds=base * random.uniform(0.8, 1.2))


def select_invitees(engine: Engine, only: Sequence[str] = ()) -> list[InviteeRecord]:
    """All invitees, or those whose id, province code/name or agency is in `only`."""
    query = select(Invitee).order_by(col(Invitee.invitee_id))
    if only:
        query = query.where(
            or_(
                col(Invitee.invitee_id).in_(only),
                col(Invitee.province_code).in_(only),
                col(Invitee.province).in_(only),
                col(Invitee.agency).in_(only),
            )
        )
    with session(engine) as db:
        return [InviteeRecord.from_row(row) for row in db.exec(query).all()]


def _records(engine: Engine, ids: Sequence[str]) -> dict[str, InviteeRecord]:
    with session(engine) as db:
        rows = db.exec(select(Invitee).where(col(Invitee.invitee_id).in_(ids))).all()
    return {row.invitee_id: InviteeRecord.from_row(row) for row in rows}


def send_round(
    ws: Workspace,
    kind: str,
    *,
    only: Sequence[str] = (),
    limit: int | None = None,
    dry_run: bool = False,
    new_server: bool = False,
    progress: Progress | None = None,
    workers: int = 1,
    worker_env: Mapping[str, str] | None = None,
) -> SendReport:
    campaign = ws.campaign
    rule = campaign.rule_for_kind(kind)
    sessions = ws.settings.limits.sessions
    if workers > sessions:
        raise MailerError(
            f"--workers {workers} would open more SMTP sessions than the {sessions} allowed "
            f"(MAILER_MAX_SESSIONS, preset {ws.settings.rate_preset}); use --workers {sessions} "
            "or fewer"
        )
    invitees = select_invitees(ws.engine, only)
    if not invitees:
        if only:
            raise MailerError(
                f"no invitee matches --only {' '.join(only)}; give an invitee id (TH-50-agri), "
                "a province code (TH-50) or name, or an agency code (agri)"
            )
        raise MailerError("the invitee list is empty; run `mailer import contacts.csv` first")
    ledger = ws.ledger()
    existing = ledger.existing(kind)
    fresh = [i for i in invitees if i.invitee_id not in existing]
    new = fresh[:limit] if limit is not None else fresh
    server = ws.settings.smtp.server_id
    report = SendReport(
        kind=kind,
        server=server,
        selected=len(invitees),
        enqueued=len(new),
        already_in_ledger=len(invitees) - len(fresh),
        dry_run=dry_run,
    )
    # Render one message before touching anything: a template error stops here, cleanly.
    sequence = ledger.campaign_state().sequence if not dry_run else 0
    sample = new[0] if new else invitees[0]
    ws.composer.compose(
        OutgoingMail(sample, rule.template, "<preflight@invalid>", sequence), ws.clock()
    )
    if dry_run:
        report.due = ledger.due_count() + len(new)
        report.totals = ledger.counts(kind)
        return report
    with ws.transport() as transport:
        ledger.guard_server(server, allow_new=new_server)
        report.enqueued = ledger.enqueue(
            ((i.invitee_id, "; ".join(i.email)) for i in new),
            kind,
            sequence,
            lambda invitee_id: new_message_id(campaign, invitee_id, kind),
        )
        report.due = ledger.due_count()
        if workers == 1:
            report.drain = drain(ws, ledger, transport, progress)
    if workers > 1:
        report.drain = run_workers(ws, workers, worker_env or {}, progress)
    report.totals = ledger.counts(kind)
    return report


def drain(
    ws: Workspace, ledger: Ledger, transport: SmtpTransport, progress: Progress | None = None
) -> DrainStats:
    """Send every due row of the campaign, paced by the rate limits.

    Waits for retries that fall due within `RETRY_HORIZON`; stops cleanly (claims released)
    on a fatal transport error, a daily cap, or `max_consecutive_failures` in a row.
    """
    stats = DrainStats(recovered_uncertain=ledger.recover())
    owner = new_owner()
    server = transport.server_id
    pacer = Pacer(ws.settings.limits, lambda since, n: ledger.sent_since(server, since, n))
    consecutive_failures = 0
    limit = ws.settings.max_consecutive_failures
    try:
        while True:
            claims = ledger.claim(owner, CLAIM_BATCH, LEASE)
            if not claims:
                if not _wait_for_retries(ws, ledger):
                    return stats
                continue
            records = _records(ws.engine, [c.invitee_id for c in claims])
            for claim in claims:
                try:
                    _pause(ws, pacer.wait_before_next(ws.clock()))
                except DailyCapReached as cap:
                    stats.stopped = (
                        f"the daily cap of {cap.limit} messages through {server} is reached; "
                        f"the rest stay queued. Run the command again after "
                        f"{cap.resume_at.astimezone(ws.campaign.timezone):%Y-%m-%d %H:%M} "
                        "(or leave it to the scheduler)"
                    )
                    return stats
                outcome = _send_one(ws, ledger, transport, owner, claim, records[claim.invitee_id])
                if outcome is None:
                    continue
                stats.outcomes.append(outcome)
                stats.count(outcome)
                if progress is not None:
                    progress(outcome)
                if outcome.state == S.sent:
                    consecutive_failures = 0
                    continue
                consecutive_failures += 1
                if outcome.code in SLOW_DOWN_CODES:
                    _pause(ws, pacer.slow_down())
                if consecutive_failures >= limit:
                    stats.stopped = (
                        f"paused after {consecutive_failures} failures in a row "
                        f"(last: {outcome.invitee_id}: {outcome.reply}). The rest stay queued; "
                        "fix the cause and run the command again"
                    )
                    return stats
    finally:
        ledger.release(owner)


def drain_once(ws: Workspace) -> DrainStats:
    """What one `mailer worker` does: connect, send everything due, exit."""
    ledger = ws.ledger()
    with ws.transport() as transport:
        ledger.guard_server(transport.server_id, allow_new=False)
        return drain(ws, ledger, transport)


def run_workers(
    ws: Workspace, count: int, env: Mapping[str, str], progress: Progress | None = None
) -> DrainStats:
    """Drain with `count` `mailer worker` processes over the same ledger and add up what
    they report. Each claims its own rows (a lease), so no row is sent by two of them."""
    ledger = ws.ledger()
    done_states = (S.sent, S.failed, S.uncertain, S.retry_wait)
    baseline = sum(ledger.counts()[s] for s in done_states)
    command = [sys.executable, "-m", "mailer", "worker", "--json"]
    procs = [
        subprocess.Popen(command, env=dict(env), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for _ in range(count)
    ]
    reported = 0
    while any(p.poll() is None for p in procs):
        time.sleep(0.2)  # real processes run on real time, whatever ws.clock says
        processed = sum(ledger.counts()[s] for s in done_states) - baseline
        for _ in range(max(processed - reported, 0)):
            if progress is not None:
                progress(Outcome("(workers)", S.sent, ""))
        reported = max(reported, processed)
    stats = DrainStats()
    errors = []
    for proc in procs:
        out, err = proc.communicate()
        lines = out.decode("utf-8", "replace").strip().splitlines()
        if proc.returncode != 0 or not lines:
            errors.append(err.decode("utf-8", "replace").strip() or f"exit {proc.returncode}")
            continue
        summary = json.loads(lines[-1])
        for key in ("sent", "retry", "failed", "uncertain", "recovered_uncertain"):
            setattr(stats, key, getattr(stats, key) + int(summary[key]))
        stats.stopped = stats.stopped or summary.get("stopped")
    if errors:
        raise MailerError("a worker stopped: " + " | ".join(dict.fromkeys(errors)))
    return stats


def _pause(ws: Workspace, wait: timedelta) -> None:
    if wait > timedelta(0):
        ws.sleep(wait.total_seconds())


def _wait_for_retries(ws: Workspace, ledger: Ledger) -> bool:
    """Sleep until the next retry if it is due soon; False when there is nothing to wait for."""
    due = ledger.next_retry_at()
    if due is None:
        return False
    wait = due - ws.clock()
    if wait > RETRY_HORIZON:
        return False
    _pause(ws, wait)
    return True


def _send_one(
    ws: Workspace,
    ledger: Ledger,
    transport: SmtpTransport,
    owner: str,
    claim: Claim,
    invitee: InviteeRecord,
) -> Outcome | None:
    rule = ws.campaign.rule_for_kind(claim.kind)
    mail = OutgoingMail(
        invitee=invitee,
        template=rule.template,
        message_id=claim.message_id,
        sequence=claim.sequence,
        automatic=rule.kind != "invitation",
    )
    message = ws.composer.compose(mail, ws.clock())
    transport.ready()  # a server we cannot reach stops the run before anything is marked
    if not ledger.mark_sending(claim, owner, message.recipients, transport.server_id, LEASE):
        return None  # the lease was lost to another worker
    who = invitee.invitee_id
    try:
        delivered = transport.send(message.envelope_from, message.recipients, message.data)
    except PermanentFailure as failure:
        ledger.mark_failed(claim, owner, str(failure.reply))
        return Outcome(who, S.failed, str(failure.reply), failure.reply.code)
    except Unknown as unknown:
        ledger.mark_uncertain(claim, owner, str(unknown.reply))
        return Outcome(who, S.uncertain, str(unknown.reply), 0)
    except TemporaryFailure as failure:
        reply, code = str(failure.reply), failure.reply.code
        if claim.attempts + 1 >= MAX_ATTEMPTS:
            reply = f"{reply} (gave up after {MAX_ATTEMPTS} attempts)"
            ledger.mark_failed(claim, owner, reply)
            return Outcome(who, S.failed, reply, code)
        delay = timedelta(seconds=5) if code == 421 else retry_delay(claim.attempts + 1)
        ledger.mark_retry(claim, owner, reply, delay)
        return Outcome(who, S.retry_wait, reply, code)
    reply = str(delivered.reply)
    if delivered.refused:
        refused = "; ".join(f"{a}: {r}" for a, r in delivered.refused.items())
        reply = f"{reply} (refused: {refused})"
    ledger.mark_sent(claim, owner, reply)
    return Outcome(who, S.sent, reply, delivered.reply.code)


@dataclass(frozen=True)
class TestSend:
    invitee_id: str
    address: str
    subject: str
    reply: str
    server: str


def send_test(ws: Workspace, address: str, only: Sequence[str] = ()) -> TestSend:
    """Send one sample to `address`; the ledger is not touched.

    The sample's calendar UID is marked `test-` so an Accept pressed on it can never be
    taken for the office's answer.
    """
    from email_validator import EmailNotValidError, validate_email

    try:
        address = validate_email(address, check_deliverability=False).normalized
    except EmailNotValidError as exc:
        raise MailerError(f"--test-to {address!r} is not an email address: {exc}") from exc
    invitees = select_invitees(ws.engine, only)
    if not invitees:
        raise MailerError(
            "no invitee to take the sample from; run `mailer import contacts.csv` first"
        )
    sample = replace(invitees[0], email=(address,))
    rule = ws.campaign.invitation_rule
    message_id = new_message_id(ws.campaign, f"test-{sample.invitee_id}", "invitation")
    message = ws.composer.compose(
        OutgoingMail(sample, rule.template, message_id, 0, test=True), ws.clock()
    )
    with ws.transport() as transport:
        try:
            delivered = transport.send(message.envelope_from, message.recipients, message.data)
        except (TemporaryFailure, PermanentFailure) as failure:
            raise TransportError(
                f"the server did not accept the sample: {failure.reply}"
            ) from failure
    return TestSend(
        sample.invitee_id, address, message.subject, str(delivered.reply), transport.server_id
    )
