"""Drain the ledger: claim → compose → mark sending → SMTP → record, one message at a time.

One commit per message: the transaction that marks message *k* `sending` also records how
message *k-1* ended. So at any moment a worker has at most one row in `sending` — the one
it is handing to the server — and a crash leaves at most that one `uncertain`. Before any
pause (rate limit, back-off) and on the way out, the last result is recorded at once.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import astuple, dataclass, field
from datetime import timedelta

from sqlalchemy import Engine, select
from sqlmodel import col

from mailer.campaign import Event
from mailer.compose import ComposedMessage, OutgoingMail
from mailer.db import reader
from mailer.delivery.ledger import Claim, Ledger, Sending, Settled, refused_entries
from mailer.delivery.owners import new_owner
from mailer.delivery.pacing import SLOW_DOWN_CODES, DailyCapReached, Pacer
from mailer.delivery.transport import (
    Delivered,
    PermanentFailure,
    SmtpTransport,
    TemporaryFailure,
    Unknown,
)
from mailer.errors import MailerError
from mailer.invitees.importing import RECORD_COLUMNS, InviteeRecord
from mailer.kinds import CANCEL, LedgerKind
from mailer.models import DeliveryState, Invitee, split_emails
from mailer.rounds.audience import audience_ids
from mailer.versions import Change, changes_at, event_at, versions
from mailer.workspace import Workspace

S = DeliveryState
LEASE = timedelta(minutes=5)
RETRY_HORIZON = timedelta(minutes=2)  # a run waits for retries due this soon
CLAIM_BATCH = 100
MAX_ATTEMPTS = 5
STOPPED = "stopped on request; the rest stay queued"
SKIPPED = "skipped"  # an outcome, not a failure: recorded as failed with the reason


@dataclass(frozen=True)
class Outcome:
    invitee_id: str
    state: str
    reply: str
    code: int = 0
    delivery_id: int = 0


Progress = Callable[[Outcome], None]


@dataclass
class DrainStats:
    sent: int = 0
    retry: int = 0
    failed: int = 0
    uncertain: int = 0
    recovered_uncertain: int = 0
    stopped: str | None = None
    # Every outcome but `sent` (what the coordinator must look at). The sent ones are only
    # counted: a run of 100,000 messages holds no list of them.
    problems: list[Outcome] = field(default_factory=list)
    # Deliveries whose latest outcome in this run is retry_wait: "to retry later" counts
    # these, not every retry_wait outcome (one retried and sent in the same run is sent).
    waiting: set[int] = field(default_factory=set)

    def summary(self) -> dict[str, object]:
        keys = ("sent", "retry", "failed", "uncertain", "recovered_uncertain", "stopped")
        found: dict[str, object] = {key: getattr(self, key) for key in keys}
        found["problems"] = [list(astuple(problem)) for problem in self.problems]
        return found

    def count(self, outcome: Outcome) -> None:
        if outcome.delivery_id in self.waiting:  # a retry settled in the same run
            self.waiting.discard(outcome.delivery_id)
            self.problems = [p for p in self.problems if p.delivery_id != outcome.delivery_id]
        if outcome.state != S.sent:
            self.problems.append(outcome)
        if outcome.state == S.retry_wait:
            self.waiting.add(outcome.delivery_id)
        self.retry = len(self.waiting)
        self.sent += outcome.state == S.sent
        self.failed += outcome.state == S.failed
        self.uncertain += outcome.state == S.uncertain


def retry_delay(attempt: int) -> timedelta:
    """1, 2, 4, 8 … minutes (at most an hour), with ±20 % jitter."""
    base = min(60 * 2 ** max(attempt - 1, 0), 3600)
    return timedelta(seconds=base * random.uniform(0.8, 1.2))


def _records(engine: Engine, ids: Sequence[str]) -> dict[str, InviteeRecord]:
    """The claimed offices, read as plain rows (no ORM objects on the hot path)."""
    query = select(*RECORD_COLUMNS).where(col(Invitee.invitee_id).in_(ids))
    with reader(engine).connect() as conn:
        rows = conn.execute(query).all()
    return {row.invitee_id: InviteeRecord.from_row(row) for row in rows}


class _Run:
    """One drain: the worker's identity, its pacing, and the result not yet recorded."""

    def __init__(self, ws: Workspace, ledger: Ledger, transport: SmtpTransport) -> None:
        self.ws = ws
        self.ledger = ledger
        self.transport = transport
        self.owner = new_owner()
        server = transport.server_id
        self.pacer = Pacer(ws.settings.limits, lambda since, n: ledger.sent_since(server, since, n))
        self.pending: Settled | None = None
        # Held longer than one SMTP exchange can take (connect, MAIL…DATA, the message, its
        # answer: each up to SMTP_TIMEOUT), so no other worker takes a row still in hand.
        self.lease = max(LEASE, timedelta(seconds=4 * ws.settings.smtp.timeout + 60))
        self.stats = DrainStats()
        self._changes: dict[int, list[Change]] = {}
        self._events: dict[int, Event] = {}  # a stored version never changes: read once
        self.current: int | None = None  # the latest announced SEQUENCE (`read_versions`)
        self.cancelled = False
        self.audiences: dict[str, set[str]] = {}  # re-read for every claimed batch

    def extra(self, claim: Claim) -> Mapping[str, object]:
        """What an update's template needs besides the usual: the list of changes."""
        if LedgerKind.parse(claim.kind).name != "update":
            return {}
        if claim.sequence not in self._changes:
            self._changes[claim.sequence] = changes_at(
                self.ledger, claim.sequence, self.ws.campaign.timezone
            )
        return {"changes": self._changes[claim.sequence]}

    def event(self, sequence: int) -> Event:
        """The event as the version `sequence` tells it (never the campaign file as this
        process read it: `send update` may have moved it since)."""
        if sequence not in self._events:
            self._events[sequence] = event_at(self.ledger, sequence, self.ws.campaign.event)
        return self._events[sequence]

    def flush(self) -> None:
        if self.pending is not None:
            self.ledger.step(self.owner, self.pending, None, self.lease)
            self.pending = None

    def pause(self, wait: timedelta) -> None:
        if wait > timedelta(0):
            self.flush()
            self.ws.sleep(wait.total_seconds())

    def still_wanted(self, claim: Claim) -> bool:
        """A reminder queued before the office declined (or bounced) is no longer for it."""
        kind = LedgerKind.parse(claim.kind)
        if kind.name != "reminder":
            return True
        rule = self.ws.campaign.rule(kind.rule)
        if rule.audience not in self.audiences:
            self.audiences[rule.audience] = audience_ids(self.ledger, rule.audience)
        return claim.invitee_id in self.audiences[rule.audience]

    def drop(self, claim: Claim, reply: str) -> Outcome:
        """Settle a message that must not go out any more, without sending it."""
        self.flush()
        self.pending = Settled(claim, S.failed, reply, self.ws.clock())
        self.flush()
        return Outcome(claim.invitee_id, SKIPPED, reply, 0, claim.id)

    def read_versions(self) -> None:
        """The event's latest announced version, read again for every claimed batch: a row
        that went back to the queue (a 4xx while `send update` or `send cancel` ran, a
        `deliveries retry`) or was queued as the version moved still names its old one."""
        found = versions(self.ledger)
        self.current = found[-1].sequence if found else None
        self.cancelled = bool(found) and found[-1].reason == "cancel"

    def current_claim(self, claim: Claim) -> Claim | str | None:
        """The claim to compose for the event as it now stands; a reason not to send it
        (a str); or None when the row is no longer this worker's."""
        kind, current = LedgerKind.parse(claim.kind), self.current
        if self.cancelled and kind != CANCEL:
            return "not sent: the event was cancelled"
        if current is None or claim.sequence >= current or kind == CANCEL:
            return claim
        if kind.name == "update":
            return f"not sent: superseded by the announcement of SEQUENCE {current}"
        # An invitation or reminder of an earlier version: it goes out at the current one.
        return self.ledger.rebase(self.owner, claim, current)

    def send(self, claim: Claim, invitee: InviteeRecord) -> Outcome | None:
        if not self.still_wanted(claim):
            return self.drop(
                claim, "not sent: the office is no longer in this round's audience (it answered)"
            )
        now = self.current_claim(claim)
        if now is None:
            return None  # the lease was lost to another worker
        if isinstance(now, str):
            return self.drop(claim, now)
        claim = now
        for _ in range(3):  # a `send update` in between rebases the row: compose it again
            try:
                message = self.compose(claim, invitee)
            except MailerError as problem:  # this office alone: the others go on
                return self._settle(claim, S.failed, f"not sent: {problem}", 0, claim.invitee_id)
            remaining = tuple(a for a in message.recipients if a.lower() not in claim.done_with())
            if not remaining:  # every address has it already, or refused it for good
                return self._given_up(claim, "nothing left to send", 0, ())
            self.transport.ready()  # an unreachable server stops the run before anything is marked
            sending = Sending(claim, remaining, self.transport.server_id)
            leased = self.ledger.step(self.owner, self.pending, sending, self.lease)
            self.pending = None  # recorded (a failed step raised and kept it for `flush`)
            if leased:
                return self._hand_over(claim, message, remaining)
            fresh = self.ledger.reclaimed(self.owner, claim)
            if fresh is None:
                return None  # the lease was lost to another worker
            claim = fresh
        return None  # rebased again and again: left leased, released at the end of the run

    def compose(self, claim: Claim, invitee: InviteeRecord) -> ComposedMessage:
        """The message as the row names it: its kind, SEQUENCE and that version's event."""
        ws = self.ws
        kind = ws.campaign.message_kind(claim.kind)
        mail = OutgoingMail(
            invitee=invitee,
            template=kind.template,
            message_id=claim.message_id,
            sequence=claim.sequence,
            method=kind.method,
            automatic=kind.automatic,
            extra=self.extra(claim),
            event=self.event(claim.sequence),
        )
        return ws.composer.compose(mail, ws.clock())

    def _hand_over(
        self, claim: Claim, message: ComposedMessage, remaining: tuple[str, ...]
    ) -> Outcome:
        who = claim.invitee_id
        try:
            delivered = self.transport.send(message.envelope_from, remaining, message.data)
        except PermanentFailure as failure:
            reply = str(failure.reply)
            return self._given_up(
                claim, reply, failure.reply.code, [f"{a}: {reply}" for a in remaining]
            )
        except Unknown as unknown:
            return self._settle(claim, S.uncertain, str(unknown.reply), 0, who)
        except TemporaryFailure as failure:
            return self._retry(claim, str(failure.reply), failure.reply.code, remaining)
        if not delivered.refused:
            before = split_emails(claim.delivered_to)
            return self._settle(
                claim, S.sent, str(delivered.reply), delivered.reply.code, who,
                delivered_to=(*before, *remaining) if before else None,
            )  # fmt: skip
        return self._partly(claim, delivered, remaining)

    def _partly(self, claim: Claim, delivered: Delivered, remaining: tuple[str, ...]) -> Outcome:
        """Some addresses taken, some refused: keep each address's outcome. Addresses
        refused for now are tried again alone (the others are not sent it twice)."""
        refused = {a.lower(): r for a, r in delivered.refused.items()}
        accepted = [a for a in remaining if a.lower() not in refused]
        later = [a for a in remaining if a.lower() in refused and refused[a.lower()].code < 500]
        never = [f"{a}: {r}" for a, r in delivered.refused.items() if r.code >= 500]
        delivered_to = (*split_emails(claim.delivered_to), *accepted)
        refused_for_good = (*refused_entries(claim.refused), *never)
        reply = f"{delivered.reply} for {', '.join(accepted)}; refused: " + "; ".join(
            f"{a}: {r}" for a, r in delivered.refused.items()
        )
        if not later:
            return self._settle(
                claim, S.sent, reply, delivered.reply.code, claim.invitee_id,
                delivered_to=delivered_to, refused=refused_for_good,
            )  # fmt: skip
        code = min(refused[a.lower()].code for a in later)
        return self._retry(claim, f"{reply} (will retry {', '.join(later)} alone)", code, later,
                           delivered_to=delivered_to, refused=refused_for_good)  # fmt: skip

    def _given_up(self, claim: Claim, reply: str, code: int, refused: Sequence[str]) -> Outcome:
        """No address left to try: `sent` if an earlier attempt reached one of the office's
        addresses (the rest kept as refused), else `failed`."""
        if not claim.delivered_to:
            return self._settle(claim, S.failed, reply, code, claim.invitee_id)
        entries = (*refused_entries(claim.refused), *refused)
        return self._settle(claim, S.sent, f"{reply} (delivered to {claim.delivered_to} earlier)",
                            code, claim.invitee_id, refused=entries)  # fmt: skip

    def _retry(
        self,
        claim: Claim,
        reply: str,
        code: int,
        remaining: Sequence[str] = (),
        *,
        delivered_to: tuple[str, ...] | None = None,
        refused: tuple[str, ...] | None = None,
    ) -> Outcome:
        who = claim.invitee_id
        if claim.attempts + 1 >= MAX_ATTEMPTS:
            reply = f"{reply} (gave up after {MAX_ATTEMPTS} attempts)"
            if delivered_to is None:  # the whole attempt was deferred
                return self._given_up(claim, reply, code, [f"{a}: {reply}" for a in remaining])
            lost = (*(refused or ()), *(f"{a}: {reply}" for a in remaining))
            return self._settle(claim, S.sent if delivered_to else S.failed, reply, code, who,
                                delivered_to=delivered_to, refused=lost)  # fmt: skip
        delay = timedelta(seconds=5) if code == 421 else retry_delay(claim.attempts + 1)
        return self._settle(claim, S.retry_wait, reply, code, who, delay,
                            delivered_to=delivered_to, refused=refused)  # fmt: skip

    def _settle(
        self,
        claim: Claim,
        state: str,
        reply: str,
        code: int,
        who: str,
        retry_after: timedelta | None = None,
        *,
        delivered_to: tuple[str, ...] | None = None,
        refused: tuple[str, ...] | None = None,
    ) -> Outcome:
        self.pending = Settled(
            claim, state, reply, self.ws.clock(), retry_after, delivered_to, refused
        )
        if state != S.sent:
            self.flush()  # failures are rare: record them at once
        return Outcome(who, state, reply, code, claim.id)


