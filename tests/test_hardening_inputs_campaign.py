"""Hardening: a bad campaign file gets `Error: …` naming the key, never a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from mailer.campaign import load_campaign
from mailer.cli import app
from tests.conftest import CAMPAIGN, TEMPLATES, free_port

SHIPPED = CAMPAIGN.read_text(encoding="utf-8")
COORDINATOR_LINE = 'email = "thannop.sirithamwilai@ega.or.th"\n\n[sender]'
SENDER_LINE = 'email = "thannop.sirithamwilai@ega.or.th"\n\n# Message rules'


def _check(tmp_path: Path, text: str | bytes):  # type: ignore[no-untyped-def]
    path = tmp_path / "campaign.toml"
    if isinstance(text, str):
        text = text.encode("utf-8")
    path.write_bytes(text)
    env = {
        "DATABASE_URL": f"sqlite:///{tmp_path / 'mailer.db'}",
        "MAILER_CAMPAIGN": str(path),
        "MAILER_TEMPLATES": str(TEMPLATES),
        "MAILER_MAILDIR": str(tmp_path / "maildir"),
        "SMTP_PORT": str(free_port()),
    }
    return path, CliRunner().invoke(app, ["check"], env=env, catch_exceptions=False)


def test_the_replacements_below_hit_the_shipped_file() -> None:
    assert SHIPPED.count(COORDINATOR_LINE) == 1
    assert SHIPPED.count(SENDER_LINE) == 1
    assert SHIPPED.count("days_before = 1\n") == 1
    assert "catch_up_hours = 6" in SHIPPED


@pytest.mark.parametrize(
    ("line", "key"), [(COORDINATOR_LINE, "coordinator.email"), (SENDER_LINE, "sender.email")]
)
def test_a_non_ascii_local_part_in_the_campaign_is_a_problem(
    tmp_path: Path, line: str, key: str
) -> None:
    path, result = _check(tmp_path, SHIPPED.replace(line, line.replace("thannop", "ธรรมพ")))
    assert result.exit_code == 1, result.output
    assert f"Error: {path}: the campaign file has 1 problem(s)" in result.output
    assert (
        f"{key} = 'ธรรมพ.sirithamwilai@ega.or.th' has letters before the @ that are not ASCII"
        in result.output
    )
    assert "SMTPUTF8" in result.output
    assert "Traceback" not in result.output


def test_an_idn_domain_in_the_campaign_is_kept_in_its_ascii_form(tmp_path: Path) -> None:
    path = tmp_path / "campaign.toml"
    path.write_text(
        SHIPPED.replace(COORDINATOR_LINE, COORDINATOR_LINE.replace("ega.or.th", "ไทย.ไทย")),
        encoding="utf-8",
    )
    campaign = load_campaign(path)
    assert campaign.coordinator.email == "thannop.sirithamwilai@xn--o3cw4h.xn--o3cw4h"
    assert campaign.uid_domain == "xn--o3cw4h.xn--o3cw4h"


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        (
            "days_before = 1\n",
            "days_before = 1000000000\n",
            "rules[3] (id 'reminder-day-before'): days_before = 1000000000 must be "
            "between 0 and 3650",
        ),
        (
            "catch_up_hours = 6",
            "catch_up_hours = 100000000000",
            "rules[3] (id 'reminder-day-before'): catch_up_hours = 100000000000 must be "
            "between 1 and 8760",
        ),
        (
            "catch_up_hours = 6",
            "catch_up_hours = -5",
            "rules[3] (id 'reminder-day-before'): catch_up_hours = -5 must be between 1 and 8760",
        ),
    ],
)
def test_numbers_out_of_range_are_named(tmp_path: Path, old: str, new: str, expected: str) -> None:
    _, result = _check(tmp_path, SHIPPED.replace(old, new))
    assert result.exit_code == 1, result.output
    assert expected in result.output
    assert "Traceback" not in result.output


def test_a_file_with_a_bom_is_read(tmp_path: Path) -> None:
    path = tmp_path / "campaign.toml"
    path.write_bytes(b"\xef\xbb\xbf" + SHIPPED.encode("utf-8"))
    assert load_campaign(path).id == "egov-seminar-2559"


@pytest.mark.parametrize(
    ("key", "char"),
    [("event.summary", "\x00"), ("event.venue", "\x1b"), ("coordinator.name", "\x7f")],
)
def test_control_characters_in_campaign_texts_are_refused(
    tmp_path: Path, key: str, char: str
) -> None:
    table, name = key.split(".")
    lines = SHIPPED.splitlines(keepends=True)
    start = lines.index(f"[{table}]\n")
    at = next(i for i in range(start, len(lines)) if lines[i].startswith(f"{name} = "))
    lines[at] = lines[at].replace(' = "', f' = "ก{char}', 1)
    escaped = "".join(lines).replace(char, f"\\u{ord(char):04X}")  # TOML cannot hold it raw
    _, result = _check(tmp_path, escaped)
    assert result.exit_code == 1, result.output
    assert f"{key} contains a control character (U+{ord(char):04X}); retype it" in result.output


def test_an_event_in_the_year_1_is_refused(tmp_path: Path) -> None:
    _, result = _check(
        tmp_path,
        SHIPPED.replace("start = 2016-11-22T13:00:00", "start = 0001-01-01T00:00:00"),
    )
    assert result.exit_code == 1, result.output
    assert "event.start = 0001-01-01 00:00 must be between the years 1970 and 9998" in result.output
    assert "Traceback" not in result.output


def test_long_values_in_a_campaign_file_are_cut(tmp_path: Path) -> None:
    long = "x" * 5000
    _, result = _check(
        tmp_path,
        SHIPPED.replace('timezone = "Asia/Bangkok"', f'timezone = "{long}"\n{long} = 1').replace(
            'audience = "no_reply"', f'audience = "{long}"'
        ),
    )
    assert result.exit_code == 1, result.output
    assert len(result.output) < 1500, result.output[:3000]
    assert result.output.count("… (5,000 characters)") == 3
