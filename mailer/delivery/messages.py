"""The message a claimed ledger row names: its kind, its SEQUENCE, and the event as that
version told it (`mailer.versions`), never the campaign file as this process read it
(`send update` may have moved it since). A row of no office (the coordinator's digest) is
composed from the values its caller's `digest` computes then. One `RowMessages` per drain.

When the campaign's `[letter]` says `attach`, an invitation, update or cancellation carries
the office's official letter as PDF, rendered once and kept for the row's version
(`mailer.letter_pdf.store`): every attempt of the row attaches the same bytes."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from mailer.campaign import Event
from mailer.clock import Clock
from mailer.compose import Attachment, ComposedMessage, Composer, OutgoingMail
from mailer.compose.digest import DigestMail, compose_digest
from mailer.delivery.context import Confirmation, DigestValues
from mailer.delivery.ledger import Claim, Ledger
from mailer.errors import MailerError
from mailer.invitees.importing import InviteeRecord
from mailer.kinds import CANCEL, LedgerKind
from mailer.versions import Change, cancelled, changes_at, event_at, versions

if TYPE_CHECKING:
    from mailer.letter_pdf.store import LetterStore


class RowMessages:
    def __init__(
        self,
        composer: Composer,
        ledger: Ledger,
        clock: Clock,
        digest: DigestValues | None = None,
        confirmation: Confirmation | None = None,
    ) -> None:
        self.composer = composer
        self.digest = digest
        self.confirmation = confirmation
        self.campaign = composer.campaign
        self.ledger = ledger
        self.clock = clock
        self._changes: dict[int, list[Change]] = {}
        self._events: dict[int, Event] = {}  # a stored version never changes: read once
        self.current: int | None = None  # the latest announced SEQUENCE (`read_versions`)
        self.cancelled = False
        self._letters: LetterStore | None = None

    def read_versions(self) -> None:
        """The event's latest announced version, read again for every claimed batch: a row
        that went back to the queue (a 4xx while `send update` or `send cancel` ran, a
        `deliveries retry`) or was queued as the version moved still names its old one."""
        found = versions(self.ledger)
        self.current = found[-1].sequence if found else None
        self.cancelled = cancelled(found)

    def at_current(self, claim: Claim) -> Claim | str | int:
        """Whether `claim` goes out as it is (the claim), not at all (a str: why), or at
        the current version (an int: the SEQUENCE to rebase it to first)."""
        kind, current = LedgerKind.parse(claim.kind), self.current
        if self.cancelled and kind != CANCEL:
            return "not sent: the event was cancelled"
        if current is None or claim.sequence >= current or kind == CANCEL:
            return claim
        if kind.name == "update":
            return f"not sent: superseded by the announcement of SEQUENCE {current}"
        return current  # an invitation or reminder of an earlier version goes out at this one

    def compose(self, claim: Claim, invitee: InviteeRecord | None) -> ComposedMessage:
        """The message as the row names it (`MailerError` when it cannot be built); `invitee`
        is the row's office (None for a row of the coordinator's)."""
        parsed = LedgerKind.parse(claim.kind)
        if parsed.coordinators:
            return self._coordinators(claim, parsed)
        if invitee is None:
            raise MailerError(f"delivery {claim.id} ({claim.kind}) names no office")
        kind = self.campaign.message_kind(claim.kind)
        mail = OutgoingMail(
            invitee=invitee,
            template=kind.template,
            message_id=claim.message_id,
            sequence=claim.sequence,
            method=kind.method,
            automatic=kind.automatic,
            extra=self._extra(claim),
            event=self._event(claim.sequence),
            attachments=self._attachments(claim, invitee),
        )
        return self.composer.compose(mail, self.clock())

    def _attachments(self, claim: Claim, invitee: InviteeRecord) -> tuple[Attachment, ...]:
        """The office's letter when the campaign attaches one (`LetterProblem` when it cannot
        be made: this office fails alone, with the reason)."""
        if not self.campaign.letter.attach:
            return ()
        if self._letters is None:
            from mailer.letter_pdf.store import LetterStore  # WeasyPrint: only when attaching

            self._letters = LetterStore(self.ledger, self.composer)
        found = self._letters.for_row(claim.kind, invitee, claim.sequence)
        return () if found is None else (found,)

    def _coordinators(self, claim: Claim, kind: LedgerKind) -> ComposedMessage:
        """The coordinator's digest, its values computed now (what changed up to now)."""
        if self.digest is None:
            raise MailerError("this run cannot compose the coordinator's digest")
        mail = DigestMail(claim.message_id, self.digest(kind), self._event(claim.sequence))
        return compose_digest(self.composer, mail, self.clock())

    def _extra(self, claim: Claim) -> Mapping[str, object]:
        """What an update's template needs besides the usual: the list of changes; and a
        confirmation's: the answer it confirms (`mailer.replies.online`)."""
        kind = LedgerKind.parse(claim.kind)
        if kind.name == "confirm":
            if self.confirmation is None or claim.invitee_id is None:
                raise MailerError("this run cannot compose an answer's confirmation")
            return self.confirmation(claim.invitee_id, kind.number)
        if kind.name != "update":
            return {}
        if claim.sequence not in self._changes:
            self._changes[claim.sequence] = changes_at(
                self.ledger, claim.sequence, self.campaign.timezone
            )
        return {"changes": self._changes[claim.sequence]}

    def _event(self, sequence: int) -> Event:
        if sequence not in self._events:
            self._events[sequence] = event_at(self.ledger, sequence, self.campaign.event)
        return self._events[sequence]
