"""Parse and validate `schedules/<name>.toml` into a typed, immutable `Campaign`
(`mailer.campaign.model`).

Every problem in the file is reported at once, as `key: what is wrong; what to write`.
Local times in the file (`2016-11-22T13:00:00`) are in the campaign's time zone.
"""

from __future__ import annotations

import re
import tomllib
import unicodedata
from collections.abc import Callable
from datetime import datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from mailer.campaign import options
from mailer.campaign.model import AUDIENCES, KINDS, Campaign, Coordinator, Event, Rule, Sender
from mailer.errors import CampaignError, cut
from mailer.invitees.addresses import AddressProblem, ascii_address

_ID = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
DAYS_BEFORE = (0, 3650)  # inclusive: up to ten years ahead
CATCH_UP_HOURS = (1, 8760)  # inclusive: an hour to a year
_TABLES = {
    "campaign", "event", "coordinator", "sender", "rules", "replies", "digest", "letter", "rsvp",
}  # fmt: skip
YEARS = (1970, 9998)  # dates outside these overflow on the way to UTC and back


class _Reader:
    """Collects problems while reading typed values out of a TOML table."""

    def __init__(self, path: Path, zone: ZoneInfo) -> None:
        self.path = path
        self.zone = zone
        self.problems: list[str] = []

    def table(self, data: dict[str, Any], key: str) -> dict[str, Any]:
        value = data.get(key)
        if key in data and not isinstance(value, dict):
            shape = "[[...]] (a list of tables)" if isinstance(value, list) else _shown(value)
            self.problems.append(
                f"{key} = {shape} must be a table: write [{key}] on a line of its own, its keys "
                "below it"
            )
            return {}
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

    def moment(
        self, data: dict[str, Any], where: str, key: str, *, required: bool
    ) -> datetime | None:
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

    def optional(
        self, item: dict[str, Any], where: str, key: str, kind: Callable[..., Any], example: str
    ) -> Any:
        """`item[key]` if it is of `kind` (`int` or `time`), `None` if absent or wrong."""
        if key not in item:
            return None
        value = item[key]
        if kind is int and (isinstance(value, bool) or not isinstance(value, int)):
            self.problems.append(
                f"{where}: {key} = {_shown(value)} must be a whole number, e.g. {key} = {example}"
            )
            return None
        if kind is time and not isinstance(value, time):
            self.problems.append(
                f"{where}: {key} = {_shown(value)} must be a time, e.g. {key} = {example}"
            )
            return None
        return value

    def within(self, where: str, key: str, value: int | None, bounds: tuple[int, int]) -> Any:
        """`value` if it is inside `bounds` (inclusive); else a problem, and `None`."""
        low, high = bounds
        if value is None or low <= value <= high:
            return value
        self.problems.append(
            f"{where}: {key} = {cut(str(value), 30)} must be between {low} and {high}"
        )
        return None


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
    """The campaign in `data` (a parsed TOML file); raises `CampaignError` with every
    problem, table by table in the file's order."""
    zone, problem = _zone(data)
    r = _Reader(path, zone)
    if problem:
        r.problems.append(problem)
    r.known_keys(data, "", _TABLES)
    campaign_id = _read_id(r, data)
    event = _read_event(r, data)
    coordinator = _read_coordinator(r, data)
    sender = _read_sender(r, data)
    rules = _read_rules(r, data.get("rules"), event)
    replies = options.read_replies(r, data, path.parent)
    digest = options.read_digest(r, data)
    letter = options.read_letter(r, data, path.parent)
    rsvp = options.read_rsvp(r, data, event)
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
        replies=replies,
        digest=digest,
        letter=letter,
        rsvp=rsvp,
    )


