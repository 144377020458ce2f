"""`mailer check`: the campaign, every template rendered for every invitee, the contacts,
letters of an unexpected script inside Thai text (e.g. Bengali in "ออดิทอเรียม"), and, when
the official letter is attached, its number, signer, emblem and font."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from mailer.campaign.letter import LetterSettings
from mailer.compose import OutgoingMail
from mailer.errors import MailerError, cut, some
from mailer.invitees.addresses import AddressProblem, ascii_address
from mailer.invitees.importing import InviteeRecord, read_contacts
from mailer.rounds.send import select_invitees
from mailer.thai import script_slips
from mailer.versions import Change, pending_change
from mailer.workspace import Workspace

SAMPLE_ANSWER = {  # what a confirmation (templates/confirm/) is rendered with
    "answer": {
        "status": "representative",
        "label": "ส่งผู้แทน",
        "representative": {"name": "ชื่อ", "position": "ตำแหน่ง", "phone": "๐๘", "email": "a@b.th"},
    }
}


@dataclass
class CheckReport:
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors


def run_check(ws: Workspace, contacts_file: Path | None = None) -> CheckReport:
    report = CheckReport()
    campaign = ws.campaign  # a broken campaign file raises CampaignError with every problem
    report.notes.append(f"campaign {campaign.id} ({campaign.path}): {len(campaign.rules)} rule(s)")
    event, coordinator, sender = campaign.event, campaign.coordinator, campaign.sender
    fields = {
        "event.title": event.title,
        "event.summary": event.summary,
        "event.venue": event.venue,
        "event.background": "\n\n".join(event.background),
        "coordinator.name": coordinator.name,
        "coordinator.unit": coordinator.unit,
        "coordinator.organisation": coordinator.organisation,
        "sender.name": sender.name,
    }
    for key, text in fields.items():
        report.errors.extend(s.describe() for s in script_slips(text, f"{campaign.path}: {key}"))

    built_in = {"update", "cancel", "confirm"}
    templates = sorted({rule.template for rule in campaign.rules} | built_in)
    usable = []
    for template in templates:
        try:
            renderer = ws.composer.renderer(template)
        except MailerError as exc:
            report.errors.append(str(exc))
            continue
        usable.append(template)
        for source in sorted(renderer.folder.parent.glob("_layout.*")) + sorted(
            renderer.folder.glob("*")
        ):
            text = source.read_text(encoding="utf-8", errors="replace")
            report.errors.extend(s.describe() for s in script_slips(text, str(source)))
    report.errors = list(dict.fromkeys(report.errors))

    invitees = _invitees(ws, contacts_file, report)
    failures: dict[str, list[str]] = {}
    now = ws.clock()
    for template in usable:
        for invitee in invitees:
            sample = {"changes": [Change("when", "วันและเวลา", "เดิม", "ใหม่")], **SAMPLE_ANSWER}
            try:
                mail = OutgoingMail(invitee, template, "<check@invalid>", 0, extra=sample)
                ws.composer.compose(mail, now, signed=False)  # signing: ~9 ms each
            except MailerError as exc:
                failures.setdefault(str(exc).replace(invitee.invitee_id, "{invitee}"), []).append(
                    invitee.invitee_id
                )
        if invitees:
            report.notes.append(f"template {template}: rendered for {len(invitees)} invitee(s)")
    for message, ids in failures.items():
        report.errors.append(f"{message.replace('{invitee}', ids[0])} (affects {some(ids)})")
    _event_changes(ws, report)
    report.errors.extend(letter_problems(ws.campaign.letter))
    _digest(ws, report)
    return report


def letter_problems(letter: LetterSettings) -> list[str]:
    """With `[letter] attach` on, what would send a letter no clerk can register: the
    example number or signer of the defaults, no emblem file, a font fontconfig does not
    know (WeasyPrint would quietly set the letter in another one)."""
    if not letter.attach:
        return []
    example = LetterSettings()
    found = []
    for key, value, shown in (
        ("number", letter.number, 'number = "สรอ ๐๑๐๐/ว ๑๒๓"'),
        ("signer_name", letter.signer_name, 'signer_name = "นายสมชาย ใจดี"'),
    ):
        if value == getattr(example, key):
            found.append(
                f"[letter] {key} is the example {value!r} and attach = true sends it to every "
                f"office; set {shown} in the campaign file"
            )
    if letter.emblem is None or not letter.emblem.is_file():
        where = f" ({letter.emblem} is missing)" if letter.emblem else ""
        found.append(
            f"[letter] emblem: the letter needs the agency's emblem{where}; set "
            'emblem = "garuda.png" (a file next to the campaign file)'
        )
    if not letter.font_files and letter.font not in _font_families():
        found.append(
            f"[letter] font {letter.font!r} is not a font fontconfig knows (fc-list); install "
            'it, name one it knows (font = "Laksaman", from fonts-thai-tlwg), or give its '
            'files: font_files = ["THSarabunNew.ttf"]'
        )
    return found


def _font_families() -> set[str]:
    """Every family name fontconfig knows (each font may list several, comma-separated)."""
    try:
        listed = subprocess.run(
            ["fc-list", "--format", "%{family}\n"], capture_output=True, text=True, timeout=60
        ).stdout
    except (OSError, subprocess.TimeoutExpired):
        return set()
    return {name.strip() for line in listed.splitlines() for name in line.split(",")}


def _digest(ws: Workspace, report: CheckReport) -> None:
    """With `[digest]`: today's digest composed once, as the scheduler would (not sent)."""
    if ws.campaign.digest is None:
        return
    from mailer.rounds.digest import preview_digest

    try:
        preview_digest(ws)
    except MailerError as exc:
        report.errors.append(str(exc))
        return
    report.notes.append("template digest: the coordinator's digest rendered")


