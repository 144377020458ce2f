"""The campaign file's optional tables: `[replies]` (how the scheduler keeps the picture
current), `[digest]` (the coordinator's daily summary), `[letter]` (the official letter
as a PDF) and `[rsvp]` (the offices' own page: until when they may answer there). Each is
read into a typed value with every problem reported, like the rest of the file; an absent
table means its defaults.
"""

from __future__ import annotations

from datetime import date, datetime, time
from pathlib import Path
from typing import Any

from mailer.campaign.letter import LetterProblem, LetterSettings
from mailer.campaign.model import DigestPolicy, Event, RepliesPolicy, RsvpPolicy
from mailer.errors import cut

POLL_MINUTES = (0.01, 1440)  # a fraction of a minute for tests and busy days
SYNC_AGE_MINUTES = (1, 10080)
IDLE_MINUTES = (1, 29)  # RFC 2177: re-issue IDLE at least every 29 minutes
GRACE_DAYS = (0, 365)

_REPLIES = {"poll_minutes", "idle_minutes", "max_sync_age_minutes", "when_stale", "maildir"}
_DIGEST = {"time", "to"}
_RSVP = {"reply_deadline", "grace_days"}
_LETTER_TEXTS = ("number", "signer_name", "font")
_LETTER_LISTS = ("agency_address", "signer_position", "contact", "references", "enclosures")
_LETTER = {
    *_LETTER_TEXTS, *_LETTER_LISTS, "emblem", "font_files", "dated", "attach", "later_numbers",
}  # fmt: skip


def read_replies(r: Any, data: dict[str, Any], base: Path) -> RepliesPolicy:
    """`[replies]`: the poll interval (IMAP without IDLE, Maildir), how often IDLE is
    re-issued, how old the last good sync may be before a round that depends on answers
    waits, and whether such a round waits or is sent anyway."""
    if "replies" not in data:
        return RepliesPolicy()
    table = r.table(data, "replies")
    if not isinstance(data["replies"], dict):  # named by `table`
        return RepliesPolicy()
    r.known_keys(table, "replies", _REPLIES)
    default = RepliesPolicy()

    def minutes(key: str, bounds: tuple[int, int], fallback: int) -> int:
        value = r.within("replies", key, r.optional(table, "replies", key, int, "5"), bounds)
        return fallback if value is None else int(value)

    return RepliesPolicy(
        poll_minutes=_poll(r, table, default.poll_minutes),
        maildir=_maildir(r, table, base),
        idle_minutes=minutes("idle_minutes", IDLE_MINUTES, default.idle_minutes),
        max_sync_age_minutes=minutes(
            "max_sync_age_minutes", SYNC_AGE_MINUTES, default.max_sync_age_minutes
        ),
        when_stale=(
            r.choice(table, "replies", "when_stale", ("wait", "send"))
            if "when_stale" in table
            else default.when_stale
        ),
    )


def _maildir(r: Any, table: dict[str, Any], base: Path) -> Path | None:
    """`maildir`: a Maildir the scheduler reads instead of the IMAP folder (relative to the
    campaign file)."""
    value = table.get("maildir")
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        r.problems.append('replies.maildir must name a folder, e.g. maildir = "/var/mail/seminar"')
        return None
    path = (base / value).resolve()
    if not (path / "cur").is_dir() and not (path / "new").is_dir():
        r.problems.append(
            f"replies.maildir = {_shown(value)}: {path} is not a Maildir (it has no cur/ or new/ "
            "folder); name the folder your mail server delivers the coordinator's mail to"
        )
    return path


def _poll(r: Any, table: dict[str, Any], fallback: float) -> float:
    """`poll_minutes`: a number of minutes (a fraction is allowed: 0.5 is half a minute)."""
    value = table.get("poll_minutes", fallback)
    low, high = POLL_MINUTES
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        r.problems.append(
            f"replies: poll_minutes = {_shown(value)} must be a number of minutes between "
            f"{low} and {high}, e.g. poll_minutes = 5"
        )
        return fallback
    return float(value)


def read_digest(r: Any, data: dict[str, Any]) -> DigestPolicy | None:
    """`[digest]`: the time of day (campaign time zone) the coordinator's digest goes out,
    and to whom (the coordinator's address unless `to` names another)."""
    if "digest" not in data:
        return None
    table = r.table(data, "digest")
    if not isinstance(data["digest"], dict):  # named by `table`
        return None
    r.known_keys(table, "digest", _DIGEST)
    at = r.optional(table, "digest", "time", time, "08:00:00")
    if at is None and "time" not in table:
        r.problems.append("digest.time is missing; write e.g. time = 08:00:00")
    to = r.email(table, "digest", "to") if "to" in table else ""
    return DigestPolicy(time_of_day=at or time(8, 0), to=to)


