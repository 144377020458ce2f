"""Send a round: choose the invitees, enqueue what is missing (idempotent), drain.

`send_round` is what `mailer send invitations` (and later the scheduler) runs: choose the
invitees, enqueue what is missing (idempotent), then drain everything that is due.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Generator, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, TypedDict, Unpack

from sqlalchemy import Engine, or_, true
from sqlmodel import col, select

from mailer.compose import OutgoingMail
from mailer.db import reader, session
from mailer.delivery.answers import Deferred, Refused, Uncertain
from mailer.delivery.context import DeliveryContext, connected
from mailer.delivery.drain import drain
from mailer.delivery.ledger import Ledger
from mailer.delivery.stats import DrainStats, Progress
from mailer.delivery.transport import SmtpTransport
from mailer.delivery.workers import Workers
from mailer.errors import MailerError, TransportError
from mailer.identity import TEST, new_message_id
from mailer.invitees.importing import InviteeRecord
from mailer.kinds import INVITATION, LedgerKind
from mailer.models import Invitee, split_emails
from mailer.rounds.announce import Announcement, announce
from mailer.rounds.audience import audience_ids, declined_or_bounced
from mailer.rounds.context import delivery_context
from mailer.versions import first_version, pending_change
from mailer.workspace import Workspace

if TYPE_CHECKING:
    from mailer.letter_pdf.ahead import LetterProgress


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


class RoundOptions(TypedDict, total=False):
    """How `send_round` runs a round (each optional)."""

    only: Sequence[str]  # invitee ids, province codes or names, agency codes
    limit: int | None  # enqueue at most this many new messages
    dry_run: bool  # write nothing, send nothing: say what would happen
    new_server: bool  # accept an SMTP server other than the one the ledger used
    workers: int  # sender processes draining together (this one and helpers)
    worker_env: Mapping[str, str] | None  # the helpers' environment
    letters: LetterProgress | None  # told of each letter rendered ahead ([letter] attach)


@dataclass(frozen=True)
class _Round:
    kind: str
    only: Sequence[str] = ()
    limit: int | None = None
    dry_run: bool = False
    new_server: bool = False
    workers: int = 1
    worker_env: Mapping[str, str] | None = None
    letters: LetterProgress | None = None


def send_round(
    ws: Workspace, kind: str, *, progress: Progress | None = None, **options: Unpack[RoundOptions]
) -> SendReport:
    """Choose the invitees, enqueue what is missing (idempotent), then drain everything
    that is due (with `workers` > 1, helper processes drain with this one)."""
    chosen = _Round(kind, **options)
    campaign = ws.campaign
    campaign.message_kind(kind)  # an unknown kind stops here, before any worker starts
    sessions = ws.settings.limits.sessions
    if chosen.workers > sessions:
        raise MailerError(
            f"--workers {chosen.workers} would open more SMTP sessions than the {sessions} "
            f"allowed (MAILER_MAX_SESSIONS, preset {ws.settings.rate_preset}); use --workers "
            f"{sessions} or fewer"
        )
    _refuse_a_stale_event(ws, kind)
    if chosen.workers == 1 or chosen.dry_run:
        return _queue_and_send(ws, chosen, progress, None)
    # The helpers start now and wait: their start-up overlaps the queuing below.
    with Workers(chosen.workers - 1, chosen.worker_env or {}) as pool:
        return _queue_and_send(ws, chosen, progress, pool)


def _refuse_a_stale_event(ws: Workspace, kind: str) -> None:
    """Nothing goes out for a cancelled event, and no invitation for an event that moved
    since the invitations went out (`send update` first)."""
    campaign = ws.campaign
    pending = pending_change(ws.ledger(), campaign.event, campaign.timezone)
    if pending is not None and pending.cancelled:
        raise MailerError(
            f"the event was cancelled (SEQUENCE {pending.sequence}); nothing more is sent for it"
        )
    if kind == str(INVITATION) and pending is not None and pending.significant:
        raise MailerError(
            f"the event in {campaign.path} is not the one the invitations went out with "
            f"({pending.describe()}). Run `mailer send update` first: it tells the offices "
            "that have the invitation, and the invitations still to go then carry the change"
        )


def _queue_and_send(
    ws: Workspace, chosen: _Round, progress: Progress | None, pool: Workers | None
) -> SendReport:
    kind, ledger = chosen.kind, ws.ledger()
    rows = _Audience(ws, chosen)
    report = rows.report(ledger)
    if report.selected == 0 and rows.members is None:
        raise _nothing_chosen(chosen.only)
    if report.selected == 0:  # a round whose audience is empty right now: nothing to do
        report.totals = ledger.counts(kind)
        return report
    sequence = ledger.campaign_state().sequence if not chosen.dry_run else 0
    # Render one letter before touching anything: a template error stops here, cleanly. (Only
    # the letter: an office whose message cannot be built fails alone, in the drain.)
    sample_id = rows.first()
    sample = next(i for i in select_invitees(ws.engine, [sample_id]) if i.invitee_id == sample_id)
    ws.composer.letter(sample, ws.campaign.message_kind(kind).template)
    if chosen.dry_run:
        report.due = ledger.due_count() + report.enqueued
        report.totals = ledger.counts(kind)
        return report
    ctx = delivery_context(ws)
    with connected(ctx, allow_new=chosen.new_server) as transport:
        report.enqueued = _enqueue(ws, chosen, rows, sequence)
        report.due = ledger.due_count()
        _letters_ahead(ctx, transport, chosen.letters)
        if pool is None:
            report.drain = drain(ctx, transport, progress)
        else:
            report.drain = pool.drain(ctx, transport, progress)
    report.totals = ledger.counts(kind)
    return report


class _Audience:
    """The invitees a round is for: those chosen by `only`, and of a reminder only those
    in its rule's audience now; each as (invitee id, recipients), read afresh each time."""

    def __init__(self, ws: Workspace, chosen: _Round) -> None:
        self.ws, self.chosen = ws, chosen
        parsed = LedgerKind.parse(chosen.kind)
        self.members: set[str] | None = None
        if parsed.name == "reminder":
            self.members = audience_ids(ws.ledger(), ws.campaign.rule(parsed.rule).audience)
        self.existing = ws.ledger().existing(chosen.kind)

    def __iter__(self) -> Generator[tuple[str, str], None, None]:
        for invitee_id, recipients in iter_recipients(self.ws.engine, self.chosen.only):
            if self.members is None or invitee_id in self.members:
                yield invitee_id, recipients

    def first(self) -> str:
        with contextlib.closing(iter(self)) as rows:  # close the cursor behind it at once
            return next(rows)[0]

    def report(self, ledger: Ledger) -> SendReport:
        """How many are chosen and how many are new, before anything is written."""
        selected = fresh = 0
        for invitee_id, _ in self:
            selected += 1
            fresh += invitee_id not in self.existing
        limit = self.chosen.limit
        return SendReport(
            kind=self.chosen.kind,
            server=self.ws.settings.smtp.server_id,
            selected=selected,
            enqueued=min(fresh, limit) if limit is not None else fresh,
            already_in_ledger=selected - fresh,
            dry_run=self.chosen.dry_run,
        )


