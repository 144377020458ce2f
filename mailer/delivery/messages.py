"""The message a claimed ledger row names: its kind, its SEQUENCE, and the event as that
version told it (`mailer.versions`), never the campaign file as this process read it
(`send update` may have moved it since). One `RowMessages` per drain."""

from __future__ import annotations

from collections.abc import Mapping

from mailer.campaign import Event
from mailer.clock import Clock
from mailer.compose import ComposedMessage, Composer, OutgoingMail
from mailer.delivery.ledger import Claim, Ledger
from mailer.invitees.importing import InviteeRecord
from mailer.kinds import CANCEL, LedgerKind
from mailer.versions import Change, changes_at, event_at, versions


class RowMessages:
    def __init__(self, composer: Composer, ledger: Ledger, clock: Clock) -> None:
        self.composer = composer
        self.campaign = composer.campaign
        self.ledger = ledger
        self.clock = clock
        self._changes: dict[int, list[Change]] = {}
        self._events: dict[int, Event] = {}  # a stored version never changes: read once
        self.current: int | None = None  # the latest announced SEQUENCE (`read_versions`)
        self.cancelled = False

    def read_versions(self) -> None:
        """The event's latest announced version, read again for every claimed batch: a row
        that went back to the queue (a 4xx while `send update` or `send cancel` ran, a
        `deliveries retry`) or was queued as the version moved still names its old one."""
        found = versions(self.ledger)
        self.current = found[-1].sequence if found else None
        self.cancelled = bool(found) and found[-1].reason == "cancel"

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

    def compose(self, claim: Claim, invitee: InviteeRecord) -> ComposedMessage:
        """The message as the row names it (`MailerError` when it cannot be built)."""
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
        )
        return self.composer.compose(mail, self.clock())

    def _extra(self, claim: Claim) -> Mapping[str, object]:
        """What an update's template needs besides the usual: the list of changes; and a
        confirmation's: the answer it confirms (`mailer.replies.online`)."""
        kind = LedgerKind.parse(claim.kind)
        if kind.name == "confirm":  # reply tracking loaded only when one is composed
            from mailer.replies.online import confirmation

            return confirmation(self.ledger, claim.invitee_id, kind.number)
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
