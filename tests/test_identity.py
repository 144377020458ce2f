"""The domain's ids and kinds, built and read in one place: whatever is built reads back."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailer.campaign import load_campaign
from mailer.identity import event_uid, looks_ours, new_message_id, read_uid
from mailer.kinds import CANCEL, INVITATION, LedgerKind, reminder, update
from tests.conftest import CAMPAIGN

CAMPAIGN_FILE = load_campaign(CAMPAIGN)
OFFICE_IDS = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._-]{0,40}", fullmatch=True)


@given(OFFICE_IDS, st.booleans())
def test_a_calendar_uid_names_its_office_back(invitee_id: str, test: bool) -> None:
    found = read_uid(CAMPAIGN_FILE, event_uid(CAMPAIGN_FILE, invitee_id, test=test))
    assert found is not None
    assert (found.invitee_id, found.test) == (invitee_id, test)


def test_a_uid_of_another_campaign_names_nothing() -> None:
    assert read_uid(CAMPAIGN_FILE, "other-2559-TH-50-agri@ega.or.th") is None
    assert read_uid(CAMPAIGN_FILE, "egov-seminar-2559-TH-50-agri@evil.example") is None


@given(OFFICE_IDS)
def test_a_message_id_is_ours_in_shape_and_never_the_same_twice(invitee_id: str) -> None:
    first = new_message_id(CAMPAIGN_FILE, invitee_id, "invitation")
    assert looks_ours(CAMPAIGN_FILE, first)
    assert first != new_message_id(CAMPAIGN_FILE, invitee_id, "invitation")


@given(
    st.one_of(
        st.just(INVITATION),
        st.just(CANCEL),
        st.from_regex(r"[a-z0-9][a-z0-9-]{0,20}", fullmatch=True).map(reminder),
        st.integers(min_value=0, max_value=10**6).map(update),
    )
)
def test_a_ledger_kind_reads_back_as_itself(kind: LedgerKind) -> None:
    assert LedgerKind.parse(str(kind)) == kind


@pytest.mark.parametrize("text", ["", "update:", "update:x", "reminder:", "bogus", "cancel:1"])
def test_what_is_not_a_ledger_kind_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="is not a kind of ledger row"):
        LedgerKind.parse(text)
