"""`mailer preview`: the exact invitation one office would receive, without sending it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mailer.compose import ComposedMessage, Letter, OutgoingMail
from mailer.errors import MailerError
from mailer.rounds.send import select_invitees
from mailer.settings import cut
from mailer.workspace import Workspace


@dataclass(frozen=True)
class Preview:
    letter: Letter
    message: ComposedMessage


def preview_invitation(ws: Workspace, invitee_id: str) -> Preview:
    found = select_invitees(ws.engine, [invitee_id])
    invitee = next((i for i in found if i.invitee_id == invitee_id), None)
    if invitee is None:
        raise MailerError(
            f"no invitee {cut(invitee_id)!r}; see `mailer status` for the ids, "
            "or run `mailer import contacts.csv` first"
        )
    ledger = ws.ledger()
    state = ledger.campaign_state()
    rule = ws.campaign.invitation_rule
    message_id = f"<preview.{invitee_id}@{ws.campaign.uid_domain}>"
    message = ws.composer.compose(
        OutgoingMail(invitee, rule.template, message_id, state.sequence), ws.clock()
    )
    return Preview(ws.composer.letter(invitee, rule.template), message)


def save(path: Path, data: bytes) -> None:
    """Write a preview file; a path that cannot be written is the user's to fix."""
    try:
        path.write_bytes(data)
    except OSError as exc:
        raise MailerError(
            f"cannot write {path} ({exc.strerror}); give a file in a folder that exists and "
            "that you may write"
        ) from None