def _nothing_chosen(only: Sequence[str]) -> MailerError:
    if only:
        return MailerError(
            f"no invitee matches --only {' '.join(only)}; give an invitee id (TH-50-agri), "
            "a province code (TH-50) or name, or an agency code (agri)"
        )
    return MailerError("the invitee list is empty; run `mailer import contacts.csv` first")


def _enqueue(ws: Workspace, chosen: _Round, rows: _Audience, sequence: int) -> int:
    """Queue the round's new rows (at most `limit`) at event version `sequence`."""
    campaign, kind, ledger = ws.campaign, chosen.kind, ws.ledger()
    if kind == str(INVITATION):
        first_version(ledger, campaign.event)
    new = (row for row in rows if row[0] not in rows.existing)
    return ledger.enqueue(
        itertools.islice(new, chosen.limit),
        kind,
        sequence,
        lambda invitee_id: new_message_id(campaign, invitee_id, kind),
    )


def _letters_ahead(
    ctx: DeliveryContext, transport: SmtpTransport, progress: LetterProgress | None
) -> None:
    """When the campaign attaches its letter: render the letters the rows still to go need
    before the drain (`mailer.letter_pdf.ahead`), then start a fresh SMTP session (the one
    opened to check the server sat idle meanwhile)."""
    if not ctx.composer.campaign.letter.attach:
        return
    from mailer.letter_pdf.ahead import render_ahead

    if render_ahead(ctx.ledger, ctx.composer, progress=progress).rendered:
        transport.close()  # `ready` opens a new one before the first message


class AnnounceOptions(TypedDict, total=False):
    """How `send_announcement` runs (each optional)."""

    dry_run: bool  # write nothing, send nothing: say what would happen
    new_server: bool  # accept an SMTP server other than the one the ledger used
    progress: Progress | None  # told of each message's outcome
    letters: LetterProgress | None  # told of each letter rendered ahead ([letter] attach)


def send_announcement(
    ws: Workspace, *, cancel: bool, **options: Unpack[AnnounceOptions]
) -> tuple[Announcement, DrainStats]:
    """`mailer send update` / `send cancel`: announce the change, then drain the ledger."""
    ledger = ws.ledger()
    declined = declined_or_bounced(ledger)  # an update goes to neither, a cancellation to both
    if options.get("dry_run", False):
        result = announce(ledger, ws.campaign, cancel=cancel, dry_run=True, declined=declined)
        return result, DrainStats()
    template = "cancel" if cancel else "update"
    ws.composer.renderer(template)  # a missing or broken template stops here, cleanly
    ctx = delivery_context(ws)
    with connected(ctx, allow_new=options.get("new_server", False)) as transport:
        result = announce(ledger, ws.campaign, cancel=cancel, dry_run=False, declined=declined)
        _letters_ahead(ctx, transport, options.get("letters"))
        return result, drain(ctx, transport, options.get("progress"))


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
    message_id = new_message_id(ws.campaign, f"{TEST}{sample.invitee_id}", "invitation")
    message = ws.composer.compose(
        OutgoingMail(sample, rule.template, message_id, 0, test=True), ws.clock()
    )
    with ws.transport() as transport:
        result = transport.send(message.envelope_from, message.recipients, message.data)
    if isinstance(result, Deferred | Refused):
        raise TransportError(f"the server did not accept the sample: {result.reply}")
    if isinstance(result, Uncertain):
        raise TransportError(
            f"the sample to {address} was handed over to {transport.server_id}, but no "
            f"clear answer came back ({result.reply.text}). It may or may not have been "
            f"delivered: check the mailbox of {address} before sending another sample"
        )
    return TestSend(
        sample.invitee_id, address, message.subject, str(result.reply), transport.server_id
    )
