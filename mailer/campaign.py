"""Parse and validate `schedules/<name>.toml` into a typed, immutable `Campaign`.

Every problem in the file is reported at once, as `key: what is wrong; what to write`.
Local times in the file (`2016-11-22T13:00:00`) are in the campaign's time zone.
"""

from __future__ import annotations

import re
import tomllib
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from mailer.errors import CampaignError, cut
from mailer.invitees.addresses import AddressProblem, ascii_address
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
_ID = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
DAYS_BEFORE = (0, 3650)  # inclusive: up to ten years ahead
CATCH_UP_HOURS = (1, 8760)  # inclusive: an hour to a year
YEARS = (1970, 9998)  # dates outside these overflow on the way to UTC and back


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
class Campaign:
    id: str
    path: Path
    timezone: ZoneInfo
    event: Event
    coordinator: Coordinator
    sender: Sender
    rules: tuple[Rule, ...]

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
        """`invitation` and `reminder:<rule id>` come from the rules; `update:<sequence>`
        and `cancel` are built in (templates/update/, templates/cancel/)."""
        try:
            parsed = LedgerKind.parse(kind)
        except ValueError:
            parsed = None
        if parsed is not None and parsed.name == "update":
            return MessageKind("update")
        if parsed == CANCEL:
            return MessageKind("cancel", method="CANCEL")
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


class _Reader:
    """Collects problems while reading typed values out of a TOML table."""

    def __init__(self, path: Path, zone: ZoneInfo) -> None:
        self.path = path
        self.zone = zone
        self.problems: list[str] = []

    def table(self, data: dict[str, Any], key: str) -> dict[str, Any]:
        value = data.get(key)
        if not isinstance(value, dict):
            self.problems.append(f"[{key}] is missing; add a [{key}] table")
            return {}
        return value

    def known_keys(self, data: dict[str, Any], where: str, allowed: set[str]) -> None:
        for key in sorted(set(data) - allowed):
            self.problems.append(
                f"{where}.{cut(key)} is not a known key (known: {', '.join(sorted(allowed))})"
            )

    def text(self, data: dict[str, Any], where: str, key: str, example: str) -> str:
        value = data.get(key)
        if not isinstance(value, str) or not value.strip():
            self.problems.append(
                f'{where}.{key} must be a non-empty text, e.g. {key} = "{example}"'
            )
            return ""
        if "\r" in value or "\n" in value:
            self.problems.append(f"{where}.{key} must be on one line")
        else:
            self.no_control_characters(value, f"{where}.{key}")
        return value.strip()

    def no_control_characters(self, value: str, key: str, allowed: str = "") -> None:
        """Texts reach headers and the calendar: a NUL or ESC must not."""
        for char in value:
            if char not in allowed and unicodedata.category(char) in {"Cc", "Zl", "Zp"}:
                self.problems.append(
                    f"{key} contains a control character (U+{ord(char):04X}); retype it"
                )
                return

    def email(self, data: dict[str, Any], where: str, key: str) -> str:
        value = self.text(data, where, key, "name@agency.example")
        if not value:
            return ""
        try:
            return ascii_address(value)
        except AddressProblem as exc:
            self.problems.append(f"{where}.{key} = {cut(value)!r} {exc}; use an ASCII address")
            return value

    def moment(self, data: dict[str, Any], where: str, key: str, required: bool) -> datetime | None:
        value = data.get(key)
        if value is None and not required:
            return None
        if isinstance(value, datetime):
            if not YEARS[0] <= value.year <= YEARS[1]:
                self.problems.append(
                    f"{where}.{key} = {value.isoformat(' ', 'minutes')} must be between the years "
                    f"{YEARS[0]} and {YEARS[1]}"
                )
                return None
            return value.replace(tzinfo=self.zone) if value.tzinfo is None else value
        shown = "missing" if value is None else f"{_shown(value)}, not a date and time"
        self.problems.append(f"{where}.{key} is {shown}; write e.g. {key} = 2016-11-22T13:00:00")
        return None

    def choice(self, data: dict[str, Any], where: str, key: str, options: tuple[str, ...]) -> str:
        value = data.get(key)
        if value not in options:
            self.problems.append(
                f"{where}.{key} = {_shown(value)} is not one of: {', '.join(options)}"
            )
            return options[0]
        return str(value)