def drain(
    ws: Workspace, ledger: Ledger, transport: SmtpTransport, progress: Progress | None = None
) -> DrainStats:
    """Send every due row of the campaign, paced by the rate limits.

    Waits for retries that fall due within `RETRY_HORIZON`; stops cleanly (claims released,
    the last result recorded) on a fatal transport error, a daily cap, or
    `max_consecutive_failures` in a row.
    """
    run = _Run(ws, ledger, transport)
    run.stats.recovered_uncertain = ledger.recover()
    with ledger.stepping():
        return _drain(run, ledger, transport, progress)


def _drain(
    run: _Run, ledger: Ledger, transport: SmtpTransport, progress: Progress | None
) -> DrainStats:
    ws = run.ws
    limited = bool(ws.settings.limits.windows())
    consecutive_failures = 0
    try:
        while True:
            run.flush()
            if ws.stopping.is_set():  # e.g. SIGTERM while waiting for a retry
                run.stats.stopped = STOPPED
                return run.stats
            claims = ledger.claim(run.owner, CLAIM_BATCH, run.lease)
            if not claims:
                if not _wait_for_retries(run):
                    return run.stats
                continue
            records = _records(ws.engine, [c.invitee_id for c in claims])
            run.audiences.clear()
            run.read_versions()
            for claim in claims:
                if ws.stopping.is_set():
                    run.stats.stopped = STOPPED
                    return run.stats
                if limited:
                    run.flush()  # the limits count what the ledger says was sent
                    try:
                        run.pause(run.pacer.wait_before_next(ws.clock()))
                    except DailyCapReached as cap:
                        run.stats.stopped = (
                            f"the daily cap of {cap.limit} messages through "
                            f"{transport.server_id} is reached; the rest stay queued. Run the "
                            "command again after "
                            f"{cap.resume_at.astimezone(ws.campaign.timezone):%Y-%m-%d %H:%M} "
                            "(or leave it to the scheduler)"
                        )
                        return run.stats
                else:
                    run.pause(run.pacer.min_interval)
                outcome = run.send(claim, records[claim.invitee_id])
                if outcome is None:
                    continue
                run.stats.count(outcome)
                if progress is not None:
                    progress(outcome)
                if outcome.state in (S.sent, SKIPPED):
                    consecutive_failures = 0 if outcome.state == S.sent else consecutive_failures
                    continue
                consecutive_failures += 1
                if outcome.code in SLOW_DOWN_CODES:
                    run.pause(run.pacer.slow_down())
                if consecutive_failures >= ws.settings.max_consecutive_failures:
                    run.stats.stopped = (
                        f"paused after {consecutive_failures} failures in a row "
                        f"(last: {outcome.invitee_id}: {outcome.reply}). The rest stay queued; "
                        "fix the cause and run the command again"
                    )
                    return run.stats
    finally:
        run.flush()
        ledger.release(run.owner)


