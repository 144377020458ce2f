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
