"""The campaign: what the event is, who runs it, and which messages go out when.

`model` holds the typed values the rest of mailer uses; `reading` parses and validates
`schedules/<name>.toml` into them, every problem reported at once.
"""

from mailer.campaign.model import (
    AUDIENCES,
    KINDS,
    Campaign,
    Coordinator,
    Event,
    MessageKind,
    Rule,
    Sender,
)
from mailer.campaign.reading import load_campaign, parse_campaign

__all__ = [
    "AUDIENCES",
    "KINDS",
    "Campaign",
    "Coordinator",
    "Event",
    "MessageKind",
    "Rule",
    "Sender",
    "load_campaign",
    "parse_campaign",
]
