"""Every message of the fixture corpus (tests/fixtures/replies/, shaped like what Gmail,
Outlook/Exchange, Apple Mail, Thunderbird, Postfix, Exim and Office 365 send) is classified,
matched and turned into attendance as its manifest says."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import pytest

from mailer.invitees.importing import import_contacts
from mailer.replies import sources
from mailer.replies.attendance import attendance
from mailer.replies.classify import classify
from mailer.replies.sync import sync
from mailer.rounds.send import select_invitees
from tests.conftest import CONTACTS

CORPUS = Path(__file__).parent / "fixtures" / "replies"
EXPECTED = json.loads((CORPUS / "expected.json").read_text(encoding="utf-8"))


def _token(invitee_id: str) -> str:
    return (
        "0123456789ab"
        if invitee_id == "TH-50-agri"
        else hashlib.sha1(invitee_id.encode()).hexdigest()[:12]
    )


@pytest.fixture
def ledger_as_sent(make_ws):  # type: ignore[no-untyped-def]
    """The ledger the corpus answers: every office invited (SEQUENCE 0), and an update
    (SEQUENCE 1) sent to TH-40-ind only."""
    ws = make_ws()
    import_contacts(ws.engine, CONTACTS)
    ledger = ws.ledger()
    rows = [(r.invitee_id, r.email) for r in select_invitees(ws.engine)]
    ledger.enqueue(
        [(i, "; ".join(e)) for i, e in rows], "invitation", 0,
        lambda i: f"<egov-seminar-2559.{i}.invitation.{_token(i)}@ega.or.th>",
    )  # fmt: skip
    ledger.enqueue(
        [("TH-40-ind", "saraban.th40@ind.example")], "update:1", 1,
        lambda i: f"<egov-seminar-2559.{i}.update.{_token(i + 'u')}@ega.or.th>",
    )  # fmt: skip
    with ws.engine.begin() as conn:
        conn.exec_driver_sql("UPDATE delivery SET state = 'sent'")
    return ws


@pytest.mark.parametrize("case", EXPECTED, ids=[c["file"] for c in EXPECTED])
def test_each_message_is_classified_as_expected(case: dict) -> None:  # type: ignore[type-arg]
    result = classify((CORPUS / case["file"]).read_bytes())
    assert result.kind == case["kind"], result.evidence
    assert result.outcome == case["outcome"], result.evidence
    if case["representative"] and case["representative"].get("name"):
        assert result.representative.get("name") == case["representative"]["name"]
    wanted = case["representative"] or {}
    if wanted.get("position"):
        assert result.representative.get("position") == wanted["position"]
    if wanted.get("phone"):
        assert result.representative.get("phone") == re.sub(r"[\s-]", "", wanted["phone"])


@pytest.mark.slow
def test_the_whole_corpus_becomes_attendance(ledger_as_sent, clock, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    ws = ledger_as_sent
    folder = tmp_path / "inbox"
    folder.mkdir()
    report = None
    for case in EXPECTED:  # in manifest order, one sync each: later replies arrive later
        (folder / case["file"]).write_bytes((CORPUS / case["file"]).read_bytes())
        clock.advance(minutes=1)
        report = sync(ws.ledger(), ws.campaign, "eml:corpus", sources.eml_dir(folder))
    assert report is not None
    assert report.seen == len(EXPECTED)
    with ws.ledger().reads.connect() as conn:
        stored = {
            row.source_key.split(":")[1]: row
            for row in conn.exec_driver_sql(
                "SELECT source_key, invitee_id, matched_by, outcome, stale, evidence "
                "FROM inbound_message"
            )
        }
    assert len(stored) == len(EXPECTED)
    for case in EXPECTED:
        row = stored[case["file"]]
        assert row.invitee_id == case["invitee_id"], case["file"]
        assert row.matched_by == case["matched_by"], case["file"]
        assert bool(row.stale) == case["stale"], case["file"]
        counted = case.get("counted", True)  # not tied to the office: review, with why
        assert row.outcome == (case["outcome"] if counted else "needs_review"), case["file"]
        assert case.get("review", "") in row.evidence, (case["file"], row.evidence)
    found = attendance(ws.ledger())
    for case in EXPECTED:
        decisive = case["outcome"] in (
            "accepted",
            "declined",
            "tentative",
            "representative",
            "bounced",
        )
        if decisive and not case["stale"]:
            latest = [c for c in EXPECTED if c["invitee_id"] == case["invitee_id"]][-1]
            wanted = case["outcome"] if case.get("counted", True) else "needs_review"
            if latest is case:
                assert found[case["invitee_id"]].status == wanted, case["file"]
    assert found["TH-40-ind"].status == "accepted"  # the stale SEQUENCE 0 decline does not override
