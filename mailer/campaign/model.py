"""The campaign as the rest of mailer sees it: typed, immutable values (`Campaign`, its
`Event`, `Coordinator`, `Sender` and `Rule`s). `mailer.campaign.reading` makes them from
the file; `mailer.versions` makes an `Event` of each version the ledger has told.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from mailer.campaign.letter import LetterSettings
from mailer.errors import CampaignError
from mailer.kinds import CANCEL, INVITATION, LedgerKind, reminder

KINDS = ("invitation", "reminder")
AUDIENCES = (
    "all",
    "no_reply",
    "accepted",
    "not_declined",
    "representative",
    "tentative",
    "needs_review",
)


@dataclass(frozen=True)
class Event:
    title: str
    start: datetime
    end: datetime
    venue: str
    background: tuple[str, ...]
    summary: str


@dataclass(frozen=True)
class Coordinator:
    name: str
    unit: str
    organisation: str
    mobile: str
    email: str


@dataclass(frozen=True)
class Sender:
    name: str
    email: str


@dataclass(frozen=True)
class Rule:
    """One message rule: what to send (kind, template), to whom (audience), and when."""

    id: str
    kind: str
    template: str
    audience: str
    at: datetime | None = None
    days_before: int | None = None
    time_of_day: time | None = None
    catch_up: timedelta = timedelta(hours=12)

    def due_at(self, event: Event, zone: ZoneInfo) -> datetime | None:
        """When this rule is due; `None` for a rule sent only by command."""
        if self.at is not None:
            return self.at
        if self.days_before is None:
            return None
        day = event.start.astimezone(zone).date() - timedelta(days=self.days_before)
        return datetime.combine(day, self.time_of_day or time(9, 0), tzinfo=zone)

    @property
    def ledger_kind(self) -> str:
        return str(INVITATION if self.kind == "invitation" else reminder(self.id))


@dataclass(frozen=True)
class MessageKind:
    """How a ledger kind is composed: its template folder, iTIP method, and whether it is
    an automatic round (marked Auto-Submitted)."""

    template: str
    method: str = "REQUEST"
    automatic: bool = False


@dataclass(frozen=True)
class RepliesPolicy:
    """`[replies]`: how the scheduler keeps the coordinator's replies current."""

    poll_minutes: float = 5  # IMAP without IDLE, and Maildir sources
    maildir: Path | None = None  # a Maildir to read instead of the IMAP folder
    idle_minutes: int = 29  # IDLE is re-issued before the server's 30-minute timeout
    max_sync_age_minutes: int = 60  # older than this, a round that depends on answers …
    when_stale: str = "wait"  # … waits ("wait") or is sent anyway ("send")


@dataclass(frozen=True)
class DigestPolicy:
    """`[digest]`: the coordinator's daily digest, at `time_of_day` (campaign time zone)."""

    time_of_day: time
    to: str = ""  # empty: the coordinator's address


@dataclass(frozen=True)
class RsvpPolicy:
    """`[rsvp]`: until when an office may answer or change its answer on its page
    (`reply_deadline`; None: until the event starts), and how many days after the event
    its link still opens (`grace_days`)."""

    reply_deadline: datetime | None = None
    grace_days: int = 7


@dataclass(frozen=True)
class Campaign:
    id: str
    path: Path
    timezone: ZoneInfo
    event: Event
    coordinator: Coordinator
    sender: Sender
    rules: tuple[Rule, ...]
    replies: RepliesPolicy = RepliesPolicy()
    digest: DigestPolicy | None = None
    letter: LetterSettings = field(default_factory=LetterSettings)
    rsvp: RsvpPolicy = RsvpPolicy()

    @property
    def uid_domain(self) -> str:
        return self.coordinator.email.rpartition("@")[2]

    @property
    def own_addresses(self) -> dict[str, str]:
        """The campaign's own addresses (lower case) → the keys that give them; no office
        may be invited at one of them."""
        own: dict[str, list[str]] = {}
        for key, address in (
            ("coordinator.email", self.coordinator.email),
            ("sender.email", self.sender.email),
        ):
            own.setdefault(address.lower(), []).append(key)
        return {address: ", ".join(keys) for address, keys in own.items()}

    def rule(self, rule_id: str) -> Rule:
        for rule in self.rules:
            if rule.id == rule_id:
                return rule
        known = ", ".join(r.id for r in self.rules)
        raise CampaignError(self.path, [f"there is no rule {rule_id!r}; the rules are: {known}"])

    def message_kind(self, kind: str) -> MessageKind:
        """`invitation` and `reminder:<rule id>` come from the rules; `update:<sequence>`,
        `cancel`, `confirm:<n>` and the coordinator's `digest:<day>` are built in
        (templates/update/, templates/cancel/, templates/confirm/, templates/digest/; a
        confirmation and a digest carry no calendar: their method is "")."""
        try:
            parsed = LedgerKind.parse(kind)
        except ValueError:
            parsed = None
        if parsed is not None and parsed.name == "update":
            return MessageKind("update")
        if parsed == CANCEL:
            return MessageKind("cancel", method="CANCEL")
        if parsed is not None and parsed.name == "digest":
            return MessageKind("digest", method="", automatic=True)
        if parsed is not None and parsed.name == "confirm":
            return MessageKind("confirm", method="", automatic=True)
        for rule in self.rules:
            if rule.ledger_kind == kind:
                return MessageKind(rule.template, automatic=rule.kind != "invitation")
        raise CampaignError(
            self.path, [f"the ledger holds messages of kind {kind!r}, but no rule makes them"]
        )

    @property
    def invitation_rule(self) -> Rule:
        for rule in self.rules:
            if rule.kind == "invitation":
                return rule
        raise CampaignError(self.path, ['no rule has kind = "invitation"'])
