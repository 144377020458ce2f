"""The ids our mail carries, built and read in one place: the calendar UID of an office (stable,
ASCII, per office: a reply from any address still names it) and the Message-ID of a ledger row
(made once, at enqueue, and kept for ever; 48 random bits, so a thread cannot be guessed)."""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mailer.campaign import Campaign

TEST = "test-"  # a --test-to sample's UID and Message-ID start so: never an office's answer


def event_uid(campaign: Campaign, invitee_id: str, *, test: bool = False) -> str:
    return f"{TEST if test else ''}{campaign.id}-{invitee_id}@{campaign.uid_domain}"


@dataclass(frozen=True)
class UidReading:
    """What a calendar UID says: the office it names, and whether it is a sample's."""

    invitee_id: str
    test: bool


def read_uid(campaign: Campaign, uid: str) -> UidReading | None:
    """The office a UID of this campaign names (None: not one of this campaign's)."""
    pattern = rf"({TEST})?{re.escape(campaign.id)}-(.+)@{re.escape(campaign.uid_domain)}"
    found = re.fullmatch(pattern, uid, flags=re.IGNORECASE)
    if found is None:
        return None
    return UidReading(found.group(2), bool(found.group(1)))


def new_message_id(campaign: Campaign, invitee_id: str, kind: str) -> str:
    """Made once, at enqueue, and kept forever in the ledger."""
    left = re.sub(r"[^A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]", "-", f"{campaign.id}.{invitee_id}.{kind}")
    return f"<{left}.{secrets.token_hex(6)}@{campaign.uid_domain}>"


def looks_ours(campaign: Campaign, message_id: str) -> bool:
    """A Message-ID of this campaign's shape (whether the ledger holds it is another matter)."""
    lowered = message_id.lower()
    return lowered.startswith(f"<{campaign.id.lower()}.") and lowered.endswith(
        f"@{campaign.uid_domain.lower()}>"
    )