def _zone(data: dict[str, Any]) -> tuple[ZoneInfo, str | None]:
    """`campaign.timezone` (Asia/Bangkok if not given), read before anything else: every
    local time in the file is in it. A bad one is a problem, and Asia/Bangkok is used."""
    head = data.get("campaign") if isinstance(data.get("campaign"), dict) else {}
    assert isinstance(head, dict)
    zone_name = head.get("timezone", "Asia/Bangkok")
    try:
        return ZoneInfo(str(zone_name)), None
    except (ZoneInfoNotFoundError, ValueError, OSError):  # OSError: a name too long
        return ZoneInfo("Asia/Bangkok"), (
            f'campaign.timezone = {_shown(zone_name)} is not a time zone; e.g. "Asia/Bangkok"'
        )


def _read_id(r: _Reader, data: dict[str, Any]) -> str:
    head = r.table(data, "campaign")
    r.known_keys(head, "campaign", {"id", "timezone"})
    campaign_id = r.text(head, "campaign", "id", "egov-seminar-2559")
    if campaign_id and not _ID.match(campaign_id):
        r.problems.append(
            f"campaign.id = {campaign_id!r} must be lower-case ASCII letters, digits and '-'"
        )
    return campaign_id


def _read_event(r: _Reader, data: dict[str, Any]) -> Event:
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
    return Event(
        title=title,
        summary=r.text(ev, "event", "summary", "สัมมนา …") if "summary" in ev else title,
        start=start or datetime(2000, 1, 1, tzinfo=r.zone),
        end=end or datetime(2000, 1, 1, tzinfo=r.zone),
        venue=r.text(ev, "event", "venue", "ห้องประชุม …"),
        background=paragraphs,
    )


def _read_coordinator(r: _Reader, data: dict[str, Any]) -> Coordinator:
    co = r.table(data, "coordinator")
    r.known_keys(co, "coordinator", {"name", "unit", "organisation", "mobile", "email"})
    return Coordinator(
        name=r.text(co, "coordinator", "name", "นายธรรมพ ศิริธรรมวิไล"),
        unit=r.text(co, "coordinator", "unit", "ส่วนนโยบายรัฐบาลอิเล็กทรอนิกส์"),
        organisation=r.text(co, "coordinator", "organisation", "สำนักงานรัฐบาลอิเล็กทรอนิกส์"),
        mobile=r.text(co, "coordinator", "mobile", "08 1845 1459"),
        email=r.email(co, "coordinator", "email"),
    )


def _read_sender(r: _Reader, data: dict[str, Any]) -> Sender:
    se = r.table(data, "sender")
    r.known_keys(se, "sender", {"name", "email"})
    return Sender(name=r.text(se, "sender", "name", "สรอ."), email=r.email(se, "sender", "email"))


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
        rules.append(_read_rule(r, item, where, rule_id, event))
    if sum(1 for rule in rules if rule.kind == "invitation") != 1:
        r.problems.append('exactly one rule must have kind = "invitation"')
    return rules


def _read_rule(r: _Reader, item: dict[str, Any], where: str, rule_id: str, event: Event) -> Rule:
    """One rule's what, to whom and when; `where` names it in problems."""
    at = r.moment(item, where, "at", required=False)
    days_before = r.optional(item, where, "days_before", int, "7")
    time_of_day = r.optional(item, where, "time", time, "09:00:00")
    catch_up = r.optional(item, where, "catch_up_hours", int, "12")
    if at is not None and (days_before is not None or time_of_day is not None):
        r.problems.append(f"{where}: give either at, or days_before (+ time), not both")
    days_before = r.within(where, "days_before", days_before, DAYS_BEFORE)
    catch_up = r.within(where, "catch_up_hours", catch_up, CATCH_UP_HOURS)
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
        r.problems.append(f"{where}: it is due {due:%Y-%m-%d %H:%M}, not before the event starts")
    return rule


def _shown(value: object) -> str:
    """A value from the file as a problem shows it (cut if long)."""
    return repr(cut(value)) if isinstance(value, str) else cut(repr(value))