def load_campaign(path: Path) -> Campaign:
    """Read and validate a campaign file; raises `CampaignError` with every problem."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise CampaignError(path, [f"cannot read the file: {exc.strerror}"]) from exc
    try:
        # A BOM (Notepad writes one) is not TOML, but it is not a mistake either.
        data = tomllib.loads(raw.decode("utf-8").removeprefix("\ufeff"))
    except UnicodeDecodeError as exc:
        raise CampaignError(
            path, [f"not UTF-8 at byte {exc.start}; save the file as UTF-8"]
        ) from exc
    except tomllib.TOMLDecodeError as exc:
        raise CampaignError(path, [f"not valid TOML: {exc}"]) from exc
    return parse_campaign(data, path)


def parse_campaign(data: dict[str, Any], path: Path) -> Campaign:
    head = data.get("campaign") if isinstance(data.get("campaign"), dict) else {}
    assert isinstance(head, dict)
    zone_name = head.get("timezone", "Asia/Bangkok")
    problems: list[str] = []
    try:
        zone = ZoneInfo(str(zone_name))
    except (ZoneInfoNotFoundError, ValueError, OSError):  # OSError: a name too long
        problems.append(
            f'campaign.timezone = {_shown(zone_name)} is not a time zone; e.g. "Asia/Bangkok"'
        )
        zone = ZoneInfo("Asia/Bangkok")
    r = _Reader(path, zone)
    r.problems.extend(problems)
    r.known_keys(data, "", {"campaign", "event", "coordinator", "sender", "rules"})

    head = r.table(data, "campaign")
    r.known_keys(head, "campaign", {"id", "timezone"})
    campaign_id = r.text(head, "campaign", "id", "egov-seminar-2559")
    if campaign_id and not _ID.match(campaign_id):
        r.problems.append(
            f"campaign.id = {campaign_id!r} must be lower-case ASCII letters, digits and '-'"
        )

    ev = r.table(data, "event")
    r.known_keys(ev, "event", {"title", "summary", "start", "end", "venue", "background"})
    start = r.moment(ev, "event", "start", required=True)
    end = r.moment(ev, "event", "end", required=True)
    if start and end and end <= start:
        r.problems.append(f"event.end ({end:%Y-%m-%d %H:%M}) must be after event.start")
    background = ev.get("background", "")
    if not isinstance(background, str):
        r.problems.append("event.background must be text (paragraphs separated by blank lines)")
        background = ""
    r.no_control_characters(background, "event.background", allowed="\n\r\t")
    paragraphs = tuple(
        " ".join(part.split()) for part in re.split(r"\n\s*\n", background) if part.strip()
    )
    title = r.text(ev, "event", "title", "งานสัมมนา …")
    event = Event(
        title=title,
        summary=r.text(ev, "event", "summary", "สัมมนา …") if "summary" in ev else title,
        start=start or datetime(2000, 1, 1, tzinfo=zone),
        end=end or datetime(2000, 1, 1, tzinfo=zone),
        venue=r.text(ev, "event", "venue", "ห้องประชุม …"),
        background=paragraphs,
    )

    co = r.table(data, "coordinator")
    r.known_keys(co, "coordinator", {"name", "unit", "organisation", "mobile", "email"})
    coordinator = Coordinator(
        name=r.text(co, "coordinator", "name", "นายธรรมพ ศิริธรรมวิไล"),
        unit=r.text(co, "coordinator", "unit", "ส่วนนโยบายรัฐบาลอิเล็กทรอนิกส์"),
        organisation=r.text(co, "coordinator", "organisation", "สำนักงานรัฐบาลอิเล็กทรอนิกส์"),
        mobile=r.text(co, "coordinator", "mobile", "08 1845 1459"),
        email=r.email(co, "coordinator", "email"),
    )

    se = r.table(data, "sender")
    r.known_keys(se, "sender", {"name", "email"})
    sender = Sender(name=r.text(se, "sender", "name", "สรอ."), email=r.email(se, "sender", "email"))

    rules = _read_rules(r, data.get("rules"), event)
    if r.problems:
        raise CampaignError(path, r.problems)
    return Campaign(
        id=campaign_id,
        path=path,
        timezone=zone,
        event=event,
        coordinator=coordinator,
        sender=sender,
        rules=tuple(rules),
    )


def _read_rules(r: _Reader, raw: Any, event: Event) -> list[Rule]:
    if not isinstance(raw, list) or not raw:
        r.problems.append('[[rules]] is missing; add at least one rule with kind = "invitation"')
        return []
    rules: list[Rule] = []
    seen: set[str] = set()
    allowed = {"id", "kind", "template", "audience", "at", "days_before", "time", "catch_up_hours"}
    for number, item in enumerate(raw, start=1):
        where = f"rules[{number}]"
        if not isinstance(item, dict):
            r.problems.append(f"{where} must be a table ([[rules]])")
            continue
        r.known_keys(item, where, allowed)
        rule_id = r.text(item, where, "id", "reminder-7d")
        if rule_id:
            where = f"rules[{number}] (id {rule_id!r})"
            if not _ID.match(rule_id):
                r.problems.append(f"{where}: id must be lower-case ASCII letters, digits and '-'")
            if rule_id in seen:
                r.problems.append(f"{where}: the id is used by an earlier rule; ids must be unique")
            seen.add(rule_id)
        at = r.moment(item, where, "at", required=False)
        days_before = _optional(r, item, where, "days_before", int, "7")
        time_of_day = _optional(r, item, where, "time", time, "09:00:00")
        catch_up = _optional(r, item, where, "catch_up_hours", int, "12")
        if at is not None and (days_before is not None or time_of_day is not None):
            r.problems.append(f"{where}: give either at, or days_before (+ time), not both")
        days_before = _within(r, where, "days_before", days_before, DAYS_BEFORE)
        catch_up = _within(r, where, "catch_up_hours", catch_up, CATCH_UP_HOURS)
        rule = Rule(
            id=rule_id,
            kind=r.choice(item, where, "kind", KINDS),
            template=r.text(item, where, "template", "reminder"),
            audience=r.choice(item, where, "audience", AUDIENCES),
            at=at,
            days_before=days_before,
            time_of_day=time_of_day,
            catch_up=timedelta(hours=catch_up if catch_up is not None else 12),
        )
        if rule.template and not re.match(r"^[a-z0-9_-]+$", rule.template):
            r.problems.append(f"{where}: template must be a folder name under templates/")
        try:
            due = rule.due_at(event, r.zone)
        except OverflowError:
            r.problems.append(f"{where}: it would be due before the year 1; check days_before")
            due = None
        if due is not None and due >= event.start:
            r.problems.append(
                f"{where}: it is due {due:%Y-%m-%d %H:%M}, not before the event starts"
            )
        rules.append(rule)
    if sum(1 for rule in rules if rule.kind == "invitation") != 1:
        r.problems.append('exactly one rule must have kind = "invitation"')
    return rules


def _optional(
    r: _Reader, item: dict[str, Any], where: str, key: str, kind: Callable[..., Any], example: str
) -> Any:
    if key not in item:
        return None
    value = item[key]
    if kind is int and (isinstance(value, bool) or not isinstance(value, int)):
        r.problems.append(
            f"{where}: {key} = {_shown(value)} must be a whole number, e.g. {key} = {example}"
        )
        return None
    if kind is time and not isinstance(value, time):
        r.problems.append(
            f"{where}: {key} = {_shown(value)} must be a time, e.g. {key} = {example}"
        )
        return None
    return value


def _within(r: _Reader, where: str, key: str, value: int | None, bounds: tuple[int, int]) -> Any:
    """`value` if it is inside `bounds` (inclusive); else a problem, and `None`."""
    low, high = bounds
    if value is None or low <= value <= high:
        return value
    r.problems.append(f"{where}: {key} = {cut(str(value), 30)} must be between {low} and {high}")
    return None


def _shown(value: object) -> str:
    """A value from the file as a problem shows it (cut if long)."""
    return repr(cut(value)) if isinstance(value, str) else cut(repr(value))