def _event_changes(ws: Workspace, report: CheckReport) -> None:
    pending = pending_change(ws.ledger(), ws.campaign.event, ws.campaign.timezone)
    if pending is None:
        return
    if pending.cancelled:
        report.notes.append(f"the event was cancelled (SEQUENCE {pending.sequence})")
    elif pending.significant:
        report.warnings.append(
            f"the event changed since SEQUENCE {pending.sequence} was sent: "
            f"{pending.describe()}. Run `mailer send update` so every calendar moves"
        )
    else:
        report.notes.append(f"the offices' calendars hold SEQUENCE {pending.sequence}")


def _invitees(
    ws: Workspace, contacts_file: Path | None, report: CheckReport
) -> list[InviteeRecord]:
    if contacts_file is not None:
        contacts = read_contacts(contacts_file, reserved=ws.campaign.own_addresses)
        report.errors.extend(str(p) for p in contacts.errors)
        report.warnings.extend(str(p) for p in contacts.warnings)
        report.notes.append(f"{contacts_file}: {len(contacts.records)} valid invitee row(s)")
        return contacts.records
    invitees = select_invitees(ws.engine)
    if not invitees:
        report.warnings.append(
            "no invitees in the database yet; run `mailer import contacts.csv` "
            "(or `mailer check --contacts contacts.csv`)"
        )
    else:
        report.notes.append(f"database: {len(invitees)} invitee(s)")
    spellings: dict[str, list[str]] = {}
    for invitee in invitees:
        spellings.setdefault(invitee.invitee_id.lower(), []).append(invitee.invitee_id)
    for ids in spellings.values():
        if len(ids) > 1:
            report.warnings.append(
                f"database: {', '.join(ids)} differ only by case: an earlier import made "
                "one office twice, so it gets two invitations. Keep one (`mailer import` now "
                "matches ids whatever their case)"
            )
    usable = []
    for invitee in invitees:
        problems = list(_stored_address_problems(invitee, ws.campaign.own_addresses))
        report.errors.extend(problems)
        if not problems:  # the others are named, not rendered: no message could be made
            usable.append(invitee)
    return usable


def _stored_address_problems(invitee: InviteeRecord, own: Mapping[str, str]) -> Iterator[str]:
    """Addresses an earlier import let through that `mailer import` now refuses."""
    fix = "correct it in the list and run `mailer import` again"
    for address in invitee.email:
        if (keys := own.get(address.lower())) is not None:
            yield (
                f"database: {invitee.invitee_id} is invited at {cut(address)}, the "
                f"campaign's own address ({keys}); {fix}"
            )
            continue
        try:
            ascii_form = ascii_address(address)
        except AddressProblem as exc:
            yield f"database: {invitee.invitee_id}: {cut(address)!r} {exc}; {fix}"
            continue
        if ascii_form != address:
            yield (
                f"database: {invitee.invitee_id}: {cut(address)!r} is stored with an "
                f"international domain; run `mailer import` again to store it as "
                f"{cut(ascii_form)}"
            )
