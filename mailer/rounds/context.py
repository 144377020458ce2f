"""The workspace as sending takes it: `delivery_context` builds the `DeliveryContext` that
`mailer.delivery` drains with, `still_wanted` is where the rounds tell sending which
offices a reminder is still for, the digest's values come from `mailer.rounds.digest` and a
confirmation's from `mailer.replies.online` (sending itself never reads the offices' answers)."""

from __future__ import annotations

from collections.abc import Callable

from mailer.delivery.context import DeliveryContext, Wanted
from mailer.kinds import LedgerKind
from mailer.replies.online import confirmation
from mailer.rounds.audience import audience_ids
from mailer.rounds.digest import digest_builder
from mailer.workspace import Workspace


def still_wanted(ws: Workspace) -> Wanted:
    """A reminder is for the offices in its rule's audience as it stands now (one that
    declined or bounced after the round was queued is no longer in it); every other kind
    of message is for every office it was queued for."""

    def for_kind(kind: LedgerKind) -> Callable[[str], bool]:
        if kind.name != "reminder":
            return lambda invitee_id: True
        return audience_ids(ws.ledger(), ws.campaign.rule(kind.rule).audience).__contains__

    return for_kind


def delivery_context(ws: Workspace) -> DeliveryContext:
    settings, ledger = ws.settings, ws.ledger()
    return DeliveryContext(
        ledger=ledger,
        composer=ws.composer,
        transport=ws.transport,
        limits=settings.limits,
        max_failures=settings.max_consecutive_failures,
        smtp_timeout=settings.smtp.timeout,
        clock=ws.clock,
        stopping=ws.stopping,
        sleep=ws.sleep,
        wanted=still_wanted(ws),
        digest=digest_builder(ws),
        confirmation=lambda invitee_id, n: confirmation(ledger, invitee_id, n),
    )
