"""One worker's run over the ledger, message by message: is the row still to go, compose
it, mark it `sending`, hand it to the server, and keep what came of it per address.

How a message ended is recorded in the same commit that marks the next one `sending`
(`Ledger.step`), so a worker has at most one row in `sending` at any moment; failures,
and anything before a pause, are recorded at once (`flush`).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta

from mailer.compose import ComposedMessage
from mailer.delivery.answers import Deferred, Delivered, Refused, Uncertain
from mailer.delivery.context import DeliveryContext
from mailer.delivery.ledger import Claim, Sending, Settled, refused_entries
from mailer.delivery.messages import RowMessages
from mailer.delivery.owners import new_owner
from mailer.delivery.pacing import Pacer
from mailer.delivery.stats import SKIPPED, DrainStats, Outcome
from mailer.delivery.transport import SmtpTransport
from mailer.errors import MailerError
from mailer.invitees.importing import InviteeRecord
from mailer.kinds import LedgerKind
from mailer.models import DeliveryState, split_emails

S = DeliveryState
MAX_ATTEMPTS = 5
NOT_WANTED = "not sent: the office is no longer in this round's audience (it answered)"


@dataclass(frozen=True)
class Addresses:
    """Per address, after an attempt: those the server has accepted so far (this attempt
    and earlier ones), and those refused for good ("address: reply"). None: as before."""

    delivered_to: tuple[str, ...] | None = None
    refused: tuple[str, ...] | None = None


SAME = Addresses()


def retry_delay(attempt: int) -> timedelta:
    """1, 2, 4, 8 … minutes (at most an hour), with ±20 % jitter."""
    base = min(60 * 2 ** max(attempt - 1, 0), 3600)
    return timedelta(seconds=base * random.uniform(0.8, 1.2))


class Run:
    """One drain: the worker's identity, its pacing, and the result not yet recorded."""

    def __init__(self, ctx: DeliveryContext, transport: SmtpTransport) -> None:
        self.ctx = ctx
        self.ledger = ledger = ctx.ledger
        self.transport = transport
        self.owner = new_owner()
        server = transport.server_id
        self.pacer = Pacer(ctx.limits, lambda since, n: ledger.sent_since(server, since, n))
        self.pending: Settled | None = None
        self.lease = ctx.lease
        self.stats = DrainStats()
        self.failures = 0  # in a row
        self.messages = RowMessages(ctx.composer, ledger, ctx.clock, ctx.digest, ctx.confirmation)
        self._wanted: dict[str, Callable[[str], bool]] = {}  # asked again for every batch

    def new_batch(self) -> None:
        """Before each claimed batch: who is still wanted, and the event's latest version."""
        self._wanted.clear()
        self.messages.read_versions()

    def flush(self) -> None:
        if self.pending is not None:
            self.ledger.step(self.owner, self.pending, None, self.lease)
            self.pending = None

    def pause(self, wait: timedelta) -> None:
        if wait > timedelta(0):
            self.flush()
            self.ctx.pause(wait.total_seconds())

    def still_wanted(self, claim: Claim) -> bool:
        """A reminder queued before the office declined (or bounced) is no longer for it.
        The coordinator's own rows are in no audience: always still wanted."""
        if self.ctx.wanted is None or claim.invitee_id is None:
            return True
        if claim.kind not in self._wanted:
            self._wanted[claim.kind] = self.ctx.wanted(LedgerKind.parse(claim.kind))
        return self._wanted[claim.kind](claim.invitee_id)

    def drop(self, claim: Claim, reply: str) -> Outcome:
        """Settle a message that must not go out any more, without sending it."""
        self.flush()
        self.pending = Settled(claim, S.failed, reply, self.ctx.clock())
        self.flush()
        return Outcome(claim.who, SKIPPED, reply, 0, claim.id)

    def current_claim(self, claim: Claim) -> Claim | str | None:
        """The claim to compose for the event as it now stands; a reason not to send it
        (a str); or None when the row is no longer this worker's."""
        now = self.messages.at_current(claim)
        if isinstance(now, int):
            return self.ledger.rebase(self.owner, claim, now)
        return now

    def send(self, claim: Claim, invitee: InviteeRecord | None) -> Outcome | None:
        """Send one claimed row (None: the row is no longer this worker's). `invitee` is
        the office the row is for; None for the coordinator's own rows (the digest)."""
        if not self.still_wanted(claim):
            return self.drop(claim, NOT_WANTED)
        now = self.current_claim(claim)
        if now is None:
            return None  # the lease was lost to another worker
        if isinstance(now, str):
            return self.drop(claim, now)
        claim = now
        for _ in range(3):  # a `send update` in between rebases the row: compose it again
            try:
                message = self.messages.compose(claim, invitee)
            except MailerError as problem:  # this office alone: the others go on
                return self._settle(claim, S.failed, f"not sent: {problem}", 0)
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

    def _hand_over(
        self, claim: Claim, message: ComposedMessage, remaining: tuple[str, ...]
    ) -> Outcome:
        result = self.transport.send(message.envelope_from, remaining, message.data)
        match result:
            case Delivered(reply, refused) if not refused:
                before = split_emails(claim.delivered_to)
                delivered_to = (*before, *remaining) if before else None
                return self._settle(claim, S.sent, str(reply), reply.code,
                                    addresses=Addresses(delivered_to))  # fmt: skip
            case Delivered():
                return self._partly(claim, result, remaining)
            case Refused(reply):
                text = str(reply)
                return self._given_up(claim, text, reply.code, [f"{a}: {text}" for a in remaining])
            case Uncertain(reply):
                return self._settle(claim, S.uncertain, str(reply), 0)
            case Deferred(reply):
                return self._retry(claim, str(reply), reply.code, remaining)

    def _partly(self, claim: Claim, delivered: Delivered, remaining: tuple[str, ...]) -> Outcome:
        """Some addresses taken, some refused: keep each address's outcome. Addresses
        refused for now are tried again alone (the others are not sent it twice)."""
        refused = {a.lower(): r for a, r in delivered.refused.items()}
        accepted = [a for a in remaining if a.lower() not in refused]
        later = [a for a in remaining if a.lower() in refused and refused[a.lower()].code < 500]
        never = [f"{a}: {r}" for a, r in delivered.refused.items() if r.code >= 500]
        now = Addresses(
            (*split_emails(claim.delivered_to), *accepted),
            (*refused_entries(claim.refused), *never),
        )
        reply = f"{delivered.reply} for {', '.join(accepted)}; refused: " + "; ".join(
            f"{a}: {r}" for a, r in delivered.refused.items()
        )
        if not later:
            return self._settle(claim, S.sent, reply, delivered.reply.code, addresses=now)
        code = min(refused[a.lower()].code for a in later)
        return self._retry(claim, f"{reply} (will retry {', '.join(later)} alone)", code, later,
                           addresses=now)  # fmt: skip

    def _given_up(self, claim: Claim, reply: str, code: int, refused: Sequence[str]) -> Outcome:
        """No address left to try: `sent` if an earlier attempt reached one of the office's
        addresses (the rest kept as refused), else `failed`."""
        if not claim.delivered_to:
            return self._settle(claim, S.failed, reply, code)
        entries = (*refused_entries(claim.refused), *refused)
        return self._settle(claim, S.sent, f"{reply} (delivered to {claim.delivered_to} earlier)",
                            code, addresses=Addresses(refused=entries))  # fmt: skip

    def _retry(
        self,
        claim: Claim,
        reply: str,
        code: int,
        remaining: Sequence[str] = (),
        *,
        addresses: Addresses = SAME,
    ) -> Outcome:
        if claim.attempts + 1 >= MAX_ATTEMPTS:
            reply = f"{reply} (gave up after {MAX_ATTEMPTS} attempts)"
            if addresses.delivered_to is None:  # the whole attempt was deferred
                return self._given_up(claim, reply, code, [f"{a}: {reply}" for a in remaining])
            lost = (*(addresses.refused or ()), *(f"{a}: {reply}" for a in remaining))
            state = S.sent if addresses.delivered_to else S.failed
            return self._settle(claim, state, reply, code,
                                addresses=Addresses(addresses.delivered_to, lost))  # fmt: skip
        delay = timedelta(seconds=5) if code == 421 else retry_delay(claim.attempts + 1)
        return self._record(
            Settled(
                claim,
                S.retry_wait,
                reply,
                self.ctx.clock(),
                delay,
                addresses.delivered_to,
                addresses.refused,
            ),
            code,
        )

    def _settle(
        self, claim: Claim, state: str, reply: str, code: int, *, addresses: Addresses = SAME
    ) -> Outcome:
        return self._record(
            Settled(
                claim,
                state,
                reply,
                self.ctx.clock(),
                None,
                addresses.delivered_to,
                addresses.refused,
            ),
            code,
        )

    def _record(self, settled: Settled, code: int) -> Outcome:
        self.pending = settled
        if settled.state != S.sent:
            self.flush()  # failures are rare: record them at once
        return Outcome(settled.claim.who, settled.state, settled.reply, code, settled.claim.id)