def _wait_for_retries(run: _Run) -> bool:
    """Sleep until the next retry if it is due soon; False when there is nothing to wait for."""
    due = run.ledger.next_retry_at()
    if due is None:
        return False
    wait = due - run.ws.clock()
    if wait > RETRY_HORIZON:
        return False
    run.pause(wait)
    return True


def drain_once(ws: Workspace) -> DrainStats:
    """What one `mailer worker` does: connect, send everything due, exit."""
    ledger = ws.ledger()
    with ws.transport() as transport:
        ledger.guard_server(transport.server_id, allow_new=False)
        return drain(ws, ledger, transport)


def work_forever(ws: Workspace, poll: float, log: Callable[[str], None]) -> DrainStats:
    """`mailer worker --forever`: drain, wait `poll` seconds, again — until `ws.stopping`
    is set (see `mailer.delivery.workers.stop_on_signals`)."""
    total = DrainStats()
    while not ws.stopping.is_set():
        stats = drain_once(ws)
        for key in ("sent", "retry", "failed", "uncertain", "recovered_uncertain"):
            setattr(total, key, getattr(total, key) + getattr(stats, key))
        if stats.sent or stats.failed or stats.retry:
            log(f"{stats.sent} sent, {stats.retry} to retry later, {stats.failed} failed")
        if stats.stopped and not ws.stopping.is_set():
            log(f"paused: {stats.stopped}")
        ws.stopping.wait(poll)
    return total
