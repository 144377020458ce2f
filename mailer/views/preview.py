"""`mailer preview`: the exact invitation one office would receive, without sending it, and
its official letter as PDF (`--pdf`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mailer.compose import Attachment, ComposedMessage, Letter, OutgoingMail
from mailer.errors import MailerError
from mailer.invitees.importing import InviteeRecord
from mailer.rounds.send import select_invitees
from mailer.settings import cut
from mailer.workspace import Workspace


@dataclass(frozen=True)
class Preview:
    letter: Letter
    message: ComposedMessage
    pdf: bytes | None = None  # the official letter, when asked for or attached


def _invitee(ws: Workspace, invitee_id: str) -> InviteeRecord:
    found = select_invitees(ws.engine, [invitee_id])
    invitee = next((i for i in found if i.invitee_id == invitee_id), None)
    if invitee is None:
        raise MailerError(
            f"no invitee {cut(invitee_id)!r}; see `mailer status` for the ids, "
            "or run `mailer import contacts.csv` first"
        )
    return invitee


def preview_invitation(ws: Workspace, invitee_id: str, *, pdf: bool = False) -> Preview:
    """The message as the office would receive it (with its letter when the campaign's
    `[letter]` says `attach`), and the letter itself when asked for (`pdf`)."""
    invitee = _invitee(ws, invitee_id)
    ledger = ws.ledger()
    state = ledger.campaign_state()
    rule = ws.campaign.invitation_rule
    message_id = f"<preview.{invitee_id}@{ws.campaign.uid_domain}>"
    attach = ws.campaign.letter.attach
    letter = _letter(ws, invitee, state.sequence) if pdf or attach else None
    attachments: tuple[Attachment, ...] = ()
    if attach and letter is not None:
        from mailer.letter_pdf.store import attachment

        attachments = (attachment(invitee_id, "invitation", letter),)
    mail = OutgoingMail(invitee, rule.template, message_id, state.sequence, attachments=attachments)
    message = ws.composer.compose(mail, ws.clock())
    return Preview(ws.composer.letter(invitee, rule.template), message, letter)


def _letter(ws: Workspace, invitee: InviteeRecord, sequence: int) -> bytes:
    """The office's invitation letter as PDF, as the campaign's `[letter]` table makes it
    now for the current SEQUENCE (whether or not `attach` is on); nothing is stored."""
    from mailer.letter_pdf import LetterPrinter, letter_version
    from mailer.letter_pdf.store import render_one

    campaign = ws.campaign
    version = letter_version(
        ws.ledger(), sequence, campaign.event, campaign.timezone, campaign.letter
    )
    return render_one(LetterPrinter(ws.composer), invitee, "invitation", version)


def save(path: Path, data: bytes) -> None:
    """Write a preview file; a path that cannot be written is the user's to fix."""
    try:
        path.write_bytes(data)
    except OSError as exc:
        raise MailerError(
            f"cannot write {path} ({exc.strerror}); give a file in a folder that exists and "
            "that you may write"
        ) from None