def read_rsvp(r: Any, data: dict[str, Any], event: Event) -> RsvpPolicy:
    """`[rsvp]`: the reply deadline (a local date and time before the event ends; absent:
    until the event starts) and the days after the event an office's link still opens."""
    if "rsvp" not in data:
        return RsvpPolicy()
    table = r.table(data, "rsvp")
    if not isinstance(data["rsvp"], dict):  # named by `table`
        return RsvpPolicy()
    r.known_keys(table, "rsvp", _RSVP)
    deadline = r.moment(table, "rsvp", "reply_deadline", required=False)
    if deadline is not None and deadline >= event.end:
        r.problems.append(
            f"rsvp.reply_deadline ({deadline:%Y-%m-%d %H:%M}) must be before the event ends"
        )
    grace = r.within("rsvp", "grace_days", r.optional(table, "rsvp", "grace_days", int, "7"),
                     GRACE_DAYS)  # fmt: skip
    return RsvpPolicy(
        reply_deadline=deadline, grace_days=RsvpPolicy.grace_days if grace is None else grace
    )


def read_letter(r: Any, data: dict[str, Any], base: Path) -> LetterSettings:
    """`[letter]`: the official letter's number, address, signer and font, and `attach`
    (invitations carry it as a PDF). Paths are relative to the campaign file."""
    if "letter" not in data:
        return LetterSettings()
    table = r.table(data, "letter")
    if not isinstance(data["letter"], dict):  # named by `table`
        return LetterSettings()
    r.known_keys(table, "letter", _LETTER)
    values: dict[str, Any] = {}
    for key in _LETTER_TEXTS:
        if key in table:
            values[key] = r.text(table, "letter", key, "สรอ ๐๑๐๐/ว ๑๒๓")
    for key in _LETTER_LISTS:
        if key in table:
            values[key] = _lines(r, table, key)
    if "emblem" in table:
        values["emblem"] = _file(r, table["emblem"], "emblem", base)
    if "font_files" in table:
        files = _list(r, table, "font_files")
        values["font_files"] = tuple(
            p for p in (_file(r, item, "font_files", base) for item in files) if p
        )
    values.update(_scalars(r, table))
    try:
        return LetterSettings(**values)
    except LetterProblem as exc:
        r.problems.append(str(exc))
        return LetterSettings()


def _scalars(r: Any, table: dict[str, Any]) -> dict[str, Any]:
    """`dated`, `attach` and `[letter.later_numbers]`, checked."""
    values: dict[str, Any] = {}
    dated = table.get("dated")
    if isinstance(dated, date) and not isinstance(dated, datetime):
        values["dated"] = dated
    elif "dated" in table:
        r.problems.append(f"letter.dated = {_shown(dated)} must be a date, e.g. dated = 2016-11-01")
    if isinstance(table.get("attach"), bool):
        values["attach"] = table["attach"]
    elif "attach" in table:
        r.problems.append(f"letter.attach = {_shown(table['attach'])} must be true or false")
    if "later_numbers" in table:
        values["later_numbers"] = _later_numbers(r, table["later_numbers"])
    return values


def _list(r: Any, table: dict[str, Any], key: str) -> list[Any]:
    value = table[key]
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list):
        r.problems.append(f'letter.{key} must be a list of lines, e.g. {key} = ["…", "…"]')
        return []
    return value


def _lines(r: Any, table: dict[str, Any], key: str) -> tuple[str, ...]:
    lines = []
    for number, item in enumerate(_list(r, table, key), start=1):
        if not isinstance(item, str) or "\n" in item or "\r" in item:
            r.problems.append(f"letter.{key}[{number}] must be one line of text")
            continue
        r.no_control_characters(item, f"letter.{key}[{number}]")
        lines.append(item.strip())
    return tuple(lines)


def _file(r: Any, value: Any, key: str, base: Path) -> Path | None:
    if not isinstance(value, str) or not value.strip():
        r.problems.append(f'letter.{key} must name a file, e.g. {key} = "emblem.png"')
        return None
    path = (base / value).resolve()
    if not path.is_file():
        r.problems.append(f"letter.{key} = {_shown(value)}: no such file ({path})")
    return path


def _later_numbers(r: Any, value: Any) -> dict[int, str]:
    if not isinstance(value, dict):
        r.problems.append('[letter.later_numbers] must be a table, e.g. 1 = "สรอ ๐๑๐๐/ว ๑๔๕"')
        return {}
    numbers = {}
    for key, number in value.items():
        if not str(key).isdecimal() or not isinstance(number, str) or not number.strip():
            r.problems.append(
                f'letter.later_numbers.{cut(str(key))}: write SEQUENCE = "number", '
                'e.g. 1 = "สรอ ๐๑๐๐/ว ๑๔๕"'
            )
            continue
        numbers[int(key)] = number.strip()
    return numbers


def _shown(value: object) -> str:
    return repr(cut(value)) if isinstance(value, str) else cut(repr(value))
