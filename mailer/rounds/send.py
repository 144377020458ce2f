"""Send a round: choose the invitees, enqueue what is missing (idempotent), drain.

`send_round` is what `mailer send invitations` (and later the scheduler) runs: choose the
invitees, enqueue what is missing (idempotent), then drain everything that is due.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Generator, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from sqlalchemy import Engine, or_, true
from sqlmodel import col, select

from mailer.compose import OutgoingMail
from mailer.db import reader, session
from mailer.delivery.drain import DrainStats, Progress, drain
from mailer.delivery.transport import PermanentFailure, TemporaryFailure
from mailer.delivery.workers import Workers
from mailer.errors import MailerError, TransportError
from mailer.identity import TEST, new_message_id
from mailer.invitees.importing import InviteeRecord
from mailer.kinds import LedgerKind
from mailer.models import Invitee, split_emails
from mailer.rounds.announce import Announcement, announce
from mailer.rounds.audience import audience_ids, declined_or_bounced
from mailer.versions import first_version, pending_change
from mailer.workspace import Workspace


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


def _chosen(only: Sequence[str]) -> Any:
    """Invitees whose id, province code or name, or agency is in `only` (all if empty)."""
    if not only:
        return true()
    return or_(
        col(Invitee.invitee_id).in_(only),
        col(Invitee.province_code).in_(only),
        col(Invitee.province).in_(only),
        col(Invitee.agency).in_(only),
    )


def select_invitees(engine: Engine, only: Sequence[str] = ()) -> list[InviteeRecord]:
    return list(iter_invitees(engine, only))


def iter_recipients(engine: Engine, only: Sequence[str] = ()) -> Iterator[tuple[str, str]]:
    """(invitee id, "a@x; b@y") of the chosen invitees in id order: what queuing needs,
    read as plain rows in chunks (no ORM objects, never the whole list in memory)."""
    query = (
        select(col(Invitee.invitee_id), col(Invitee.emails))
        .where(_chosen(only))
        .order_by(col(Invitee.invitee_id))
    )
    with reader(engine).connect() as conn:
        result = conn.execute(query.execution_options(yield_per=5000))
        try:
            for invitee_id, emails in result:
                yield invitee_id, "; ".join(split_emails(emails))
        finally:
            result.close()


def iter_invitees(engine: Engine, only: Sequence[str] = ()) -> Iterator[InviteeRecord]:
    """The chosen invitees in id order, read in chunks: never the whole list in memory."""
    query = select(Invitee).where(_chosen(only)).order_by(col(Invitee.invitee_id))
    with session(reader(engine)) as db:
        result = db.exec(query.execution_options(yield_per=1000))  # a server-side cursor
        try:
            for row in result:
                yield InviteeRecord.from_row(row)
        finally:
            result.close()


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
    campaign.message_kind(kind)  # an unknown kind stops here, before any worker starts
    sessions = ws.settings.limits.sessions
    if workers > sessions:
        raise MailerError(
            f"--workers {workers} would open more SMTP sessions than the {sessions} allowed "
            f"(MAILER_MAX_SESSIONS, preset {ws.settings.rate_preset}); use --workers {sessions} "
            "or fewer"
        )
    ledger = ws.ledger()
    pending = pending_change(ledger, campaign.event, campaign.timezone)
    if pending is not None and pending.cancelled:
        raise MailerError(
            f"the event was cancelled (SEQUENCE {pending.sequence}); nothing more is sent for it"
        )
    if kind == "invitation" and pending is not None and pending.significant:
        raise MailerError(
            f"the event in {campaign.path} is not the one the invitations went out with "
            f"({pending.describe()}). Run `mailer send update` first: it tells the offices "
            "that have the invitation, and the invitations still to go then carry the change"
        )
    if workers == 1 or dry_run:
        return _queue_and_send(ws, kind, only, limit, dry_run, new_server, progress, None)
    # The helpers start now and wait: their start-up overlaps the queuing below.
    with Workers(workers - 1, worker_env or {}) as pool:
        return _queue_and_send(ws, kind, only, limit, dry_run, new_server, progress, pool)


def _queue_and_send(
    ws: Workspace,
    kind: str,
    only: Sequence[str],
    limit: int | None,
    dry_run: bool,
    new_server: bool,
    progress: Progress | None,
    pool: Workers | None,
) -> SendReport:
    campaign = ws.campaign
    message_kind = campaign.message_kind(kind)
    ledger = ws.ledger()
    members: set[str] | None = None
    parsed = LedgerKind.parse(kind)
    if parsed.name == "reminder":
        members = audience_ids(ledger, campaign.rule(parsed.rule).audience)

    def chosen() -> Generator[tuple[str, str], None, None]:
        for invitee_id, recipients in iter_recipients(ws.engine, only):
            if members is None or invitee_id in members:
                yield invitee_id, recipients

    existing = ledger.existing(kind)
    selected = fresh = 0
    for invitee_id, _ in chosen():
        selected += 1
        fresh += invitee_id not in existing
    server = ws.settings.smtp.server_id
    if not selected:
        if members is not None:  # a round whose audience is empty right now: nothing to do
            return SendReport(kind, server, 0, 0, 0, dry_run, totals=ledger.counts(kind))
        if only:
            raise MailerError(
                f"no invitee matches --only {' '.join(only)}; give an invitee id (TH-50-agri), "
                "a province code (TH-50) or name, or an agency code (agri)"
            )
        raise MailerError("the invitee list is empty; run `mailer import contacts.csv` first")
    report = SendReport(
        kind=kind,
        server=server,
        selected=selected,
        enqueued=min(fresh, limit) if limit is not None else fresh,
        already_in_ledger=selected - fresh,
        dry_run=dry_run,
    )
    # Render one letter before touching anything: a template error stops here, cleanly. (Only
    # the letter: an office whose message cannot be built fails alone, in the drain.)
    sequence = ledger.campaign_state().sequence if not dry_run else 0
    with contextlib.closing(chosen()) as rows:  # close the cursor behind it at once
        sample_id = next(rows)[0]
    sample = next(i for i in select_invitees(ws.engine, [sample_id]) if i.invitee_id == sample_id)
    ws.composer.letter(sample, message_kind.template)
    if dry_run:
        report.due = ledger.due_count() + report.enqueued
        report.totals = ledger.counts(kind)
        return report
    with ws.transport() as transport:
        ledger.guard_server(server, allow_new=new_server)
        if kind == "invitation":
            first_version(ledger, campaign.event)
        new = (row for row in chosen() if row[0] not in existing)
        report.enqueued = ledger.enqueue(
            itertools.islice(new, limit),
            kind,
            sequence,
            lambda invitee_id: new_message_id(campaign, invitee_id, kind),
        )
        report.due = ledger.due_count()
        if pool is None:
            report.drain = drain(ws, ledger, transport, progress)
        else:
            report.drain = pool.drain(ws, ledger, transport, progress)
    report.totals = ledger.counts(kind)
    return report


def send_announcement(
    ws: Workspace,
    *,
    cancel: bool,
    dry_run: bool = False,
    new_server: bool = False,
    progress: Progress | None = None,
) -> tuple[Announcement, DrainStats]:
    """`mailer send update` / `send cancel`: announce the change, then drain the ledger."""
    ledger = ws.ledger()
    declined = declined_or_bounced(ledger)  # an update goes to neither, a cancellation to both
    if dry_run:
        result = announce(ledger, ws.campaign, cancel=cancel, dry_run=True, declined=declined)
        return result, DrainStats()
    template = "cancel" if cancel else "update"
    ws.composer.renderer(template)  # a missing or broken template stops here, cleanly
    with ws.transport() as transport:
        ledger.guard_server(transport.server_id, allow_new=new_server)
        result = announce(ledger, ws.campaign, cancel=cancel, dry_run=False, declined=declined)
        return result, drain(ws, ledger, transport, progress)


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

    from mailer.delivery.transport import Unknown

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
    message_id = new_message_id(ws.campaign, f"{TEST}{sample.invitee_id}", "invitation")
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
        except Unknown as unknown:
            raise TransportError(
                f"the sample to {address} was handed over to {transport.server_id}, but no "
                f"clear answer came back ({unknown.reply.text}). It may or may not have been "
                f"delivered: check the mailbox of {address} before sending another sample"
            ) from unknown
    return TestSend(
        sample.invitee_id, address, message.subject, str(delivered.reply), transport.server_id
    )
