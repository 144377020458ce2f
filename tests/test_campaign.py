"""The campaign file: the shipped one, and precise errors for broken ones."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from mailer.campaign import load_campaign
from mailer.errors import CampaignError
from tests.conftest import CAMPAIGN

SHIPPED = CAMPAIGN.read_text(encoding="utf-8")


def _load(tmp_path: Path, text: str):  # type: ignore[no-untyped-def]
    path = tmp_path / "campaign.toml"
    path.write_text(text, encoding="utf-8")
    return load_campaign(path)


def test_the_shipped_campaign() -> None:
    campaign = load_campaign(CAMPAIGN)
    assert campaign.id == "egov-seminar-2559"
    assert campaign.event.start.astimezone(UTC) == datetime(2016, 11, 22, 6, 0, tzinfo=UTC)
    assert campaign.event.end.astimezone(UTC) == datetime(2016, 11, 22, 9, 30, tzinfo=UTC)
    assert campaign.event.venue.startswith("ห้องออดิทอเรียม")
    assert campaign.coordinator.email == "thannop.sirithamwilai@ega.or.th"
    assert campaign.invitation_rule.audience == "all"
    followup = campaign.rule("followup-no-reply")
    assert followup.due_at(campaign.event, campaign.timezone) == datetime(
        2016, 11, 15, 9, 0, tzinfo=campaign.timezone
    )
    assert followup.ledger_kind == "reminder:followup-no-reply"


def test_unreadable_and_invalid_files(tmp_path: Path) -> None:
    with pytest.raises(CampaignError, match="cannot read the file"):
        load_campaign(tmp_path / "missing.toml")
    with pytest.raises(CampaignError, match=r"(?s)campaign\.toml: .*not valid TOML: .*line 1"):
        _load(tmp_path, "[campaign\nid=1")
    path = tmp_path / "latin1.toml"
    path.write_bytes("title = 'caf\xe9'".encode("latin-1"))
    with pytest.raises(CampaignError, match="not UTF-8 at byte 12; save the file as UTF-8"):
        load_campaign(path)


def test_every_problem_is_named_by_key(tmp_path: Path) -> None:
    broken = (
        SHIPPED.replace("end = 2016-11-22T16:30:00", "end = 2016-11-22T12:00:00")
        .replace('audience = "no_reply"', 'audience = "everyone"')
        .replace('id = "reminder-day-before"', 'id = "followup-no-reply"')
        .replace(
            'email = "thannop.sirithamwilai@ega.or.th"\n\n[sender]',
            'email = "not an address"\n\n[sender]',
        )
        .replace("days_before = 1\n", 'days_before = "one"\n')
        .replace('timezone = "Asia/Bangkok"', 'timezone = "Asia/Bangkok"\ncolour = "blue"')
    )
    with pytest.raises(CampaignError) as caught:
        _load(tmp_path, broken)
    problems = caught.value.problems
    expected = [
        "event.end (2016-11-22 12:00) must be after event.start",
        "rules[2] (id 'followup-no-reply').audience = 'everyone' is not one of: all, no_reply",
        "rules[3] (id 'followup-no-reply'): the id is used by an earlier rule",
        "coordinator.email = 'not an address' is not an email address",
        "rules[3] (id 'followup-no-reply'): days_before = 'one' must be a whole number",
        "campaign.colour is not a known key",
    ]
    for text in expected:
        assert any(text in p for p in problems), (text, problems)


def test_a_rule_due_after_the_event_is_refused(tmp_path: Path) -> None:
    with pytest.raises(
        CampaignError,
        match=r"rules\[3\] \(id 'reminder-day-before'\): it is due 2016-11-23 09:00, not before the event",
    ):
        _load(
            tmp_path,
            SHIPPED.replace("days_before = 1\n", "at = 2016-11-23T09:00:00\n").replace(
                "time = 09:00:00\ncatch_up_hours = 6", "catch_up_hours = 6"
            ),
        )


def test_missing_tables(tmp_path: Path) -> None:
    with pytest.raises(CampaignError) as caught:
        _load(tmp_path, '[campaign]\nid = "x"\n')
    assert {
        "[event] is missing; add a [event] table",
        "[coordinator] is missing; add a [coordinator] table",
    } <= set(caught.value.problems)


def test_the_optional_tables_have_their_defaults_when_absent(tmp_path: Path) -> None:
    campaign = _load(tmp_path, SHIPPED)
    assert campaign.replies.poll_minutes == 5
    assert campaign.replies.when_stale == "wait"
    assert campaign.digest is None
    assert campaign.letter.attach is False


def test_the_optional_tables_are_read(tmp_path: Path) -> None:
    (tmp_path / "emblem.png").write_bytes(b"\x89PNG")
    campaign = _load(
        tmp_path,
        SHIPPED
        + '\n[replies]\npoll_minutes = 2\nmax_sync_age_minutes = 30\nwhen_stale = "send"\n'
        + "\n[digest]\ntime = 07:30:00\n"
        + '\n[letter]\nnumber = "สรอ ๐๑๐๐/ว ๑๒๓"\nattach = true\nemblem = "emblem.png"\n'
        + 'agency_address = ["สำนักงาน", "กรุงเทพฯ ๑๐๔๐๐"]\ndated = 2016-11-01\n'
        + '[letter.later_numbers]\n1 = "สรอ ๐๑๐๐/ว ๑๔๕"\n',
    )
    assert (campaign.replies.poll_minutes, campaign.replies.max_sync_age_minutes) == (2, 30)
    assert campaign.replies.when_stale == "send"
    assert campaign.digest is not None
    assert campaign.digest.time_of_day.isoformat() == "07:30:00"
    assert campaign.letter.attach is True
    assert campaign.letter.number == "สรอ ๐๑๐๐/ว ๑๒๓"
    assert campaign.letter.emblem == (tmp_path / "emblem.png").resolve()
    assert campaign.letter.agency_address == ("สำนักงาน", "กรุงเทพฯ ๑๐๔๐๐")
    assert campaign.letter.later_numbers == {1: "สรอ ๐๑๐๐/ว ๑๔๕"}
    assert str(campaign.letter.dated) == "2016-11-01"


def test_every_problem_in_the_optional_tables_is_named(tmp_path: Path) -> None:
    broken = (
        SHIPPED
        + '\n[replies]\npoll_minutes = 0\nwhen_stale = "maybe"\nidle = 3\nmaildir = "no-box"\n'
        + '\n[digest]\nto = "not an address"\n'
        + '\n[letter]\nattach = "yes"\nemblem = "missing.png"\ndated = "1 Nov"\n'
        + 'font = "Bad;Font"\n[letter.later_numbers]\none = 3\n'
    )
    with pytest.raises(CampaignError) as caught:
        _load(tmp_path, broken)
    text = str(caught.value)
    for expected in (
        "replies: poll_minutes = 0 must be a number of minutes between 0.01 and 1440",
        "replies.when_stale = 'maybe' is not one of: wait, send",
        "replies.idle is not a known key",
        "replies.maildir = 'no-box':",
        "is not a Maildir (it has no cur/ or new/ folder)",
        "digest.time is missing; write e.g. time = 08:00:00",
        "digest.to = 'not an address'",
        "letter.attach = 'yes' must be true or false",
        "letter.emblem = 'missing.png': no such file",
        "letter.dated = '1 Nov' must be a date, e.g. dated = 2016-11-01",
        "letter font 'Bad;Font'",
        'letter.later_numbers.one: write SEQUENCE = "number"',
    ):
        assert expected in text, expected


def test_a_table_written_as_a_value_is_named_as_such(tmp_path: Path) -> None:
    """Review: `replies = 5` or `[[digest]]` said "[replies] is missing"."""
    with pytest.raises(CampaignError) as caught:
        _load(tmp_path, "replies = 5\n" + SHIPPED + "\n[[digest]]\ntime = 08:00:00\n")
    text = str(caught.value)
    assert "replies = 5 must be a table: write [replies] on a line of its own" in text
    assert "digest = [[...]] (a list of tables) must be a table" in text
    assert "is missing" not in text
